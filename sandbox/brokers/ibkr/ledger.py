"""An IBKR account as the simulator keeps it: instruments, and a time-ordered list of events,
each one a Flex record (its attributes as IBKR writes them) with the holding and cash changes
it makes. Holdings and cash at any moment are what the events up to then add up to, so the
truth always reconciles (every position == the sum of its records' quantities)."""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
BASE = "USD"


@dataclass(frozen=True)
class Instrument:
    symbol: str                   # IBKR's symbol: "AAPL", "AAPL  250620C00200000", "EUR.USD"
    category: str                 # STK, OPT, BOND, CASH
    currency: str
    exchange: str
    conid: str
    description: str
    multiplier: Decimal = Decimal(1)
    isin: str = ""
    extra: tuple[tuple[str, str], ...] = ()      # option/bond attributes: putCall, strike, expiry...

    @cached_property
    def key(self) -> str:
        """The symbol brokersync's adapter gives it (truth is in our terms)."""
        if self.category == "CASH":
            return self.symbol.split(".")[0]
        symbol = self.symbol.replace(" ", "") if self.category == "OPT" else self.symbol
        if self.category == "BOND":
            symbol = self.isin or symbol
        return f"{symbol}:{self.exchange}" if self.currency != BASE and self.exchange else symbol

    def attrs(self) -> dict[str, str]:
        return self._attrs

    @cached_property
    def _attrs(self) -> dict[str, str]:
        return {"currency": self.currency, "assetCategory": self.category, "symbol": self.symbol,
                "description": self.description, "conid": self.conid, "isin": self.isin,
                "listingExchange": self.exchange, "multiplier": fmt(self.multiplier), **dict(self.extra)}


@dataclass
class Event:
    at: float                     # sim epoch seconds
    kind: str                     # trade, order, cash, ca, transfer
    attrs: dict[str, str]         # the Flex record's attributes
    holding: tuple[str, Decimal] | None = None    # (instrument key, signed change)
    cash: tuple[tuple[str, Decimal], ...] = ()    # (currency, signed change) pairs
    truth: dict[str, Any] | None = None           # the row brokersync must store (None: orders)
    day: date = field(init=False)                 # its US Eastern date

    def __post_init__(self):
        self.day = date.fromordinal(_UNIX_DAY + int((self.at + _offset(int(self.at // 3600))) // 86_400))


@dataclass
class Account:
    account_id: str
    broker_account_id: str
    token: str
    query_id: str
    opened: date
    created_at: float
    token_expires_at: float | None = None
    revoked: bool = False
    generation_polls: int = 1     # GetStatement answers 1019 this many times per statement
    instruments: dict[str, Instrument] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    holdings: dict[str, Decimal] = field(default_factory=dict)
    cash: dict[str, Decimal] = field(default_factory=dict)
    prices: dict[str, Decimal] = field(default_factory=dict)      # last trade price per instrument
    next_id: int = 0

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def add(self, event: Event) -> Event:
        """Record an event (events arrive in time order) and apply its changes."""
        if self.events and event.at < self.events[-1].at:
            bisect.insort(self.events, event, key=lambda e: e.at)
        else:
            self.events.append(event)
        _apply(self.holdings, self.cash, event)
        return event

    def state_at(self, day: date, cutoff: float) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """Holdings and cash at the end of `day`, counting only events before `cutoff`."""
        if not self.events or (self.events[-1].at <= cutoff and self.events[-1].day <= day):
            return dict(self.holdings), dict(self.cash)
        holdings: dict[str, Decimal] = {}
        cash: dict[str, Decimal] = {}
        for event in self.events:
            if event.at <= cutoff and event.day <= day:
                _apply(holdings, cash, event)
        return holdings, cash


def _apply(holdings: dict[str, Decimal], cash: dict[str, Decimal], event: Event) -> None:
    if event.holding is not None:
        key, change = event.holding
        holdings[key] = holdings.get(key, Decimal(0)) + change
    for currency, change in event.cash:
        cash[currency] = cash.get(currency, Decimal(0)) + change


def fmt(value: Decimal) -> str:
    text = str(value)
    if "E" in text:
        text = format(value, "f")
    return "0" if text in ("-0", "0.00", "-0.00") else text


_EPOCH = datetime(1970, 1, 1)
_UNIX_DAY = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=8192)
def _offset(hour: int) -> float:
    return datetime.fromtimestamp(hour * 3600, EASTERN).utcoffset().total_seconds()


def eastern(at: float) -> datetime:
    """The US Eastern wall time of `at`, naive (the zone is looked up once per hour:
    generating 200,000 records must take seconds, not minutes)."""
    return _EPOCH + timedelta(seconds=at + _offset(int(at // 3600)))


def flex_time(at: float) -> str:
    """IBKR's default Flex date/time format: yyyyMMdd;HHmmss, US Eastern."""
    return "%04d%02d%02d;%02d%02d%02d" % time.gmtime(at + _offset(int(at // 3600)))[:6]


def flex_date(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"
