"""Thin market-data tasks. Each takes a source key (never a secret), takes that source's
lock (one refresh per source at a time; a refresh that finds it held is skipped) and calls
one service. They run on the broker's own queue (sync.<broker>), so a source's refresh
shares its broker's workers and budget with the syncs.

    beat:  market.dispatch_latest (every minute) -> market.refresh_latest(source) per source
           market.dispatch_closes (daily)        -> market.refresh_closes(source) per source
           market.prune_latest (daily)
"""
from __future__ import annotations

import logging

from django.conf import settings

from .celery_app import app
from .routing import queue_for

log = logging.getLogger("brokersync.market")
OPTIONS = {"ignore_result": True, "acks_late": True}


def _dispatch(task, *, ever_held: bool = False) -> list[str]:
    from backend.market import services, sources

    services.listings_discover_new(ever_held=ever_held)
    keys = sources.source_keys()
    for key in keys:
        task.apply_async(args=[key], queue=queue_for(key))
    return keys


@app.task(name="market.dispatch_latest", **OPTIONS)
def dispatch_latest() -> list[str]:
    return _dispatch(refresh_latest)


@app.task(name="market.dispatch_closes", **OPTIONS)
def dispatch_closes() -> list[str]:
    return _dispatch(refresh_closes, ever_held=True)       # closes of sold assets too


def _locked_refresh(kind: str, source_key: str, service) -> dict:
    from backend.brokers.errors import BrokerError
    from backend.market.locks import source_lock

    with source_lock(kind, source_key) as acquired:
        if not acquired:
            log.info("market.refresh_skipped kind=%s source=%s (the previous one is still running)", kind, source_key)
            return {"source": source_key, "skipped": "running"}
        try:
            result = service(source_key=source_key)
        except BrokerError as exc:
            # The next beat tick tries again; a rate-limited source waits its turn there.
            log.warning("market.refresh_failed kind=%s source=%s error=%s", kind, source_key, exc.kind)
            return {"source": source_key, "skipped": exc.kind}
    return {"source": source_key, "listings": result.listings, "written": result.written,
            "requests": result.requests, "skipped": result.skipped}


@app.task(name="market.refresh_latest", **OPTIONS)
def refresh_latest(source_key: str) -> dict:
    from backend.market.services import prices_refresh_latest

    return _locked_refresh("latest", source_key, prices_refresh_latest)


@app.task(name="market.refresh_closes", **OPTIONS)
def refresh_closes(source_key: str) -> dict:
    from backend.market.services import closes_refresh

    return _locked_refresh("closes", source_key, closes_refresh)


@app.task(name="market.prune_latest", **OPTIONS)
def prune_latest() -> int:
    from backend.market.services import prices_prune

    return prices_prune(retention_days=settings.MARKET_LATEST_RETENTION_DAYS)
