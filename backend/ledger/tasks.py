"""The ledger's one task: a thin doorway to `services.ledger_recompute`, one at a time per
portfolio (a Redis lock with a lease), on the `ledger` queue."""
from __future__ import annotations

import logging

import psycopg
from django.db import InterfaceError, OperationalError

from workers.celery_app import app

log = logging.getLogger("brokersync.ledger")
# A full recompute of a 200,000-activity account takes seconds (benchmarks/ledger.py); the
# lease covers far more, and a killed worker's lock still expires.
LOCK_LEASE_SECONDS = 600
BUSY_RETRY_SECONDS = 5
DATABASE_RETRY_SECONDS = 10


def _redis():
    from backend.brokers.registry import default_limiter

    return default_limiter().redis


def recompute_queued(portfolio_id: int, ttl: int) -> bool:
    """True for the first request since the last run started: only that one queues a task."""
    return bool(_redis().set(f"bs:ledger:queued:{portfolio_id}", 1, nx=True, ex=ttl))


@app.task(name="ledger.recompute", bind=True, acks_late=True, max_retries=None, ignore_result=True)
def recompute_ledger(self, portfolio_id: int) -> None:
    from backend.portfolio.models import Portfolio

    from .services import ledger_recompute

    redis = _redis()
    lock = redis.lock(f"bs:lock:ledger:{portfolio_id}", timeout=LOCK_LEASE_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    try:
        # Cleared before computing: a change that lands meanwhile queues the next run.
        redis.delete(f"bs:ledger:queued:{portfolio_id}")
        if Portfolio.objects.filter(pk=portfolio_id).exists():
            ledger_recompute(portfolio_id=portfolio_id)
    except (OperationalError, InterfaceError, psycopg.OperationalError) as exc:
        # The database went away mid-recompute: its transaction rolled back whole, and the
        # changes it was to apply are still recorded on the portfolio's ledger state.
        log.warning("ledger.retry portfolio=%s error=%s", portfolio_id, type(exc).__name__)
        raise self.retry(countdown=DATABASE_RETRY_SECONDS) from None
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile: someone else may hold it now
            log.warning("ledger.lock_expired portfolio=%s", portfolio_id)

