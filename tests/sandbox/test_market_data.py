"""Market-data endpoints of every simulator over real HTTP: paths, paging, limits, errors;
one market for all (a fill lies inside its day's bar on every broker); the latest price
moves with the clock; the history truth replays to the account's own holdings."""
from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import prices
from tests.factories import sandbox_account, sandbox_truth

D = Decimal


def get(sandbox, endpoint: str, path: str, **kw) -> requests.Response:
    return requests.get(sandbox.urls[endpoint] + path, timeout=30, **kw)


def coinbase_public(sandbox, path: str, **kw) -> requests.Response:
    """A public Coinbase call in a fresh per-IP window (these tests are not about that limit)."""
    sandbox.sims["coinbase"].public_windows.clear()
    return get(sandbox, "coinbase", path, **kw)


def alpaca_keys(sandbox) -> dict:
    account = sandbox_account(sandbox, broker="alpaca", environment="paper", seed=7, positions=6, activities=80)
    creds = account["credentials"]
    return {"account": account, "headers": {"APCA-API-KEY-ID": creds["api_key"], "APCA-API-SECRET-KEY": creds["api_secret"]}}


def day_of(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).date().isoformat()


# -- a fill lies inside its day's bar, on every broker -------------------------------------------
def test_alpaca_fills_lie_inside_their_days_bar(sandbox):
    keys = alpaca_keys(sandbox)
    from sandbox.brokers.alpaca.records import Fill

    fills = [a for a in sandbox.sims["alpaca"].account(keys["account"]["account_id"]).ledger.acts if isinstance(a, Fill)]
    for fill in random.Random(1).sample(fills, 12):
        path = "/v1beta3/crypto/us/bars" if fill.asset.is_crypto else "/v2/stocks/bars"
        day = day_of(fill.t_us / 1e6)
        body = get(sandbox, "alpaca-data", path, headers=keys["headers"],
                   params={"symbols": fill.asset.symbol, "timeframe": "1Day", "start": day, "end": day}).json()
        (bar,) = body["bars"][fill.asset.symbol]
        assert D(str(bar["l"])) <= fill.price <= D(str(bar["h"])), (fill.asset.symbol, day, fill.price, bar)


def test_binance_fills_lie_inside_their_days_kline(sandbox):
    account = sandbox_account(sandbox, broker="binance", seed=7, positions=6, activities=80)
    books = sandbox.sims["binance"]._account(account["account_id"]).books.values()
    trades = [(b.info, t) for b in books if b.info.trading for t in b.trades]
    for info, trade in random.Random(1).sample(trades, 12):
        start = trade.time // 86_400_000 * 86_400_000
        (kline,) = get(sandbox, "binance", "/api/v3/klines",
                       params={"symbol": info.symbol, "interval": "1d", "startTime": start, "limit": 1}).json()
        price = D(trade.price) / 10 ** 8
        assert kline[0] == start and D(kline[3]) <= price <= D(kline[2]), (info.symbol, price, kline)


def test_kraken_fills_lie_inside_their_days_ohlc_entry(sandbox):
    account = sandbox_account(sandbox, broker="kraken", seed=7, positions=6, activities=80)
    trades = list(sandbox.sims["kraken"].account(account["account_id"]).trades.items)
    sandbox.sims["kraken"].reset_limits()
    recent = [t for t in trades if t.t4 / 1e4 > sandbox.clock.now() - 700 * 86_400] or trades
    for trade in random.Random(1).sample(recent, min(8, len(recent))):
        day = int(trade.t4 / 1e4) // 86_400 * 86_400
        body = get(sandbox, "kraken", "/0/public/OHLC", params={"pair": trade.pair.key, "interval": 1440,
                                                                "since": day}).json()
        entry = next(e for e in body["result"][trade.pair.key] if e[0] == day)
        price = D(trade.price).scaleb(-trade.pair.pair_decimals)
        assert D(entry[3]) <= price <= D(entry[2]), (trade.pair.key, price, entry)


def test_coinbase_fills_lie_inside_their_days_candle(sandbox):
    account = sandbox_account(sandbox, broker="coinbase", seed=7, positions=6, activities=80)
    fills = sandbox.sims["coinbase"].book(account["account_id"]).fills
    for fill in random.Random(1).sample(fills, 12):
        start = int(fill.t / 1e6) // 86_400 * 86_400
        body = coinbase_public(sandbox, f"/api/v3/brokerage/market/products/{fill.product}/candles",
                   params={"start": start, "end": start, "granularity": "ONE_DAY"}).json()
        (candle,) = body["candles"]
        assert D(candle["low"]) <= fill.price <= D(candle["high"]), (fill.product, fill.price, candle)


@settings(max_examples=300, deadline=None)
@given(code=st.sampled_from(["BTC", "ETH", "EUR", "GBP", "USDT", "AAPL", "KOMIRU"]),
       quote=st.sampled_from(["USD", "USDT", "EUR", "BTC"]), day=st.integers(0, 40_000),
       second=st.integers(0, 86_399), tick=st.sampled_from(["0.01", "0.000001", "0.00000001", "0.1"]))
def test_a_price_rounded_to_any_tick_lies_inside_its_days_bar(code, quote, day, second, tick):
    """The invariant every generator relies on: price(t) at a venue's tick (nearest) is
    inside the day's bar at that tick (high up, low down), for any pair, day and moment."""
    base, other = prices.Leg(code, 190, equity=code == "AAPL"), prices.Leg(quote)
    step = D(tick)
    price = prices.to_tick(prices.pair_price(base, other, day * 86_400 + second), step)
    o, h, low, c = prices.bar_ticks(prices.pair_bar(base, other, day), step)
    assert low <= price <= h and low <= o <= h and low <= c <= h


# -- latest prices move with the clock ------------------------------------------------------------
def test_latest_prices_move_when_the_clock_advances(sandbox):
    def last():
        ticker = get(sandbox, "kraken", "/0/public/Ticker", params={"pair": "XBTUSD"}).json()["result"]["XXBTZUSD"]
        coinbase = coinbase_public(sandbox, "/api/v3/brokerage/market/products/ETH-USD").json()["price"]
        binance = get(sandbox, "binance", "/api/v3/ticker/price", params={"symbol": "SOLUSDT"}).json()["price"]
        return ticker["c"][0], coinbase, binance

    before = last()
    requests.post(sandbox.urls["control"] + "/control/clock", json={"advance_seconds": 7200}, timeout=10)
    try:
        after = last()
    finally:
        requests.post(sandbox.urls["control"] + "/control/clock", json={"advance_seconds": -7200}, timeout=10)
    assert all(a != b for a, b in zip(before, after))


# -- each API's paths, paging, limits and errors ---------------------------------------------------
def test_alpaca_data_needs_a_key_for_stocks_not_crypto_and_pages_bars(sandbox):
    keys = alpaca_keys(sandbox)
    assert get(sandbox, "alpaca-data", "/v2/stocks/trades/latest", params={"symbols": "AAPL"}).status_code == 403
    crypto = get(sandbox, "alpaca-data", "/v1beta3/crypto/us/latest/trades", params={"symbols": "BTC/USD,NOPE/USD"})
    assert crypto.status_code == 200 and list(crypto.json()["trades"]) == ["BTC/USD"]
    params = {"symbols": "MSFT,AAPL", "timeframe": "1Day", "start": "2026-11-02", "end": "2026-11-13", "limit": 7}
    pages, token = [], None
    while True:
        body = get(sandbox, "alpaca-data", "/v2/stocks/bars", headers=keys["headers"],
                   params={**params, **({"page_token": token} if token else {})}).json()
        pages.append(body["bars"])
        token = body["next_page_token"]
        if not token:
            break
    # 10 weekdays x 2 symbols = 20 bars: pages of 7, 7, 6, sorted by symbol then time.
    assert [sum(len(v) for v in p.values()) for p in pages] == [7, 7, 6]
    assert list(pages[0]) == ["AAPL"] and list(pages[1]) == ["AAPL", "MSFT"]
    bad = get(sandbox, "alpaca-data", "/v2/stocks/bars", headers=keys["headers"], params={**params, "limit": 10_001})
    assert bad.status_code == 400 and "limit" in bad.json()["message"]


def test_alpaca_data_has_its_own_rate_window(sandbox):
    keys = alpaca_keys(sandbox)
    sim = sandbox.sims["alpaca"]
    sim.data_rate_limit, sim.data_windows = 3, {}
    try:
        answers = [get(sandbox, "alpaca-data", "/v2/stocks/trades/latest", headers=keys["headers"],
                       params={"symbols": "AAPL"}) for _ in range(4)]
    finally:
        sim.data_rate_limit, sim.data_windows = 200, {}
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[2].headers["X-Ratelimit-Remaining"] == "0" and answers[3].json() == {"message": "too many requests"}
    # The trading API's own window is untouched.
    trading = requests.get(sandbox.urls["alpaca-paper"] + "/v2/account", headers=keys["headers"], timeout=10)
    assert trading.headers["X-Ratelimit-Remaining"] == "199"


def test_binance_ticker_and_klines_weights_and_limits(sandbox):
    one = get(sandbox, "binance", "/api/v3/ticker/price", params={"symbol": "BTCUSDT"})
    used = int(one.headers["X-MBX-USED-WEIGHT-1M"])
    many = get(sandbox, "binance", "/api/v3/ticker/price", params={"symbols": json.dumps(["BTCUSDT", "EURUSDT"])})
    klines = get(sandbox, "binance", "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1d", "limit": 1000})
    assert int(many.headers["X-MBX-USED-WEIGHT-1M"]) - used == 4
    assert int(klines.headers["X-MBX-USED-WEIGHT-1M"]) - used == 6 and len(klines.json()) == 1000
    assert [r["symbol"] for r in many.json()] == ["BTCUSDT", "EURUSDT"]
    too_many = get(sandbox, "binance", "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1d", "limit": 1001})
    assert too_many.status_code == 400 and too_many.json()["code"] == -1130
    bad = get(sandbox, "binance", "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "7x"})
    assert bad.json() == {"code": -1120, "msg": "Invalid interval."}


def test_kraken_ohlc_returns_only_the_latest_720_entries_whatever_since_says(sandbox):
    sandbox.sims["kraken"].reset_limits()
    body = get(sandbox, "kraken", "/0/public/OHLC", params={"pair": "ETHUSD", "interval": 1440, "since": 0}).json()
    rows = body["result"]["XETHZUSD"]
    today = int(sandbox.clock.now()) // 86_400 * 86_400
    assert len(rows) == 720 and rows[-1][0] == today and rows[0][0] == today - 719 * 86_400
    assert body["result"]["last"] == today - 86_400
    unknown = get(sandbox, "kraken", "/0/public/OHLC", params={"pair": "NOPEUSD", "interval": 1440}).json()
    assert unknown == {"error": ["EQuery:Unknown asset pair"]}
    fiat = get(sandbox, "kraken", "/0/public/Ticker", params={"pair": "EURUSD,GBPUSD,USDTUSD"}).json()["result"]
    assert set(fiat) == {"ZEURZUSD", "ZGBPZUSD", "USDTUSD"} and D("1") < D(fiat["ZEURZUSD"]["c"][0]) < D("1.3")


def test_coinbase_candles_cap_at_350_and_public_calls_have_their_own_limit(sandbox):
    path = "/api/v3/brokerage/market/products/BTC-USD/candles"
    end = int(sandbox.clock.now()) // 86_400 * 86_400
    ok = coinbase_public(sandbox, path, params={"start": end - 349 * 86_400, "end": end, "granularity": "ONE_DAY"})
    starts = [int(c["start"]) for c in ok.json()["candles"]]
    assert len(starts) == 350 and starts == sorted(starts, reverse=True)          # newest first
    too_many = coinbase_public(sandbox, path, params={"start": end - 350 * 86_400, "end": end, "granularity": "ONE_DAY"})
    assert too_many.status_code == 400 and too_many.json()["error"] == "INVALID_ARGUMENT"
    # best_bid_ask has no public twin: without a key it is a 401.
    assert get(sandbox, "coinbase", "/api/v3/brokerage/best_bid_ask").status_code == 401
    sandbox.sims["coinbase"].wall = lambda: 1_000.5                 # one frozen public window
    try:
        codes = [get(sandbox, "coinbase", "/api/v3/brokerage/market/products/BTC-USD").status_code for _ in range(11)]
    finally:
        sandbox.sims["coinbase"].public_windows.clear()
        import time
        sandbox.sims["coinbase"].wall = time.time
    assert codes == [200] * 10 + [429]


# -- the truth for value history ---------------------------------------------------------------------
@pytest.mark.parametrize("broker,environment", [("alpaca", "paper"), ("kraken", "live"), ("coinbase", "live"),
                                                ("binance", "live")])
def test_history_truth_replays_to_the_accounts_own_holdings(sandbox, broker, environment):
    account = sandbox_account(sandbox, broker=broker, environment=environment, seed=11, positions=4, activities=60)
    truth = sandbox_truth(sandbox, account["account_id"])
    days = requests.get(f"{sandbox.urls['control']}/control/accounts/{account['account_id']}/history",
                        timeout=60).json()["days"]
    expected = {p["symbol"]: D(p["quantity"]) for p in truth["positions"]} | {k: D(v) for k, v in
                                                                              truth.get("cash", {}).items()}
    held = {k: D(v) for k, v in days[-1]["holdings"].items()}
    assert {k: v for k, v in held.items() if v} == {k: v for k, v in expected.items() if v}
    for day in days[-5:]:
        # value per currency = sum of qty x close in that currency, plus cash in its own
        total: dict[str, Decimal] = {}
        for code, qty in day["holdings"].items():
            close = day["closes"].get(code)
            quote, price = (close["quote"], D(close["close"])) if close else (code, D(1))
            total[quote] = total.get(quote, D(0)) + D(qty) * price
        assert {k: D(v) for k, v in day["value"].items()} == total and not day["unpriced"]


def history_of(sandbox, account_id: str, **params) -> list[dict]:
    response = requests.get(f"{sandbox.urls['control']}/control/accounts/{account_id}/history", params=params,
                            timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["days"]


def test_ibkr_history_truth_prices_us_shares_at_alpaca_and_nothing_else(sandbox):
    from sandbox.brokers.alpaca.marketdata import _bar
    from sandbox.brokers.alpaca.universe import lookup
    from sandbox.history import EPOCH, last_weekday

    account = sandbox_account(sandbox, broker="ibkr", seed=11, positions=4, activities=60)
    truth = sandbox_truth(sandbox, account["account_id"])
    days = history_of(sandbox, account["account_id"])
    held = {k: D(v) for k, v in days[-1]["holdings"].items() if D(v)}
    expected = {p["symbol"]: D(p["quantity"]) for p in truth["positions"]} | {k: D(v) for k, v in truth["cash"].items()}
    assert held == {k: v for k, v in expected.items() if v}
    last = days[-1]
    # Cash counts in its own currency (EUR and GBP bought with dollars included), a US share
    # at Alpaca's close of that day (a weekend: Friday's); a share abroad, the option and the
    # bond have no venue here.
    assert {"EUR", "GBP"} <= set(last["value"]) and D(last["value"]["EUR"]) == held["EUR"]
    assert {"SAP:IBIS", "VOD:LSE", "US91282CLW90"} & set(last["unpriced"])
    day = (datetime.fromisoformat(last["day"]).date() - EPOCH).days
    for code, close in last["closes"].items():
        assert close == {"quote": "USD", "close": str(D(str(_bar(lookup(code), last_weekday(day))["c"])))}


def test_coinbase_truth_prices_usdc_at_its_own_book_and_converts_into_a_base_currency(sandbox):
    from sandbox.brokers.coinbase import market

    account = sandbox_account(sandbox, broker="coinbase", seed=12, positions=4, activities=60)
    days = history_of(sandbox, account["account_id"], currency="EUR")
    with_usdc = [d for d in days if "USDC" in d["closes"]]
    assert with_usdc
    day = with_usdc[-1]
    number = (datetime.fromisoformat(day["day"]).date() - datetime(1970, 1, 1).date()).days
    # A stablecoin is an asset with a price: USDC's is Coinbase's USDC-EUR close, not 1 USD.
    assert day["closes"]["USDC"] == {"quote": "EUR", "close": str(market.bar("USDC-EUR", number)[3])}
    # The total in EUR: each currency's value at the model's close of it in EUR.
    rates = {code: D(rate) for code, rate in day["rates"].items()}
    assert rates["EUR"] == 1 and abs(rates["USD"] - D(1) / D(repr(prices.usd_bar("EUR", number)[3]))) < D("1e-12")
    assert D(day["total"]) == sum(D(v) * rates[c] for c, v in day["value"].items())


def test_coinbase_stablecoin_books_tick_in_millionths_and_their_price_stays_in_the_candle():
    from sandbox.brokers.coinbase import market

    now = datetime(2026, 11, 24, 15, tzinfo=timezone.utc).timestamp()
    day = prices.day_of(now)
    for product in ("USDT-USD", "USDT-EUR", "USDC-EUR"):
        assert market.quantum(product) == D("0.000001")
        _, high, low, _ = market.bar(product, day)
        assert low <= market.price(product, int(now * 1e6)) <= high
    # USDT moves around its peg: its closes are not all one cent-rounded 1.00.
    closes = {market.bar("USDT-USD", day - n)[3] for n in range(30)}
    assert len(closes) > 10
