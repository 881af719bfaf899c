"""The engine's state as JSON, so a recompute can carry on from where the last one stopped
instead of replaying the whole history: the open lots, the lots in transit, the losses still
waiting for wash-sale replacements (and the disposals they belong to)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from operator import attrgetter, is_
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


# How each field of a serialized class is written, from its annotation.
_PLAIN, _DEC, _INSTANT, _SPAN, _LINKS = range(5)
_SPECS: dict[type, tuple[attrgetter, tuple[tuple[str, int], ...]]] = {}


def _kind(f) -> int:
    annotation = str(f.type)
    if annotation.startswith("Decimal"):
        return _DEC
    if annotation.startswith("datetime"):
        return _INSTANT
    if annotation == "timedelta":
        return _SPAN
    return _LINKS if f.name == "links" else _PLAIN


def _spec(cls) -> tuple[attrgetter, tuple[tuple[str, int], ...]]:
    spec = _SPECS.get(cls)
    if spec is None:
        kinds = tuple((f.name, _kind(f)) for f in fields(cls))
        spec = _SPECS[cls] = (attrgetter(*(name for name, _ in kinds)), kinds)
    return spec


def _out(obj) -> dict[str, Any]:
    getter, spec = _spec(type(obj))
    return _written(getter(obj), spec)


def _written(values: tuple, spec: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for (name, kind), value in zip(spec, values):
        if kind and value is not None:
            if kind == _DEC:
                value = str(value)
            elif kind == _INSTANT:
                value = value.isoformat()
            elif kind == _SPAN:
                value = value.total_seconds()
            else:
                value = [_out(link) for link in value]
        data[name] = value
    return data


def _lot_out(lot: Lot, last_capture: dict[str, tuple[tuple, dict]], capture: dict[str, tuple[tuple, dict]]
             ) -> dict[str, Any]:
    """A lot as `_out` writes it, reused from the last capture while none of its fields
    changed: most open lots are captured unchanged at month start after month start."""
    getter, spec = _spec(Lot)
    values = getter(lot)
    last = last_capture.get(lot.key)
    # The same objects, not equal ones: Decimal("1.0") == Decimal("1.00") but they are written apart.
    data = last[1] if last is not None and all(map(is_, last[0], values)) else _written(values, spec)
    capture[lot.key] = (values, data)
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
    pending = sorted(ledger.wash.state(), key=lambda p: p.asset_id)     # each asset's queue in its order
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


# -- per asset ------------------------------------------------------------------------------
# A checkpoint keeps each asset's part of the state apart, so a change to one asset's history
# replays that asset (and the assets its events link it to) from the checkpoint before the
# change, leaving every other asset's rows alone.

def asset_states(ledger: Ledger) -> dict[int, dict[str, Any]]:
    """The state split by asset: its open lots (book by book, in each book's own order), its
    lots in transit, its losses waiting for wash-sale replacements and their disposals.
    Assets with nothing open, parked or pending have no entry."""
    out: dict[int, dict[str, Any]] = {}

    def of(asset_id: int) -> dict[str, Any]:
        found = out.get(asset_id)
        if found is None:
            found = out[asset_id] = {"seq": ledger.seq, "lots": [], "parked": {}, "pending": [], "disposals": {}}
        return found

    last_capture, capture = ledger.captured_lots, {}
    for (asset_id, _), book in sorted(ledger.books.items()):
        lots = [_lot_out(lot, last_capture, capture) for lot in book.lots.values() if lot.remaining]
        if lots:
            of(asset_id)["lots"].extend(lots)
    ledger.captured_lots = capture
    for key, pieces in sorted(ledger.parked.items()):
        if pieces:
            of(pieces[0].asset_id)["parked"][key] = [_out(piece) for piece in pieces]
    for pending in ledger.wash.state():
        state = of(pending.asset_id)
        state["pending"].append(_out(pending))
        state["disposals"][pending.disposal_key] = _out(ledger.disposals[pending.disposal_key])
    return out


def combined(states: Iterable[dict[str, Any]], as_of: datetime | None) -> dict[str, Any]:
    """Several assets' states as one snapshot `restore` reads."""
    data: dict[str, Any] = {"version": VERSION, "as_of": as_of.isoformat() if as_of else None, "seq": 0, "lots": [],
                            "parked": {}, "pending": [], "disposals": {}}
    for state in states:
        data["seq"] = max(data["seq"], state["seq"])
        data["lots"].extend(state["lots"])
        data["parked"].update(state["parked"])
        data["pending"].extend(state["pending"])
        data["disposals"].update(state["disposals"])
    return data


def replace_assets(data: dict[str, Any], assets: set[int], ledger: Ledger, as_of: datetime) -> dict[str, Any]:
    """A saved snapshot with the state of `assets` taken from `ledger` (which replayed only
    them), everything else kept; `as_of` is the time of the portfolio's last event."""
    mine = asset_states(ledger)
    kept = {"seq": data["seq"], "lots": [lot for lot in data["lots"] if lot["asset_id"] not in assets],
            "parked": {k: p for k, p in data["parked"].items() if not p or p[0]["asset_id"] not in assets},
            "pending": [p for p in data["pending"] if p["asset_id"] not in assets],
            "disposals": {k: d for k, d in data["disposals"].items() if d["asset_id"] not in assets}}
    merged = combined([kept, *(mine[a] for a in sorted(mine))], as_of)
    merged["seq"] = max(merged["seq"], ledger.seq)
    # In the order `snapshot` lists them: book by book (a stable sort keeps each book's order).
    merged["lots"].sort(key=lambda lot: (lot["asset_id"], lot["connection_id"]))
    merged["pending"].sort(key=lambda pending: pending["asset_id"])
    return merged


def split(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A saved snapshot split by asset, as `asset_states` splits a ledger."""
    out: dict[int, dict[str, Any]] = {}

    def of(asset_id: int) -> dict[str, Any]:
        return out.setdefault(asset_id, {"seq": data["seq"], "lots": [], "parked": {}, "pending": [],
                                         "disposals": {}})

    for lot in data["lots"]:
        of(lot["asset_id"])["lots"].append(lot)
    for key, pieces in sorted(data["parked"].items()):
        if pieces:
            of(pieces[0]["asset_id"])["parked"][key] = pieces
    for pending in data["pending"]:
        state = of(pending["asset_id"])
        state["pending"].append(pending)
        state["disposals"][pending["disposal_key"]] = data["disposals"][pending["disposal_key"]]
    return out
