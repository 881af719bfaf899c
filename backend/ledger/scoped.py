"""Recompute only the assets a change touched (issue "Cost basis and P&L" §7): a sync that
adds or changes transactions in the past replays each affected asset from the checkpoint
before its earliest changed event, and writes only that asset's rows.

Assets linked by an event after the checkpoint (a coin-for-coin trade, a fee paid in a third
coin, a spin-off, a merger) are replayed together: one's lots or values feed the other's.
Events without any asset (cash interest) form one more group. What changed is read from the
transactions themselves: rows updated since the last recompute began reading (a margin
covers a sync that committed while it ran), the assets their ledger rows had before (a row
moved to another asset), and rows whose transaction was deleted. Anything this cannot
replay alone (a transfer, lots in transit from another portfolio, no checkpoint before the
change) is left to a whole replay. The result equals a whole replay row for row (tests/ledger
test_scoped.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


from . import checkpoints, engine, writing
from .events import build_events, group_key
from .loading import BookPricer, foreign_withdrawals, rows_since
from .models import Disposal, Income, LedgerCheckpoint, LedgerState, Lot
from .transfers import MOVEMENT_TYPES

# A sync page commits seconds after it was written; rows updated this long before the last
# recompute began are taken as changed too (replaying an unchanged asset changes nothing).
READ_MARGIN = timedelta(minutes=10)
CASH = -1                          # the group of events that touch no asset


@dataclass
class Scoped:
    ledger: engine.Ledger
    assets: set[int]
    since: datetime
    as_of: datetime                 # the portfolio's last event (of any asset)


def recompute_assets(portfolio, state: LedgerState, since: datetime | None, inputs) -> Scoped | None:
    """Replay the changed assets from the checkpoint before the change and write their rows;
    None when only a whole replay is right. `inputs(asset_ids)` gives the engine's
    method, wash-sale assets, picks and basis entries."""
    from backend.sync.models import BrokerTransaction

    if state.read_at is None or not state.history_only or since is None:
        return None
    changed = list(BrokerTransaction.objects.filter(portfolio_id=portfolio.pk,
                                                    updated_at__gte=state.read_at - READ_MARGIN)
                   .values_list("id", "asset_id", "occurred_at", "type", "quantity"))
    if any(kind in MOVEMENT_TYPES and asset and qty for _, asset, _, kind, qty in changed):
        return None                    # a transfer re-pairs lots across time: a whole replay's work
    orphans = _orphans(portfolio.pk)
    earliest = min([since, *(at for _, _, at, _, _ in changed), *(at for _, at in orphans)])
    start = checkpoints.before(portfolio_id=portfolio.pk, moment=earliest)
    if start is None or foreign_withdrawals(portfolio_id=portfolio.pk):
        return None
    changed_ids = {pk for pk, *_ in changed}
    events, keys = _events_from(portfolio.pk, start)
    seeds = {asset for _, asset, *_ in changed if asset is not None} | {a for a, _ in orphans}
    seeds |= _assets_of_rows(portfolio.pk, changed_ids)
    changed_groups = {keys[pk] for pk in changed_ids if pk in keys}
    groups = _components(events)
    scope_nodes = {groups.find(node) for event in events if keys.get(event.tx_id) in changed_groups
                   for node in _nodes(event)} | {groups.find(a) for a in seeds}
    mine = [e for e in events if groups.find(_nodes(e)[0]) in scope_nodes]
    assets = {node for node in groups.parent if node != CASH and groups.find(node) in scope_nodes}
    assets |= seeds - {CASH}
    if not events or (not mine and not assets):
        return None                    # nothing after the checkpoint: where the history ends is a replay's to say
    rows_currencies = {c for e in mine for c, _ in e.cash}
    pricer = BookPricer.load(asset_ids=assets, base=portfolio.base_currency, currencies=rows_currencies,
                             start=start.date())
    saved = checkpoints.states(portfolio_id=portfolio.pk, at=start, assets=assets)
    ledger = engine.restore(engine.combined(saved, None), pricer=pricer, **inputs(assets))
    as_of = max(e.at for e in events)
    ledger.run(mine, checkpoints=checkpoints.month_starts(start, as_of), capture=engine.asset_states)
    writing.write(portfolio_id=portfolio.pk, lots=list(ledger.lots.values()),
                  disposals=[ledger.disposals[k] for k in sorted(ledger.touched_disposals)],
                  income=ledger.income, full=False)
    scope_tx = {e.tx_id for e in mine if e.tx_id is not None}
    writing.delete_outside(portfolio_id=portfolio.pk, since=start, assets=assets, scope_tx=scope_tx,
                           other_tx={e.tx_id for e in events if e.tx_id is not None} - scope_tx,
                           lots=set(ledger.lots), disposals=set(ledger.touched_disposals),
                           income=set(writing.income_keys(ledger.income)))
    _save_checkpoints(portfolio.pk, ledger, assets, start, state, as_of)
    return Scoped(ledger=ledger, assets=assets, since=start, as_of=as_of)


def _save_checkpoints(portfolio_id: int, ledger: engine.Ledger, assets: set[int], start: datetime,
                      state: LedgerState, as_of: datetime) -> None:
    """The replayed assets' checkpoints after `start`; month starts the history now passes for
    the first time take the other assets' last state (they have no event after it); those it
    no longer reaches go."""
    checkpoints.save(portfolio_id=portfolio_id, captured=ledger.checkpoints, assets=assets, after=start)
    new = [at for at in ledger.checkpoints if state.as_of is None or at > state.as_of]
    if new:
        others = {a: s for a, s in engine.split(state.snapshot).items() if a not in assets}
        checkpoints.save(portfolio_id=portfolio_id, captured={at: others for at in new}, assets=set(others),
                         after=state.as_of)
    LedgerCheckpoint.objects.filter(portfolio_id=portfolio_id, at__gt=as_of).delete()


def _orphans(portfolio_id: int) -> set[tuple[int | None, datetime]]:
    """(asset, time) of ledger rows whose transaction was deleted (their key was nulled)."""
    found = set(Lot.objects.filter(portfolio_id=portfolio_id, transaction__isnull=True)
                .values_list("asset_id", "acquired_at"))
    found |= set(Disposal.objects.filter(portfolio_id=portfolio_id, transaction__isnull=True)
                 .values_list("asset_id", "disposed_at"))
    found |= {(a if a is not None else CASH, at) for a, at in Income.objects.filter(
        portfolio_id=portfolio_id, transaction__isnull=True).values_list("asset_id", "occurred_at")}
    return found


def _assets_of_rows(portfolio_id: int, tx_ids: set[int]) -> set[int]:
    """The assets the ledger rows of these transactions had (before the change)."""
    found: set[int] = set()
    for model in (Lot, Disposal, Income):
        found |= {a if a is not None else CASH for a in model.objects.filter(
            portfolio_id=portfolio_id, transaction_id__in=tx_ids).values_list("asset_id", flat=True).distinct()}
    return found


def _events_from(portfolio_id: int, start: datetime):
    """The events at or after `start` (transfers paired against the whole history, as a
    whole replay pairs them) and each row's event group: row id -> group key."""
    rows, moves, fiat = rows_since(portfolio_id=portfolio_id, since=start)
    events = [e for e in build_events(rows + moves, fiat=fiat) if e.at >= start]
    return events, {r.id: group_key(r) for r in rows}


def _nodes(event: engine.Event) -> list[int]:
    nodes = sorted({leg.asset_id for leg in (*event.legs, *event.fee_legs)}
                   | ({event.asset_id} if event.asset_id is not None else set()))
    return nodes or [CASH]


class _Groups:
    """Union-find over assets."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, node: int) -> int:
        parent = self.parent.setdefault(node, node)
        while parent != node:
            grand = self.parent[parent]
            self.parent[node] = grand
            node, parent = parent, grand
        return node

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _components(events: list[engine.Event]) -> _Groups:
    groups = _Groups()
    for event in events:
        first, *rest = _nodes(event)
        groups.find(first)
        for node in rest:
            groups.union(first, node)
    return groups
