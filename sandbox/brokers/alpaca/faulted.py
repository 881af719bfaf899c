"""Record faults (sandbox/record_faults.py) applied to Alpaca's answers: activities dropped or
followed by copies before a page is cut (so pages stay full and `page_token` paging stays
whole), and positions reported rounded."""
from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

from ...record_faults import COPY_SUFFIX, AccountFaults, RecordFault
from .ledger import Ledger, _time_range
from .records import Holding, dec


def check(ledger: Ledger, holdings: list[Holding], fault: RecordFault) -> None:
    if fault.kind == "round":
        if not any(fault.symbol in _names(h) for h in holdings):
            raise ValueError(f"no holding {fault.symbol!r}")
        return
    i = _index(ledger, fault.record)
    if i is None:
        raise ValueError(f"no activity {fault.record!r}")
    if fault.kind == "double_split" and ledger.acts[i].kind != "SPLIT":
        raise ValueError(f"activity {fault.record} is a {ledger.acts[i].kind}, not a SPLIT")


def activity_page(ledger: Ledger, faults: AccountFaults, *, kinds: set[str] | None, after_ns: int | None,
                  until_ns: int | None, token: str | None, ascending: bool, size: int | None) -> list[dict]:
    lo, hi = _time_range(ledger.act_us, after_ns, until_ns)
    dropped, copies = faults.dropped, _copies(ledger, faults.copies())
    out: list[dict] = []
    for i in range(lo, hi) if ascending else range(hi - 1, lo - 1, -1):
        record = ledger.acts[i]
        if kinds is not None and record.kind not in kinds:
            continue
        rows = [] if record.id in dropped else [(record.id, None)]
        if record.id in copies:
            rows.append((record.id + COPY_SUFFIX, copies[record.id]))
        for row_id, status in rows if ascending else reversed(rows):
            if token and (row_id <= token if ascending else row_id >= token):
                continue
            rendered = record.render()
            if status is not None:
                rendered["id"] = row_id
                rendered["status"] = status or rendered.get("status", "executed")
            out.append(rendered)
            if size and len(out) >= size:
                return out
    return out


def positions(holdings: list[Holding], faults: AccountFaults) -> list[dict]:
    rendered = []
    for h in holdings:
        row = h.render()
        qty = faults.rounded(_names(h), h.qty)
        if qty != h.qty:
            row["qty"] = row["qty_available"] = dec(qty)
        rendered.append(row)
    return rendered


def _copies(ledger: Ledger, wanted: dict[str, str]) -> dict[str, str]:
    """A split is two rows (shares out, shares in): a copy of one is a copy of both."""
    out = {}
    for record_id, status in wanted.items():
        i = _index(ledger, record_id)
        if i is None:
            continue
        out[record_id] = status
        qty = ledger.acts[i].holding_qty or Decimal(0)
        partner = i + 1 if qty < 0 else i - 1
        if 0 <= partner < len(ledger.acts) and ledger.acts[partner].kind == "SPLIT":
            out[ledger.acts[partner].id] = status
    return out


def _index(ledger: Ledger, record_id: str) -> int | None:
    i = bisect_left(ledger.act_ids, record_id)
    return i if i < len(ledger.act_ids) and ledger.act_ids[i] == record_id else None


def _names(h: Holding) -> set[str]:
    return {h.asset.symbol, h.asset.position_symbol, h.asset.canonical}
