"""Prices and currency conversion, answered in memory from what one load read.

A history rebuild or a ledger recompute converts thousands of amounts; asking the database
for each would be thousands of queries. `PriceBook.load` reads the closes (and, if asked, the
latest prices) of the assets wanted plus every currency they are quoted in, once; then
`close`, `rate` and `value` answer from memory.

Conversion follows the pairs some source lists (prices keep the quote the source gave):
directly (EUR quoted in USD), inverted (USD quoted in EUR), or through one pivot (BTC in
USDT -> USDT in USD -> USD in EUR). A day's close is the last close on or before that day
within `LOOKBACK_DAYS`; beyond that there is no price, and callers report the asset as
unpriced rather than value it at 0 or at a price from long ago.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.db.models import Q

from backend.portfolio.models import Asset

from .models import Price

# Equity markets close for weekends and holidays (at most 4 days in a row in the US); a week
# covers them. A close older than that is not the close "of" the day asked for.
LOOKBACK_DAYS = 7
# Currencies that most pairs are quoted in: conversion may pass through one of them.
PIVOTS = ("USD", "USDT", "USDC", "EUR")
ONE = Decimal(1)


@dataclass(frozen=True)
class PricePoint:
    price: Decimal
    quote: str
    at: datetime
    source: str


def day_start(day: date) -> datetime:
    """The `at` of a daily close: 00:00 UTC of its day."""
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


class PriceBook:
    def __init__(self, *, currency_assets: dict[str, int], closes: dict[tuple[int, str], list[tuple[date, PricePoint]]],
                 latest: dict[tuple[int, str], PricePoint] | None = None, lookback_days: int = LOOKBACK_DAYS):
        self.currency_assets = currency_assets            # "EUR" -> asset id (fiat first, else a coin)
        self._closes = {key: sorted(rows, key=lambda r: r[0]) for key, rows in closes.items()}
        self._days = {key: [d for d, _ in rows] for key, rows in self._closes.items()}
        self._latest = latest or {}
        self.lookback = timedelta(days=lookback_days)
        self._quotes: dict[int, set[str]] = defaultdict(set)
        for asset_id, quote in [*self._closes, *self._latest]:
            self._quotes[asset_id].add(quote)

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, *, asset_ids: Iterable[int], start: date | None = None, end: date | None = None,
             latest: bool = False, currencies: Iterable[str] | None = None) -> "PriceBook":
        """Closes from `start` (less the lookback) to `end` of the assets and of every currency
        they are quoted in; with `latest`, their newest latest prices too.

        `currencies`: the only ones the caller converts into or from (a portfolio's base, its
        cash currencies). Then an asset's closes are read only in those and the pivots (what a
        conversion can route through), unless it is quoted in none of them; a coin quoted in
        twenty currencies costs one series, not twenty."""
        wanted = set(asset_ids)
        pairs = set(Price.objects.filter(asset_id__in=wanted).values_list("asset_id", "quote").distinct())
        quotes = {quote for _, quote in pairs}
        keep, covered = set(), set()
        if currencies is not None:
            keep = set(currencies) | set(PIVOTS)
            covered = {asset for asset, quote in pairs if quote in keep}
            quotes = {quote for asset, quote in pairs if quote in keep or asset not in covered}
        currency_assets = _currency_assets(quotes | set(PIVOTS) | keep)
        # The pivots' own quotes too (USDT is quoted in USD): one more hop of assets.
        ids = wanted | set(currency_assets.values())
        closes: dict[tuple[int, str], list[tuple[date, PricePoint]]] = defaultdict(list)
        rows = Price.objects.filter(asset_id__in=ids, interval=Price.Interval.DAY)
        if currencies is not None:
            rows = rows.filter(Q(asset_id__in=covered, quote__in=keep) | Q(asset_id__in=wanted - covered)
                               | Q(asset_id__in=set(currency_assets.values()), quote__in=keep | quotes))
        if start is not None:
            rows = rows.filter(at__gte=day_start(start - timedelta(days=LOOKBACK_DAYS)))
        if end is not None:
            rows = rows.filter(at__lte=day_start(end))
        for asset_id, quote, at, price, source in rows.values_list("asset_id", "quote", "at", "price", "source") \
                .iterator(chunk_size=20_000):
            closes[(asset_id, quote)].append((at.date(), PricePoint(price, quote, at, source)))
        newest = _latest_points(ids) if latest else {}
        return cls(currency_assets=currency_assets, closes=closes, latest=newest)

    # -- asking ----------------------------------------------------------------------------
    def close(self, asset_id: int, quote: str, day: date) -> PricePoint | None:
        days = self._days.get((asset_id, quote))
        if not days:
            return None
        i = bisect.bisect_right(days, day) - 1
        if i < 0 or day - days[i] > self.lookback:
            return None
        return self._closes[(asset_id, quote)][i][1]

    def latest(self, asset_id: int, quote: str) -> PricePoint | None:
        return self._latest.get((asset_id, quote))

    def point(self, asset_id: int, quote: str, day: date | None) -> PricePoint | None:
        """The day's close, or the latest price when `day` is None."""
        return self.latest(asset_id, quote) if day is None else self.close(asset_id, quote, day)

    def quotes(self, asset_id: int) -> set[str]:
        return set(self._quotes.get(asset_id, ()))

    def rate(self, from_code: str, to_code: str, day: date | None = None) -> Decimal | None:
        """How many `to_code` one `from_code` is worth (the day's close, or now)."""
        if from_code == to_code:
            return ONE
        direct = self._pair(from_code, to_code, day)
        if direct is not None:
            return direct
        for pivot in PIVOTS:
            if pivot in (from_code, to_code):
                continue
            first = self._pair(from_code, pivot, day)
            if first is None:
                continue
            second = self._pair(pivot, to_code, day)
            if second is not None:
                return first * second
        return None

    def value(self, asset_id: int, quantity: Decimal, base: str, day: date | None = None,
              quotes: Iterable[str] | None = None) -> tuple[Decimal, PricePoint] | None:
        """`quantity` of the asset in `base`, and the price used; None when nothing prices it.
        A quote equal to the base is preferred, then the pivots, then the rest."""
        for quote in _preferred(quotes if quotes is not None else self.quotes(asset_id), base):
            point = self.point(asset_id, quote, day)
            if point is None:
                continue
            rate = self.rate(quote, base, day)
            if rate is not None:
                return quantity * point.price * rate, point
        return None

    def _pair(self, from_code: str, to_code: str, day: date | None) -> Decimal | None:
        from_id, to_id = self.currency_assets.get(from_code), self.currency_assets.get(to_code)
        if from_id is not None:
            point = self.point(from_id, to_code, day)
            if point is not None:
                return point.price
        if to_id is not None:
            point = self.point(to_id, from_code, day)
            if point is not None and point.price:
                return ONE / point.price
        return None


def _preferred(quotes: Iterable[str], base: str) -> list[str]:
    order = {base: -1, **{p: i for i, p in enumerate(PIVOTS)}}
    return sorted(set(quotes), key=lambda q: (order.get(q, len(PIVOTS)), q))


def _currency_assets(codes: set[str]) -> dict[str, int]:
    """Currency code -> asset id: the fiat asset where there is one, else the coin."""
    found: dict[str, int] = {}
    for asset_id, symbol, asset_class in Asset.objects.filter(symbol__in=codes, asset_class__in=("fiat", "crypto")) \
            .values_list("id", "symbol", "asset_class").order_by("symbol", "asset_class"):
        if symbol not in found or asset_class == "fiat":
            found[symbol] = asset_id
    return found


def _latest_points(asset_ids: set[int]) -> dict[tuple[int, str], PricePoint]:
    newest: dict[tuple[int, str], PricePoint] = {}
    rows = (Price.objects.filter(asset_id__in=asset_ids, interval=Price.Interval.LATEST)
            .order_by("asset_id", "quote", "-at").values_list("asset_id", "quote", "at", "price", "source"))
    for asset_id, quote, at, price, source in rows.iterator(chunk_size=20_000):
        newest.setdefault((asset_id, quote), PricePoint(price, quote, at, source))
    return newest
