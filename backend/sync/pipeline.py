"""The sync pipeline: positions -> transactions -> orders -> reconcile -> write log.

Each step is a plain function of a run. Every checkpoint saves its rows and its cursor
in one transaction, so a step that dies keeps what it committed and a re-run resumes
from the last cursor without writing anything twice (rows are upserted on the broker's
id). The Celery tasks in workers/tasks.py are doorways to `run_step`.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backend.brokers.base import BrokerAdapter
from backend.brokers.dtos import Page, RepullWindow
from backend.brokers.errors import RateLimited
from backend.brokers.registry import build_adapter
from backend.connections.models import BrokerConnection

from . import services, writers
from .models import SyncCursor, SyncRun

log = logging.getLogger("brokersync.sync")

# Commit at least this often: big enough that a 200,000-activity backfill is not 2,000
# tiny transactions, small enough that a crash loses little work.
CHECKPOINT_ROWS = 2_000
CHECKPOINT_SECONDS = 5.0
MAX_SKIPPED_KEPT = 200
ZERO_COUNTS = ("fetched", "created", "updated", "skipped")
SLOT_WAIT_GRACE = 60.0               # a waiter's lease outlasts its fallback retry by this much
SLOT_HOLD_GRACE = 30.0               # a slot kept through a budget wait outlasts the step's retry by this much


def adapter_for(connection: BrokerConnection) -> BrokerAdapter:
    return build_adapter(connection.broker, environment=connection.environment,
                         credentials=connection.credentials(), options=connection.options)


def run_step(run: SyncRun, step: str, adapter_factory: Callable[[BrokerConnection], BrokerAdapter] = adapter_for) -> None:
    """Run one step of a run. Broker errors propagate to the caller (the task decides).
    The step's bookkeeping is one write when it ends (plus its checkpoints, if it has rows
    to save); only a run's first step also marks the run running as it starts."""
    started = timezone.now()
    services.sync_step_started(run=run, step=step)
    connection = run.connection
    if step == SyncRun.Step.RECONCILE:
        _reconcile(run, adapter_factory)
    elif step == SyncRun.Step.WRITE_LOG:
        services.sync_finish(run=run, started=started)
        return
    elif step not in connection.enabled_streams():
        services.sync_step_finished(run=run, step=step, started=started, extra={"skipped": "stream disabled"})
        return
    else:
        adapter = adapter_factory(connection)
        adapter.handoff = run.__dict__.setdefault("handoff", {})     # shared by this execution's steps
        run.cursors = {c.stream: c for c in SyncCursor.objects.filter(connection=connection)}
        adapter.prime({stream: c.cursor for stream, c in run.cursors.items()})
        try:
            with _step_slot(run, adapter, step):
                STREAM_STEPS[step](run, adapter)
        finally:
            # An adapter with more than one session (Binance's per-account /sapi budget) sums them.
            made = getattr(adapter, "requests_made", adapter.session.requests_made)
            run.unrecorded_requests = (step, made)          # what a retry note adds, if the step failed
            run.steps.setdefault(step, {})["requests"] = run.steps.get(step, {}).get("requests", 0) + made
    for count in ZERO_COUNTS:                # a step that found nothing new saved no checkpoint
        run.steps[step].setdefault(count, 0)
    services.sync_step_finished(run=run, step=step, started=started)


def _positions(run: SyncRun, adapter: BrokerAdapter) -> None:
    snapshot = adapter.fetch_positions()
    holdings = [*snapshot.positions, *writers.cash_positions(snapshot.cash)]
    with _committed_or_restored(run), transaction.atomic():
        counts = writers.positions_replace(run.connection, holdings, timezone.now())
        counts["skipped"] = len(snapshot.skipped)
        _keep_skipped(run, "positions", snapshot.skipped)
        services.sync_step_progress(run=run, step="positions", counts=counts)


def _transactions(run: SyncRun, adapter: BrokerAdapter) -> None:
    cursor = _cursor(run, "transactions")
    _consume(run, "transactions", adapter.fetch_transactions(cursor.cursor or None), writers.transactions_upsert)


def _orders(run: SyncRun, adapter: BrokerAdapter) -> None:
    cursor = _cursor(run, "orders")
    open_ids = writers.open_order_ids(run.connection)
    _consume(run, "orders", adapter.fetch_orders(cursor.cursor or None, open_ids), writers.orders_upsert)


def _consume(run: SyncRun, stream: str, pages: Iterator[Page], upsert) -> None:
    """Save pages in checkpoints: rows and the newest page's cursor in one transaction.

    When the broker fails mid-stream (a rate-limit wait, a 5xx, a revoked key), the pages
    already received are saved before the error goes on: each is whole (its rows and the
    cursor that covers them), and a retry that had to fetch them again could spend the same
    budget again and never get further (Binance's withdraw history allows 10 calls a minute)."""
    batch: list[Page] = []
    rows, last_commit = 0, time.monotonic()
    pages = iter(pages)
    while True:
        try:
            page = next(pages)
        except StopIteration:
            break
        except Exception:
            if batch:
                _checkpoint(run, stream, batch, upsert)
            raise
        batch.append(page)
        rows += len(page.items)
        if rows >= CHECKPOINT_ROWS or time.monotonic() - last_commit >= CHECKPOINT_SECONDS:
            _checkpoint(run, stream, batch, upsert)
            batch, rows, last_commit = [], 0, time.monotonic()
    if batch:
        _checkpoint(run, stream, batch, upsert)


def _checkpoint(run: SyncRun, stream: str, batch: list[Page], upsert) -> None:
    items = [item for page in batch for item in page.items]
    skipped = [s for page in batch for s in page.skipped]
    unmoved = not skipped and _unmoved(run, stream, batch)
    if unmoved and not items:
        return                  # nothing new, and the cursor already says so: nothing to write
    with _committed_or_restored(run), transaction.atomic():
        counts = upsert(run.connection, items, timezone.now()) if items else {"fetched": 0, "created": 0, "updated": 0}
        counts["skipped"] = len(skipped)
        if unmoved and not counts["created"] and not counts.get("rewritten", counts["updated"]):
            # records asked for again (open orders) came back as stored (the writers rewrite
            # none of them and count them under `updated`): the step's end says so
            services.sync_step_counted(run=run, step=stream, counts=counts)
            return
        _keep_skipped(run, stream, skipped)
        _advance_cursor(run.connection, stream, batch[-1].cursor, _merge_coverage(batch))
        services.sync_step_progress(run=run, step=stream, counts=counts)
    getattr(run, "cursors", {}).pop(stream, None)       # moved: later pages compare with nothing
    _renew_leases(run)


def _renew_leases(run: SyncRun) -> None:
    """At a checkpoint: the step's budget slot and the connection's lock (a long step keeps
    both past their first lease; the lock's renewal fails if it was lost meanwhile)."""
    if getattr(run, "renew_slot", None):
        run.renew_slot()
    if getattr(run, "renew_lock", None):
        run.renew_lock()


def _unmoved(run: SyncRun, stream: str, batch: list[Page]) -> bool:
    """The pages say what the stored cursor already says (an incremental fetch that found
    nothing new): no checkpoint is needed."""
    stored = getattr(run, "cursors", {}).get(stream)
    return (stored is not None and batch[-1].cursor == stored.cursor
            and all(stored.coverage.get(k) == v for k, v in _merge_coverage(batch).items()))


class SlotWait(RateLimited):
    """Every step slot of the budget is held: the step waits in the scope's queue without a
    thread. A release wakes it (its chain is sent again from this step); `retry_after` is
    only the fallback, should nothing wake it (its place in the queue is kept)."""

    def __init__(self, message: str, *, member: str, retry_after: float):
        super().__init__(message, retry_after=retry_after, local=True)
        self.member = member


@contextmanager
def _step_slot(run: SyncRun, adapter: BrokerAdapter, step: str):
    """A slot of the broker's budget scope, where its rule caps how many steps spend it at
    once (Binance: one weight budget per IP for every user). Without one, the step joins
    the scope's wait queue (ordered by when its run started) and gives its thread back,
    spending no weight; the step that releases a slot wakes the next waiter at once. The
    slot lasts a lease and is renewed at every checkpoint; a dead worker's slot expires, a
    dead waiter is dropped. A task execution that runs several steps keeps its slot from
    one step to the next (`run.keep_slot`) and gives it back when it ends."""
    session = adapter.session
    limiter, holder, ttl = session.limiter, f"run:{run.pk}", settings.SYNC_RUN_LEASE_SECONDS
    if limiter is None:
        yield
        return
    if getattr(run, "held_slot", None) is None:
        member, fallback = f"{holder}|{step}", settings.SYNC_SLOT_WAIT_SECONDS
        arrival = (run.started_at or timezone.now()).timestamp()
        claim = limiter.claim_slot(session.broker, session.scope, member, ttl, lease=fallback + SLOT_WAIT_GRACE,
                                   arrival=arrival)
        wake_waiters(session.broker, claim.woken)
        if not claim.taken:
            raise SlotWait(f"{session.broker}: every step slot of its shared budget is in use; waiting in line",
                           member=member, retry_after=fallback)
        run.held_slot = (limiter, session.broker, session.scope, holder)
        run.renew_slot = lambda: limiter.take_slot(session.broker, session.scope, holder, ttl)
    try:
        yield
    finally:
        if not getattr(run, "keep_slot", False):
            release_slot(run)


def release_slot(run: SyncRun) -> None:
    """Give the run's budget slot back (if it holds one) and wake whoever it goes to."""
    held, run.held_slot, run.renew_slot = getattr(run, "held_slot", None), None, None
    if held is None:
        return
    limiter, broker, scope, holder = held
    try:
        wake_waiters(broker, limiter.release_slot_and_wake(broker, scope, holder))
    except Exception:  # noqa: BLE001 - Redis away: the slot expires by itself; keep the step's own error
        log.warning("sync.slot_not_released run=%s scope=%s", run.pk, scope)


def hold_slot_through_wait(run: SyncRun, error: BaseException) -> bool:
    """The budget the run's slot shares out is spent (our own pacing said wait): keep the
    slot until the step's retry comes back, instead of handing it to a waiter. The waiter
    would find the same budget spent, make a request or none, and hand the slot on again:
    at a saturated budget that churn was most of the fleet's task executions. A retry that
    is lost lets the slot expire `SLOT_HOLD_GRACE` seconds after it was due. True when held
    (`release_slot` is then a no-op)."""
    held = getattr(run, "held_slot", None)
    if (held is None or not isinstance(error, RateLimited) or isinstance(error, SlotWait) or not error.local
            or error.scope != held[2]):
        return False
    limiter, broker, scope, holder = held
    run.held_slot, run.renew_slot = None, None
    try:
        return limiter.take_slot(broker, scope, holder, error.retry_after + SLOT_HOLD_GRACE)
    except Exception:  # noqa: BLE001 - Redis away: the slot expires by itself; keep the step's own error
        log.warning("sync.slot_not_held run=%s scope=%s", run.pk, scope)
        return False


def wake_waiters(broker: str, members: tuple[str, ...]) -> None:
    """Send each woken waiter's chain again, from the step that waited ("run:<id>|<step>")."""
    for member in members:
        holder, _, step = member.partition("|")
        run_id = int(holder.removeprefix("run:"))
        services.sync_resume(run_id=run_id, broker=broker, step=step)
        log.info("sync.slot_woken run=%s step=%s", run_id, step)


@contextmanager
def _committed_or_restored(run: SyncRun):
    """A checkpoint adds its counts to `run` in memory before its transaction commits. If the
    commit fails (the database went away), put back what was committed, so nothing written
    later from this object (a retry note, the step's end) claims rows that were rolled back."""
    steps, skipped, changed_since = copy.deepcopy(run.steps), copy.deepcopy(run.skipped_records), run.changed_since
    try:
        yield
    except BaseException:
        run.steps, run.skipped_records, run.changed_since = steps, skipped, changed_since
        raise


def _cursor(run: SyncRun, stream: str) -> SyncCursor:
    """The stream's cursor (read with the others as the step began), created at its first sync."""
    cursor = getattr(run, "cursors", {}).get(stream)
    if cursor is None:
        cursor, _ = SyncCursor.objects.get_or_create(connection=run.connection, stream=stream)
    return cursor


def _advance_cursor(connection: BrokerConnection, stream: str, new: dict[str, Any], coverage: dict) -> None:
    """Store the new cursor unless it would move the watermark backwards."""
    row = SyncCursor.objects.select_for_update().get(connection=connection, stream=stream)
    watermark = str(new.get("watermark") or "")
    if row.watermark and watermark and watermark < row.watermark:
        log.warning("sync.cursor_backwards connection=%s stream=%s", connection.pk, stream)
        return
    row.cursor = new
    row.watermark = watermark or row.watermark
    if coverage:
        row.coverage = {**row.coverage, **coverage}
    row.save()


def _merge_coverage(batch: list[Page]) -> dict:
    merged: dict = {}
    for page in batch:
        for key, value in page.coverage.items():
            if isinstance(value, list):
                merged[key] = sorted(set(merged.get(key, [])) | set(value))
            else:
                merged[key] = value
    return merged


def _keep_skipped(run: SyncRun, stream: str, skipped) -> None:
    room = MAX_SKIPPED_KEPT - len(run.skipped_records or [])
    if not skipped or room <= 0:
        return
    run.skipped_records = (run.skipped_records or []) + [
        {"stream": stream, "reason": s.reason[:200], "raw": s.raw} for s in skipped[:room]]
    SyncRun.objects.filter(pk=run.pk).update(skipped_records=run.skipped_records)
    for s in skipped[:room]:
        log.warning("sync.record_skipped connection=%s stream=%s reason=%s", run.connection_id, stream, s.reason[:200])


def _reconcile(run: SyncRun, adapter_factory: Callable[[BrokerConnection], BrokerAdapter]) -> None:
    """backend/reconcile compares and types the breaks; the re-pull it asks for once goes
    through here, so it spends the same budgets (and step slot) as a sync and its records
    are saved the way the transactions step saves them, without moving the cursor."""
    from backend.reconcile.services import reconcile_connection

    def repull(windows: list[RepullWindow]) -> dict | None:
        adapter = adapter_factory(run.connection)
        cursors = {c.stream: c.cursor for c in SyncCursor.objects.filter(connection=run.connection)}
        adapter.prime(cursors)
        try:
            with _step_slot(run, adapter, "reconcile"):
                pages = adapter.repull_transactions(windows, cursors.get("transactions"))
                return None if pages is None else _save_repulled(run, pages)
        finally:
            made = getattr(adapter, "requests_made", adapter.session.requests_made)
            run.unrecorded_requests = ("reconcile", made)
            run.steps.setdefault("reconcile", {})["requests"] = run.steps.get("reconcile", {}).get("requests", 0) + made

    carried = _carried_reconcile(run)
    summary = carried if carried is not None else reconcile_connection(run=run, repull=repull)
    run.steps.setdefault("reconcile", {}).update(summary)


# What a step's counts say about the two sides reconcile compares: positions whose quantity
# moved (new, changed or closed), transactions created or changed in what history adds up.
COMPARED_COUNTS = {"positions": ("moved",), "transactions": ("created", "changed")}


def _carried_reconcile(run: SyncRun) -> dict | None:
    """The previous reconcile's result, when it still holds: this run changed nothing that
    reconcile compares, and the connection's previous run succeeded with every asset and
    currency adding up (no open break: a lasting break is compared, and re-pulled when due,
    at every sync). None: reconcile again."""
    if any(run.steps.get(step, {}).get(key, 0) for step, keys in COMPARED_COUNTS.items() for key in keys):
        return None
    if any(not run.steps.get(step, {}).get("finished_at") for step in COMPARED_COUNTS):
        return None
    previous = (SyncRun.objects.filter(connection_id=run.connection_id, pk__lt=run.pk)
                .exclude(state__in=SyncRun.ACTIVE_STATES).order_by("-pk").values_list("pk", "state", "steps").first())
    if previous is None or previous[1] != SyncRun.State.SUCCEEDED:
        return None
    before = previous[2].get("reconcile") or {}
    if before.get("skipped") or before.get("breaks", 1) != 0 or "differences" not in before:
        return None
    return {"differences": before["differences"], "breaks": 0, "new": 0, "resolved": 0, "types": [],
            "carried_from": before.get("carried_from", previous[0])}


def _save_repulled(run: SyncRun, pages: Iterator[Page]) -> dict:
    """Upsert re-pulled records in checkpoints (rows are keyed on the broker's id, so what was
    already stored is updated, never doubled); the stream's cursor is left as it is."""
    totals = {"fetched": 0, "created": 0, "updated": 0}
    batch: list = []
    skipped: list = []

    def flush() -> None:
        with _committed_or_restored(run), transaction.atomic():
            counts = writers.transactions_upsert(run.connection, batch, timezone.now()) if batch else \
                {"fetched": 0, "created": 0, "updated": 0}
            counts["skipped"] = len(skipped)
            _keep_skipped(run, "reconcile", skipped)
            services.sync_step_progress(run=run, step="reconcile", counts=counts)
        for key in totals:
            totals[key] += counts.get(key, 0)

    for page in pages:
        batch += page.items
        skipped += page.skipped
        if len(batch) >= CHECKPOINT_ROWS:
            flush()
            batch, skipped = [], []
    if batch or skipped:
        flush()
    return totals


STREAM_STEPS = {
    SyncRun.Step.POSITIONS: _positions,
    SyncRun.Step.TRANSACTIONS: _transactions,
    SyncRun.Step.ORDERS: _orders,
}
