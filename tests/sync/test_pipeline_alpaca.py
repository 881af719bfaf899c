"""The pipeline against the Alpaca sandbox over real HTTP and real PostgreSQL, in-process.

(tests/e2e runs the same through the Celery worker.)"""
from __future__ import annotations

from decimal import Decimal

import pytest

from backend.brokers.errors import TransientError
from backend.sync import pipeline
from backend.sync.services import sync_fail
from backend.sync.models import BrokerPosition, BrokerTransaction, SyncCursor, SyncRun
from sandbox.faults import FaultPlan
from tests.factories import make_connection, sandbox_account, sandbox_advance, sandbox_requests, sandbox_truth

from .helpers import assert_matches_truth, sync_in_process

pytestmark = pytest.mark.django_db

EVERY_TYPE = {"trade", "dividend", "fee", "interest", "deposit", "withdrawal", "split", "transfer", "other"}


@pytest.fixture
def alpaca_live(sandbox, redis_client):
    account = sandbox_account(sandbox, broker="alpaca", environment="live", seed=11, positions=12, activities=600)
    return account, make_connection(account, broker="alpaca")


def test_full_sync_stores_exactly_the_account(sandbox, alpaca_live):
    account, connection = alpaca_live
    run = sync_in_process(connection)
    truth = sandbox_truth(sandbox, account["account_id"])

    assert run.state == SyncRun.State.SUCCEEDED
    assert_matches_truth(connection, truth)
    types = set(BrokerTransaction.objects.filter(connection=connection).values_list("type", flat=True))
    assert EVERY_TYPE <= types
    assert run.reconcile_differences == []
    assert run.steps["transactions"]["created"] == len(truth["transactions"])
    # shorts keep their sign
    assert BrokerPosition.objects.filter(connection=connection, is_open=True, quantity__lt=0).exists()
    # money went through Decimal: a stored price equals the broker's string exactly
    fill = BrokerTransaction.objects.filter(connection=connection, type="trade").first()
    assert fill.price == Decimal(fill.raw["price"])


def test_second_sync_fetches_only_what_is_new(sandbox, alpaca_live):
    account, connection = alpaca_live
    sync_in_process(connection)
    before = BrokerTransaction.objects.filter(connection=connection).count()
    held = set(BrokerPosition.objects.filter(connection=connection, is_open=True).values_list("broker_symbol", flat=True))

    sandbox_advance(sandbox, account["account_id"], fills=3, dividend=True, split=True, close_position=True,
                    orders=2, cancel_orders=1)
    truth = sandbox_truth(sandbox, account["account_id"])
    requests_before = sandbox_requests(sandbox, "alpaca-live")
    run = sync_in_process(connection)
    requests_made = sandbox_requests(sandbox, "alpaca-live") - requests_before

    assert run.state == SyncRun.State.SUCCEEDED
    assert_matches_truth(connection, truth)
    new = BrokerTransaction.objects.filter(connection=connection).count() - before
    assert run.steps["transactions"]["created"] == new > 0
    assert run.steps["transactions"]["fetched"] == new           # only the new records came back
    assert requests_made <= 8                                     # positions, 1-2 activity pages, orders
    assert BrokerTransaction.objects.filter(connection=connection, type="split").exists()
    now_held = set(BrokerPosition.objects.filter(connection=connection, is_open=True).values_list("broker_symbol", flat=True))
    closed = held - now_held
    assert closed, "advance(close_position) closes one position"
    assert all(not p.is_open and p.closed_at for p in BrokerPosition.objects.filter(connection=connection,
                                                                                   broker_symbol__in=closed))
    assert run.reconcile_differences == []


def test_rerun_after_a_failed_step_resumes_and_duplicates_nothing(sandbox, alpaca_live):
    account, connection = alpaca_live
    sandbox.faults.set(FaultPlan(target="alpaca-live", fail_next=0, error_rate=1.0, error_status=503,
                                 path_contains="/v2/orders"))
    run = SyncRun.objects.create(connection=connection, trigger="test")
    pipeline.run_step(run, "positions")
    pipeline.run_step(run, "transactions")
    with pytest.raises(TransientError) as failure:
        pipeline.run_step(run, "orders")
    sync_fail(run=run, step="orders", error=failure.value)     # what the task does with it
    run.refresh_from_db()
    assert run.state == SyncRun.State.FAILED and run.failed_step == "orders"
    stored = BrokerTransaction.objects.filter(connection=connection).count()
    assert stored > 0
    assert SyncCursor.objects.get(connection=connection, stream="transactions").watermark

    sandbox.faults.clear()
    rerun = sync_in_process(connection)
    assert rerun.state == SyncRun.State.SUCCEEDED
    assert rerun.steps["transactions"]["created"] == 0              # resumed from the committed cursor
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))


def test_pages_received_before_a_broker_error_are_kept(sandbox, alpaca_live):
    """600 activities come as a 500-row page (5 requests) and a 100-row one. The broker fails
    from the 6th request on: the first page is saved before the error goes on, although no
    checkpoint was due, and the retry starts after it."""
    account, connection = alpaca_live
    sandbox.faults.set(FaultPlan(target="alpaca-live", skip_first=5, error_rate=1.0, error_status=503,
                                 path_contains="/v2/account/activities"))
    run = SyncRun.objects.create(connection=connection, trigger="test")
    with pytest.raises(TransientError):
        pipeline.run_step(run, "transactions")
    kept = SyncCursor.objects.get(connection=connection, stream="transactions")
    assert BrokerTransaction.objects.filter(connection=connection).count() == 500
    assert kept.cursor.get("watermark") == kept.watermark != ""
    assert SyncRun.objects.get(pk=run.pk).steps["transactions"]["created"] == 500

    sandbox.faults.clear()
    before = sandbox_requests(sandbox, "alpaca-live")
    pipeline.run_step(run, "transactions")
    assert sandbox_requests(sandbox, "alpaca-live") - before <= 2       # the last page, not all six
    assert SyncRun.objects.get(pk=run.pk).steps["transactions"]["created"] == 600
    assert BrokerTransaction.objects.filter(connection=connection).count() == 600


def test_repeating_a_step_writes_nothing_twice(sandbox, alpaca_live):
    """A re-delivered step (worker died after committing, before acking) is harmless."""
    account, connection = alpaca_live
    sync_in_process(connection)
    SyncCursor.objects.filter(connection=connection).update(cursor={}, watermark="")   # forget how far we got
    run = sync_in_process(connection)
    assert run.steps["transactions"]["created"] == 0
    assert run.steps["transactions"]["updated"] == run.steps["transactions"]["fetched"] > 0
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))


def test_cursor_never_moves_backwards(sandbox, alpaca_live):
    _, connection = alpaca_live
    sync_in_process(connection)
    cursor = SyncCursor.objects.get(connection=connection, stream="transactions")
    pipeline._advance_cursor(connection, "transactions", {"watermark": "2000-01-01T00:00:00Z"}, {})
    cursor.refresh_from_db()
    assert cursor.watermark > "2000-01-01T00:00:00Z"


def test_disabled_stream_is_skipped(sandbox, alpaca_live):
    _, connection = alpaca_live
    connection.sync_orders = False
    connection.save()
    run = sync_in_process(connection)
    assert run.steps["orders"]["skipped"] == "stream disabled"
    assert not connection.orders.exists()
