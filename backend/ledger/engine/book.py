"""The open lots of one asset at one connection, in the order a method closes them.

Each method keeps one heap with lazy deletion (a closed or re-keyed lot is skipped when it
reaches the top), so picking the next lot costs O(log n): HIFO over a long history is not
quadratic. Keys are computed when a lot is pushed; a split scales every unit cost by the same
ratio (the order is unchanged) and a wash-sale adjustment re-pushes the lot with a new key.
"""
from __future__ import annotations

import heapq
from decimal import Decimal

from .types import ZERO, Lot

FIFO, LIFO, HIFO, AVERAGE = "fifo", "lifo", "hifo", "average"
METHODS = (FIFO, LIFO, HIFO, AVERAGE)


def _sort_key(method: str, lot: Lot) -> tuple:
    ts = lot.acquired_at.timestamp()
    if method == LIFO:
        return (-ts, -lot.seq)
    if method == HIFO:
        unit = lot.unit_cost
        # Unknown basis goes last: closing it first would make every gain incomplete.
        return (1, ZERO, ts, lot.seq) if unit is None else (0, -unit, ts, lot.seq)
    return (ts, lot.seq)          # FIFO and average (average takes dates in FIFO order, Pub 550)


class LotBook:
    def __init__(self, method: str):
        self.method = method
        self.lots: dict[str, Lot] = {}      # open lots by key
        self._heap: list[tuple] = []
        self._version: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.lots)

    def add(self, lot: Lot) -> None:
        self.lots[lot.key] = lot
        self.push(lot)

    def push(self, lot: Lot) -> None:
        """(Re-)order a lot after its cost changed."""
        version = self._version.get(lot.key, 0) + 1
        self._version[lot.key] = version
        # The key before the version: lots of one instant and sequence (a wash sale's split-off
        # rest) close in key order however often either was re-pushed, so a ledger restored
        # from a saved state closes them in the order a whole replay does.
        heapq.heappush(self._heap, (*_sort_key(self.method, lot), lot.key, version))

    def discard(self, lot: Lot) -> None:
        self.lots.pop(lot.key, None)

    def sign(self) -> int:
        """1 when the open lots are long, -1 when short, 0 when there are none."""
        for lot in self.lots.values():
            return -1 if lot.is_short else 1
        return 0

    def quantity(self) -> Decimal:
        return sum((lot.remaining for lot in self.lots.values()), ZERO)

    def next_lot(self) -> Lot | None:
        """The lot the method closes next (shorts always close first in, first out)."""
        while self._heap:
            entry = self._heap[0]
            key, version = entry[-2], entry[-1]
            lot = self.lots.get(key)
            if lot is None or self._version.get(key) != version or not lot.remaining:
                heapq.heappop(self._heap)
                if lot is not None and not lot.remaining:
                    self.lots.pop(key, None)
                continue
            return lot
        return None

    def in_order(self) -> list[Lot]:
        """Open lots in closing order (for moving lots out on a transfer and for display)."""
        return sorted(self.lots.values(), key=lambda lot: (*_sort_key(self.method, lot), lot.key))

    def pool_average(self) -> None:
        """Average cost: give every lot of known basis the pool's average unit cost, the total
        unchanged (remainder on the last lot, so nothing is lost to rounding)."""
        known = [lot for lot in self.lots.values() if lot.basis is not None and lot.remaining]
        if len(known) < 2:
            return
        total_qty = sum((lot.remaining for lot in known), ZERO)
        total_basis = sum((lot.basis for lot in known), ZERO)
        left = total_basis
        for lot in known[:-1]:
            lot.basis = total_basis * lot.remaining / total_qty
            left -= lot.basis
        known[-1].basis = left
