"""Through the real Celery worker: a Binance step that finds every budget slot held waits in
line without a thread, and the release of a slot wakes it at once (not its fallback)."""
from __future__ import annotations

import time

import pytest
from django.conf import settings

from backend.brokers.registry import default_limiter
from backend.sync import pipeline
from backend.sync.services import sync_request
from tests.factories import make_connection, sandbox_account, sandbox_requests, wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {timeout}s")


def test_a_released_slot_wakes_the_step_waiting_for_it(sandbox, redis_client, celery_worker_process, user):
    sandbox.sims["binance"].reset_limits()
    account = sandbox_account(sandbox, broker="binance", environment="live", seed=23, positions=4, activities=60)
    connection = make_connection(account, broker="binance", user=user)
    limiter = default_limiter()
    scope = pipeline.adapter_for(connection).session.scope
    others = [f"run:other-{i}" for i in range(settings.BROKER_RATE_LIMITS["binance"]["max_active_steps"])]
    assert all(limiter.take_slot("binance", scope, holder, ttl=300) for holder in others)
    before = sandbox_requests(sandbox, "binance")
    try:
        run = sync_request(connection=connection)[0]
        _wait_for(lambda: limiter.waiters(scope) == [f"run:{run.pk}|positions"], 30, "waiter in line")
        assert sandbox_requests(sandbox, "binance") == before          # waiting spends no weight
        run.refresh_from_db()
        assert run.state == "running" and not run.steps.get("positions", {}).get("finished_at")

        woken = limiter.release_slot_and_wake("binance", scope, others[0])   # what a step's end does
        pipeline.wake_waiters("binance", woken)
        released = time.monotonic()
        done = wait_for_run(run.pk, timeout=60)
        assert done.state == "succeeded", done.error_message
        # woken, not its fallback: that would have come SYNC_SLOT_WAIT_SECONDS (300 s) later
        assert time.monotonic() - released < 60 < settings.SYNC_SLOT_WAIT_SECONDS
        assert limiter.waiters(scope) == []
    finally:
        for holder in others:
            limiter.release_slot("binance", scope, holder)
