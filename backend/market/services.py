"""The price store's writes: which sources list each held asset, the pricing rule, the
latest prices of everything held, daily closes of everything ever held, and pruning.

Prices are per asset, never per user: a refresh asks each source for the union of what
every portfolio holds, `batch_size` listings a request, so its cost is
ceil(held symbols / batch) requests per source however many connections hold them.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from django.db import transaction
from django.db.models import Exists, Max, Min, OuterRef
from django.utils import timezone as djtz

from backend.brokers.dtos import AssetClass
from backend.brokers.marketdata.base import Listing as SourceListing
from backend.brokers.marketdata.base import MarketDataSource
from backend.brokers.symbols import coin_asset
from backend.portfolio.models import Asset

from . import selectors
from .hours import nyse_open
from .models import Listing, Price
from .rates import LOOKBACK_DAYS, day_start
from .signals import closes_changed
from .sources import available_sources, source_class, source_keys, source_open, source_order

log = logging.getLogger("brokersync.market")
# Conversion of quotes into base currencies may need one more hop (BTC in USDT -> USDT in USD).
CLOSURE_ROUNDS = 3


@dataclass
class Plan:
    """The pricing rule applied: per source, the listing that prices each asset; and the
    assets no source prices (reported unpriced, never valued at 0)."""

    by_source: dict[str, list[Listing]] = field(default_factory=lambda: defaultdict(list))
    unpriced: list[int] = field(default_factory=list)


@dataclass
class RefreshResult:
    source: str
    listings: int = 0
    requests: int = 0
    written: int = 0
    skipped: str = ""


# -- listings ------------------------------------------------------------------------------------
def _wanted(held: dict[int, list[str]]) -> dict[int, list[str]]:
    """Held assets plus the currencies needed to convert them: portfolios' base currencies
    and the quotes their listings use (USDT, EUR...), as fiat or coin assets."""
    wanted = dict(held)
    codes = selectors.base_currencies()
    for _ in range(CLOSURE_ROUNDS):
        listings = selectors.listings_for(wanted)
        codes |= {item.quote for rows in listings.values() for item in rows if item.rank == 0}
        added = {a.id for a in _currency_assets(codes) if a.id not in wanted}
        if not added:
            break
        wanted.update({a: [] for a in added})
    usd = Asset.objects.filter(symbol="USD", asset_class="fiat").values_list("id", flat=True).first()
    wanted.pop(usd, None)                      # USD is the unit, never priced
    return wanted


def _currency_assets(codes: set[str]) -> list[Asset]:
    out = []
    for code in sorted(codes - {"USD"}):
        ref = coin_asset(code)
        asset, _ = Asset.objects.get_or_create(symbol=ref.symbol, asset_class=ref.asset_class.value,
                                               defaults={"currency": "USD"})
        out.append(asset)
    return out


def listings_discover(*, asset_ids: set[int] | None = None) -> dict[str, int]:
    """Ask every source which of the wanted assets it lists; store them as Listing rows
    (each source's preferred quote rank 0). A source that no longer lists an asset has its
    listing deactivated. The quotes found (USDT, EUR...) are asked about in turn, so that
    conversion has prices too. Returns listings found per source."""
    ids = set(asset_ids) if asset_ids is not None else set(_wanted(selectors.assets_held_ever()))
    counts: dict[str, int] = defaultdict(int)
    asked: set[int] = set()
    sources = {key: source for key in source_keys() if (source := source_open(key)) is not None}
    for _ in range(CLOSURE_ROUNDS):
        todo = ids - asked
        if not todo:
            break
        for key, source in sources.items():
            counts[key] += _discover_at(key, source, selectors.assets_by_id(todo))
        asked |= todo
        ids |= set(_wanted({a: [] for a in ids}))
    return dict(counts)


def _discover_at(key: str, source: MarketDataSource, assets: dict[int, Asset]) -> int:
    wanted = {(a.symbol, AssetClass(a.asset_class)): a for a in assets.values()}
    found = source.listings(list(wanted))
    with transaction.atomic():
        for ref, rows in found.items():
            for rank, item in enumerate(rows):
                Listing.objects.update_or_create(asset=wanted[ref], source=key, quote=item.quote,
                                                 defaults={"source_symbol": item.source_symbol, "rank": rank,
                                                           "active": True})
        gone = [wanted[ref].id for ref in wanted if ref not in found]
        Listing.objects.filter(source=key, asset_id__in=gone).update(active=False)
    return sum(len(rows) for rows in found.values())


def listings_discover_new(*, ever_held: bool = False) -> dict[str, int]:
    """Discovery for held assets no source has been asked about yet (new holdings): cheap,
    since each source reads its market list once an hour. With `ever_held` (before the daily
    closes), assets sold before they were ever priced too: history needs their closes for the
    days they were held, and finding them reads every asset's transactions, once a day."""
    wanted = _wanted(selectors.assets_held_ever() if ever_held else selectors.assets_held_now())
    asked = set(Listing.objects.filter(asset_id__in=list(wanted)).values_list("asset_id", flat=True))
    new = set(wanted) - asked
    return listings_discover(asset_ids=new) if new else {}


# -- the pricing rule --------------------------------------------------------------------------------
def pricing_plan(*, held: dict[int, list[str]], available: set[str] | None = None) -> Plan:
    """Each asset is priced by the broker it is held at first, then by any other source
    that lists it (in FALLBACK_ORDER); with none, it is unpriced."""
    listings = selectors.listings_for(held)
    plan = Plan()
    for asset_id, brokers in held.items():
        rows = listings.get(asset_id, [])
        for key in source_order(brokers):
            if available is not None and key not in available:
                continue
            mine = [item for item in rows if item.source == key]
            if mine:
                plan.by_source[key].append(mine[0])
                break
        else:
            plan.unpriced.append(asset_id)
    return plan


def _dto(listing: Listing, asset: Asset) -> SourceListing:
    return SourceListing(asset.symbol, AssetClass(asset.asset_class), listing.quote, listing.source_symbol)


# -- latest prices -------------------------------------------------------------------------------------
def prices_refresh_latest(*, source_key: str, source: MarketDataSource | None = None,
                          now: datetime | None = None) -> RefreshResult:
    """The latest price of every held asset this source prices, ceil(n / batch) requests.
    While the NYSE is closed an equity's price does not move: it is asked only when the store
    has no live price of it (a holding new since the close, a store restarted), and its last
    trade is the close, so a weekend never leaves a holding unpriced."""
    result = RefreshResult(source_key)
    source = source or source_open(source_key)
    if source is None:
        result.skipped = "no key"
        return result
    plan = pricing_plan(held=_wanted(selectors.assets_held_now()), available=available_sources())
    rows = plan.by_source.get(source_key, [])
    now = now or djtz.now()
    if not nyse_open(now):
        priced = _live_priced([r.asset_id for r in rows if r.asset.asset_class == Asset.AssetClass.EQUITY], now)
        rows = [r for r in rows if r.asset.asset_class != Asset.AssetClass.EQUITY or r.asset_id not in priced]
    by_ref = {(r.asset.symbol, r.asset.asset_class, r.quote): r for r in rows}
    before = source.session.requests_made
    quotes = list(source.latest([_dto(r, r.asset) for r in rows]))
    prices = [Price(asset_id=by_ref[(q.listing.symbol, q.listing.asset_class.value, q.listing.quote)].asset_id,
                    quote=q.listing.quote, interval=Price.Interval.LATEST, at=q.at, price=q.price, source=source_key)
              for q in quotes]
    Price.objects.bulk_create(prices, ignore_conflicts=True, batch_size=5000)
    result.listings, result.written = len(rows), len(prices)
    result.requests = source.session.requests_made - before
    log.info("market.latest_refreshed source=%s listings=%s written=%s requests=%s", source_key, len(rows),
             len(prices), result.requests)
    return result


def _live_priced(asset_ids: list[int], now: datetime) -> set[int]:
    """The assets with a latest price a live value still uses (LIVE_MAX_AGE)."""
    from .valuation import LIVE_MAX_AGE

    return set(Price.objects.filter(asset_id__in=asset_ids, interval=Price.Interval.LATEST,
                                    at__gte=now - LIVE_MAX_AGE).values_list("asset_id", flat=True).distinct())


def prices_prune(*, retention_days: int, now: datetime | None = None) -> int:
    """Delete `latest` rows older than the retention, keeping each asset's newest one (a
    stale price must stay visible as stale, not vanish)."""
    cutoff = (now or djtz.now()) - timedelta(days=retention_days)
    newer = Price.objects.filter(asset_id=OuterRef("asset_id"), quote=OuterRef("quote"),
                                 interval=Price.Interval.LATEST, at__gte=cutoff)
    deleted, _ = (Price.objects.filter(interval=Price.Interval.LATEST, at__lt=cutoff)
                  .filter(Exists(newer)).delete())
    return deleted


# -- daily closes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    listing: Listing
    start: date
    end: date


def close_spans(*, today: date | None = None, available: set[str] | None = None) -> dict[str, list[Span]]:
    """Per source, the day ranges of closes still missing for every asset held at any time:
    newer than the newest stored close, and older than the oldest one back to the asset's
    first transaction. Days older than a source reaches (Kraken's 720) go to the next
    source in the rule's order that lists the asset."""
    today = today or djtz.now().date()
    end = today - timedelta(days=1)
    ever = selectors.assets_held_since()
    held = _wanted(selectors.assets_held_ever(ever))
    first = min([d for d, _ in ever.values()] + [selectors.first_history_day() or end])
    listings = selectors.listings_for(held)
    stored = _stored_ranges(held)
    rates = _currency_ids(held, listings)
    spans: dict[str, list[Span]] = defaultdict(list)
    for asset_id, brokers in held.items():
        # A currency converts every other asset: its closes go back to the oldest history day,
        # not only to its own first transaction.
        start = first if asset_id in rates else ever.get(asset_id, (first, []))[0]
        order = [k for k in source_order(brokers) if available is None or k in available]
        chain = [(k, [i for i in listings.get(asset_id, []) if i.source == k][:1]) for k in order]
        _plan_spans(spans, [(k, rows[0]) for k, rows in chain if rows], start, end, stored, today)
    return spans


def _currency_ids(held, listings: dict[int, list[Listing]]) -> set[int]:
    """The held assets that are currencies: fiat (a base currency, a cash balance) and any
    coin some listing quotes prices in (USDT, USDC)."""
    quotes = {item.quote for rows in listings.values() for item in rows}
    return {a.id for a in selectors.assets_by_id(held).values()
            if a.asset_class == Asset.AssetClass.FIAT or a.symbol in quotes}


def _plan_spans(spans, sources, start: date, end: date, stored, today: date) -> None:
    """Missing ranges for one asset: the first source covers what it can reach, older days
    fall to the next one."""
    for key, listing in sources:
        depth = source_class(key).max_history_days
        reach = today - timedelta(days=depth) if depth is not None else start
        oldest, newest = stored.get((listing.asset_id, listing.quote), (None, None))
        lo = max(start, reach)
        if newest is None:
            if lo <= end:
                spans[key].append(Span(listing, lo, end))
        else:
            if newest < end and _trading_days(listing, newest + timedelta(days=1), end):
                spans[key].append(Span(listing, newest + timedelta(days=1), end))
            if oldest > lo + timedelta(days=LOOKBACK_DAYS):
                spans[key].append(Span(listing, lo, oldest - timedelta(days=1)))
        if reach <= start:
            return
        end = reach - timedelta(days=1)          # what this source cannot reach: the next one's


def _trading_days(listing: Listing, start: date, end: date) -> bool:
    """Whether the range can hold a bar: an equity has none on weekends (asking for Saturday
    and Sunday every weekend would cost a request per equity for nothing)."""
    if listing.asset.asset_class != Asset.AssetClass.EQUITY:
        return True
    return any((start + timedelta(days=i)).weekday() < 5 for i in range((end - start).days + 1))


def _stored_ranges(asset_ids) -> dict[tuple[int, str], tuple[date, date]]:
    rows = (Price.objects.filter(asset_id__in=list(asset_ids), interval=Price.Interval.DAY)
            .values("asset_id", "quote").annotate(first=Min("at"), last=Max("at")))
    return {(r["asset_id"], r["quote"]): (r["first"].date(), r["last"].date()) for r in rows}


def closes_refresh(*, source_key: str, source: MarketDataSource | None = None,
                   today: date | None = None) -> RefreshResult:
    """Fetch and store the missing daily closes this source owes; idempotent (a bar fetched
    again is the same row, a corrected bar updates it). Sends closes_changed when closes
    older than the newest stored one are added or corrected."""
    result = RefreshResult(source_key)
    source = source or source_open(source_key)
    if source is None:
        result.skipped = "no key"
        return result
    before = source.session.requests_made
    for span in close_spans(today=today, available=available_sources()).get(source_key, []):
        bars = list(source.daily_bars(_dto(span.listing, span.listing.asset), span.start, span.end))
        result.written += closes_store(listing=span.listing, bars=bars, source_key=source_key)
        result.listings += 1
    result.requests = source.session.requests_made - before
    return result


def closes_store(*, listing: Listing, bars, source_key: str) -> int:
    """Upsert one listing's bars as 1d prices in one transaction; returns rows added or
    corrected. Every change is announced from its first day: a history may already hold
    those days, valued without the close (built before the first backfill, or extended
    before the day's close arrived), and rebuilds from there."""
    if not bars:
        return 0
    key = {"asset_id": listing.asset_id, "quote": listing.quote, "interval": Price.Interval.DAY}
    with transaction.atomic():
        existing = dict(Price.objects.filter(**key, at__gte=day_start(bars[0].day), at__lte=day_start(bars[-1].day))
                        .values_list("at", "price"))
        changed = [b for b in bars if existing.get(day_start(b.day)) != b.close]
        Price.objects.bulk_create(
            [Price(**key, at=day_start(b.day), price=b.close, source=source_key) for b in changed],
            update_conflicts=True, unique_fields=["asset", "quote", "interval", "at"],
            update_fields=["price", "source"], batch_size=5000)
        if changed:
            since, asset_id = min(b.day for b in changed), listing.asset_id
            transaction.on_commit(lambda: closes_changed.send(sender=Price, asset_ids=[asset_id], since=since))
    return len(changed)
