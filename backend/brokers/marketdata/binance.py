"""Binance Spot market data: public, spending the per-IP request weight every sync spends.

    GET /api/v3/exchangeInfo                      weight 20, read once an hour: the listings
    GET /api/v3/ticker/price?symbols=["A","B"]    weight 4 for several or all symbols, 2 for one
    GET /api/v3/klines?symbol=&interval=1d&startTime=&endTime=&limit=1000     weight 2
(binance-spot-api-docs rest-api.md "Symbol price ticker", "Kline/Candlestick data").
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ..adapters.binance.adapter import BinanceAdapter
from ..adapters.binance.markets import Markets
from ..dtos import AssetClass
from ..errors import TransientError
from .base import Bar, Listing, MarketDataSource, Quote, batched, crypto_listings, utc_day_start

# Quotes in the order we prefer them: dollars first (USDT is Binance's deepest market).
QUOTES = ("USDT", "USDC", "FDUSD", "EUR", "BTC", "ETH", "BNB")
KLINES_MAX = 1000                    # klines `limit` maximum
# Symbols per ticker/price call: its weight (4) does not grow with the count; 200 keeps the
# JSON array in the URL near 3 KB, well under what proxies accept.
BATCH = 200
MARKETS_TTL = 3600.0
_CACHE: dict[str, tuple[float, Markets]] = {}
_GUARD = threading.Lock()


class BinanceSource(MarketDataSource):
    key = "binance"
    batch_size = BATCH
    rate_rule = "binance"

    @classmethod
    def rate_scope(cls, key_id: str = "") -> str:
        return BinanceAdapter.rate_scope(None, "live")       # the same IP budget as every sync

    def _markets(self) -> Markets:
        url = self.session.base_url
        with _GUARD:
            cached = _CACHE.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        markets = Markets.from_exchange_info(self.session.get_json("/api/v3/exchangeInfo", cost=20))
        with _GUARD:
            _CACHE[url] = (time.monotonic() + MARKETS_TTL, markets)
        return markets

    def listings(self, wanted: Iterable[tuple[str, AssetClass]]) -> dict[tuple[str, AssetClass], list[Listing]]:
        by_base: dict[str, dict[str, str]] = {}
        for m in self._markets().by_symbol.values():
            if m.trading:
                by_base.setdefault(m.base, {})[m.quote] = m.symbol
        return crypto_listings(wanted, by_base, QUOTES)

    def latest(self, listings: Sequence[Listing]) -> Iterator[Quote]:
        for batch in batched(listings, self.batch_size):
            by_symbol = {item.source_symbol: item for item in batch}
            names = json.dumps(sorted(by_symbol), separators=(",", ":"))
            body = self.session.get_json("/api/v3/ticker/price", params={"symbols": names}, cost=4)
            now = datetime.now(timezone.utc)
            for row in body if isinstance(body, list) else []:
                item = by_symbol.get(row.get("symbol"))
                if item is not None and row.get("price") is not None and Decimal(str(row["price"])) > 0:
                    yield Quote(item, Decimal(str(row["price"])), now, row)

    def daily_bars(self, listing: Listing, start: date, end: date) -> Iterator[Bar]:
        day = start
        while day <= end:
            params = {"symbol": listing.source_symbol, "interval": "1d", "limit": KLINES_MAX,
                      "startTime": utc_day_start(day) * 1000, "endTime": utc_day_start(end) * 1000}
            rows = self.session.get_json("/api/v3/klines", params=params, cost=2)
            if not isinstance(rows, list):
                raise TransientError("binance: klines answered without a list")
            for row in rows:
                bar_day = datetime.fromtimestamp(int(row[0]) / 1000, timezone.utc).date()
                if start <= bar_day <= end:
                    yield Bar(listing, bar_day, *(Decimal(str(v)) for v in row[1:6]))
            if len(rows) < KLINES_MAX:
                return
            day = datetime.fromtimestamp(int(rows[-1][0]) / 1000, timezone.utc).date() + timedelta(days=1)
