"""The engine's state as JSON, so a recompute can carry on from where the last one stopped
instead of replaying the whole history: the open lots, the lots in transit, the losses still
waiting for wash-sale replacements (and the disposals they belong to)."""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .ledger import Ledger
from .types import Disposal, Lot, LotLink
from .wash import PendingLoss

VERSION = 1
_DECIMAL = {"quantity", "remaining", "basis", "wash_adjustment", "replaced", "proceeds", "wash_disallowed", "need",
            "loss_per_unit"}
_TIME = {"acquired_at", "holding_from", "closed_at", "disposed_at", "sale_at"}


_FIELDS: dict[type, tuple[str, ...]] = {}


def _out(obj) -> dict[str, Any]:
    names = _FIELDS.get(type(obj))
    if names is None:
        names = _FIELDS[type(obj)] = tuple(f.name for f in fields(obj))
    data: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        elif name == "links":
            value = [_out(link) for link in value]
        data[name] = value
    return data


def _in(cls, data: dict[str, Any]):
    values = {}
    for name, value in data.items():
        if value is not None and name in _DECIMAL:
            value = Decimal(value)
        elif value is not None and name in _TIME:
            value = datetime.fromisoformat(value)
        elif name == "held":
            value = timedelta(seconds=value)
        elif name == "links":
            value = [_in(LotLink, link) for link in value]
        values[name] = value
    return cls(**values)


def snapshot(ledger: Ledger) -> dict[str, Any]:
    open_lots = [lot for _, book in sorted(ledger.books.items()) for lot in book.lots.values() if lot.remaining]
    pending = ledger.wash.state()
    return {
        "version": VERSION,
        "as_of": ledger.as_of.isoformat() if ledger.as_of else None,
        "seq": ledger.seq,
        "lots": [_out(lot) for lot in open_lots],
        "parked": {key: [_out(piece) for piece in pieces] for key, pieces in sorted(ledger.parked.items())},
        "pending": [_out(p) for p in pending],
        "disposals": {key: _out(ledger.disposals[key]) for key in sorted({p.disposal_key for p in pending})},
    }


def restore(data: dict[str, Any], **ledger_kwargs) -> Ledger:
    ledger = Ledger(**ledger_kwargs)
    ledger.as_of = datetime.fromisoformat(data["as_of"]) if data.get("as_of") else None
    ledger.seq = data["seq"]
    for raw in data["lots"]:
        lot = _in(Lot, raw)
        ledger.lots[lot.key] = lot
        ledger.book(lot.asset_id, lot.connection_id).add(lot)
    ledger.parked = {key: [_in(Lot, p) for p in pieces] for key, pieces in data["parked"].items()}
    ledger.disposals = {key: _in(Disposal, d) for key, d in data["disposals"].items()}
    for raw in data["pending"]:
        pending = _in(PendingLoss, raw)
        ledger.wash.pending.setdefault(pending.asset_id, []).append(pending)
    for lot in sorted(ledger.lots.values(), key=lambda lot: (lot.acquired_at, lot.seq, lot.key)):
        if lot.asset_id in ledger.wash_assets:
            ledger.wash.note_purchase(lot)
    ledger.touched_lots.clear()
    ledger.touched_disposals.clear()
    return ledger


def parked_pieces(data: dict[str, Any], keys) -> dict[str, list[Lot]]:
    """The lots in transit under these withdrawal keys in a saved state (another portfolio's:
    its withdrawals that no deposit of its own received)."""
    parked = (data or {}).get("parked") or {}
    return {key: [_in(Lot, p) for p in parked[key]] for key in keys if key in parked}
