"""A run's counts say what committed: a checkpoint that does not commit, and the retry note
written after it, never count rows that were rolled back (PostgreSQL, no worker)."""
from __future__ import annotations

import copy
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.db import connection as django_connection
from django.utils import timezone

from backend.brokers.dtos import Page, Transaction, TransactionType
from backend.brokers.errors import RateLimited, TransientError
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio
from backend.sync import pipeline, services, writers
from backend.sync.models import BrokerTransaction, SyncCursor, SyncRun
from tests.factories import UserFactory, raw_db_connection


def _run() -> SyncRun:
    user = UserFactory()
    portfolio = Portfolio.objects.create(owner=user, name="p")
    connection = BrokerConnection.objects.create(owner=user, portfolio=portfolio, broker="alpaca",
                                                 environment="paper", broker_account_id="acct-1", status="active")
    # Not sync_request: its chain would reach the session's worker, which would run this run too.
    run = SyncRun.objects.create(connection=connection, trigger="test")
    SyncCursor.objects.create(connection=connection, stream="transactions")
    return SyncRun.objects.select_related("connection").get(pk=run.pk)


def _page(n: int) -> Page:
    items = [Transaction(broker_id=f"dep-{i}", type=TransactionType.DEPOSIT, broker_type="CSD",
                         occurred_at=datetime(2026, 1, 1, tzinfo=dt_timezone.utc), amount=Decimal("10.5"))
             for i in range(n)]
    return Page(items=items, cursor={"watermark": "2026-01-01T00:00:00Z"})


def _hold_row_lock(run: SyncRun):
    """Another session holds the run's row, so the checkpoint's update of it times out."""
    holder = raw_db_connection()
    holder.execute(f"SELECT 1 FROM {SyncRun._meta.db_table} WHERE id = %s FOR UPDATE", [run.pk])
    return holder


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_that_does_not_commit_leaves_the_run_as_committed():
    run = _run()
    pipeline._checkpoint(run, "transactions", [_page(3)], writers.transactions_upsert)
    committed = copy.deepcopy(run.steps)
    assert committed["transactions"]["created"] == 3

    holder = _hold_row_lock(run)
    try:
        with django_connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        with pytest.raises(OperationalError):
            pipeline._checkpoint(run, "transactions", [_page(7)], writers.transactions_upsert)
    finally:
        holder.rollback()
        holder.close()
        with django_connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    # The rows were rolled back, and so are the counts on the object the task goes on with.
    assert BrokerTransaction.objects.filter(connection=run.connection).count() == 3
    assert run.steps == committed
    services.sync_retry_noted(run=run, error=TransientError("database went away"))
    assert SyncRun.objects.get(pk=run.pk).steps["transactions"]["created"] == 3


@pytest.mark.django_db
def test_retry_note_starts_from_the_committed_row_and_adds_this_attempts_requests():
    run = _run()
    services.sync_step_progress(run=run, step="transactions", counts={"created": 4, "fetched": 4})
    # What a failed attempt leaves in memory: counts of a commit that never landed, 5 requests.
    run.steps["transactions"]["created"] = 999
    run.unrecorded_requests = ("transactions", 5)

    services.sync_retry_noted(run=run, error=TransientError("503 from the broker"))
    services.sync_retry_noted(run=run, error=RateLimited("429", retry_after=3))
    stored = SyncRun.objects.get(pk=run.pk)
    assert stored.steps["transactions"] == {"created": 4, "fetched": 4, "requests": 5}   # counted once
    assert stored.attempts == 1 and stored.steps[services.RATE_WAITS] == 1
    assert stored.error_kind == "rate_limited"
    assert run.steps == stored.steps and run.attempts == 1
    assert stored.heartbeat_at <= timezone.now()


@pytest.mark.django_db
def test_waits_of_our_own_pacing_are_never_counted_against_a_run():
    run = _run()
    for _ in range(50):
        services.sync_retry_noted(run=run, error=RateLimited("no step slot", retry_after=5, local=True))
    stored = SyncRun.objects.get(pk=run.pk)
    assert services.RATE_WAITS not in stored.steps and stored.attempts == 0
    assert services.sync_retry_count(run=stored, error=RateLimited("no slot", retry_after=5, local=True)) == 0
    services.sync_retry_noted(run=run, error=RateLimited("429 from the broker", retry_after=5))
    assert SyncRun.objects.get(pk=run.pk).steps[services.RATE_WAITS] == 1
