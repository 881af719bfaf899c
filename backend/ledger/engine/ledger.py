"""The lot engine: events in, lots, disposals and income out.

    ledger = Ledger(method="fifo", pricer=..., wash_assets={...})
    ledger.run(events)            # events in any order: they are sorted by Event.order

Lots sit at a connection; a disposal closes lots of its own asset at its own connection by
the method (or by the user's pick), a sale with nothing open opens a short lot, and a buy
closes short lots first. Every amount is in the base currency, Decimal throughout.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import lru_cache
from decimal import Decimal

from .book import AVERAGE, LotBook
from .handlers import HANDLERS
from .types import ZERO, Disposal, Event, Income, Kind, Lot, LotLink, PickRefused, Pricer
from .wash import WashSales


def term_of(holding_from: datetime, disposed_at: datetime) -> str:
    """Long when held more than one year: counting starts the day after acquisition, so a
    sale on the anniversary is still short term (Pub 550, "Holding Period")."""
    return "long" if disposed_at.date() > _anniversary(holding_from.date()) else "short"


@lru_cache(maxsize=8192)                     # one per acquisition day, asked for every lot a sale closes
def _anniversary(start: date) -> date:
    try:
        return start.replace(year=start.year + 1)
    except ValueError:                       # 29 February
        return start.replace(year=start.year + 1, day=28)


def _split(total: Decimal | None, part: Decimal, whole: Decimal) -> Decimal | None:
    if total is None:
        return None
    return total if part == whole else total * part / whole


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


class Ledger:
    def __init__(self, *, method: str, pricer: Pricer, wash_assets: Iterable[int] = (),
                 picks: dict[str, list[tuple[str, Decimal]]] | None = None,
                 overrides: dict[str, tuple[Decimal, datetime | None]] | None = None, strict_picks: bool = False):
        self.method = method
        self.pricer = pricer
        self.base = getattr(pricer, "base", None)      # a pricer that names its currency (BookPricer)
        self.wash_assets = frozenset(wash_assets)
        self.picks = picks or {}
        self.overrides = overrides or {}
        self.strict_picks = strict_picks
        self.books: dict[tuple[int, int], LotBook] = {}
        self.lots: dict[str, Lot] = {}
        self.disposals: dict[str, Disposal] = {}
        self.income: list[Income] = []
        self.parked: dict[str, list[Lot]] = {}
        self.wash = WashSales(self)
        self.seq = 0
        self.as_of: datetime | None = None
        self.applied = 0
        self.touched_lots: set[str] = set()
        self.touched_disposals: set[str] = set()
        # Open lots as the last checkpoint capture wrote them (state.asset_states reuses them).
        self.captured_lots: dict[str, tuple] = {}
        self.checkpoints: dict[datetime, dict] = {}

    # -- running ---------------------------------------------------------------------------
    def run(self, events: Iterable[Event], checkpoints: Iterable[datetime] = (),
            capture: Callable[["Ledger"], dict] | None = None) -> "Ledger":
        """Apply the events in order. At each checkpoint instant (before the first event at
        or after it) `capture(self)` is kept in `self.checkpoints[instant]`."""
        instants = sorted(checkpoints) if capture else []
        i = 0
        for event in sorted(events, key=Event.order.fget):
            while i < len(instants) and event.at >= instants[i]:
                self.checkpoints[instants[i]] = capture(self)
                i += 1
            self.apply(event)
        for instant in instants[i:]:          # after the last event: the state it left
            self.checkpoints[instant] = capture(self)
        return self

    def apply(self, event: Event) -> None:
        HANDLERS[event.kind](self, event)
        self.applied += 1
        if self.as_of is None or event.at > self.as_of:
            self.as_of = event.at

    # -- books -----------------------------------------------------------------------------
    def book(self, asset_id: int, connection_id: int) -> LotBook:
        key = (asset_id, connection_id)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = LotBook(self.method)
        return book

    def books_of(self, asset_id: int) -> list[LotBook]:
        return [book for (asset, _), book in sorted(self.books.items()) if asset == asset_id]

    def repush(self, lot: Lot) -> None:
        self.book(lot.asset_id, lot.connection_id).push(lot)
        self.touched_lots.add(lot.key)

    def touch(self, lot: Lot) -> None:
        self.touched_lots.add(lot.key)

    def new_lot(self, *, key: str, asset_id: int, connection_id: int, quantity: Decimal, basis: Decimal | None,
                acquired_at: datetime, origin: str, source_key: str, tx_id: int | None,
                holding_from: datetime | None = None, parent_key: str = "") -> Lot:
        while key in self.lots:                  # the same event opening a second lot of one asset
            key += "+"
        self.seq += 1
        lot = Lot(key=key, asset_id=asset_id, connection_id=connection_id, quantity=quantity, remaining=quantity,
                  basis=basis, acquired_at=acquired_at, holding_from=holding_from or acquired_at, origin=origin,
                  source_key=source_key, tx_id=tx_id, parent_key=parent_key, seq=self.seq)
        self.lots[key] = lot
        self.book(asset_id, connection_id).add(lot)
        self.touch(lot)
        return lot

    def split_lot(self, lot: Lot, keep: Decimal) -> Lot:
        """Keep `keep` in `lot`; the rest becomes a new lot with the same dates and origin."""
        rest_qty = lot.remaining - keep
        rest_basis = lot.take(rest_qty)
        rest = self.new_lot(key=lot.key + "~", asset_id=lot.asset_id, connection_id=lot.connection_id,
                            quantity=rest_qty, basis=rest_basis, acquired_at=lot.acquired_at, origin=lot.origin,
                            source_key=lot.source_key, tx_id=lot.tx_id, holding_from=lot.holding_from,
                            parent_key=lot.key)
        rest.seq = lot.seq
        lot.quantity -= rest_qty
        self.repush(rest)
        self.touch(lot)
        return rest

    def close_if_empty(self, lot: Lot, at: datetime, how: str) -> None:
        if not lot.remaining:
            lot.closed_at, lot.closed_by = at, how
            self.book(lot.asset_id, lot.connection_id).discard(lot)
        self.touch(lot)

    # -- acquiring and disposing -----------------------------------------------------------
    def acquire(self, event: Event, asset_id: int, quantity: Decimal, cost: Decimal | None, *, origin: str = "buy",
                acquired_at: datetime | None = None) -> None:
        """Open a lot (closing short lots first)."""
        book = self.book(asset_id, event.connection_id)
        left = quantity
        if book.sign() < 0:
            left = self._cover(event, asset_id, quantity, cost)
            cost = _split(cost, left, quantity)
        if left > 0:
            key = f"{event.key}#{asset_id}"
            lot = self.new_lot(key=key, asset_id=asset_id, connection_id=event.connection_id, quantity=left,
                               basis=cost, acquired_at=acquired_at or event.at, origin=origin, source_key=event.key,
                               tx_id=event.tx_id)
            if asset_id in self.wash_assets:
                self.wash.note_purchase(lot)
                self.wash.after_acquisition(lot)

    def dispose(self, event: Event, asset_id: int, quantity: Decimal, proceeds: Decimal | None, *,
                kind: str = "sale", suffix: str = "") -> Disposal:
        """Close `quantity` (positive) of the asset's lots at the event's connection; what is
        not held opens a short lot."""
        book = self.book(asset_id, event.connection_id)
        disposal = Disposal(key=f"{event.key}#{asset_id}{suffix}", asset_id=asset_id,
                            connection_id=event.connection_id, disposed_at=event.at, quantity=quantity,
                            proceeds=proceeds, kind=kind, tx_id=event.tx_id, source_key=event.key)
        taken: list[tuple[Lot, Decimal, Decimal | None]] = []
        if book.sign() >= 0:
            taken = self._take(book, disposal, quantity)
        closed = sum((q for _, q, _ in taken), ZERO)
        short = quantity - closed
        closed_proceeds = _split(proceeds, closed, quantity) if closed else ZERO
        if short > 0:
            short_proceeds = None if proceeds is None else proceeds - (closed_proceeds or ZERO)
            self.new_lot(key=f"{event.key}#{asset_id}", asset_id=asset_id, connection_id=event.connection_id,
                         quantity=-short, basis=short_proceeds, acquired_at=event.at, origin="short",
                         source_key=event.key, tx_id=event.tx_id)
        if quantity:          # the disposal is what it closed; the rest of the sale opened a short lot
            disposal.quantity, disposal.proceeds = closed, closed_proceeds
        self._link(disposal, taken, closed_proceeds, closed)
        for lot, _, _ in taken:
            self.close_if_empty(lot, event.at, kind)
        if disposal.links or kind in ("return_of_capital", "merger_cash"):      # those close no shares
            self._record(disposal)
            if asset_id in self.wash_assets and kind == "sale":
                self.wash.after_disposal(disposal, {lot.key for lot, _, _ in taken})
        return disposal

    def _take(self, book: LotBook, disposal: Disposal, quantity: Decimal) -> list[tuple[Lot, Decimal, Decimal | None]]:
        taken: list[tuple[Lot, Decimal, Decimal | None]] = []
        left = quantity
        pick = self.picks.get(disposal.key)
        if pick:
            try:
                taken = self._take_pick(book, pick, quantity)
                left -= sum((q for _, q, _ in taken), ZERO)
                disposal.pick_status = "applied"
            except PickRefused as refused:
                if self.strict_picks:
                    raise
                disposal.pick_status = f"refused: {refused}"
        if self.method == AVERAGE and left:
            book.pool_average()
        while left > 0:
            lot = book.next_lot()
            if lot is None:
                break
            q = min(left, lot.remaining)
            taken.append((lot, q, lot.take(q)))
            left -= q
        return taken

    def _take_pick(self, book: LotBook, pick: list[tuple[str, Decimal]], quantity: Decimal) -> list:
        total = sum((q for _, q in pick), ZERO)
        if total > quantity:
            raise PickRefused(f"the pick closes {_num(total)}, more than the {_num(quantity)} sold")
        for lot_key, q in pick:
            lot = book.lots.get(lot_key)
            if q <= 0:
                raise PickRefused(f"lot {lot_key}: quantity must be positive")
            if lot is None or lot.is_short:
                raise PickRefused(f"lot {lot_key} is not open at this connection when the sale happens")
            if lot.remaining < q:
                raise PickRefused(f"lot {lot_key} has only {_num(lot.remaining)} open when the sale happens, "
                                  f"not {_num(q)}")
        return [(book.lots[k], q, book.lots[k].take(q)) for k, q in pick]

    def _link(self, disposal: Disposal, taken: list, proceeds: Decimal | None, closed: Decimal) -> None:
        left = proceeds
        for i, (lot, q, basis) in enumerate(taken):
            share = left if i == len(taken) - 1 else _split(proceeds, q, closed)
            if left is not None and share is not None:
                left -= share
            disposal.links.append(LotLink(lot_key=lot.key, quantity=q, basis=basis, proceeds=share,
                                          acquired_at=lot.acquired_at, holding_from=lot.holding_from,
                                          term=term_of(lot.holding_from, disposal.disposed_at)))

    def _cover(self, event: Event, asset_id: int, quantity: Decimal, cost: Decimal | None) -> Decimal:
        """A buy closes short lots (oldest first): proceeds were the short sale's, basis the buy's."""
        book = self.book(asset_id, event.connection_id)
        disposal = Disposal(key=f"{event.key}#{asset_id}", asset_id=asset_id, connection_id=event.connection_id,
                            disposed_at=event.at, quantity=ZERO, proceeds=ZERO, kind="short_cover",
                            tx_id=event.tx_id, source_key=event.key)
        left = quantity
        while left > 0:
            lot = book.next_lot()
            if lot is None or not lot.is_short:
                break
            q = min(left, -lot.remaining)
            sale_proceeds = lot.take(-q)
            basis = _split(cost, q, quantity)
            disposal.links.append(LotLink(lot_key=lot.key, quantity=q, basis=basis, proceeds=sale_proceeds,
                                          acquired_at=lot.acquired_at, holding_from=lot.acquired_at, term="short"))
            disposal.quantity += q
            disposal.proceeds = None if disposal.proceeds is None or sale_proceeds is None \
                else disposal.proceeds + sale_proceeds
            left -= q
            self.close_if_empty(lot, event.at, "short_cover")
        if disposal.links:
            self._record(disposal)
        return left

    def _record(self, disposal: Disposal) -> None:
        while disposal.key in self.disposals:
            disposal.key += "+"
        self.disposals[disposal.key] = disposal
        self.touched_disposals.add(disposal.key)

    def add_disallowed(self, disposal_key: str, amount: Decimal) -> None:
        """Spread a disallowed loss over the sale's losing lots in proportion to their loss
        (the last takes the remainder), so each Form 8949 line shows its share."""
        disposal = self.disposals[disposal_key]
        losing = [link for link in disposal.links if link.gain is not None and link.gain - link.wash_disallowed < 0]
        total = -sum((link.gain - link.wash_disallowed for link in losing), ZERO)
        left = amount
        for i, link in enumerate(losing):
            share = left if i == len(losing) - 1 else amount * -(link.gain - link.wash_disallowed) / total
            link.wash_disallowed += share
            left -= share
        disposal.wash_disallowed += amount
        self.touched_disposals.add(disposal_key)

    def add_income(self, event: Event, kind: str, amount: Decimal | None, currency: str, original: Decimal,
                   asset_id: int | None, suffix: str = "") -> None:
        self.income.append(Income(key=f"{event.key}{suffix}", kind=kind, connection_id=event.connection_id,
                                  asset_id=asset_id, occurred_at=event.at, amount=amount, currency=currency,
                                  original_amount=original, tx_id=event.tx_id))

    # -- valuation -------------------------------------------------------------------------
    def fair_value(self, asset_id: int, quantity: Decimal, at: datetime) -> Decimal | None:
        return self.pricer.value(asset_id, quantity, at.date())

    def cash_value(self, cash: Iterable[tuple[str, Decimal]], at: datetime) -> Decimal | None:
        total = ZERO
        for currency, amount in cash:
            if currency == self.base:         # most cash is already in the base currency
                total += amount
                continue
            rate = self.pricer.fx(currency, at.date())
            if rate is None:
                return None
            total += amount * rate
        return total
