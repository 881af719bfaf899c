"""Record faults: what a broker's feed gets wrong about one account, injected per account
through the control API and removable. faults.py breaks the transport (5xx, hangs, 429s);
these break the data, so reconcile has real breaks to find:

    drop          the feed leaves out one record (a fill, a deposit, a ledger row: `record`
                  is its id as the broker serves it); balances and orders still count it
    double_split  the feed reports a split twice: each of its records is followed by a copy
                  with an id of its own (the original id + COPY_SUFFIX). Removing the fault
                  withdraws the copies the way Alpaca withdraws an activity: they stay in
                  the feed with status "canceled"
    round         the holding of `symbol` is reported rounded to `decimals` places

    POST   /control/accounts/{id}/faults              {"kind", "record" | "symbol", "decimals"}
    GET    /control/accounts/{id}/faults
    DELETE /control/accounts/{id}/faults[/{fault id}]

Each simulator says which kinds it serves (`BrokerSim.record_fault_kinds`) and applies them
where it pages, so paging stays whole: a dropped record leaves no short page behind.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

KINDS = ("drop", "double_split", "round")
COPY_SUFFIX = "-dup"


@dataclass
class RecordFault:
    id: str
    kind: str
    record: str = ""
    symbol: str = ""
    decimals: int = 8

    def public(self) -> dict[str, Any]:
        return asdict(self)


class AccountFaults:
    def __init__(self):
        self.faults: dict[str, RecordFault] = {}
        self.withdrawn: set[str] = set()        # records whose copies the broker withdrew
        self._n = 0

    def __bool__(self) -> bool:
        return bool(self.faults or self.withdrawn)

    def add(self, spec: dict[str, Any], kinds: frozenset[str]) -> RecordFault:
        kind = str(spec.get("kind") or "")
        if kind not in kinds:
            raise ValueError(f"unknown or unsupported fault kind {kind!r}; this broker serves {sorted(kinds)}")
        unknown = set(spec) - {"kind", "record", "symbol", "decimals"}
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = RecordFault(id="", kind=kind, record=str(spec.get("record") or ""), symbol=str(spec.get("symbol") or ""),
                            decimals=int(spec.get("decimals", 8)))
        if kind in ("drop", "double_split") and not fault.record:
            raise ValueError(f"a {kind} fault needs the id of a record")
        if kind == "round" and (not fault.symbol or not 0 <= fault.decimals <= 18):
            raise ValueError("a round fault needs a symbol and decimals between 0 and 18")
        self._n += 1
        fault.id = f"f{self._n}"
        self.faults[fault.id] = fault
        return fault

    def remove(self, fault_id: str | None = None) -> list[RecordFault]:
        """Remove one fault (or all): the broker puts its feed right."""
        chosen = [self.faults.pop(fault_id)] if fault_id else list(self.faults.values())
        if not fault_id:
            self.faults.clear()
        for fault in chosen:
            if fault.kind == "double_split":
                self.withdrawn.add(fault.record)
        return chosen

    def _records(self, kind: str) -> set[str]:
        return {f.record for f in self.faults.values() if f.kind == kind}

    @property
    def dropped(self) -> set[str]:
        return self._records("drop")

    def copies(self) -> dict[str, str]:
        """record id -> the status its copy is served with."""
        out = {record: "canceled" for record in self.withdrawn}
        out.update({record: "" for record in self._records("double_split")})
        return out

    def rounded(self, symbols: set[str], quantity: Decimal) -> Decimal:
        """`quantity` of the holding known by any of `symbols`, as the faulty feed reports it."""
        for fault in self.faults.values():
            if fault.kind == "round" and fault.symbol in symbols:
                return quantity.quantize(Decimal(1).scaleb(-fault.decimals), rounding=ROUND_HALF_EVEN)
        return quantity


NO_FAULTS = AccountFaults()
