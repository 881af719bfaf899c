"""GET /healthz: is the database answering, is Redis answering. No auth, no sessions:
load balancers and docker-compose call it. Failures are named, never explained in
detail (an error text could carry a connection URL)."""
from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger("brokersync.health")
REDIS_TIMEOUT_SECONDS = 2       # a health probe must answer well inside the prober's own timeout


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                                  socket_timeout=REDIS_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"database": _database, "redis": _redis}


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    body = {"status": "ok"}
    for name, check in CHECKS.items():
        try:
            check()
            body[name] = "ok"
        except Exception as exc:  # any failure means "not healthy"; the kind is logged, not returned
            log.warning("health.check_failed check=%s error=%s", name, type(exc).__name__)
            body[name] = "unavailable"
            body["status"] = "unavailable"
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
