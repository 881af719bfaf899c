"""Periodic work: queue due connections, and notice runs whose worker died.

One beat entry (the dispatcher) serves every connection, instead of one entry per
connection: a single indexed query on (status, next_sync_at) finds what is due, and the
sends are spread over the dispatch period so 100,000 connections do not all start at the
top of the minute.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from backend.connections.models import FEEDLESS_KINDS, BrokerConnection

from . import delivery, services
from .models import SyncRun

log = logging.getLogger("brokersync.sync")
DISPATCH_BATCH = 5_000          # per tick; the rest are still due next tick
MAX_REQUEUES = 3                # a run lost this many times is failed, not retried forever


def due_connections(now=None, limit: int = DISPATCH_BATCH):
    now = now or timezone.now()
    active = SyncRun.objects.filter(connection=OuterRef("pk"), state__in=SyncRun.ACTIVE_STATES)
    return (BrokerConnection.objects
            .filter(status__in=[BrokerConnection.Status.PENDING, BrokerConnection.Status.ACTIVE],
                    next_sync_at__lte=now)
            .exclude(broker__in=list(FEEDLESS_KINDS))     # nothing to fetch, whatever next_sync_at says
            .exclude(Exists(active))
            .order_by("next_sync_at")[:limit])


def dispatch_due(now=None) -> int:
    """Queue a run for every due connection that has none queued or running, the sends
    spread evenly over the dispatch period rather than all at once."""
    due = list(due_connections(now))
    spread = settings.SYNC_DISPATCH_EVERY_SECONDS / max(1, len(due))
    queued = 0
    for i, connection in enumerate(due):
        _, created = services.sync_request(connection=connection, trigger="schedule", countdown=i * spread)
        queued += created
    if queued:
        log.info("sync.dispatched count=%s", queued)
    return queued


def reap_stale(now=None) -> int:
    """Runs whose lease ran out (their worker died, or Redis lost their message) are
    re-queued from the step they reached, or failed after MAX_REQUEUES, with a reason;
    runs whose message still waits in a queue are left to it (`delivery`). No run stays
    queued or running forever."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SYNC_RUN_LEASE_SECONDS)
    stale = (SyncRun.objects.select_related("connection")
             .filter(state__in=SyncRun.ACTIVE_STATES)
             .filter(heartbeat_at__lt=cutoff) |
             SyncRun.objects.select_related("connection")
             .filter(state=SyncRun.State.QUEUED, heartbeat_at__isnull=True, queued_at__lt=cutoff))
    stale = list(stale)
    # A run whose message waits in its queue (a backlog longer than the lease) is not lost.
    queued = delivery.waiting(run.pk for run in stale)
    reaped = 0
    for run in stale:
        if run.pk in queued:
            continue
        requeues = int(run.steps.get("_requeues", 0))
        if requeues >= MAX_REQUEUES:
            services.sync_fail(run=run, step=run.current_step or "positions",
                               error=_LostRun(f"no progress after {requeues} re-queues (worker or message lost)"))
        else:
            run.steps["_requeues"] = requeues + 1
            SyncRun.objects.filter(pk=run.pk).update(steps=run.steps, heartbeat_at=now)
            services.sync_requeue(run=run)
            log.warning("sync.run_requeued run=%s step=%s", run.pk, run.current_step)
        reaped += 1
    return reaped


class _LostRun(Exception):
    kind = "lost"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
