"""Thin tasks on the `portfolio` queue: each takes ids, takes its lock, calls one service.

    portfolio.rebuild_history(portfolio_id)   queued by history_request (debounced)
    portfolio.extend_histories()              beat, hourly: histories a day behind
    portfolio.refresh_values()                beat, every minute: every portfolio's latest value
"""
from __future__ import annotations

from django.conf import settings
from django.db import close_old_connections

from backend.core.locks import lease_lock
from workers.celery_app import app
from workers.retry import DATABASE_TRANSIENT, REDIS_TRANSIENT

QUEUE = "portfolio"
LOCK_RETRY_SECONDS = 5
DATABASE_RETRY_SECONDS = 5


def redis_lock(name: str):
    """A lock across every worker process, expiring with the task time limit so a killed
    worker cannot hold it for ever. Yields whether it was acquired."""
    return lease_lock(name, settings.CELERY_TASK_TIME_LIMIT)


@app.task(name="portfolio.rebuild_history", bind=True, acks_late=True, max_retries=None, ignore_result=True)
def rebuild_history(self, portfolio_id: int) -> None:
    from backend.portfolio.history.requests import history_run_pending

    try:
        with redis_lock(f"portfolio-history:{portfolio_id}") as locked:
            if not locked:                      # another rebuild of this portfolio is running
                raise self.retry(countdown=LOCK_RETRY_SECONDS)
            history_run_pending(portfolio_id=portfolio_id)
    except DATABASE_TRANSIENT + REDIS_TRANSIENT:
        close_old_connections()
        raise self.retry(countdown=DATABASE_RETRY_SECONDS)


@app.task(name="portfolio.extend_histories", ignore_result=True)
def extend_histories() -> int:
    from backend.portfolio.history.requests import histories_extend_due

    return histories_extend_due()


@app.task(name="portfolio.refresh_values", ignore_result=True)
def refresh_values() -> int:
    from backend.portfolio.snapshot import portfolio_values_refresh

    with redis_lock("portfolio-values") as locked:
        if not locked:                          # the previous refresh is still running: skip this one
            return 0
        return portfolio_values_refresh()
