"""Sync runs: ask for one, start it, fail it, halt it, finish it.

One run per connection at a time is enforced by a partial unique index on SyncRun;
asking again while one is queued or running returns that run.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.brokers.errors import AuthError, RateLimited
from backend.connections.models import BrokerConnection

from .models import SyncRun
from .signals import history_changed

log = logging.getLogger("brokersync.sync")
STEPS = [s.value for s in SyncRun.Step]
RATE_WAITS = "_rate_waits"           # in run.steps: rate-limit retries since the last progress


def sync_request(*, connection: BrokerConnection, trigger: str = "api",
                 countdown: float = 0) -> tuple[SyncRun, bool]:
    """Queue a run for the connection, or return the one already queued or running.
    Returns (run, created). The Celery chain is sent only after the run is committed,
    `countdown` seconds later (the dispatcher spreads its sends over its period)."""
    existing = _active_run(connection)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(connection=connection, trigger=trigger, state=SyncRun.State.QUEUED)
            transaction.on_commit(lambda: _enqueue(run.pk, connection.broker, countdown=countdown))
    except IntegrityError:
        # Lost the race to another request: the database kept exactly one active run.
        existing = _active_run(connection)
        if existing is None:
            raise
        return existing, False
    log.info("sync.queued connection=%s run=%s trigger=%s", connection.pk, run.pk, trigger)
    return run, True


def _active_run(connection: BrokerConnection) -> SyncRun | None:
    return SyncRun.objects.filter(connection=connection, state__in=SyncRun.ACTIVE_STATES).first()


def _enqueue(run_id: int, broker: str, first_step: str = STEPS[0], countdown: float = 0, queue: str = "") -> None:
    from workers.tasks import sync_chain

    sync_chain(run_id, broker, first_step=first_step, queue=queue).apply_async(countdown=countdown or None)


def sync_resume(*, run_id: int, broker: str, step: str) -> None:
    """Send a run's chain again from `step` (a step that waited in line for a budget slot got
    one): to the workers of this process's egress address, whose slot it was given."""
    from workers.routing import wake_queue

    _enqueue(run_id, broker, first_step=step, queue=wake_queue(broker))


def sync_requeue(*, run: SyncRun) -> None:
    """Send a run's chain again from the step it had reached (after a lost worker or message)."""
    step = run.current_step or STEPS[0]
    _enqueue(run.pk, run.connection.broker, first_step=step)


def sync_step_started(*, run: SyncRun, step: str) -> None:
    """Note the step's start on the run. Written at once only for a run's first step (the
    run is running from then on); any other step's start is written with its first
    checkpoint or its end, whichever comes first (one write for a step with nothing to do)."""
    now = timezone.now()
    info = run.steps.get(step, {})
    info.setdefault("started_at", now.isoformat())
    run.steps[step] = info
    run.current_step = step
    if run.state == SyncRun.State.QUEUED:
        fields = {"current_step": step, "heartbeat_at": now, "steps": run.steps, "state": SyncRun.State.RUNNING,
                  "started_at": now}
        SyncRun.objects.filter(pk=run.pk).update(**fields)
        for key, value in fields.items():
            setattr(run, key, value)


def sync_step_progress(*, run: SyncRun, step: str, counts: dict) -> None:
    """Add a checkpoint's counts to the step and renew the run's lease. Called inside the
    checkpoint's transaction, so counts and rows commit together."""
    sync_step_counted(run=run, step=step, counts=counts)
    earliest = counts.get("earliest_changed")
    if earliest is not None and (run.changed_since is None or earliest < run.changed_since):
        run.changed_since = earliest
    run.steps.pop(RATE_WAITS, None)
    run.attempts = 0
    run.heartbeat_at = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(steps=run.steps, attempts=0, heartbeat_at=run.heartbeat_at,
                                             changed_since=run.changed_since, current_step=step)


def sync_step_counted(*, run: SyncRun, step: str, counts: dict) -> None:
    """Add counts to the step in memory only (a checkpoint that wrote nothing: they are
    written with the step's end)."""
    info = run.steps.setdefault(step, {})
    for key, value in counts.items():
        if isinstance(value, (int, float)):
            info[key] = info.get(key, 0) + value


def sync_step_finished(*, run: SyncRun, step: str, started: datetime, extra: dict | None = None) -> None:
    """The step's end, in one write; the run's current step moves on to the next (where a
    re-queued run starts again)."""
    now = _note_finished(run, step, started, extra)
    following = STEPS[STEPS.index(step) + 1] if step in STEPS[:-1] else step
    SyncRun.objects.filter(pk=run.pk).update(steps=run.steps, heartbeat_at=now, current_step=following)
    run.current_step, run.heartbeat_at = following, now


def _note_finished(run: SyncRun, step: str, started: datetime, extra: dict | None = None) -> datetime:
    now = timezone.now()
    info = run.steps.setdefault(step, {})
    info.update(extra or {})
    info["finished_at"] = now.isoformat()
    info["duration_ms"] = int((now - started).total_seconds() * 1000)
    return now


def sync_retry_count(*, run: SyncRun, error: Exception) -> int:
    """Retries so far without progress, of the error's own sort: waits the broker asked for
    are counted apart from failures, so a long rate-limited step never fails for waiting,
    and waits of our own pacing (a spent shared budget, no free step slot) not at all."""
    if isinstance(error, RateLimited):
        return 0 if error.local else int(run.steps.get(RATE_WAITS, 0))
    return run.attempts


def sync_retry_noted(*, run: SyncRun, error: Exception) -> int:
    """Count a retry on the run. Starts from the row as committed, not from `run` in memory:
    a step that failed may have counted a checkpoint whose commit never landed (or landed
    although the client saw the connection drop). Adds only this attempt's own facts: one
    retry, and the requests it made (`run.unrecorded_requests`, set by the pipeline)."""
    kind = getattr(error, "kind", "database")
    message = getattr(error, "message", None) or f"{type(error).__name__}: database unavailable"
    with transaction.atomic():
        fresh = SyncRun.objects.select_for_update().only("steps", "attempts").get(pk=run.pk)
        steps, attempts = fresh.steps, fresh.attempts
        step, made = getattr(run, "unrecorded_requests", (None, 0))
        if step and made:
            steps.setdefault(step, {})["requests"] = steps.get(step, {}).get("requests", 0) + made
        if isinstance(error, RateLimited):
            if not error.local:              # our own pacing always ends: only the broker's waits count
                steps[RATE_WAITS] = int(steps.get(RATE_WAITS, 0)) + 1
        else:
            attempts += 1
        SyncRun.objects.filter(pk=run.pk).update(attempts=attempts, steps=steps, error_kind=kind,
                                                 error_message=message[:500], heartbeat_at=timezone.now())
    run.steps, run.attempts, run.unrecorded_requests = steps, attempts, (None, 0)
    return sync_retry_count(run=run, error=error)


def sync_cancel(*, connection: BrokerConnection, reason: str, now: datetime | None = None) -> int:
    """End a connection's queued or running run (its steps see the run inactive and stop)."""
    return (SyncRun.objects.filter(connection=connection, state__in=SyncRun.ACTIVE_STATES)
            .update(state=SyncRun.State.FAILED, error_kind="canceled", finished_at=now or timezone.now(),
                    error_message=reason[:500]))


def sync_fail(*, run: SyncRun, step: str, error: Exception) -> None:
    """Record a failed run. Runs in its own transaction, after the step's has rolled back."""
    kind = getattr(error, "kind", "internal")
    message = getattr(error, "message", None) or f"{type(error).__name__}: internal error"
    now = timezone.now()
    with transaction.atomic():
        SyncRun.objects.filter(pk=run.pk).update(state=SyncRun.State.FAILED, failed_step=step, current_step=step,
                                                 error_kind=kind, error_message=message[:500], finished_at=now)
        connection = BrokerConnection.objects.select_for_update().get(pk=run.connection_id)
        connection.error_count += 1
        connection.last_sync_at = now
        connection.last_sync_state = SyncRun.State.FAILED
        connection.last_error = f"{step}: {message}"[:500]
        if isinstance(error, AuthError):
            connection.status = (BrokerConnection.Status.REVOKED if error.revoked
                                 else BrokerConnection.Status.EXPIRED)
            connection.status_reason = message[:255]
            connection.next_sync_at = None
        elif connection.error_count >= settings.SYNC_MAX_CONSECUTIVE_FAILURES:
            connection.status = BrokerConnection.Status.ERROR
            connection.status_reason = f"{connection.error_count} failed syncs in a row; last: {message}"[:255]
            connection.next_sync_at = None
        else:
            connection.next_sync_at = now + _retry_interval(connection)
        connection.save()
    log.warning("sync.run_failed connection=%s run=%s step=%s kind=%s", run.connection_id, run.pk, step, kind)


def _retry_interval(connection: BrokerConnection) -> timedelta:
    # After a failed run, try again sooner than the normal interval, backing off per failure.
    return min(connection.sync_interval, timedelta(minutes=5) * 2 ** max(0, connection.error_count - 1))


def sync_finish(*, run: SyncRun, started: datetime | None = None) -> None:
    """The run succeeded: its last step (write log) ends in the same write."""
    now = _note_finished(run, SyncRun.Step.WRITE_LOG, started or timezone.now())
    with transaction.atomic():
        SyncRun.objects.filter(pk=run.pk).update(state=SyncRun.State.SUCCEEDED, current_step="", finished_at=now,
                                                 error_kind="", error_message="", steps=run.steps,
                                                 heartbeat_at=now)
        run.state, run.current_step, run.finished_at = SyncRun.State.SUCCEEDED, "", now
        connection = BrokerConnection.objects.select_for_update().get(pk=run.connection_id)
        connection.error_count = 0
        connection.last_sync_at = now
        connection.last_successful_sync_at = now
        connection.last_sync_state = SyncRun.State.SUCCEEDED
        connection.last_error = ""
        if connection.status in (BrokerConnection.Status.PENDING, BrokerConnection.Status.ERROR):
            connection.status = BrokerConnection.Status.ACTIVE
            connection.status_reason = ""
        if connection.schedulable:
            connection.next_sync_at = now + connection.sync_interval
        connection.save()
        transaction.on_commit(lambda: history_changed.send(
            sender=SyncRun, connection_id=run.connection_id, portfolio_id=connection.portfolio_id,
            since=run.changed_since, reason="sync"))
    log.info("sync.run_finished connection=%s run=%s", run.connection_id, run.pk)
