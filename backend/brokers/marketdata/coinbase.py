"""Coinbase Advanced Trade market data through its public `market/` endpoints: no user key,
10 requests a second per IP (docs.cdp.coinbase.com, Advanced Trade "Rate limits").

    GET /api/v3/brokerage/market/products                     read once an hour: the listings
    GET /api/v3/brokerage/market/products?product_ids=A&...   `price` is the last trade's
    GET /api/v3/brokerage/market/products/{id}/candles?start=&end=&granularity=ONE_DAY
                                                              at most 350 candles a call
The authenticated twins (/products, /best_bid_ask, /products/{id}/candles) need a user's
CDP key and spend its private budget; market data for every user needs neither.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ..dtos import AssetClass
from ..errors import TransientError
from .base import Bar, Listing, MarketDataSource, Quote, batched, crypto_listings, utc_day_start

MARKET = "/api/v3/brokerage/market/products"
QUOTES = ("USD", "USDC", "USDT", "EUR", "GBP", "BTC")
MAX_CANDLES = 350
BATCH = 100                           # product_ids per call (repeated keys; ~2 KB of URL)
PRODUCTS_TTL = 3600.0
_CACHE: dict[str, tuple[float, list[dict]]] = {}
_GUARD = threading.Lock()


class CoinbaseSource(MarketDataSource):
    key = "coinbase"
    batch_size = BATCH
    rate_rule = "coinbase-public"

    def _products(self) -> list[dict]:
        url = self.session.base_url
        with _GUARD:
            cached = _CACHE.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        body = self.session.get_json(MARKET)
        products = body.get("products") if isinstance(body, dict) else None
        if not isinstance(products, list):
            raise TransientError("coinbase: market/products answered without a product list")
        with _GUARD:
            _CACHE[url] = (time.monotonic() + PRODUCTS_TTL, products)
        return products

    def listings(self, wanted: Iterable[tuple[str, AssetClass]]) -> dict[tuple[str, AssetClass], list[Listing]]:
        by_base: dict[str, dict[str, str]] = {}
        for p in self._products():
            if p.get("status") == "online" and not p.get("trading_disabled") and p.get("product_type", "SPOT") == "SPOT":
                by_base.setdefault(str(p.get("base_currency_id")), {})[str(p.get("quote_currency_id"))] = p["product_id"]
        return crypto_listings(wanted, by_base, QUOTES)

    def latest(self, listings: Sequence[Listing]) -> Iterator[Quote]:
        for batch in batched(listings, self.batch_size):
            by_id = {item.source_symbol: item for item in batch}
            body = self.session.get_json(MARKET, params=[("product_ids", p) for p in sorted(by_id)])
            now = datetime.now(timezone.utc)
            for row in body.get("products") or [] if isinstance(body, dict) else []:
                item = by_id.get(row.get("product_id"))
                if item is not None and row.get("price") and Decimal(str(row["price"])) > 0:
                    yield Quote(item, Decimal(str(row["price"])), now, row)

    def daily_bars(self, listing: Listing, start: date, end: date) -> Iterator[Bar]:
        day = start
        while day <= end:
            last = min(end, day + timedelta(days=MAX_CANDLES - 1))
            params = {"start": str(utc_day_start(day)), "end": str(utc_day_start(last)), "granularity": "ONE_DAY"}
            body = self.session.get_json(f"{MARKET}/{listing.source_symbol}/candles", params=params)
            candles = body.get("candles") if isinstance(body, dict) else None
            if not isinstance(candles, list):
                raise TransientError("coinbase: candles answered without a list")
            for c in sorted(candles, key=lambda c: int(c["start"])):        # Coinbase sends newest first
                bar_day = datetime.fromtimestamp(int(c["start"]), timezone.utc).date()
                yield Bar(listing, bar_day, Decimal(str(c["open"])), Decimal(str(c["high"])),
                          Decimal(str(c["low"])), Decimal(str(c["close"])), Decimal(str(c.get("volume") or 0)))
            day = last + timedelta(days=1)
