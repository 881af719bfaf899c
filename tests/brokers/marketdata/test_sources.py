"""Each market-data source against the sandbox over HTTP: listings, latest prices in
batches, daily bars across the source's paging, and its errors as error kinds."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from backend.brokers.dtos import AssetClass, Credentials
from backend.brokers.errors import AuthError, RateLimited
from backend.brokers.marketdata.registry import build_source, source_keys
from tests.factories import sandbox_account

C, F, E = AssetClass.CRYPTO, AssetClass.FIAT, AssetClass.EQUITY


@pytest.fixture
def alpaca_key(sandbox) -> Credentials:
    account = sandbox_account(sandbox, broker="alpaca", environment="live", seed=5, positions=2, activities=5)
    return Credentials(**account["credentials"])


def source(key: str, redis_client, alpaca_key=None):
    return build_source(key, credentials=alpaca_key if key == "alpaca" else None)


def today(sandbox) -> date:
    return datetime.fromtimestamp(sandbox.clock.now(), timezone.utc).date()


def test_every_source_is_registered():
    assert source_keys() == ["alpaca", "binance", "coinbase", "kraken"]


@pytest.mark.parametrize("key,expected", [
    ("binance", {("BTC", C): ["USDT", "FDUSD"], ("EUR", F): ["USDT"], ("SOL", C): ["USDT", "BTC"]}),
    ("kraken", {("BTC", C): ["USD", "EUR"], ("EUR", F): ["USD"], ("GBP", F): ["USD"], ("USDT", C): ["USD"]}),
    ("coinbase", {("BTC", C): ["USD", "USDC", "EUR", "GBP"], ("USDT", C): ["USD", "EUR"], ("USDC", C): ["EUR", "GBP"]}),
])
def test_listings_prefer_dollar_quotes_and_leave_unlisted_assets_out(sandbox, redis_client, key, expected):
    wanted = list(expected) + [("NOPEX", C), ("AAPL", E)]
    found = source(key, redis_client).listings(wanted)
    got = {ref: [item.quote for item in rows] for ref, rows in found.items()}
    for ref, quotes in expected.items():
        assert got[ref][: len(quotes)] == quotes, (ref, got.get(ref))
    assert ("NOPEX", C) not in found and ("AAPL", E) not in found


def test_alpaca_lists_what_its_data_api_answers_for(sandbox, redis_client, alpaca_key):
    found = source("alpaca", redis_client, alpaca_key).listings([("AAPL", E), ("BTC", C), ("ZZZZZZZ", E), ("NOPEX", C)])
    assert {ref: [(i.quote, i.source_symbol) for i in rows] for ref, rows in found.items()} == {
        ("AAPL", E): [("USD", "AAPL")], ("BTC", C): [("USD", "BTC/USD")]}


@pytest.mark.parametrize("key,wanted", [("binance", [("BTC", C), ("ETH", C), ("SOL", C)]),
                                        ("kraken", [("BTC", C), ("ETH", C), ("DOT", C)]),
                                        ("coinbase", [("BTC", C), ("ETH", C), ("SOL", C)])])
def test_latest_prices_come_batch_size_listings_a_request(sandbox, redis_client, key, wanted):
    src = source(key, redis_client)
    listings = [rows[0] for rows in src.listings(wanted).values()]
    src.batch_size = 2
    before = src.session.requests_made
    quotes = list(src.latest(listings))
    assert src.session.requests_made - before == 2                 # ceil(3 / 2)
    assert sorted(q.listing.symbol for q in quotes) == sorted(s for s, _ in wanted)
    assert all(isinstance(q.price, Decimal) and q.price > 0 and q.at.tzinfo for q in quotes)


@pytest.mark.parametrize("key,days,requests", [("binance", 1200, 2), ("coinbase", 400, 2), ("kraken", 30, 1)])
def test_daily_bars_follow_each_sources_paging(sandbox, redis_client, key, days, requests):
    src = source(key, redis_client)
    (listing, *_), = src.listings([("ETH", C)]).values()
    end = today(sandbox) - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    before = src.session.requests_made
    bars = list(src.daily_bars(listing, start, end))
    assert src.session.requests_made - before == requests       # klines 1,000 / candles 350 / OHLC one call
    assert [b.day for b in bars] == [start + timedelta(days=i) for i in range(days)]
    assert all(b.low <= b.close <= b.high and b.low <= b.open <= b.high for b in bars)


def test_kraken_bars_stop_at_720_days_back(sandbox, redis_client):
    src = source("kraken", redis_client)
    (listing, *_), = src.listings([("ETH", C)]).values()
    end = today(sandbox) - timedelta(days=1)
    bars = list(src.daily_bars(listing, end - timedelta(days=1000), end))
    assert len(bars) == 719 and bars[0].day == today(sandbox) - timedelta(days=719)
    assert src.max_history_days == 719


def test_alpaca_daily_bars_page_with_next_page_token(sandbox, redis_client, alpaca_key, monkeypatch):
    from backend.brokers.marketdata import alpaca

    monkeypatch.setattr(alpaca, "PAGE_LIMIT", 50)
    src = source("alpaca", redis_client, alpaca_key)
    (listing,), = src.listings([("MSFT", E)]).values()
    before = src.session.requests_made
    bars = list(src.daily_bars(listing, date(2026, 1, 5), date(2026, 6, 26)))
    assert len(bars) == 125 and src.session.requests_made - before == 3      # 125 weekdays: 50 + 50 + 25
    assert bars[0].day == date(2026, 1, 5) and all(b.day.weekday() < 5 for b in bars)


def test_alpaca_data_errors_become_error_kinds(sandbox, redis_client, alpaca_key, monkeypatch):
    from backend.brokers.marketdata import alpaca

    monkeypatch.setattr(alpaca, "_KNOWN", {})                  # ask, rather than answer from the cache
    wrong = Credentials(api_key=alpaca_key.api_key, api_secret="not-the-secret")
    (aapl,), = build_source("alpaca", credentials=alpaca_key).listings([("AAPL", E)]).values()
    with pytest.raises(AuthError):
        list(build_source("alpaca", credentials=wrong).latest([aapl]))
    sim = sandbox.sims["alpaca"]
    sim.data_rate_limit, sim.data_windows = 1, {}
    try:
        src = source("alpaca", redis_client, alpaca_key)
        src.session.limiter = None
        src.session.policy.max_inplace_wait = 0
        with pytest.raises(RateLimited):
            src.listings([("AAPL", E), ("MSFT", E), ("BTC", C)])
    finally:
        sim.data_rate_limit, sim.data_windows = 200, {}


def test_sources_spend_the_budgets_syncs_spend(sandbox, redis_client, alpaca_key):
    scopes = {key: source(key, redis_client, alpaca_key).session for key in source_keys()}
    assert scopes["binance"].broker == "binance" and scopes["binance"].scope.startswith("binance:ip:")
    assert scopes["kraken"].broker == "kraken-public" and scopes["kraken"].scope.startswith("kraken-public:ip:")
    assert scopes["coinbase"].broker == "coinbase-public"
    assert scopes["alpaca"].broker == "alpaca-data" and alpaca_key.api_key not in scopes["alpaca"].scope
