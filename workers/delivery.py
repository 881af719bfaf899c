"""Marks each sync step message as sent when it is published and clears the mark when a
worker receives it (backend/sync/delivery.py says why: the reaper leaves waiting runs alone)."""
from __future__ import annotations

from celery.signals import before_task_publish, task_received


def _is_step(name: str | None) -> bool:
    from .tasks import TASK_STEPS          # imports this module: read at call time

    return name in TASK_STEPS


def _run_id(args, kwargs) -> int | None:
    value = args[0] if args else (kwargs or {}).get("run_id")
    return value if isinstance(value, int) else None


@before_task_publish.connect
def _sent(sender=None, body=None, **_):
    if not _is_step(sender) or not isinstance(body, (tuple, list)) or not body:
        return
    run_id = _run_id(body[0], body[1] if len(body) > 1 else None)
    if run_id is not None:
        from backend.sync.delivery import note_sent

        note_sent(run_id)


@task_received.connect
def _received(request=None, **_):
    if request is None or not _is_step(request.task_name):
        return
    run_id = _run_id(request.args, request.kwargs)
    if run_id is not None:
        from backend.sync.delivery import note_received

        note_received(run_id)
