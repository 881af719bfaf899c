"""Thin tasks. Each takes ids (never a secret), takes the connection's lock, calls one
service function, and lets workers/retry.py decide what an error means. A sync step's task
may run the steps after its own too (backend/sync/execution.py); the chain's tasks for
steps it ran are then not sent (one that arrives anyway, re-delivered, finds its step done
and returns at once).

    sync chain:  fetch_positions -> fetch_transactions -> fetch_orders -> reconcile -> write_log
    beat:        dispatch_due_syncs (every minute), reap_stale_runs (every minute)
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

from celery import chain
from celery.exceptions import Ignore
from django.db import close_old_connections

from . import delivery  # noqa: F401  (marks step messages sent and received, for the reaper)
from . import task_metering  # noqa: F401  (the CPU of tasks other than sync steps, when metering is on)
from .celery_app import app
from .retry import DATABASE_TRANSIENT, REDIS_TRANSIENT, decide
from .routing import queue_for, wake_queue

log = logging.getLogger("brokersync.tasks")
CHAIN_STEPS = ("positions", "transactions", "orders", "reconcile", "write_log")
LOCK_RETRY_SECONDS = 10
DATABASE_RETRY_SECONDS = 5


@contextmanager
def connection_lock(connection_id: int):
    """One worker per connection at a time, across all processes. Expires with the lease
    so a killed worker cannot hold it forever (backend/sync/execution.ConnectionLock)."""
    from backend.sync.execution import ConnectionLock

    with ConnectionLock(connection_id) as acquired:
        yield acquired


def run_sync_step(task, run_id: int, step: str, slot_wait: str = "") -> int:
    """The chain's task for `step`. It loads the run once, takes the connection's lock and
    runs this step and, while the execution is young, the steps after it (see
    backend/sync/execution.py). A task whose step an earlier execution already finished
    returns at once, and the chain goes on."""
    from backend.sync import metering

    with metering.metered(task.name, run_id) as meter:
        return _execute(task, run_id, step, slot_wait, meter)


def _execute(task, run_id: int, step: str, slot_wait: str, meter) -> int:
    from backend.brokers.registry import default_limiter
    from backend.sync import execution, services

    if slot_wait and default_limiter().was_woken(slot_wait):
        raise Ignore()              # a freed slot woke this run while it waited: its resent chain goes on
    try:
        run = execution.load_run(run_id)
    except DATABASE_TRANSIENT:
        close_old_connections()
        raise task.retry(countdown=DATABASE_RETRY_SECONDS, max_retries=None)
    if run is None:
        raise Ignore()                           # deleted with its connection
    if meter is not None:
        meter.loaded(run)
    # A fresh task whose step is done (an earlier execution ran it, or this is a re-delivery)
    # returns at once, and the chain goes on; our own retry (or a wait) goes on from where
    # the run is.
    if execution.is_finished(run, step) and not (task.request.retries or slot_wait):
        _skip_done_steps(task, run)
        return run_id
    if not run.is_active:
        raise Ignore()                           # ended (failed, canceled) before this step
    lock = execution.ConnectionLock(run.connection_id)
    if not lock.acquire():
        raise task.retry(countdown=LOCK_RETRY_SECONDS, max_retries=None)
    runner = execution.Execution(run, lock)
    try:
        runner.run_from(step)
        if meter is not None:
            meter.record["steps"] = runner.steps_run
        _skip_done_steps(task, run)
    except Exception as exc:
        failed = runner.step or step
        if meter is not None:
            meter.record["steps"] = runner.steps_run + [failed]
        decision = decide(exc, services.sync_retry_count(run=run, error=exc))
        if decision.action == "retry":
            _note_retry(run, exc, decision.countdown)
            log.info("sync.step_retry run=%s step=%s kind=%s countdown=%.1f",
                     run_id, failed, getattr(exc, "kind", "?"), decision.countdown)
            waiting = getattr(exc, "member", "")
            # A step waiting in this egress address's line comes back to a worker of it.
            raise task.retry(countdown=decision.countdown, max_retries=None, kwargs={"slot_wait": waiting},
                             **({"queue": wake_queue(run.connection.broker)} if waiting else {}))
        if not hasattr(exc, "kind"):
            log.exception("sync.step_crashed run=%s step=%s", run_id, failed)
        services.sync_fail(run=run, step=failed, error=exc)
        raise Ignore()                       # stops the chain; the run records why
    finally:
        lock.release()
    return run_id


def _skip_done_steps(task, run) -> None:
    """The chain's next tasks whose steps this execution already ran would only load the run
    and return: they are not sent (a sync done in one execution is one task). Each step's
    start, end and counts stay in run.steps."""
    from backend.sync.execution import is_finished

    chain = task.request.chain
    while chain and is_finished(run, TASK_STEPS.get(chain[-1].get("task"), "")):
        chain.pop()


def _note_retry(run, exc: Exception, countdown: float) -> None:
    """Count the retry on the run, and hold its lease until the retry is due: a run waiting
    out a rate-limit wait longer than the lease is asleep, not dead, and must not be reaped.
    If the database itself is what failed, neither is recorded."""
    from datetime import timedelta

    from django.utils import timezone

    from backend.brokers.errors import TransientError
    from backend.sync import services
    from backend.sync.models import SyncRun

    if isinstance(exc, REDIS_TRANSIENT):        # recorded as what it is, not as "database unavailable"
        exc = TransientError(f"redis unavailable: {type(exc).__name__}")
    try:
        services.sync_retry_noted(run=run, error=exc)
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() + timedelta(seconds=countdown))
    except DATABASE_TRANSIENT:
        close_old_connections()
        log.warning("sync.retry_unrecorded run=%s (database unavailable)", run.pk)


STEP_OPTIONS = {"bind": True, "acks_late": True, "max_retries": None, "ignore_result": True}


@app.task(name="sync.fetch_positions", **STEP_OPTIONS)
def fetch_positions(self, run_id: int, slot_wait: str = "") -> int:
    return run_sync_step(self, run_id, "positions", slot_wait)


@app.task(name="sync.fetch_transactions", **STEP_OPTIONS)
def fetch_transactions(self, run_id: int, slot_wait: str = "") -> int:
    return run_sync_step(self, run_id, "transactions", slot_wait)


@app.task(name="sync.fetch_orders", **STEP_OPTIONS)
def fetch_orders(self, run_id: int, slot_wait: str = "") -> int:
    return run_sync_step(self, run_id, "orders", slot_wait)


@app.task(name="sync.reconcile", **STEP_OPTIONS)
def reconcile(self, run_id: int, slot_wait: str = "") -> int:
    return run_sync_step(self, run_id, "reconcile", slot_wait)


@app.task(name="sync.write_log", **STEP_OPTIONS)
def write_log(self, run_id: int, slot_wait: str = "") -> int:
    return run_sync_step(self, run_id, "write_log", slot_wait)


TASK_STEPS = {"sync.fetch_positions": "positions", "sync.fetch_transactions": "transactions",
              "sync.fetch_orders": "orders", "sync.reconcile": "reconcile", "sync.write_log": "write_log"}
STEP_TASKS = {"positions": fetch_positions, "transactions": fetch_transactions, "orders": fetch_orders,
              "reconcile": reconcile, "write_log": write_log}


def sync_chain(run_id: int, broker: str, *, first_step: str = CHAIN_STEPS[0], queue: str = ""):
    """`queue`: another queue than the broker's (a step woken by a slot of this worker's egress)."""
    steps = CHAIN_STEPS[CHAIN_STEPS.index(first_step):]
    return chain(*(STEP_TASKS[s].si(run_id).set(queue=queue or queue_for(broker)) for s in steps))


@app.task(name="sync.dispatch_due", ignore_result=True)
def dispatch_due_syncs() -> int:
    from backend.sync.scheduling import dispatch_due

    return dispatch_due()


@app.task(name="sync.reap_stale_runs", ignore_result=True)
def reap_stale_runs() -> int:
    from backend.sync.scheduling import reap_stale

    return reap_stale()


@app.task(name="imports.run", bind=True, acks_late=True, max_retries=None, ignore_result=True)
def run_import(self, import_id: int) -> None:
    """A large file import (the file is stored with its record, never sent as an argument)."""
    from backend.imports.services import import_crashed, import_run

    try:
        import_run(import_id=import_id)
    except DATABASE_TRANSIENT:
        close_old_connections()
        raise self.retry(countdown=DATABASE_RETRY_SECONDS)
    except Exception as exc:
        log.exception("imports.crashed import=%s", import_id)
        import_crashed(import_id=import_id, error=exc)
