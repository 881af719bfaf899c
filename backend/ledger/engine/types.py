"""What the lot engine reads (events) and writes (lots, disposals, income): plain dataclasses.

The engine is pure Python: no Django, no database, no clock. Everything it needs about the
outside world comes in as an event or through a `Pricer`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

ZERO = Decimal(0)


class Kind:
    """Event kinds, in the order events of one instant are applied (see `Event.order`)."""

    SPLIT = "split"                 # ratio applied to the open lots of an asset at a connection
    TRANSFER_OUT = "transfer_out"   # lots leave a connection (parked until a matching deposit)
    TRANSFER_IN = "transfer_in"     # lots arrive: a parked withdrawal's, or unknown basis
    TRADE = "trade"                 # acquire / dispose / swap, with fees
    INCOME = "income"               # dividends, interest, rewards (a reward also opens a lot)
    FEE = "fee"                     # a fee on its own: cash, or in kind (a disposal of the coin)
    ROC = "return_of_capital"       # lowers the basis of the asset's open lots
    ADJUST = "adjust"               # holding changes the feeds name but do not price (REORG, OPEXP, ...)
    SPINOFF = "spinoff"             # new shares of another company for the parent's held shares

    ORDER = {SPLIT: 0, TRANSFER_OUT: 1, TRANSFER_IN: 2, TRADE: 3, INCOME: 4, FEE: 5, ROC: 6, ADJUST: 7, SPINOFF: 8}


@dataclass(frozen=True, slots=True)
class Leg:
    asset_id: int
    quantity: Decimal               # signed change of the holding


@dataclass(slots=True)
class Event:
    kind: str
    at: datetime
    connection_id: int
    key: str                        # "<connection>:<broker_id>" of the leading row: stable across re-syncs
    tx_id: int | None = None        # BrokerTransaction pk of the leading row
    legs: tuple[Leg, ...] = ()      # asset legs, summed per asset (fees in a traded asset netted in)
    fee_legs: tuple[Leg, ...] = ()  # fees paid in an asset that is not traded (BNB)
    cash: tuple[tuple[str, Decimal], ...] = ()   # signed cash per currency
    income_kind: str = ""           # dividend, withholding, interest, reward, fee, ...
    asset_id: int | None = None     # what income / a cash fee / a split / ROC / a spin-off's parent is about
    ratio: Decimal | None = None    # split: new shares per old share
    price: Decimal | None = None    # the row's own unit price of legs[0] in `price_currency`, where it has one
    price_currency: str = ""
    withdrawal_key: str = ""        # transfer in: the withdrawal it pairs with ("" = from outside)
    fee_quantity: Decimal = ZERO    # transfer in: what was lost on the way (sent - received)

    @property
    def order(self) -> tuple:
        """Total order: time, then kind, then the stable key (never arrival order or a pk)."""
        return (self.at, Kind.ORDER[self.kind], self.key)


class Pricer(Protocol):
    def value(self, asset_id: int, quantity: Decimal, day: date) -> Decimal | None:
        """`quantity` of the asset in the base currency at the day's close; None if unpriced."""

    def fx(self, currency: str, day: date) -> Decimal | None:
        """One unit of `currency` in the base currency; None if unknown."""


@dataclass(slots=True)
class Lot:
    key: str
    asset_id: int
    connection_id: int
    quantity: Decimal               # opened with (negative: a short lot)
    remaining: Decimal              # still open (same sign as quantity)
    basis: Decimal | None           # of `remaining`; None = unknown basis. Short lots: the sale's proceeds
    acquired_at: datetime
    holding_from: datetime          # acquired_at, or earlier when a wash sale carried a holding period in
    origin: str                     # buy, short, reward, transfer, deposit, split, wash, adjust
    source_key: str
    tx_id: int | None = None
    parent_key: str = ""            # a transferred or split-off lot: the lot it came from
    wash_adjustment: Decimal = ZERO
    wash_from: str = ""             # disposal key whose disallowed loss this lot carries
    replaced: Decimal = ZERO        # quantity already used as a wash-sale replacement
    closed_at: datetime | None = None
    closed_by: str = ""             # sale, transfer, ...
    seq: int = 0

    @property
    def is_short(self) -> bool:
        return self.quantity < 0

    @property
    def unit_cost(self) -> Decimal | None:
        if self.basis is None or not self.remaining:
            return None
        return self.basis / self.remaining

    def take(self, quantity: Decimal) -> Decimal | None:
        """Remove `quantity` (same sign as the lot) and return its share of the basis. The last
        piece takes all that is left, so pieces always add up to the lot's basis exactly."""
        if quantity == self.remaining:
            share = self.basis
            self.basis = None if self.basis is None else ZERO
        else:
            share = None if self.basis is None else self.basis * quantity / self.remaining
            if self.basis is not None:
                self.basis -= share
        self.remaining -= quantity
        return share


@dataclass(slots=True)
class LotLink:
    lot_key: str
    quantity: Decimal               # positive
    basis: Decimal | None
    proceeds: Decimal | None
    acquired_at: datetime
    holding_from: datetime
    term: str                       # short / long
    wash_disallowed: Decimal = ZERO

    @property
    def gain(self) -> Decimal | None:
        if self.basis is None or self.proceeds is None:
            return None
        return self.proceeds - self.basis + self.wash_disallowed


@dataclass(slots=True)
class Disposal:
    key: str
    asset_id: int
    connection_id: int
    disposed_at: datetime
    quantity: Decimal               # positive
    proceeds: Decimal | None
    kind: str                       # sale, short_cover, swap, fee, cash_in_lieu, transfer_fee, return_of_capital,
                                    # merger_cash
    tx_id: int | None = None
    source_key: str = ""            # the transaction's stable identity (picks are keyed on it)
    links: list[LotLink] = field(default_factory=list)
    pick_status: str = ""           # "", "applied", or why a pick was refused
    wash_disallowed: Decimal = ZERO

    @property
    def basis(self) -> Decimal | None:
        if any(link.basis is None for link in self.links):
            return None
        return sum((link.basis for link in self.links), ZERO)

    @property
    def gain(self) -> Decimal | None:
        basis = self.basis
        if basis is None or self.proceeds is None:
            return None
        return self.proceeds - basis + self.wash_disallowed

    @property
    def incomplete(self) -> bool:
        return self.gain is None

    @property
    def term(self) -> str:
        terms = {link.term for link in self.links}
        return terms.pop() if len(terms) == 1 else ("mixed" if terms else "short")


@dataclass(slots=True)
class Income:
    key: str
    kind: str
    connection_id: int
    asset_id: int | None
    occurred_at: datetime
    amount: Decimal | None          # in the base currency; None when it could not be converted
    currency: str
    original_amount: Decimal        # in `currency`
    tx_id: int | None = None


class PickRefused(ValueError):
    """A specific-lot pick that does not fit the lots open at the sale."""
