"""Engine output -> rows. Upserts on the stable key, so ids (used in URLs) survive recomputes;
a full recompute also deletes what no longer exists. Amounts are stored to the column's 18
places (the engine keeps full Decimal precision until here)."""
from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

from backend.core.fields import MONEY_PLACES

from . import engine
from .models import Disposal, DisposalLot, Income, Lot

_Q = Decimal(1).scaleb(-MONEY_PLACES)
BATCH = 2000


def q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_Q, rounding=ROUND_HALF_EVEN)


def lot_row(portfolio_id: int, lot: engine.Lot) -> Lot:
    return Lot(portfolio_id=portfolio_id, key=lot.key, asset_id=lot.asset_id, connection_id=lot.connection_id,
               transaction_id=lot.tx_id, origin=lot.origin, quantity=q(lot.quantity), remaining=q(lot.remaining),
               cost_basis=q(lot.basis), acquired_at=lot.acquired_at, holding_from=lot.holding_from,
               parent_key=lot.parent_key, wash_adjustment=q(lot.wash_adjustment), closed_at=lot.closed_at,
               closed_by=lot.closed_by)


def disposal_row(portfolio_id: int, d: engine.Disposal) -> Disposal:
    return Disposal(portfolio_id=portfolio_id, key=d.key, source_key=d.source_key, asset_id=d.asset_id,
                    connection_id=d.connection_id, transaction_id=d.tx_id, kind=d.kind, disposed_at=d.disposed_at,
                    quantity=q(d.quantity), proceeds=q(d.proceeds), cost_basis=q(d.basis), gain=q(d.gain),
                    wash_disallowed=q(d.wash_disallowed), term=d.term, incomplete=d.incomplete,
                    pick_status=d.pick_status[:255])


def income_row(portfolio_id: int, i: engine.Income) -> Income:
    return Income(portfolio_id=portfolio_id, key=i.key, kind=i.kind, connection_id=i.connection_id,
                  asset_id=i.asset_id, transaction_id=i.tx_id, occurred_at=i.occurred_at, amount=q(i.amount),
                  currency=i.currency, original_amount=q(i.original_amount))


_LOT_FIELDS = ["asset", "connection", "transaction", "origin", "quantity", "remaining", "cost_basis", "acquired_at",
               "holding_from", "parent_key", "wash_adjustment", "closed_at", "closed_by"]
_DISPOSAL_FIELDS = ["source_key", "asset", "connection", "transaction", "kind", "disposed_at", "quantity", "proceeds",
                    "cost_basis", "gain", "wash_disallowed", "term", "incomplete", "pick_status"]
_INCOME_FIELDS = ["kind", "connection", "asset", "transaction", "occurred_at", "amount", "currency",
                  "original_amount"]


def _upsert(model, rows: list, fields: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        model.objects.bulk_create(chunk, update_conflicts=True, unique_fields=["portfolio", "key"],
                                  update_fields=fields)
        ids.update((row.key, row.pk) for row in chunk)
    return ids


def write(*, portfolio_id: int, lots: Iterable[engine.Lot], disposals: Iterable[engine.Disposal],
          income: Iterable[engine.Income], full: bool) -> None:
    lot_rows = [lot_row(portfolio_id, lot) for lot in lots]
    disposal_list = list(disposals)
    income_rows = _unique_keys([income_row(portfolio_id, i) for i in income])
    lot_ids = _upsert(Lot, lot_rows, _LOT_FIELDS)
    disposal_ids = _upsert(Disposal, [disposal_row(portfolio_id, d) for d in disposal_list], _DISPOSAL_FIELDS)
    _upsert(Income, income_rows, _INCOME_FIELDS)
    if full:
        _delete_missing(Lot, portfolio_id, set(lot_ids))
        _delete_missing(Disposal, portfolio_id, set(disposal_ids))
        _delete_missing(Income, portfolio_id, {r.key for r in income_rows})
        DisposalLot.objects.filter(disposal__portfolio_id=portfolio_id).delete()
    else:
        DisposalLot.objects.filter(disposal_id__in=list(disposal_ids.values())).delete()
    missing = {link.lot_key for d in disposal_list for link in d.links} - set(lot_ids)
    if missing:
        lot_ids.update(Lot.objects.filter(portfolio_id=portfolio_id, key__in=missing).values_list("key", "pk"))
    links = [DisposalLot(disposal_id=disposal_ids[d.key], lot_key=link.lot_key, lot_id=lot_ids.get(link.lot_key),
                         position=i, quantity=q(link.quantity), cost_basis=q(link.basis), proceeds=q(link.proceeds),
                         gain=q(link.gain), acquired_at=link.acquired_at, holding_from=link.holding_from,
                         term=link.term, wash_disallowed=q(link.wash_disallowed))
             for d in disposal_list for i, link in enumerate(d.links)]
    DisposalLot.objects.bulk_create(links, batch_size=BATCH)


def _delete_missing(model, portfolio_id: int, keep: set[str]) -> None:
    gone = sorted(set(model.objects.filter(portfolio_id=portfolio_id).values_list("key", flat=True)) - keep)
    for start in range(0, len(gone), BATCH):
        model.objects.filter(portfolio_id=portfolio_id, key__in=gone[start:start + BATCH]).delete()


def _unique_keys(rows: list) -> list:
    """Two entries of one event and kind get distinct keys, in their (deterministic) order."""
    seen: set[str] = set()
    for row in rows:
        while row.key in seen:
            row.key += "+"
        seen.add(row.key)
    return rows
