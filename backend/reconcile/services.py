"""Reconcile one connection: compare, re-pull the affected windows once, record typed breaks.

    differences = broker - history, per asset and per currency      (totals.py)
    -> windows where they lie                                         (locate.py)
    -> one re-pull of those windows, upserted                         (the pipeline's `repull`)
    -> the differences that survive, typed                            (rules.py)
    -> Break rows: new ones opened, seen ones updated, gone ones resolved

`reconcile_connection` is what the sync pipeline's reconcile step calls.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from backend.brokers.dtos import RepullWindow
from backend.brokers.registry import ADAPTERS
from backend.connections.models import BrokerConnection
from backend.sync.models import SyncRun

from .locate import Locator, Window
from .models import Break, ReconcileMark
from .rules import (HISTORY_MISSING, UNEXPLAINED_DISPOSAL, Difference, Verdict, cash_leg_of, classify, is_leg,
                    precision_of)
from .totals import counted_transactions, differences_for

log = logging.getLogger("brokersync.reconcile")

# An open break's window is asked for again at every sync while it is small (a few pages
# of any broker: Alpaca serves 100 activities a request, Kraken 50); a larger one only
# after a wait that doubles with each re-pull that did not resolve it, so a break that
# lasts (history before the first record a broker serves) does not re-read the whole
# history at every sync.
REPULL_FREE_ROWS = 2_000
REPULL_BACKOFF = timedelta(hours=1)
REPULL_BACKOFF_MAX = timedelta(days=7)

# What a window located by evidence can miss (TransactionType values).
EVIDENCE_KINDS = {"split": frozenset({"split"}), "transfer": frozenset({"transfer", "deposit", "withdrawal"})}
MISSING = (HISTORY_MISSING, UNEXPLAINED_DISPOSAL)

# (windows) -> counts of what the re-pull fetched and stored, or None: the broker has no re-pull.
Repull = Callable[[Sequence[RepullWindow]], dict | None]
# One re-pull request: (window, kinds it can miss, the broker's pairs it is about) -> {key: symbol}
Wanted = dict[tuple[Window, frozenset[str], frozenset[str]], dict[str, str]]


@dataclass
class Outcome:
    differences: list[Difference]
    verdicts: dict[str, Verdict]
    legs: dict[str, list[Difference]] = field(default_factory=dict)   # key -> its missing trade's other legs


def reconcile_connection(*, run: SyncRun, repull: Repull) -> dict:
    """Reconcile the run's connection; returns the summary kept in run.steps["reconcile"]."""
    connection = run.connection
    skipped = _nothing_to_compare(connection)
    if skipped:
        resolved = breaks_resolve_all(connection=connection, run=run)
        return {"differences": 0, "breaks": 0, "resolved": resolved, "skipped": skipped}
    locator = Locator(connection)
    found = differences_for(connection)
    open_breaks = {b.key: b for b in Break.objects.filter(connection=connection, resolved_at__isnull=True)}
    summary: dict = {"differences": len(found)}
    repulled: set[str] = set()
    wanted = _repull_windows(connection, locator, found, open_breaks) if found else {}
    if wanted:
        counts = repull([RepullWindow(start, end, frozenset(keys.values()), kinds, symbols)
                         for ((start, end), kinds, symbols), keys in wanted.items()])
        summary["repull"] = "unsupported" if counts is None else len(wanted)
        if counts is not None:
            repulled = {key for keys in wanted.values() for key in keys}
            locator = Locator(connection)                   # the re-pull may have changed what it saw
            before = {d.key for d in found}
            found = differences_for(connection)
            summary["fixed_by_repull"] = len(before - {d.key for d in found})
    outcome = _classify(locator, found, open_breaks)
    summary.update(breaks_record(connection=connection, run=run, outcome=outcome, repulled=repulled))
    ReconcileMark.objects.update_or_create(connection=connection,
                                           defaults={"through": locator.transactions_watermark()})
    return summary


def _nothing_to_compare(connection: BrokerConnection) -> str:
    """Why this connection has no two sides to compare, or ""."""
    if connection.broker not in ADAPTERS:
        return "no broker feed: its holdings are what its history adds up to"   # file imports, manual accounts
    if not {"positions", "transactions"} <= set(connection.enabled_streams()):
        return "positions or transactions are not synced"
    return ""


# -- windows ------------------------------------------------------------------------------------
def _repull_windows(connection: BrokerConnection, locator: Locator, found: list[Difference],
                    open_breaks: dict[str, Break]) -> Wanted:
    """What to ask for again: per difference its located window (locate.py), equal ones
    merged. A difference that nothing locates but an open break is asked for in that break's
    window, if it is due (`_due`); a new one in everything since the last reconcile."""
    located = locator.order_located(found)
    fallback = locator.since_last_reconcile()
    wanted: Wanted = {}
    for diff in found:
        if abs(diff.difference) < precision_of(diff.asset_class, diff.symbol):
            continue                                # rounding: no record can be missing
        previous, here = open_breaks.get(diff.key), located.get(diff.key)
        if here is not None:
            spec = (here.window, here.kinds, here.symbols)
        elif (evidence := _evidence_window(locator, diff, previous, fallback)) is not None:
            spec = (*evidence, frozenset())
        elif previous is not None:
            window = (previous.window_start, previous.window_end)
            if not _due(connection, previous, window):
                continue
            spec = (window, frozenset(), frozenset())
        else:
            spec = (fallback, frozenset(), frozenset())
        wanted.setdefault(spec, {})[diff.key] = diff.symbol
    return wanted


def _evidence_window(locator: Locator, diff: Difference, previous: Break | None,
                     fallback: Window) -> tuple[Window, frozenset[str]] | None:
    """The window (and kinds) of the split or transfer the difference matches, before any re-pull."""
    if diff.is_cash:
        return None
    arose = (previous.window_start, previous.window_end) if previous else fallback
    verdict = classify(diff, locator.evidence(diff, arose))
    kinds = EVIDENCE_KINDS.get(verdict.kind)
    return (verdict.window, kinds) if kinds else None


def _due(connection: BrokerConnection, previous: Break, window: Window) -> bool:
    rows = counted_transactions(connection)
    if window[0]:
        rows = rows.filter(occurred_at__gte=window[0])
    if window[1]:
        rows = rows.filter(occurred_at__lte=window[1])
    if rows[:REPULL_FREE_ROWS + 1].count() <= REPULL_FREE_ROWS or previous.repulled_at is None:
        return True
    wait = min(REPULL_BACKOFF * 2 ** max(0, previous.repulls - 1), REPULL_BACKOFF_MAX)
    return timezone.now() - previous.repulled_at >= wait


# -- classification -------------------------------------------------------------------------------
def _classify(locator: Locator, found: list[Difference], open_breaks: dict[str, Break]) -> Outcome:
    """Assets first (a short-filled order's own asset is the break of its missing fill), then
    the rest: another leg of a missing trade joins that break, anything else is typed."""
    located = locator.order_located(found)
    fallback = locator.since_last_reconcile()
    by_key = {d.key: d for d in found}

    def window(key: str) -> Window:
        previous = open_breaks.get(key)
        if key in located:
            return located[key].window
        return (previous.window_start, previous.window_end) if previous else fallback

    outcome = Outcome(found, {})
    for diff in found:
        if not diff.is_cash and (diff.key not in located or located[diff.key].via is None):
            outcome.verdicts[diff.key] = classify(diff, locator.evidence(diff, window(diff.key),
                                                                         fill_missing=diff.key in located))
    missing = [k for k, v in outcome.verdicts.items() if v.kind in MISSING]
    for diff in (d for d in found if d.key not in outcome.verdicts):
        owner = _owner(locator, diff, located.get(diff.key), missing, by_key)
        if owner is not None:
            outcome.legs.setdefault(owner, []).append(diff)
        else:
            outcome.verdicts[diff.key] = classify(diff, locator.evidence(diff, window(diff.key)))
    return outcome


def _owner(locator: Locator, diff: Difference, here, missing: list[str], by_key: dict[str, Difference]) -> str | None:
    """The asset break whose missing trade `diff` is another leg of, if any."""
    if here is not None and here.via in missing:
        primary = by_key[here.via]
        prices = [*here.prices, *locator.trade_prices(primary.asset_id, diff.symbol)] if diff.is_cash else here.prices
        if is_leg(diff, primary, prices, fee=here.fee):
            return here.via
    if diff.is_cash:
        return cash_leg_of(diff, [(k, by_key[k].difference, locator.trade_prices(by_key[k].asset_id, diff.symbol))
                                  for k in missing])
    return None


# -- recording ------------------------------------------------------------------------------------
def breaks_record(*, connection: BrokerConnection, run: SyncRun, outcome: Outcome,
                  repulled: set[str] = frozenset()) -> dict:
    """Open, update and resolve the connection's breaks in one transaction; the run's summary."""
    now = timezone.now()
    by_key = {d.key: d for d in outcome.differences}
    counts = {"new": 0, "resolved": 0}
    with transaction.atomic():
        open_ = {b.key: b for b in Break.objects.select_for_update().filter(connection=connection,
                                                                              resolved_at__isnull=True)}
        for key, verdict in sorted(outcome.verdicts.items()):
            current = open_.pop(key, None)
            if current is not None and current.kind != verdict.kind:
                _resolve(current, run, now)
                counts["resolved"] += 1
                current = None
            if current is None:
                current = Break(connection=connection, portfolio_id=connection.portfolio_id, key=key,
                                found_by_run=run, first_seen_at=now)
                counts["new"] += 1
            _fill(current, by_key[key], verdict, outcome.legs.get(key, []), run, now)
            if key in repulled:
                current.repulled_at, current.repulls = now, current.repulls + 1
            current.save()
        for stale in open_.values():
            _resolve(stale, run, now)
            counts["resolved"] += 1
        breaks = list(Break.objects.filter(connection=connection, resolved_at__isnull=True).select_related("asset"))
        differences = [break_summary(b) for b in breaks]
        SyncRun.objects.filter(pk=run.pk).update(reconcile_differences=differences)
    run.reconcile_differences = differences
    if breaks:
        log.warning("reconcile.open_breaks connection=%s run=%s breaks=%s", connection.pk, run.pk, len(breaks))
    return {**counts, "breaks": len(breaks), "types": sorted({b.kind for b in breaks})}


def _fill(row: Break, diff: Difference, verdict: Verdict, legs: list[Difference], run: SyncRun, now: datetime) -> None:
    row.portfolio_id = row.connection.portfolio_id          # follows the connection if it moved
    row.asset_id, row.currency = diff.asset_id, diff.symbol if diff.is_cash else ""
    row.kind, row.detail, row.resolution = verdict.kind, verdict.detail, verdict.resolution
    row.broker_quantity, row.ledger_quantity, row.difference = diff.broker, diff.history, diff.difference
    row.precision, row.counterpart_id = verdict.precision, verdict.counterpart_id
    row.window_start, row.window_end = verdict.window
    row.legs = [{"symbol": leg.symbol, "asset_class": leg.asset_class, "difference": _plain(leg.difference)}
                for leg in legs]
    row.last_run, row.last_seen_at = run, now


def _resolve(row: Break, run: SyncRun, now: datetime) -> None:
    row.resolved_at, row.resolved_by_run = now, run
    row.save(update_fields=["resolved_at", "resolved_by_run"])


def breaks_resolve_all(*, connection: BrokerConnection, run: SyncRun | None = None) -> int:
    return Break.objects.filter(connection=connection, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by_run=run)


def break_summary(row: Break) -> dict:
    """A break in the shape of the run's `reconcile_differences` (kept from before breaks were
    typed: asset, asset_class, broker_quantity, computed_quantity, difference), plus its type."""
    return {"asset": row.asset.symbol if row.asset_id else row.currency,
            "asset_class": row.asset.asset_class if row.asset_id else "fiat",
            "broker_quantity": _plain(row.broker_quantity), "computed_quantity": _plain(row.ledger_quantity),
            "difference": _plain(row.difference), "type": row.kind, "break": row.pk}


def _plain(value) -> str:
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "") else text
