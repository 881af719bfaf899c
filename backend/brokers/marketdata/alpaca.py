"""Alpaca Market Data (data.alpaca.markets): US equities and Alpaca's crypto pairs.

    GET /v2/stocks/trades/latest?symbols=A,B               {"trades": {"A": {"t", "p", ...}}}
    GET /v2/stocks/bars?symbols=A&timeframe=1Day&start=&end=&limit=10000&page_token=
    GET /v1beta3/crypto/us/latest/trades?symbols=BTC/USD   (no key needed, one is sent anyway)
    GET /v1beta3/crypto/us/bars?symbols=BTC/USD&timeframe=1Day&...
(alpaca-py data/historical/stock.py and crypto.py: symbols comma-joined, pages followed by
`next_page_token`, at most 10,000 bars a page). The data API takes APCA-API-KEY-ID /
APCA-API-SECRET-KEY and counts requests per key in its own window (200/min on the Basic
plan), apart from the trading API. Symbols it does not know are left out of the answer,
which is how listings are discovered: one latest-trades call per batch, cached a day.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ..dtos import AssetClass, Credentials
from ..errors import TransientError
from ..http import BrokerSession
from .base import Bar, Listing, MarketDataSource, Quote, batched

STOCK_LATEST, STOCK_BARS = "/v2/stocks/trades/latest", "/v2/stocks/bars"
CRYPTO_LATEST, CRYPTO_BARS = "/v1beta3/crypto/us/latest/trades", "/v1beta3/crypto/us/bars"
PAGE_LIMIT = 10_000                   # alpaca-py DATA_V2_MAX_LIMIT
BATCH = 200                           # symbols per call: ~1.5 KB of URL
LISTINGS_TTL = 86_400.0
_KNOWN: dict[tuple[str, str], tuple[float, bool]] = {}      # (base url, symbol) -> (until, listed)
_GUARD = threading.Lock()


def _pair(symbol: str, asset_class: AssetClass) -> str:
    return f"{symbol}/USD" if asset_class == AssetClass.CRYPTO else symbol


def _when(text: str) -> datetime:
    """RFC3339 with up to nanoseconds -> aware UTC datetime (microseconds kept)."""
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return stamp + timedelta(microseconds=int((frac + "000000")[:6])) if frac else stamp


class AlpacaSource(MarketDataSource):
    key = "alpaca"
    batch_size = BATCH
    rate_rule = "alpaca-data"
    needs_key = True

    def __init__(self, *, session: BrokerSession, credentials: Credentials):
        super().__init__(session=session)
        self._headers = {"APCA-API-KEY-ID": credentials.api_key, "APCA-API-SECRET-KEY": credentials.api_secret}

    @classmethod
    def rate_scope(cls, key_id: str = "") -> str:
        return f"alpaca-data:key:{hashlib.sha256(key_id.encode()).hexdigest()[:16]}"


    def _get(self, path: str, params: dict) -> dict:
        body = self.session.get_json(path, params=params, headers=self._headers, cost=1)
        if not isinstance(body, dict):
            raise TransientError(f"alpaca: {path} answered without an object")
        return body

    def _trades(self, items: Sequence[tuple[str, AssetClass]]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for asset_class in (AssetClass.EQUITY, AssetClass.CRYPTO):
            names = [_pair(s, c) for s, c in items if c == asset_class]
            path = STOCK_LATEST if asset_class == AssetClass.EQUITY else CRYPTO_LATEST
            for batch in batched(names, self.batch_size):
                out.update(self._get(path, {"symbols": ",".join(batch)}).get("trades") or {})
        return out

    def listings(self, wanted: Iterable[tuple[str, AssetClass]]) -> dict[tuple[str, AssetClass], list[Listing]]:
        wanted = [(s, c) for s, c in wanted if c in (AssetClass.EQUITY, AssetClass.CRYPTO)]
        now, url = time.monotonic(), self.session.base_url
        with _GUARD:
            unknown = [(s, c) for s, c in wanted if _KNOWN.get((url, _pair(s, c)), (0, False))[0] <= now]
        answered = self._trades(unknown) if unknown else {}
        with _GUARD:
            for s, c in unknown:
                _KNOWN[(url, _pair(s, c))] = (now + LISTINGS_TTL, _pair(s, c) in answered)
            listed = {(s, c) for s, c in wanted if _KNOWN[(url, _pair(s, c))][1]}
        return {(s, c): [Listing(s, c, "USD", _pair(s, c))] for s, c in wanted if (s, c) in listed}

    def latest(self, listings: Sequence[Listing]) -> Iterator[Quote]:
        by_name = {item.source_symbol: item for item in listings}
        trades = self._trades([(item.symbol, item.asset_class) for item in listings])
        for name, trade in trades.items():
            item = by_name.get(name)
            if item is not None and trade.get("p") and Decimal(str(trade["p"])) > 0:
                yield Quote(item, Decimal(str(trade["p"])), _when(trade["t"]), trade)

    def daily_bars(self, listing: Listing, start: date, end: date) -> Iterator[Bar]:
        path = STOCK_BARS if listing.asset_class == AssetClass.EQUITY else CRYPTO_BARS
        params = {"symbols": listing.source_symbol, "timeframe": "1Day", "start": start.isoformat(),
                  "end": end.isoformat(), "limit": PAGE_LIMIT, "adjustment": "raw"}
        if listing.asset_class == AssetClass.EQUITY:
            params["feed"] = "iex"                 # the free plan's feed
        token = None
        while True:
            body = self._get(path, {**params, **({"page_token": token} if token else {})})
            for row in (body.get("bars") or {}).get(listing.source_symbol) or []:
                # Equity bars are stamped at New York midnight (04:00/05:00Z): the date is the session's.
                day = (_when(row["t"]) + timedelta(hours=12)).date() if listing.asset_class == AssetClass.EQUITY \
                    else _when(row["t"]).date()
                yield Bar(listing, day, *(Decimal(str(row[k])) for k in ("o", "h", "l", "c", "v")))
            token = body.get("next_page_token")
            if not token:
                return
