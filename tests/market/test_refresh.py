"""The refresh against the sandbox over HTTP: listings, the pricing rule, request counts,
the latest price moving with the sandbox clock, unpriced assets, daily closes and the lock."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from backend.market import services
from backend.market.locks import source_lock
from backend.market.models import Listing, Price
from backend.market.signals import closes_changed
from backend.market.sources import source_open
from tests.factories import make_connection, sandbox_account
from tests.market.helpers import asset, hold

pytestmark = pytest.mark.django_db(transaction=True)
OPEN = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)       # a Tuesday, 10:00 in New York


@pytest.fixture
def holdings(sandbox, redis_client):
    """An Alpaca account holding AAPL, MSFT, BTC; a Kraken one holding BTC, ETH, DOT, EUR
    cash and a coin no source lists; a Binance one holding SOL."""
    connections = {}
    for broker, env in (("alpaca", "paper"), ("kraken", "live"), ("binance", "live")):
        account = sandbox_account(sandbox, broker=broker, environment=env, seed=3, positions=1, activities=5)
        connections[broker] = make_connection(account, broker=broker)
    for symbol, cls in (("AAPL", "equity"), ("MSFT", "equity"), ("BTC", "crypto")):
        hold(connections["alpaca"], asset(symbol, cls))
    for symbol, cls in (("BTC", "crypto"), ("ETH", "crypto"), ("DOT", "crypto"), ("EUR", "fiat"), ("NOPEX", "crypto")):
        hold(connections["kraken"], asset(symbol, cls))
    hold(connections["binance"], asset("SOL"))
    services.listings_discover()
    return connections


def priced_by(source: str) -> dict[str, str]:
    plan = services.pricing_plan(held=services._wanted(services.selectors.assets_held_now()))
    return {item.asset.symbol: item.source_symbol for item in plan.by_source.get(source, [])}


def test_each_asset_is_priced_by_the_broker_it_is_held_at_first(holdings):
    assert priced_by("alpaca") == {"AAPL": "AAPL", "MSFT": "MSFT", "BTC": "BTC/USD"}
    # Kraken holds BTC too, but the Alpaca connection (older) holds it first.
    assert priced_by("kraken") == {"ETH": "XETHZUSD", "DOT": "DOTUSD", "EUR": "ZEURZUSD"}
    binance = priced_by("binance")
    assert binance["SOL"] == "SOLUSDT"
    # USDT (SOL's quote) is not listed against a dollar at Binance: the next source prices it.
    assert "USDT" not in binance and "USDT" in priced_by("coinbase")


def test_an_asset_no_source_lists_is_unpriced_never_zero(holdings):
    plan = services.pricing_plan(held=services._wanted(services.selectors.assets_held_now()))
    nopex = asset("NOPEX")
    assert plan.unpriced == [nopex.id]
    assert not Listing.objects.filter(asset=nopex, active=True).exists()
    for key in ("alpaca", "kraken", "binance", "coinbase"):
        services.prices_refresh_latest(source_key=key, now=OPEN)
    assert not Price.objects.filter(asset=nopex).exists()


@pytest.mark.parametrize("key,batch", [("kraken", 2), ("binance", 1), ("coinbase", 1), ("alpaca", 2)])
def test_a_refresh_costs_ceil_symbols_over_batch_requests(holdings, sandbox, key, batch):
    source = source_open(key)
    source.batch_size = batch
    listings = {"alpaca": 3, "kraken": 3, "binance": 1, "coinbase": 1}[key]
    # Alpaca asks stocks and crypto at two paths: ceil(2 / 2) + ceil(1 / 2) requests.
    expected = math.ceil(2 / batch) + math.ceil(1 / batch) if key == "alpaca" else math.ceil(listings / batch)
    result = services.prices_refresh_latest(source_key=key, source=source, now=OPEN)
    assert (result.listings, result.requests, result.written) == (listings, expected, listings)


def test_the_latest_price_moves_when_the_sandbox_clock_advances(holdings, sandbox):
    eth = asset("ETH")
    services.prices_refresh_latest(source_key="kraken", now=OPEN)
    first = Price.objects.get(asset=eth, interval="latest")
    requests.post(sandbox.urls["control"] + "/control/clock", json={"advance_seconds": 3 * 3600}, timeout=10)
    try:
        services.prices_refresh_latest(source_key="kraken", now=OPEN)
    finally:
        requests.post(sandbox.urls["control"] + "/control/clock", json={"advance_seconds": -3 * 3600}, timeout=10)
    second = Price.objects.filter(asset=eth, interval="latest").exclude(pk=first.pk).get()
    assert second.price != first.price and second.quote == first.quote == "USD" and second.source == "kraken"


def test_equities_are_not_asked_while_the_nyse_is_closed(holdings):
    services.prices_refresh_latest(source_key="alpaca", now=OPEN)
    saturday = OPEN + timedelta(days=4)
    stored = Price.objects.filter(asset__symbol="AAPL").count()
    result = services.prices_refresh_latest(source_key="alpaca", now=saturday)
    assert result.listings == 1 and Price.objects.filter(asset__symbol="AAPL").count() == stored   # BTC only


def test_an_equity_without_a_live_price_is_asked_once_while_the_nyse_is_closed(holdings):
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)
    first = services.prices_refresh_latest(source_key="alpaca", now=saturday)
    assert first.listings == 3 and Price.objects.filter(asset__symbol="AAPL", interval="latest").exists()
    again = services.prices_refresh_latest(source_key="alpaca", now=saturday + timedelta(minutes=1))
    assert again.listings == 1                                   # AAPL and MSFT have their price now: BTC only
def test_while_the_nyse_is_closed_an_equity_is_asked_only_until_it_has_a_price(holdings):
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)
    # Held since the close with no price yet: asked once (its last trade), never left unpriced.
    first = services.prices_refresh_latest(source_key="alpaca", now=saturday)
    assert first.listings == 3 and Price.objects.filter(asset__symbol="AAPL", interval="latest").exists()
    # Priced now: the rest of the weekend asks for the crypto only (a stock's price does not move).
    again = services.prices_refresh_latest(source_key="alpaca", now=saturday + timedelta(hours=1))
    assert again.listings == 1 and Price.objects.filter(asset__symbol="AAPL", interval="latest").count() == 1


def test_one_refresh_per_source_at_a_time(holdings):
    from workers.market import refresh_latest

    with source_lock("latest", "kraken") as held:
        assert held
        assert refresh_latest("kraken") == {"source": "kraken", "skipped": "running"}
        with source_lock("latest", "kraken") as again:
            assert not again
    assert refresh_latest("kraken")["written"] == 3


def test_daily_closes_fill_kraken_s_720_day_limit_from_the_next_source(holdings, sandbox):
    today = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()
    start = today - timedelta(days=900)
    eth = asset("ETH")
    services.selectors.BrokerTransaction.objects.create(
        connection=holdings["kraken"], portfolio=holdings["kraken"].portfolio, asset=eth, broker_id="old-eth",
        type="trade", occurred_at=datetime.combine(start, datetime.min.time(), timezone.utc))
    spans = {(s.listing.source, s.start, s.end) for s in services.close_spans(today=today).get("kraken", [])
             if s.listing.asset_id == eth.id}
    reach = today - timedelta(days=719)
    assert spans == {("kraken", reach, today - timedelta(days=1))}
    gap = [s for s in services.close_spans(today=today)["coinbase"] if s.listing.asset_id == eth.id]
    assert [(g.start, g.end) for g in gap] == [(start, reach - timedelta(days=1))]

    def stored():
        return Price.objects.filter(asset=eth, interval="1d", quote="USD")

    seen = []
    receiver = lambda sender, asset_ids, since, **kw: seen.append((asset_ids, since))  # noqa: E731
    closes_changed.connect(receiver)
    try:
        services.closes_refresh(source_key="kraken", today=today)
        assert stored().count() == 719 and set(stored().values_list("source", flat=True)) == {"kraken"}
        # ETH's first closes: a history built before them valued those days without them.
        assert ([eth.id], reach) in seen
        seen.clear()
        result = services.closes_refresh(source_key="coinbase", today=today)
    finally:
        closes_changed.disconnect(receiver)
    assert stored().count() == 900 and stored().filter(source="coinbase").count() == 181
    # The backfill added closes older than the newest one stored: value history must rebuild.
    assert ([eth.id], start) in seen
    assert services.closes_refresh(source_key="kraken", today=today).written == 0      # idempotent



def test_a_quote_currency_has_closes_from_the_first_day_an_asset_priced_in_it_was_held(holdings, sandbox):
    # SOL is priced by Binance in USDT since the Binance account bought it 400 days ago; the
    # account got USDT itself only 100 days ago. SOL's closes convert to dollars through
    # USDT's closes, so USDT's are needed from 400 days ago, not 100.
    today = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()
    sol_since, usdt_since = today - timedelta(days=400), today - timedelta(days=100)
    binance = holdings["binance"]
    services.selectors.BrokerTransaction.objects.create(
        connection=binance, portfolio=binance.portfolio, asset=asset("SOL"), broker_id="sol-bought", type="trade",
        occurred_at=datetime.combine(sol_since, datetime.min.time(), timezone.utc))
    hold(binance, asset("USDT"), since=datetime.combine(usdt_since, datetime.min.time(), timezone.utc))
    services.listings_discover()
    spans = services.close_spans(today=today)
    usdt = asset("USDT")
    starts = [s.start for key in spans for s in spans[key] if s.listing.asset_id == usdt.id]
    sol = [s.start for s in spans["binance"] if s.listing.asset_id == asset("SOL").id]
    assert sol == [sol_since] and starts and min(starts) == sol_since


def test_an_asset_sold_before_the_first_sync_is_discovered_for_its_daily_closes(holdings, sandbox):
    # TSLA was bought and sold 30 days ago: no open position, but the history held it then.
    today = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()
    alpaca, tsla = holdings["alpaca"], asset("TSLA", "equity")
    services.selectors.BrokerTransaction.objects.create(
        connection=alpaca, portfolio=alpaca.portfolio, asset=tsla, broker_id="tsla-bought", type="trade",
        occurred_at=datetime.combine(today - timedelta(days=30), datetime.min.time(), timezone.utc))
    services.listings_discover_new()                                # the minute's dispatch: held now only
    assert not Listing.objects.filter(asset=tsla).exists()
    services.listings_discover_new(ever_held=True)                  # the daily closes' dispatch
    assert Listing.objects.filter(asset=tsla, source="alpaca", active=True).exists()
    assert [s.start for s in services.close_spans(today=today)["alpaca"] if s.listing.asset_id == tsla.id] == \
        [today - timedelta(days=30)]


def test_without_any_alpaca_key_its_crypto_falls_to_the_next_source_and_equities_are_unpriced(holdings):
    holdings["alpaca"].status = "revoked"
    holdings["alpaca"].save()
    assert services.prices_refresh_latest(source_key="alpaca", now=OPEN).skipped == "no key"
    plan = services.pricing_plan(held=services._wanted(services.selectors.assets_held_now()),
                                 available=services.available_sources())
    # BTC is held at Kraken too: the next broker it is held at prices it.
    assert "BTC" in {i.asset.symbol for i in plan.by_source["kraken"]}
    assert {asset("AAPL", "equity").id, asset("MSFT", "equity").id} <= set(plan.unpriced)


def _past_trade(connection, a, day: date, quantity: str, key: str):
    return services.selectors.BrokerTransaction.objects.create(
        connection=connection, portfolio=connection.portfolio, asset=a, broker_id=key, type="trade",
        occurred_at=datetime.combine(day, datetime.min.time(), timezone.utc).replace(hour=12), quantity=quantity)


def test_an_asset_sold_before_it_was_priced_gets_listings_and_closes_for_the_days_it_was_held(holdings, sandbox):
    today = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()
    link = asset("LINK")
    _past_trade(holdings["kraken"], link, today - timedelta(days=20), "5", "link-buy")
    _past_trade(holdings["kraken"], link, today - timedelta(days=10), "-5", "link-sell")   # none held now

    services.listings_discover_new()                      # the minute's discovery: held now only
    assert not Listing.objects.filter(asset=link).exists()
    services.listings_discover_new(ever_held=True)        # the daily one, before the closes
    assert Listing.objects.filter(asset=link, source="kraken", active=True).exists()
    spans = [s for s in services.close_spans(today=today)["kraken"] if s.listing.asset_id == link.id]
    assert [(s.start, s.end) for s in spans] == [(today - timedelta(days=20), today - timedelta(days=1))]


def test_new_closes_announce_their_first_day_even_the_first_ones_and_the_newest(holdings, sandbox):
    today = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()
    eth, start = asset("ETH"), today - timedelta(days=30)
    _past_trade(holdings["kraken"], eth, start, "1", "eth-buy")
    seen = []
    receiver = lambda sender, asset_ids, since, **kw: seen.append((asset_ids, since))  # noqa: E731
    closes_changed.connect(receiver)
    try:
        # The first closes of an asset: histories built before them valued its days as unpriced.
        services.closes_refresh(source_key="kraken", today=today)
        assert ([eth.id], start) in seen
        # The next day's close, after the history was extended through that day without it.
        Price.objects.filter(asset=eth, interval="1d", at__date=today - timedelta(days=1)).delete()
        seen.clear()
        services.closes_refresh(source_key="kraken", today=today)
        assert seen == [([eth.id], today - timedelta(days=1))]
        seen.clear()
        services.closes_refresh(source_key="kraken", today=today)          # nothing new: nothing to announce
        assert seen == []
    finally:
        closes_changed.disconnect(receiver)


def test_a_currency_s_closes_reach_back_to_the_first_transaction_of_any_kind(holdings, sandbox):
    today = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()
    kraken = holdings["kraken"]
    kraken.portfolio.base_currency = "GBP"
    kraken.portfolio.save()
    services.selectors.BrokerTransaction.objects.create(        # cash only: no asset
        connection=kraken, portfolio=kraken.portfolio, broker_id="usd-in", type="deposit", amount="1000",
        currency="USD", occurred_at=datetime.combine(today - timedelta(days=40), datetime.min.time(), timezone.utc))
    _past_trade(kraken, asset("ETH"), today - timedelta(days=10), "1", "eth-buy")
    services.listings_discover()
    gbp = asset("GBP", "fiat")
    spans = [s for key, rows in services.close_spans(today=today).items() for s in rows if s.listing.asset_id == gbp.id]
    # The history starts with the deposit 40 days ago, and every day of it is converted into GBP.
    assert spans and min(s.start for s in spans) == today - timedelta(days=40)
