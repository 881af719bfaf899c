"""The break types and the rules that tell them apart: pure functions of numbers and evidence.

For one connection and one asset (or one currency of cash), `broker` is what the broker
reports and `history` what the stored history adds up to; difference = broker - history.
The rules are tried in this order and the first that fits names the break, so one fault
gives exactly one typed break (README "Reconcile"):

  precision             |difference| is below the step the asset is kept in (`precision_of`)
  split                 the difference is the change one of the asset's split events made
                        (-change: the history applies it once more than the broker, e.g. the
                        feed reported it twice; +change, or broker = history x ratio: the
                        history does not apply it)
  transfer              an unmatched withdrawal at another of the owner's connections explains
                        an arrival the history lacks (difference > 0), or an unmatched deposit
                        elsewhere a departure it lacks (difference < 0), within the network fee
                        and a transfer's reach (8 days) of the window the difference arose in
                        (not when a short-filled order says a fill is what is missing)
  history_missing       difference > 0: the broker holds more than the history acquired (a
                        record before the first one fetched, or one the feed left out)
  unexplained_disposal  difference < 0: the broker holds less than the history says
  cash                  a currency's cash differs and no asset break's missing trade explains it

A missing trade moves more than one holding: the asset its order bought or sold, the quote
(a coin, or cash) and the commission's asset. Their differences are that break's `legs`
(`is_leg`, `cash_leg_of`), not breaks of their own.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from backend.ledger.transfers import EARLY, MAX_FEE_SHARE, WINDOW

HISTORY_MISSING, UNEXPLAINED_DISPOSAL, SPLIT, TRANSFER, PRECISION, CASH = (
    "history_missing", "unexplained_disposal", "split", "transfer", "precision", "cash")

# The step quantities are kept in, per asset class: a smaller difference is rounding, not a
# missing record. Crypto: 8 places, the satoshi, and the precision Binance, Coinbase and
# Kraken show balances in. Equities (and the rest): Alpaca keeps fractional quantities to 9
# places (Alpaca docs, "Numbers": up to 9 decimal places for qty).
PRECISION_BY_CLASS = {"crypto": Decimal("1e-8"), "equity": Decimal("1e-9"), "option": Decimal("1e-9"),
                      "other": Decimal("1e-9")}
# Cash is kept in the currency's minor unit (ISO 4217): 2 places unless listed here.
MINOR_UNIT_PLACES = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}
# A cash difference is the cash leg of an asset break's missing trade when the price it
# implies (cash / quantity) lies within this share of the asset's own trade prices
# (fees and the spread between fills of one order move it by a few tenths of a percent).
PRICE_MARGIN = Decimal("0.10")


@dataclass(frozen=True)
class Difference:
    key: str                        # "asset:<id>" or "cash:<CCY>"
    asset_id: int | None
    symbol: str                     # the asset's symbol, or the currency
    asset_class: str                # "fiat" for cash
    broker: Decimal
    history: Decimal

    @property
    def difference(self) -> Decimal:
        return self.broker - self.history

    @property
    def is_cash(self) -> bool:
        return self.asset_id is None


@dataclass(frozen=True)
class SplitEvent:
    """One application of a split as the feed recorded it: shares out, shares in."""

    at: datetime
    removed: Decimal                # positive
    added: Decimal
    duplicated: bool = False        # another event of the same asset, day and ratio exists

    @property
    def change(self) -> Decimal:
        return self.added - self.removed

    @property
    def ratio(self) -> Decimal | None:
        return self.added / self.removed if self.removed else None


@dataclass(frozen=True)
class Movement:
    """An unmatched withdrawal (negative) or deposit at another of the owner's connections."""

    transaction_id: int
    connection_id: int
    broker: str
    quantity: Decimal
    occurred_at: datetime
    fee: Decimal | None = None
    asset_id: int = 0


@dataclass(frozen=True)
class Evidence:
    splits: Sequence[SplitEvent] = ()
    movements: Sequence[Movement] = ()
    window: tuple[datetime | None, datetime | None] = (None, None)    # where the cause was located
    fill_missing: bool = False      # a short-filled order says a fill is what is missing


@dataclass(frozen=True)
class Verdict:
    kind: str
    detail: str
    resolution: str
    window: tuple[datetime | None, datetime | None]
    precision: Decimal | None = None
    counterpart_id: int | None = None


def precision_of(asset_class: str, symbol: str = "") -> Decimal:
    if asset_class == "fiat":
        return Decimal(1).scaleb(-MINOR_UNIT_PLACES.get(symbol, 2))
    return PRECISION_BY_CLASS.get(asset_class, PRECISION_BY_CLASS["other"])


def classify(diff: Difference, evidence: Evidence) -> Verdict:
    """The one break type for a non-zero difference (order: module docstring)."""
    d = diff.difference
    step = precision_of(diff.asset_class, diff.symbol)
    if abs(d) < step:
        return Verdict(PRECISION, f"{_q(d)} {diff.symbol} is below {_q(step)}, the step "
                       f"{'cash in ' + diff.symbol if diff.is_cash else diff.asset_class + ' quantities'} are kept in.",
                       "Nothing to do: it clears when the broker reports the quantity to the same precision "
                       "as its records.", evidence.window, precision=step)
    if diff.is_cash:
        return Verdict(CASH, f"The broker reports {_q(diff.broker)} {diff.symbol} in cash; the history's deposits, "
                       f"withdrawals, trades, income and fees add up to {_q(diff.history)}.",
                       "The missing cash movement (a deposit, withdrawal, fee, interest or dividend) in the "
                       "window: a later sync or re-pull that brings it, or a manual entry.", evidence.window)
    verdict = _split(diff, evidence) or (None if evidence.fill_missing else _transfer(diff, evidence))
    if verdict is not None:
        return verdict
    if d > 0:
        return Verdict(HISTORY_MISSING, f"The broker holds {_q(diff.broker)} {diff.symbol}; the history acquires "
                       f"only {_q(diff.history)}: {_q(d)} came from records the history lacks.",
                       "The missing acquisition: a re-sync that brings it, or, if the account held it before the "
                       "first record the broker lets us fetch, an opening balance entered by hand.", evidence.window)
    return Verdict(UNEXPLAINED_DISPOSAL, f"The broker holds {_q(diff.broker)} {diff.symbol}; the history says "
                   f"{_q(diff.history)}: {_q(-d)} left in a way the history does not record.",
                   "The missing disposal (a sale, withdrawal or fee) in the window: a later sync or re-pull that "
                   "brings it, or a manual entry.", evidence.window)


def _split(diff: Difference, evidence: Evidence) -> Verdict | None:
    d = diff.difference
    for event in evidence.splits:
        ratio = event.ratio
        window = (event.at, event.at)
        name = f"the {_q(ratio) if ratio else '?'}-for-1 split of {event.at.date().isoformat()}"
        if event.change and d == -event.change:
            twice = "the feed reported it twice" if event.duplicated else "the broker has not applied it"
            return Verdict(SPLIT, f"The history applies {name} once more than the broker ({twice}): it holds "
                           f"{_q(-d)} {diff.symbol} too many.",
                           "The broker withdrawing the extra split record (the next sync re-pulls its window), "
                           "or the broker applying the split.", window)
        applied = ratio and diff.history and diff.broker == diff.history * ratio
        if (event.change and d == event.change) or applied:
            return Verdict(SPLIT, f"The broker has applied {name}; the history has not: it holds {_q(d)} "
                           f"{diff.symbol} too few.", "The split's records from the broker (a re-sync of the "
                           "window), or the split entered by hand.", window)
    return None


def _transfer(diff: Difference, evidence: Evidence) -> Verdict | None:
    d = diff.difference
    start, end = evidence.window
    # the other leg lies within a transfer's reach of where the difference arose
    near = [m for m in evidence.movements
            if (start is None or m.occurred_at >= start - WINDOW) and (end is None or m.occurred_at <= end + WINDOW)]
    fits = [m for m in near if _explains(m, d)]
    if not fits:
        return None
    m = min(fits, key=lambda m: (abs(abs(m.quantity) - abs(d)), m.occurred_at, m.transaction_id))
    when = m.occurred_at.isoformat(timespec="seconds")
    if d > 0:
        window = (m.occurred_at - EARLY, m.occurred_at + WINDOW)
        detail = (f"A withdrawal of {_q(-m.quantity)} {diff.symbol} at {m.broker} (connection {m.connection_id}) "
                  f"on {when} has no deposit anywhere, and this broker holds {_q(d)} more than the history: "
                  f"its deposit here is missing.")
    else:
        window = (m.occurred_at - WINDOW, m.occurred_at + EARLY)
        detail = (f"A deposit of {_q(m.quantity)} {diff.symbol} at {m.broker} (connection {m.connection_id}) on "
                  f"{when} has no withdrawal anywhere, and this broker holds {_q(-d)} less than the history: "
                  f"its withdrawal here is missing.")
    return Verdict(TRANSFER, detail, "The other leg of the transfer here: the next sync re-pulls its window; "
                   "or enter it by hand.", window, counterpart_id=m.transaction_id)


def _explains(m: Movement, d: Decimal) -> bool:
    """The missing leg here and `m` elsewhere make one transfer: opposite signs, and no more
    lost on the way than a network fee (backend/ledger/transfers.py's rule)."""
    if (d > 0) == (m.quantity > 0):
        return False
    sent, received = (-m.quantity, d) if d > 0 else (-d, m.quantity)
    if received > sent:
        return False
    return sent - received <= max(sent * MAX_FEE_SHARE, m.fee or Decimal(0))


def is_leg(leg: Difference, primary: Difference, prices: Sequence[Decimal], *, fee: bool) -> bool:
    """Whether `leg` is another leg of the trade missing from `primary`'s history: its
    commission (the broker took it, the history did not: leg < 0), or its quote or cash
    (the price it implies, -leg / primary, positive and within PRICE_MARGIN of `prices`)."""
    if fee:
        return leg.difference < 0
    if not primary.difference or not prices:
        return False
    implied = -leg.difference / primary.difference
    return implied > 0 and min(prices) * (1 - PRICE_MARGIN) <= implied <= max(prices) * (1 + PRICE_MARGIN)


def cash_leg_of(cash: Difference, candidates: Sequence[tuple[str, Decimal, Sequence[Decimal]]]) -> str | None:
    """The key of the asset break whose missing trade `cash` is the cash leg of, or None.

    `candidates`: (key, asset difference, the asset's trade prices in this currency). A
    missing buy leaves the broker with more of the asset and less cash, a missing sale the
    reverse, so the implied price -cash/quantity is positive and near the asset's prices."""
    best: tuple[Decimal, str] | None = None
    for key, quantity, prices in candidates:
        if not quantity or not prices:
            continue
        implied = -cash.difference / quantity
        low, high = min(prices) * (1 - PRICE_MARGIN), max(prices) * (1 + PRICE_MARGIN)
        if implied > 0 and low <= implied <= high:
            middle = (min(prices) + max(prices)) / 2
            distance = abs(implied - middle) / middle
            if best is None or distance < best[0]:
                best = (distance, key)
    return best[1] if best else None


def padded(window: tuple[datetime | None, datetime | None], pad: timedelta) -> tuple[datetime | None, datetime | None]:
    start, end = window
    return (start - pad if start else None, end + pad if end else None)


def union(*windows: tuple[datetime | None, datetime | None]) -> tuple[datetime | None, datetime | None]:
    """The smallest window holding all of them (None = unbounded on that side)."""
    starts, ends = [w[0] for w in windows], [w[1] for w in windows]
    return (None if None in starts else min(starts), None if None in ends else max(ends))


def _q(value: Decimal | None) -> str:
    if value is None:
        return "?"
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
