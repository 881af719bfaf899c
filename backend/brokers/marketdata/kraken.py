"""Kraken market data: public endpoints, counted per IP ("kraken-public", like the syncs'
AssetPairs and Ticker calls).

    GET /0/public/AssetPairs                         read once an hour: the listings
    GET /0/public/Ticker?pair=A,B,...                `c[0]` is the last trade's price
    GET /0/public/OHLC?pair=A&interval=1440&since=   one pair a call

OHLC "returns up to 720 of the most recent entries (older data cannot be retrieved,
regardless of the value of since)" (docs.kraken.com, Get OHLC Data): daily closes older
than 720 days are not at Kraken; the price store fills them from another source that lists
the asset (Coinbase candles, Binance klines), or leaves them unpriced.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal

from ..adapters.kraken.assets import AssetBook
from ..dtos import AssetClass
from ..errors import TransientError
from .base import Bar, Listing, MarketDataSource, Quote, batched, crypto_listings, utc_day_start

QUOTES = ("USD", "EUR", "USDT", "USDC", "GBP", "BTC")
OHLC_DEPTH = 720
# Pairs per Ticker call: Kraken takes a comma list; 100 keeps the URL near 1.5 KB.
BATCH = 100
BOOK_TTL = 3600.0
_CACHE: dict[str, tuple[float, AssetBook]] = {}
_GUARD = threading.Lock()


class KrakenSource(MarketDataSource):
    key = "kraken"
    batch_size = BATCH
    rate_rule = "kraken-public"
    max_history_days = OHLC_DEPTH - 1

    def _public(self, method: str, params: dict | None = None) -> dict:
        body = self.session.get_json(f"/0/public/{method}", params=params, cost=1)
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise TransientError(f"kraken: no result from {method}")
        return result

    def _book(self) -> AssetBook:
        url = self.session.base_url
        with _GUARD:
            cached = _CACHE.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        book = AssetBook(self._public("Assets"), self._public("AssetPairs"))
        with _GUARD:
            _CACHE[url] = (time.monotonic() + BOOK_TTL, book)
        return book

    def listings(self, wanted: Iterable[tuple[str, AssetClass]]) -> dict[tuple[str, AssetClass], list[Listing]]:
        book = self._book()
        by_base: dict[str, dict[str, str]] = {}
        for key, info in book.pairs.items():
            if isinstance(info, dict) and info.get("status", "online") == "online" and info.get("base"):
                by_base.setdefault(book.canonical(info["base"]), {}).setdefault(book.canonical(info["quote"]), key)
        return crypto_listings(wanted, by_base, QUOTES)

    def latest(self, listings: Sequence[Listing]) -> Iterator[Quote]:
        for batch in batched(listings, self.batch_size):
            by_key = {item.source_symbol: item for item in batch}
            result = self._public("Ticker", {"pair": ",".join(sorted(by_key))})
            now = datetime.now(timezone.utc)
            for key, row in result.items():
                item = by_key.get(key)
                last = row.get("c") if isinstance(row, dict) else None
                if item is not None and last and Decimal(str(last[0])) > 0:
                    yield Quote(item, Decimal(str(last[0])), now, row)

    def daily_bars(self, listing: Listing, start: date, end: date) -> Iterator[Bar]:
        """One call: Kraken answers at most the newest 720 days whatever `since` says."""
        result = self._public("OHLC", {"pair": listing.source_symbol, "interval": 1440,
                                       "since": utc_day_start(start) - 1})
        rows = next((v for k, v in result.items() if k != "last"), [])
        for row in rows:
            day = datetime.fromtimestamp(int(row[0]), timezone.utc).date()
            if start <= day <= end:
                yield Bar(listing, day, *(Decimal(str(v)) for v in row[1:5]), volume=Decimal(str(row[6])))
