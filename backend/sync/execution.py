"""One task execution of a sync run: the run, its connection and the connection's lock are
loaded and taken once, and consecutive steps run in the same execution while it is young.

The chain keeps its five tasks (positions -> transactions -> orders -> reconcile -> write
log): each step still records its own start, finish and counts in run.steps, and the
tasks after one that ran several steps find theirs finished and return at once. What a
small or unchanged sync saves is four rounds of: reload the run, take the lock, rebuild
the adapter, and the bookkeeping of a step that had nothing to do.

The lock is renewed at every checkpoint and between steps, so an execution that outlives
the lease's length keeps it (otherwise a second execution could start beside it).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings

from backend.brokers.base import BrokerAdapter
from backend.brokers.errors import RateLimited, TransientError
from backend.connections.models import BrokerConnection

from . import pipeline
from .models import SyncRun

log = logging.getLogger("brokersync.sync")
CHAIN_STEPS = tuple(s.value for s in SyncRun.Step)


class LockLost(TransientError):
    """The connection's lock expired while this execution held it: another execution may
    have started, so this one stops at once (its committed checkpoints stand)."""


class ConnectionLock:
    """One execution per connection at a time, across every worker process. Expires with
    the run's lease, so a killed worker cannot hold it forever; renewed while held."""

    def __init__(self, connection_id: int, *, ttl: float | None = None):
        from backend.brokers.registry import default_limiter

        self.connection_id = connection_id
        self.lock = default_limiter().redis.lock(f"bs:lock:connection:{connection_id}",
                                                 timeout=ttl or settings.SYNC_RUN_LEASE_SECONDS, blocking=False)
        self.held = False

    def acquire(self) -> bool:
        self.held = bool(self.lock.acquire(blocking=False))
        return self.held

    def renew(self) -> None:
        if not self.held:
            return
        try:
            self.lock.reacquire()
        except Exception as exc:  # noqa: BLE001 - LockNotOwnedError: it expired and may be someone else's now
            self.held = False
            raise LockLost(f"the lock of connection {self.connection_id} expired mid-step") from exc

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self.lock.release()
        except Exception:  # expired meanwhile: someone else may hold it now, leave theirs alone
            log.warning("sync.lock_expired connection=%s", self.connection_id)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def load_run(run_id: int) -> SyncRun | None:
    """The run with its connection, in one query."""
    return SyncRun.objects.select_related("connection").filter(pk=run_id).first()


def is_finished(run: SyncRun, step: str) -> bool:
    return bool(run.steps.get(step, {}).get("finished_at"))


def first_unfinished(run: SyncRun, start: str = CHAIN_STEPS[0]) -> str | None:
    for step in CHAIN_STEPS[CHAIN_STEPS.index(start):]:
        if not is_finished(run, step):
            return step
    return None


class Execution:
    """Runs a run's steps from `start` on, in order, while the execution is younger than
    SYNC_EXECUTION_CONTINUE_SECONDS at the end of a step (so a long backfill still hands its
    thread back between steps, and the chain's later tasks take over)."""

    def __init__(self, run: SyncRun, lock: ConnectionLock, *,
                 adapter_factory: Callable[[BrokerConnection], BrokerAdapter] = pipeline.adapter_for,
                 continue_seconds: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.run = run
        self.lock = lock
        self.adapter_factory = adapter_factory
        self.clock = clock
        self.started = clock()
        self.continue_seconds = (settings.SYNC_EXECUTION_CONTINUE_SECONDS if continue_seconds is None
                                 else continue_seconds)
        self.steps_run: list[str] = []
        self.step = ""                 # the step running now (what a failure is recorded against)
        run.renew_lock = lock.renew    # the pipeline calls it at every checkpoint
        run.keep_slot = True           # a budget slot is kept from one step to the next ...

    def run_from(self, start: str) -> list[str]:
        try:
            step = first_unfinished(self.run, start)
            while step is not None:
                self.step = step
                pipeline.run_step(self.run, step, self.adapter_factory)
                self.steps_run.append(step)
                if step == CHAIN_STEPS[-1] or not self.run.is_active:
                    break
                self.lock.renew()
                if self.clock() - self.started >= self.continue_seconds:
                    break
                step = first_unfinished(self.run, step)
        except RateLimited as exc:
            pipeline.hold_slot_through_wait(self.run, exc)      # ... or kept for the retry of a budget wait,
            raise
        finally:
            pipeline.release_slot(self.run)     # ... and otherwise given back when the execution ends
        return self.steps_run
