"""The dispatcher, the reaper and run de-duplication (no worker needed: what they queue
is checked in the database and in the on-commit callbacks)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backend.connections.models import BrokerConnection
from backend.sync import delivery, scheduling
from backend.sync.models import SyncRun
from backend.sync.services import sync_fail, sync_request
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _connection(n: int, *, due_in: timedelta, status="active", user=None) -> BrokerConnection:
    from backend.portfolio.models import Portfolio

    user = user or UserFactory()
    portfolio, _ = Portfolio.objects.get_or_create(owner=user, name="p")
    return BrokerConnection.objects.create(owner=user, portfolio=portfolio, broker="alpaca", environment="paper",
                                           broker_account_id=f"acct-{n}", status=status,
                                           next_sync_at=timezone.now() + due_in)


def test_dispatcher_queues_only_due_schedulable_connections(django_capture_on_commit_callbacks):
    due = [_connection(i, due_in=timedelta(minutes=-1)) for i in range(3)]
    _connection(10, due_in=timedelta(minutes=10))
    _connection(11, due_in=timedelta(minutes=-1), status="expired")
    _connection(12, due_in=timedelta(minutes=-1), status="error")
    with django_capture_on_commit_callbacks() as callbacks:
        assert scheduling.dispatch_due() == 3
    assert len(callbacks) == 3
    assert set(SyncRun.objects.values_list("connection_id", flat=True)) == {c.pk for c in due}
    # already queued: the next tick queues nothing again
    assert scheduling.dispatch_due() == 0
    assert SyncRun.objects.count() == 3


def test_sync_request_returns_the_active_run():
    connection = _connection(1, due_in=timedelta(0))
    first, created = sync_request(connection=connection)
    second, created_again = sync_request(connection=connection)
    assert created and not created_again and first.pk == second.pk


def test_database_allows_one_active_run_per_connection():
    from django.db import IntegrityError, transaction

    connection = _connection(1, due_in=timedelta(0))
    SyncRun.objects.create(connection=connection, state="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        SyncRun.objects.create(connection=connection, state="queued")


def test_reaper_requeues_a_run_whose_worker_died_then_fails_it(settings, redis_client,
                                                               django_capture_on_commit_callbacks):
    connection = _connection(1, due_in=timedelta(hours=1))
    stale = timezone.now() - timedelta(seconds=settings.SYNC_RUN_LEASE_SECONDS + 5)
    run = SyncRun.objects.create(connection=connection, state="running", current_step="transactions",
                                 heartbeat_at=stale)
    for attempt in range(scheduling.MAX_REQUEUES):
        delivery.note_received(run.pk)          # a worker takes each re-queue, and dies with it too
        assert scheduling.reap_stale(now=timezone.now() + timedelta(seconds=settings.SYNC_RUN_LEASE_SECONDS * (attempt + 1) + 10)) == 1
        run.refresh_from_db()
        assert run.state == "running" and run.steps["_requeues"] == attempt + 1
    delivery.note_received(run.pk)
    scheduling.reap_stale(now=timezone.now() + timedelta(days=1))
    run.refresh_from_db()
    assert run.state == "failed" and run.error_kind == "lost" and "re-queues" in run.error_message
    assert scheduling.reap_stale(now=timezone.now() + timedelta(days=2)) == 0     # nothing stays running


def test_a_run_whose_message_waits_in_a_backlog_is_not_reaped_until_a_worker_took_it(
        settings, redis_client, django_capture_on_commit_callbacks):
    """A first round longer than the lease: the run's message is still in its queue (no
    worker has taken it), so it is waiting, not lost. Once a worker has received it and
    the lease runs out with no progress, it is lost and sent again."""
    connection = _connection(1, due_in=timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):      # a real publish to the broker's queue
        run, _ = sync_request(connection=connection)
    assert delivery.waiting([run.pk]) == {run.pk}
    later = timezone.now() + timedelta(seconds=settings.SYNC_RUN_LEASE_SECONDS * 3)
    assert scheduling.reap_stale(now=later) == 0
    run.refresh_from_db()
    assert run.state == "queued" and "_requeues" not in run.steps

    delivery.note_received(run.pk)                               # what a worker does on taking it
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.reap_stale(now=later) == 1
    run.refresh_from_db()
    assert run.steps["_requeues"] == 1
    assert delivery.waiting([run.pk]) == {run.pk}                # the re-queue is a new message in line


def test_failed_runs_back_off_then_stop_the_schedule():
    from backend.brokers.errors import TransientError

    connection = _connection(1, due_in=timedelta(0))
    for n in range(1, 6):
        run = SyncRun.objects.create(connection=connection, state="running")
        sync_fail(run=run, step="positions", error=TransientError("HTTP 503"))
        connection.refresh_from_db()
        assert connection.error_count == n
    assert connection.status == "error" and connection.next_sync_at is None
