"""Wash sales (IRS Publication 550, "Wash Sales"; Form 8949 code W).

A loss on a sale is disallowed, share for share, when substantially identical shares are
bought within 30 days before or after the sale. A sale's losing shares are matched, in the
order the replacement shares were bought (Pub 550), against shares bought in that window that
are not themselves part of the sale and not already used as a replacement; the disallowed
loss of the matched shares is added to the replacement shares' basis and their holding
period starts as much earlier as the sold shares had been held (the sale's first losing lot,
when it closed several). Fewer replacement shares than sold shares disallow only that
fraction, spread over the sale's losing lots in proportion to their loss. Replacement shares
that are part of a larger lot are split off into a lot of their own, so the rest of the lot
keeps its own basis and holding period.

"Substantially identical" is taken as "the same asset": options and other share classes are
not matched.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from .types import ZERO, Disposal, Lot

WINDOW = timedelta(days=30)            # Pub 550: "within 30 days before or after the sale"
REPLACEMENT_ORIGINS = frozenset({"buy", "wash"})


@dataclass
class PendingLoss:
    """A sold lot's loss still waiting for replacement shares bought after the sale."""

    disposal_key: str
    asset_id: int
    sale_at: datetime
    need: Decimal                      # sold shares not yet matched
    loss_per_unit: Decimal
    held: timedelta                    # how long the sold shares had been held

    @property
    def window_end(self) -> datetime:
        return self.sale_at + WINDOW


class WashSales:
    def __init__(self, ledger):
        self.ledger = ledger
        self.pending: dict[int, list[PendingLoss]] = {}
        # Per asset, the lots bought in the last 30 days, oldest first: the only candidates for
        # replacement shares bought before a sale (scanning every open lot would be quadratic).
        self.recent: dict[int, deque[Lot]] = {}

    def note_purchase(self, lot: Lot) -> None:
        if lot.origin in REPLACEMENT_ORIGINS:
            self.recent.setdefault(lot.asset_id, deque()).append(lot)

    def after_disposal(self, disposal: Disposal, touched: set[str]) -> None:
        """Match the sale's losing shares against shares bought up to 30 days before; what
        stays unmatched waits for shares bought up to 30 days after. One pending entry per
        sale (its losing lots pooled) keeps replacement lots from splitting once per sold lot."""
        losing = [link for link in disposal.links if link.gain is not None and link.gain < 0 and link.quantity]
        if not losing:
            return
        quantity = sum((link.quantity for link in losing), ZERO)
        loss = -sum((link.gain for link in losing), ZERO)
        pending = PendingLoss(disposal.key, disposal.asset_id, disposal.disposed_at, quantity, loss / quantity,
                              disposal.disposed_at - losing[0].holding_from)
        for lot in self._earlier_replacements(disposal, touched):
            if not pending.need:
                break
            self._replace(pending, lot)
        if pending.need:
            self.pending.setdefault(disposal.asset_id, []).append(pending)

    def after_acquisition(self, lot: Lot) -> None:
        queue = self.pending.get(lot.asset_id)
        if not queue or lot.origin not in REPLACEMENT_ORIGINS:
            return
        queue[:] = [p for p in queue if p.need and p.window_end >= lot.acquired_at]
        current: Lot | None = lot
        for pending in queue:
            if current is None:
                break
            current = self._replace(pending, current)
        queue[:] = [p for p in queue if p.need]

    def _earlier_replacements(self, disposal: Disposal, touched: set[str]) -> list[Lot]:
        start = disposal.disposed_at - WINDOW
        recent = self.recent.get(disposal.asset_id)
        while recent and recent[0].acquired_at < start:
            recent.popleft()
        found = [lot for lot in recent or () if lot.key not in touched
                 and start <= lot.acquired_at <= disposal.disposed_at
                 and not lot.replaced and lot.remaining > 0]
        return sorted(found, key=lambda lot: (lot.acquired_at, lot.seq, lot.key))

    def _replace(self, pending: PendingLoss, lot: Lot) -> Lot | None:
        """Match shares of `lot` against the pending loss. The matched shares become a lot of
        their own (used once); returns the lot holding the unmatched rest, if any."""
        matched = min(pending.need, lot.remaining)
        rest = self.ledger.split_lot(lot, matched) if matched < lot.remaining else None
        if rest is not None:
            self.note_purchase(rest)
        disallowed = pending.loss_per_unit * matched
        lot.replaced = matched
        lot.wash_adjustment += disallowed
        lot.wash_from = pending.disposal_key
        if lot.basis is not None:
            lot.basis += disallowed
        lot.holding_from = min(lot.holding_from, lot.acquired_at - pending.held)
        self.ledger.repush(lot)
        pending.need -= matched
        self.ledger.add_disallowed(pending.disposal_key, disallowed)
        return rest

    # -- snapshot --------------------------------------------------------------------------
    def state(self) -> list[PendingLoss]:
        return [p for queue in self.pending.values() for p in queue if p.need]

