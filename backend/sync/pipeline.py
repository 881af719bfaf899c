"""The sync pipeline: positions -> transactions -> orders -> reconcile -> write log.

Each step is a plain function of a run. Every checkpoint saves its rows and its cursor
in one transaction, so a step that dies keeps what it committed and a re-run resumes
from the last cursor without writing anything twice (rows are upserted on the broker's
id). The Celery tasks in workers/tasks.py are doorways to `run_step`.
"""
from __future__ import annotations

import copy
import logging
import random
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
SLOT_RETRY_SECONDS = (3.0, 10.0)     # a step without a budget slot asks again after this long


def adapter_for(connection: BrokerConnection) -> BrokerAdapter:
    return build_adapter(connection.broker, environment=connection.environment,
                         credentials=connection.credentials(), options=connection.options)


def run_step(run: SyncRun, step: str, adapter_factory: Callable[[BrokerConnection], BrokerAdapter] = adapter_for) -> None:
    """Run one step of a run. Broker errors propagate to the caller (the task decides)."""
    started = timezone.now()
    services.sync_step_started(run=run, step=step)
    connection = run.connection
    if step == SyncRun.Step.RECONCILE:
        _reconcile(run, adapter_factory)
    elif step == SyncRun.Step.WRITE_LOG:
        services.sync_step_finished(run=run, step=step, started=started)
        services.sync_finish(run=run)
        return
    elif step not in connection.enabled_streams():
        services.sync_step_finished(run=run, step=step, started=started, extra={"skipped": "stream disabled"})
        return
    else:
        adapter = adapter_factory(connection)
        adapter.prime({c.stream: c.cursor for c in SyncCursor.objects.filter(connection=connection)})
        try:
            with _step_slot(run, adapter):
                STREAM_STEPS[step](run, adapter)
        finally:
            # An adapter with more than one session (Binance's per-account /sapi budget) sums them.
            made = getattr(adapter, "requests_made", adapter.session.requests_made)
            run.unrecorded_requests = (step, made)          # what a retry note adds, if the step failed
            run.steps.setdefault(step, {})["requests"] = run.steps.get(step, {}).get("requests", 0) + made
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
    cursor = _cursor(run.connection, "transactions")
    _consume(run, "transactions", adapter.fetch_transactions(cursor.cursor or None), writers.transactions_upsert)


def _orders(run: SyncRun, adapter: BrokerAdapter) -> None:
    cursor = _cursor(run.connection, "orders")
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
    with _committed_or_restored(run), transaction.atomic():
        counts = upsert(run.connection, items, timezone.now()) if items else {"fetched": 0, "created": 0, "updated": 0}
        counts["skipped"] = len(skipped)
        _keep_skipped(run, stream, skipped)
        _advance_cursor(run.connection, stream, batch[-1].cursor, _merge_coverage(batch))
        services.sync_step_progress(run=run, step=stream, counts=counts)
    if getattr(run, "renew_slot", None):
        run.renew_slot()


@contextmanager
def _step_slot(run: SyncRun, adapter: BrokerAdapter):
    """A slot of the broker's budget scope, where its rule caps how many steps spend it at
    once (Binance: one weight budget per IP for every user). Without one, the step waits
    for a slot as a retry with a countdown, holding no thread and spending no weight. The
    slot lasts a lease and is renewed at every checkpoint; a dead worker's slot expires."""
    session = adapter.session
    limiter, holder, ttl = session.limiter, f"run:{run.pk}", settings.SYNC_RUN_LEASE_SECONDS
    if limiter is None:
        yield
        return
    if not limiter.take_slot(session.broker, session.scope, holder, ttl):
        raise RateLimited(f"{session.broker}: every step slot of its shared budget is in use",
                          retry_after=random.uniform(*SLOT_RETRY_SECONDS), local=True)
    run.renew_slot = lambda: limiter.take_slot(session.broker, session.scope, holder, ttl)
    try:
        yield
    finally:
        run.renew_slot = None
        try:
            limiter.release_slot(session.broker, session.scope, holder)
        except Exception:  # noqa: BLE001 - Redis away: the slot expires by itself; keep the step's own error
            log.warning("sync.slot_not_released run=%s scope=%s", run.pk, session.scope)


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


def _cursor(connection: BrokerConnection, stream: str) -> SyncCursor:
    cursor, _ = SyncCursor.objects.get_or_create(connection=connection, stream=stream)
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
            with _step_slot(run, adapter):
                pages = adapter.repull_transactions(windows, cursors.get("transactions"))
                return None if pages is None else _save_repulled(run, pages)
        finally:
            made = getattr(adapter, "requests_made", adapter.session.requests_made)
            run.unrecorded_requests = ("reconcile", made)
            run.steps.setdefault("reconcile", {})["requests"] = run.steps.get("reconcile", {}).get("requests", 0) + made

    summary = reconcile_connection(run=run, repull=repull)
    run.steps.setdefault("reconcile", {}).update(summary)


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
