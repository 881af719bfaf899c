"""The pricing rule, read from the price store: which price values a holding, and how it
reaches the base currency.

A holding is priced by the source of the broker it is held at first (a coin at Kraken by
Kraken's price), then by any other source. Among the prices left, a quote equal to the base
currency wins, then the pivots (USD, USDT, USDC, EUR), then the rest; for latest prices the
newest wins a tie. The price is converted with a rate of the same time (the latest rate for a
live value, the day's close for history) through the pairs sources list (`PriceBook.rate`).
A stablecoin is a coin like any other: 1 USDT is worth what USDT's own price says.
No price, or no rate into the base currency, means unpriced: never 0, never a price older
than `LOOKBACK_DAYS`.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from django.db import connection as db
from django.db.models.functions import TruncDate

from backend.portfolio.models import Asset

from .models import Price
from .rates import LOOKBACK_DAYS, PIVOTS, PriceBook, PricePoint, day_start

# A latest price older than this is not "live": the same week that bounds a daily close
# (backend/market/rates.py) covers a weekend and a US holiday after the last trade.
LIVE_MAX_AGE = timedelta(days=LOOKBACK_DAYS)


def quote_rank(quote: str, base: str) -> int:
    """0 for the base currency itself, then the pivots in order, then everything else."""
    if quote == base:
        return 0
    return PIVOTS.index(quote) + 1 if quote in PIVOTS else len(PIVOTS) + 1


def currency_asset_ids(codes: Iterable[str]) -> dict[str, int]:
    """Currency code -> the asset that carries its prices: the fiat asset where there is one,
    else the coin (USDT)."""
    found: dict[str, int] = {}
    rows = Asset.objects.filter(symbol__in=set(codes), asset_class__in=("fiat", "crypto"))
    for asset_id, symbol, asset_class in rows.values_list("id", "symbol", "asset_class"):
        if symbol not in found or asset_class == "fiat":
            found[symbol] = asset_id
    return found


def book_load(*, asset_ids: Iterable[int], currencies: Iterable[str], start: date | None = None,
              end: date | None = None, latest: bool = False) -> PriceBook:
    """A PriceBook that can also convert into and out of `currencies` (base currencies, cash
    currencies). A base currency is rarely a quote itself (GBP is priced in USD, not USD in
    GBP), so PriceBook.load alone would not know which asset carries its rate."""
    extra = currency_asset_ids(currencies)
    book = PriceBook.load(asset_ids=set(asset_ids) | set(extra.values()), start=start, end=end, latest=latest)
    book.currency_assets = {**extra, **book.currency_assets}
    return book


def latest_by_source(asset_ids: Iterable[int], *, now: datetime) -> dict[int, list[PricePoint]]:
    """Per asset, the newest latest price of each (quote, source) no older than LIVE_MAX_AGE."""
    rows = Price.objects.filter(asset_id__in=set(asset_ids), interval=Price.Interval.LATEST,
                                at__gte=now - LIVE_MAX_AGE).order_by("asset_id", "quote", "source", "-at")
    if db.vendor == "postgresql":
        rows = rows.distinct("asset_id", "quote", "source")      # the database drops the older ones
    points: dict[int, list[PricePoint]] = {}
    seen: set[tuple[int, str, str]] = set()
    for asset_id, quote, source, at, price in rows.values_list("asset_id", "quote", "source", "at", "price"):
        if (asset_id, quote, source) not in seen:
            seen.add((asset_id, quote, source))
            points.setdefault(asset_id, []).append(PricePoint(price, quote, at, source))
    return points


class Pricer:
    """The pricing rule over one PriceBook, for one base currency. Rates are cached per
    (currency, day): a history asks for the same few thousands of times."""

    def __init__(self, book: PriceBook, base: str):
        self.book = book
        self.base = base
        self._rates: dict[tuple[str, date | None], Decimal | None] = {}

    def rate(self, code: str, day: date | None) -> Decimal | None:
        """How many base-currency units one `code` is worth on `day` (None: now)."""
        key = (code, day)
        if key not in self._rates:
            self._rates[key] = self.book.rate(code, self.base, day)
        return self._rates[key]

    def close_series(self, table: "CloseTable", asset_id: int, broker: str,
                     days: Sequence[date]) -> list[Decimal | None]:
        """Base-currency value of one unit at each day's close (None: unpriced that day)."""
        quotes = sorted(table.quotes(asset_id), key=lambda q: (quote_rank(q, self.base), q))
        series = [(q, table.daily(asset_id, q, days)) for q in quotes]
        out: list[Decimal | None] = []
        for i, day in enumerate(days):
            best = None
            for quote, closes in series:          # in quote order: the broker's own source wins first
                close = closes[i]
                rate = self.rate(quote, day) if close is not None else None
                if rate is None:
                    continue
                if close[1] == broker:
                    best = close[0] * rate
                    break
                if best is None:
                    best = close[0] * rate
            out.append(best)
        return out

    def latest(self, points: Iterable[PricePoint], broker: str) -> tuple[Decimal, PricePoint] | None:
        """The same rule over latest prices (from `latest_by_source`), converted at the latest rates."""
        best = None
        for point in points:
            rate = self.rate(point.quote, None)
            if rate is None:
                continue
            rank = (point.source != broker, quote_rank(point.quote, self.base), point.quote,
                    -point.at.timestamp(), point.source)
            if best is None or rank < best[0]:
                best = (rank, point.price * rate, point)
        return None if best is None else (best[1], best[2])


class CloseTable:
    """The daily closes of many assets over a range, read in one query and answered a whole
    range at a time: a history walks every day of every asset, and a forward fill over the
    sorted closes does that in one pass where a search per day would not. A day without a
    bar (a weekend) takes the last close within LOOKBACK_DAYS, as PriceBook.close does."""

    def __init__(self, closes: dict[tuple[int, str], list[tuple[date, Decimal, str]]]):
        self._closes = {key: sorted(rows) for key, rows in closes.items()}
        self._quotes: dict[int, set[str]] = defaultdict(set)
        for asset_id, quote in self._closes:
            self._quotes[asset_id].add(quote)

    @classmethod
    def load(cls, *, asset_ids: Iterable[int], start: date, end: date) -> "CloseTable":
        # The day comes from the database as a date: loading 300,000 timestamps with time zones
        # costs seconds in Python, dates do not.
        rows = (Price.objects.filter(asset_id__in=set(asset_ids), interval=Price.Interval.DAY,
                                     at__gte=day_start(start - timedelta(days=LOOKBACK_DAYS)), at__lte=day_start(end))
                .annotate(day=TruncDate("at", tzinfo=timezone.utc)).order_by()
                .values_list("asset_id", "quote", "day", "price", "source"))
        closes: dict[tuple[int, str], list[tuple[date, Decimal, str]]] = defaultdict(list)
        for asset_id, quote, day, price, source in rows.iterator(chunk_size=50_000):
            closes[(asset_id, quote)].append((day, price, source))
        return cls(closes)

    def quotes(self, asset_id: int) -> set[str]:
        return self._quotes.get(asset_id, set())

    def daily(self, asset_id: int, quote: str, days: Sequence[date]) -> list[tuple[Decimal, str] | None]:
        """(price, source) of the close that stands for each of `days` (ascending), or None."""
        rows = self._closes.get((asset_id, quote), [])
        out, i, last = [], 0, None
        lookback = timedelta(days=LOOKBACK_DAYS)
        for day in days:
            while i < len(rows) and rows[i][0] <= day:
                last = rows[i]
                i += 1
            out.append((last[1], last[2]) if last is not None and day - last[0] <= lookback else None)
        return out
