"""End to end through the real Celery worker process: the chain on the broker's queue,
retries with backoff, auth halts, failure counting. Real PostgreSQL, Redis, sandbox HTTP."""
from __future__ import annotations

import pytest

from backend.connections.models import BrokerConnection
from backend.sync import delivery
from backend.sync.models import BrokerTransaction, SyncRun
from backend.sync.services import sync_request
from sandbox.faults import FaultPlan
from tests.factories import make_connection, sandbox_account, sandbox_truth, wait_for_run
from tests.sync.helpers import assert_matches_truth

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def paper(sandbox, redis_client, celery_worker_process):
    account = sandbox_account(sandbox, broker="alpaca", environment="paper", seed=21, positions=6, activities=300)
    return account, make_connection(account, broker="alpaca")


def test_chain_runs_every_step_on_the_worker(sandbox, paper):
    account, connection = paper
    run, created = sync_request(connection=connection, trigger="api")
    assert created and run.state == SyncRun.State.QUEUED
    again, created_again = sync_request(connection=connection, trigger="api")
    assert again.pk == run.pk and not created_again                 # one run per connection at a time

    run = wait_for_run(run.pk)
    assert run.state == SyncRun.State.SUCCEEDED, (run.failed_step, run.error_message)
    assert delivery.waiting([run.pk]) == set()          # the worker took every message it was sent
    assert set(run.steps) >= {"positions", "transactions", "orders", "reconcile", "write_log"}
    assert all("duration_ms" in run.steps[s] for s in ("positions", "transactions", "orders"))
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))
    connection.refresh_from_db()
    assert connection.status == BrokerConnection.Status.ACTIVE
    assert connection.last_successful_sync_at and connection.next_sync_at > connection.last_successful_sync_at


def test_429_bursts_and_5xx_are_retried_until_the_sync_succeeds(sandbox, paper):
    account, connection = paper
    sandbox.faults.set(FaultPlan(target="alpaca-paper", burst_429=4, retry_after=1, error_rate=0.3,
                                 error_status=503, seed=3))
    run = wait_for_run(sync_request(connection=connection)[0].pk, timeout=180)
    assert run.state == SyncRun.State.SUCCEEDED, (run.failed_step, run.error_message)
    assert sandbox.faults.injected.get("429", 0) >= 4 and sandbox.faults.injected.get("5xx", 0) > 0
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))


def test_failure_mid_chain_then_rerun(sandbox, paper):
    account, connection = paper
    sandbox.faults.set(FaultPlan(target="alpaca-paper", error_rate=1.0, error_status=500, path_contains="/v2/orders"))
    failed = wait_for_run(sync_request(connection=connection)[0].pk, timeout=180)
    assert failed.state == SyncRun.State.FAILED
    assert failed.failed_step == "orders" and failed.error_kind == "transient"
    assert "secret" not in failed.error_message.lower()
    kept = BrokerTransaction.objects.filter(connection=connection).count()
    assert kept == len(sandbox_truth(sandbox, account["account_id"])["transactions"])   # earlier steps committed
    connection.refresh_from_db()
    assert connection.error_count == 1 and connection.status == BrokerConnection.Status.ACTIVE

    sandbox.faults.clear()
    rerun = wait_for_run(sync_request(connection=connection)[0].pk)
    assert rerun.state == SyncRun.State.SUCCEEDED
    assert rerun.steps["transactions"]["created"] == 0
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))
    connection.refresh_from_db()
    assert connection.error_count == 0


def test_revoked_key_halts_without_retrying(sandbox, paper):
    account, connection = paper
    sandbox.sims["alpaca"].revoke(account["account_id"])
    run = wait_for_run(sync_request(connection=connection)[0].pk)
    assert run.state == SyncRun.State.FAILED and run.error_kind == "auth"
    assert run.attempts == 0                                           # no retry on auth failure
    connection.refresh_from_db()
    assert connection.status in (BrokerConnection.Status.EXPIRED, BrokerConnection.Status.REVOKED)
    assert connection.next_sync_at is None                             # its schedule stopped
    assert account["credentials"]["api_secret"] not in run.error_message


def test_five_failed_runs_in_a_row_put_the_connection_in_error(sandbox, paper):
    _, connection = paper
    # 422 is a permanent error: each run fails at once, without retries.
    sandbox.faults.set(FaultPlan(target="alpaca-paper", error_rate=1.0, error_status=422))
    for _ in range(5):
        run = wait_for_run(sync_request(connection=connection)[0].pk)
        assert run.state == SyncRun.State.FAILED and run.error_kind == "permanent"
    connection.refresh_from_db()
    assert connection.status == BrokerConnection.Status.ERROR
    assert connection.error_count == 5 and connection.next_sync_at is None
