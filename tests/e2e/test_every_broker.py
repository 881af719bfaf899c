"""Every broker end to end through the real Celery worker: full sync, a change, an
unchanged re-sync, 429s and 5xx, a revoked key. Real PostgreSQL, Redis, sandbox HTTP."""
from __future__ import annotations

import pytest

from backend.brokers.registry import ADAPTERS, get_adapter_class
from backend.connections.models import BrokerConnection
from backend.sync.models import SyncRun
from backend.sync.services import sync_request
from sandbox.endpoints import endpoint_name
from sandbox.faults import FaultPlan
from tests.factories import (make_connection, sandbox_account, sandbox_advance, sandbox_requests, sandbox_truth,
                             wait_for_run)
from tests.sync.helpers import assert_matches_truth

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
# The fewest requests that can tell an unchanged account has nothing new, per broker, with
# some room: positions (1-2), each history stream's "anything after the cursor?" and the
# open orders. Anything near a full re-fetch would be far above these. IBKR: one statement of
# the new days (SendRequest, one 1019 poll, the statement) for positions, read again by its
# reference code by the transactions and orders steps (1 each).
UNCHANGED_MAX_REQUESTS = {"alpaca": 8, "coinbase": 10, "binance": 8, "kraken": 8, "ibkr": 5}


@pytest.fixture(params=sorted(ADAPTERS))
def synced(request, sandbox, redis_client, celery_worker_process):
    broker = request.param
    if broker == "binance":
        sandbox.sims["binance"].reset_limits()      # weight is per IP: earlier tests share it
    environment = get_adapter_class(broker).environments[0]
    account = sandbox_account(sandbox, broker=broker, environment=environment, seed=31, positions=6, activities=150)
    connection = make_connection(account, broker=broker)
    return broker, account, connection, endpoint_name(broker, environment)


def sync(connection, timeout=240) -> SyncRun:
    return wait_for_run(sync_request(connection=connection)[0].pk, timeout=timeout)


def test_full_then_changed_then_unchanged(sandbox, synced):
    broker, account, connection, endpoint = synced
    first = sync(connection)
    assert first.state == "succeeded", (first.failed_step, first.error_message)
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))
    assert first.reconcile_differences == []

    sandbox_advance(sandbox, account["account_id"])
    second = sync(connection)
    assert second.state == "succeeded", (second.failed_step, second.error_message)
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))
    assert second.steps["transactions"]["created"] > 0
    assert second.reconcile_differences == []

    before = sandbox_requests(sandbox, endpoint)
    third = sync(connection)
    made = sandbox_requests(sandbox, endpoint) - before
    assert third.state == "succeeded"
    assert third.steps["transactions"]["created"] == 0 and third.steps["orders"]["created"] == 0
    assert made <= UNCHANGED_MAX_REQUESTS[broker], f"{broker}: {made} requests to learn nothing is new"


def test_429s_and_5xx_are_survived(sandbox, synced):
    broker, account, connection, endpoint = synced
    sandbox.faults.set(FaultPlan(target=endpoint, burst_429=3, retry_after=1, error_rate=0.1, error_status=503,
                                 seed=7))
    run = sync(connection, timeout=400)
    assert run.state == "succeeded", (run.failed_step, run.error_message)
    assert sandbox.faults.injected.get("429", 0) >= 3
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))


def test_a_revoked_key_halts_the_connection(sandbox, synced):
    broker, account, connection, _ = synced
    sandbox.sims[broker].revoke(account["account_id"])
    run = sync(connection)
    assert run.state == "failed" and run.error_kind == "auth" and run.attempts == 0
    connection.refresh_from_db()
    assert connection.status in (BrokerConnection.Status.EXPIRED, BrokerConnection.Status.REVOKED)
    assert connection.next_sync_at is None
    for secret in account["credentials"].values():
        assert str(secret)[:16] not in run.error_message
