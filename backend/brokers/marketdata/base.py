"""The market-data interface: one small class per source answers three narrow questions.

Prices are per asset, not per user: a source is built once per refresh, not per connection,
and asks for many symbols per request. Like an adapter, a source never touches the database:
it returns `Quote`s and `Bar`s in the source's own quote currency, and the price store
(backend/market/) decides what to keep. Every request goes through a `BrokerSession`, so the
shared rate limiter and the error kinds are the same as a sync's.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from ..dtos import AssetClass
from ..http import BrokerSession


@dataclass(frozen=True)
class Listing:
    """One market a source prices: `symbol` (canonical, as Asset rows are keyed) quoted in
    `quote` (a fiat code or a coin: "USD", "EUR", "USDT", "BTC"), called `source_symbol` there
    ("AAPL", "BTC/USD", "BTCUSDT", "XXBTZUSD", "BTC-USD")."""

    symbol: str
    asset_class: AssetClass
    quote: str
    source_symbol: str


@dataclass(frozen=True)
class Quote:
    """The latest price of one listing: the last trade (or the mid of the best bid and ask
    where the source gives no trade), at the time the source says it happened."""

    listing: Listing
    price: Decimal
    at: datetime                        # timezone-aware, UTC
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Bar:
    """One daily bar (UTC day for crypto; the exchange's session for equities)."""

    listing: Listing
    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)


class MarketDataSource(ABC):
    key: ClassVar[str]                   # "alpaca", "binance", ...: also the price's `source`
    batch_size: ClassVar[int]            # listings per latest-price request (the refresh's divisor)
    rate_rule: ClassVar[str]             # its rule in settings.BROKER_RATE_LIMITS
    # Alpaca's data API takes a key (an operator key, else a connected user's); the others'
    # market data is public.
    needs_key: ClassVar[bool] = False
    # The oldest day `daily_bars` can reach, as days before today (None: no limit). Kraken's
    # OHLC returns only the latest 720 entries whatever `since` asks.
    max_history_days: ClassVar[int | None] = None

    def __init__(self, *, session: BrokerSession):
        self.session = session

    @classmethod
    def rate_scope(cls, key_id: str = "") -> str:
        """The scope its budget is counted in: the egress IP for public data (every user's
        refresh shares it), the key for Alpaca's data API."""
        from ..base import egress_ip

        return f"{cls.rate_rule}:ip:{egress_ip()}"

    @abstractmethod
    def listings(self, wanted: Iterable[tuple[str, AssetClass]]) -> dict[tuple[str, AssetClass], list[Listing]]:
        """Which of these (symbol, asset class) the source can price, each with its markets,
        the preferred quote first. Sources that publish their markets (exchangeInfo,
        AssetPairs, products) read them once and cache them for a while."""

    @abstractmethod
    def latest(self, listings: Sequence[Listing]) -> Iterator[Quote]:
        """The latest price of each listing, `batch_size` listings per request. A listing the
        source does not answer for is left out, never given a price of 0."""

    @abstractmethod
    def daily_bars(self, listing: Listing, start: date, end: date) -> Iterator[Bar]:
        """Daily bars from `start` to `end` inclusive, oldest first, paged as the source pages
        (Alpaca next_page_token, Binance 1,000 klines, Coinbase 350 candles)."""


def crypto_listings(wanted: Iterable[tuple[str, AssetClass]], by_base: dict[str, dict[str, str]],
                    quotes: Sequence[str]) -> dict[tuple[str, AssetClass], list[Listing]]:
    """A crypto venue's listings of the wanted coins and currencies: `by_base` maps a base to
    {quote: the venue's symbol}; quotes are tried in the venue's order of preference (the first
    is what prices the asset there), never an asset quoted in itself."""
    found = {}
    for symbol, asset_class in wanted:
        if asset_class not in (AssetClass.CRYPTO, AssetClass.FIAT):
            continue
        listed = by_base.get(symbol, {})
        rows = [Listing(symbol, asset_class, q, listed[q]) for q in quotes if q in listed and q != symbol]
        if rows:
            found[(symbol, asset_class)] = rows
    return found


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """`items` in consecutive runs of `size`: ceil(len / size) requests, never one per item."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def utc_day_start(day: date) -> int:
    """Unix seconds of 00:00 UTC on `day`."""
    return (day - date(1970, 1, 1)).days * 86_400
