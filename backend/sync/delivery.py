"""Which runs have a step's message waiting in a queue, so the reaper can tell a run that
waits its turn from one whose message or worker was lost.

A run's lease (its heartbeat) is renewed while a worker runs it, and held over a retry's
countdown; but a run that waits in its broker's queue behind a backlog (a fleet's first
round, a slot wake-up sent to the back of the queue) renews nothing. With the lease alone,
the reaper took a 1,000-account first round for lost runs: it sent each waiting run again
every lease and failed it after three. So every step message that is published marks its
run as sent, and a worker that receives it (takes it off the queue, even just to hold it)
clears the mark: a run with a mark is waiting in a queue, not lost. A worker killed with
messages in hand had cleared their marks on receipt, so its runs are reaped as before. The
mark lives in the Redis that carries the messages (lost with them if that Redis loses its
data) and expires after the broker's visibility timeout and a lease, so a message removed
by hand does not hide its run for longer than that.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger("brokersync.sync")
KEY = "bs:sync:sent:{}"


def _redis():
    from backend.brokers.registry import default_limiter

    return default_limiter().redis


def _ttl_seconds() -> int:
    from django.conf import settings

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return int(visibility + settings.SYNC_RUN_LEASE_SECONDS)


def note_sent(run_id: int) -> None:
    try:
        _redis().set(KEY.format(run_id), 1, ex=_ttl_seconds())
    except Exception:  # noqa: BLE001 - no mark: at worst the reaper sends the run once more
        log.warning("sync.sent_unmarked run=%s", run_id)


def note_received(run_id: int) -> None:
    try:
        _redis().delete(KEY.format(run_id))
    except Exception:  # noqa: BLE001 - the mark expires by itself
        log.warning("sync.received_unmarked run=%s", run_id)


def waiting(run_ids: Iterable[int]) -> set[int]:
    """The runs among `run_ids` whose message waits in a queue."""
    ids = list(run_ids)
    if not ids:
        return set()
    marks = _redis().mget([KEY.format(run_id) for run_id in ids])
    return {run_id for run_id, mark in zip(ids, marks) if mark is not None}
