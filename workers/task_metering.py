"""With SYNC_TASK_METERING on, every task that is not a sync step (those meter themselves,
with their requests and rows) records its name and the CPU time of its thread: the ledger
recomputes, value-history rebuilds and price refreshes a sync sets off cost worker CPU too,
and the fleet benchmark says how much."""
from __future__ import annotations

import time

from celery.signals import task_postrun, task_prerun

_started: dict[str, float] = {}         # task id -> its thread's CPU time at the start


def _metered(name: str | None) -> bool:
    from django.conf import settings

    from .tasks import TASK_STEPS          # imports this module: read at call time

    return bool(settings.SYNC_TASK_METERING) and name not in TASK_STEPS


@task_prerun.connect
def _start(task_id=None, task=None, **_):
    if task is not None and _metered(task.name):
        _started[task_id] = time.thread_time()


@task_postrun.connect
def _finish(task_id=None, task=None, state=None, **_):
    started = _started.pop(task_id, None)
    if started is not None:
        from backend.sync.metering import record_task

        record_task(task.name, time.thread_time() - started, str(state or ""))
