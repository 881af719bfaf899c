"""The Binance simulator answers as Binance does: signing and its test vector, timing
window, error bodies, paging and windows, request weight per IP (429, then 418 bans),
/sapi weights, and a deterministic history whose balances equal the sum of its records."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from sandbox.base import SimClock
from sandbox.brokers.binance import BinanceSim
from sandbox.brokers.binance.api import signed_payload
from sandbox.http import Request

DAY = 86_400_000
# rest-api.md "SIGNED Endpoint Examples for POST /api/v3/order"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"


@pytest.fixture
def sim():
    binance = BinanceSim(SimClock())
    # Weight windows are fixed minutes: pin them to one (moved only by clock.advance) so
    # that no window ends in the middle of a test.
    start = (binance.now_ms() // 60_000 + 1) * 60_000
    binance.rate_now_ms = lambda: start + int(binance.clock.offset * 1000)
    return binance


@pytest.fixture
def account(sim):
    return sim.create_account("live", seed=21, positions=6, activities=400)


def call(sim, account, path, params=None, *, signed=True, ip="10.0.0.1", ts=None, secret=None, key=None,
         recv_window=None):
    pairs = list((params or {}).items())
    headers = {}
    if signed:
        if recv_window is not None:
            pairs.append(("recvWindow", recv_window))
        pairs.append(("timestamp", sim.now_ms() if ts is None else ts))
        query = urlencode(pairs)
        digest = hmac.new((secret or account["credentials"]["api_secret"]).encode(), query.encode(), hashlib.sha256)
        query += "&signature=" + digest.hexdigest()
        headers["x-mbx-apikey"] = key or account["credentials"]["api_key"]
    else:
        query = urlencode(pairs)
    response = sim.handle("live", Request("GET", path, query, headers, b"", ip))
    return response.status, json.loads(response.body), response.headers


# -- auth ---------------------------------------------------------------------------------------
def test_signature_test_vectors_from_the_docs():
    assert hmac.new(DOC_SECRET.encode(), DOC_QUERY.encode(), hashlib.sha256).hexdigest() == \
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    # Example 3: query string and body are concatenated with no '&' between them.
    mixed = signed_payload("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&signature=x",
                           "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559")
    assert hmac.new(DOC_SECRET.encode(), mixed.encode(), hashlib.sha256).hexdigest() == \
        "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


def test_signed_request_is_accepted_with_its_weight(sim, account):
    status, body, headers = call(sim, account, "/api/v3/account", {"omitZeroBalances": "true"})
    assert status == 200
    assert body["uid"] == int(account["broker_account_id"]) and body["accountType"] == "SPOT"
    assert all(Decimal(b["free"]) + Decimal(b["locked"]) for b in body["balances"])
    assert headers["X-MBX-USED-WEIGHT-1M"] == "20"


@pytest.mark.parametrize("change, status, code", [
    (dict(secret="x" * 64), 400, -1022),
    (dict(key="A" * 64), 401, -2015),
    (dict(key="short"), 400, -2014),
    (dict(ts_shift=+1000), 400, -1021),           # timestamp >= serverTime + 1000
    (dict(ts_shift=-5001), 400, -1021),           # serverTime - timestamp > recvWindow (5000)
    (dict(recv_window=60001), 400, -1131),
])
def test_auth_failures_answer_binance_bodies(sim, account, change, status, code, monkeypatch):
    frozen = sim.now_ms()
    monkeypatch.setattr(sim, "now_ms", lambda: frozen)          # the server's time, to the millisecond
    shift = change.pop("ts_shift", None)
    ts = frozen + shift if shift is not None else None
    got, body, headers = call(sim, account, "/api/v3/account", ts=ts, **change)
    assert (got, body["code"]) == (status, code)
    assert isinstance(body["msg"], str) and body["msg"]
    assert "X-MBX-USED-WEIGHT-1M" in headers           # weight is spent even on failures


def test_the_timing_rule_at_its_edges(sim, account, monkeypatch):
    frozen = sim.now_ms()
    monkeypatch.setattr(sim, "now_ms", lambda: frozen)
    assert call(sim, account, "/api/v3/account", ts=frozen + 999)[0] == 200
    assert call(sim, account, "/api/v3/account", ts=frozen - 5000)[0] == 200


def test_a_larger_recv_window_accepts_an_older_timestamp(sim, account):
    old = sim.now_ms() - 20_000
    assert call(sim, account, "/api/v3/account", ts=old)[0] == 400
    assert call(sim, account, "/api/v3/account", ts=old, recv_window=30_000)[0] == 200


def test_revoked_key_gets_2015(sim, account):
    sim.revoke(account["account_id"])
    status, body, _ = call(sim, account, "/api/v3/account")
    assert (status, body) == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})


# -- market data ---------------------------------------------------------------------------------
def test_exchange_info_lists_limits_and_delisted_symbols(sim):
    status, body, headers = call(sim, None, "/api/v3/exchangeInfo", signed=False)
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000} in body["rateLimits"]
    symbols = {s["symbol"]: s for s in body["symbols"]}
    assert symbols["ETHBTC"]["baseAsset"] == "ETH" and symbols["ETHBTC"]["quoteAsset"] == "BTC"
    assert symbols["ETHBUSD"]["status"] == "BREAK"
    one = call(sim, None, "/api/v3/exchangeInfo", {"symbol": "ETHBUSD"}, signed=False)[1]
    assert [s["symbol"] for s in one["symbols"]] == ["ETHBUSD"]


def test_ticker_price_weights(sim):
    status, body, headers = call(sim, None, "/api/v3/ticker/price", {"symbol": "BTCUSDT"}, signed=False)
    assert status == 200 and Decimal(body["price"]) > 0 and headers["X-MBX-USED-WEIGHT-1M"] == "2"
    _, every, headers = call(sim, None, "/api/v3/ticker/price", signed=False)
    assert headers["X-MBX-USED-WEIGHT-1M"] == "6" and "ETHBUSD" not in {p["symbol"] for p in every}


# -- trades and orders ----------------------------------------------------------------------------
def test_my_trades_pages_by_from_id(sim, account):
    acct = sim.accounts[account["account_id"]]
    expected = [t.id for t in acct.books["BTCUSDT"].trades]
    seen, from_id = [], 0
    while True:
        status, rows, _ = call(sim, account, "/api/v3/myTrades", {"symbol": "BTCUSDT", "fromId": from_id, "limit": 7})
        assert status == 200
        seen += [r["id"] for r in rows]
        if len(rows) < 7:
            break
        from_id = rows[-1]["id"] + 1
    assert seen == expected and len(seen) > 7
    row = rows[0] if rows else call(sim, account, "/api/v3/myTrades", {"symbol": "BTCUSDT"})[1][0]
    assert isinstance(row["id"], int) and isinstance(row["price"], str) and isinstance(row["isBuyer"], bool)


@pytest.mark.parametrize("params, code", [
    ({"symbol": "ETHBUSD"}, -1121),                                         # delisted
    ({"symbol": "NOPE"}, -1121),
    ({}, -1102),
    ({"symbol": "BTCUSDT", "limit": 1001}, -1130),
    ({"symbol": "BTCUSDT", "startTime": 0, "endTime": DAY + 1}, -1127),     # more than 24 h
    ({"symbol": "BTCUSDT", "fromId": 1, "startTime": 0}, -1128),
])
def test_my_trades_rejections(sim, account, params, code):
    status, body, _ = call(sim, account, "/api/v3/myTrades", params)
    assert (status, body["code"]) == (400, code)


def test_my_trades_time_window_and_order_filter(sim, account):
    trade = sim.accounts[account["account_id"]].books["BTCUSDT"].trades[3]
    rows = call(sim, account, "/api/v3/myTrades", {"symbol": "BTCUSDT", "startTime": trade.time})[1]
    assert rows[0]["id"] == trade.id and all(trade.time <= r["time"] <= trade.time + DAY for r in rows)
    _, rows, headers = call(sim, account, "/api/v3/myTrades", {"symbol": "BTCUSDT", "orderId": trade.order_id})
    assert {r["orderId"] for r in rows} == {trade.order_id} and headers["X-MBX-USED-WEIGHT-1M"] == "25"


def test_orders_all_open_and_one(sim, account):
    acct = sim.accounts[account["account_id"]]
    book = acct.books["BTCUSDT"]
    rows = call(sim, account, "/api/v3/allOrders", {"symbol": "BTCUSDT", "orderId": 0, "limit": 1000})[1]
    assert [r["orderId"] for r in rows] == book.order_ids
    assert {r["status"] for r in rows} >= {"FILLED"}
    _, opened, headers = call(sim, account, "/api/v3/openOrders")
    assert headers["X-MBX-USED-WEIGHT-1M"] == "100" and opened
    assert {r["status"] for r in opened} <= {"NEW", "PARTIALLY_FILLED"}
    symbol = opened[0]["symbol"]
    assert call(sim, account, "/api/v3/openOrders", {"symbol": symbol})[2]["X-MBX-USED-WEIGHT-1M"] == "106"
    one = call(sim, account, "/api/v3/order", {"symbol": symbol, "orderId": opened[0]["orderId"]})[1]
    assert one == opened[0]
    assert call(sim, account, "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 1})[1]["code"] == -2013


# -- wallet (/sapi) --------------------------------------------------------------------------------
def test_wallet_history_windows_and_shapes(sim, account):
    now = sim.now_ms()
    status, body, _ = call(sim, account, "/sapi/v1/capital/deposit/hisrec", {"startTime": now - 91 * DAY, "endTime": now})
    assert (status, body["code"]) == (400, -1127)
    deposits, withdrawals = [], []
    for start in range(now - 602 * DAY, now, 90 * DAY):        # the history spans 600 days
        window = {"startTime": start, "endTime": min(start + 90 * DAY - 1, now)}
        status, rows, headers = call(sim, account, "/sapi/v1/capital/deposit/hisrec", window)
        assert status == 200 and "X-SAPI-USED-IP-WEIGHT-1M" in headers
        deposits += rows
        status, rows, headers = call(sim, account, "/sapi/v1/capital/withdraw/history", window)
        assert status == 200 and "X-SAPI-USED-UID-WEIGHT-1M" in headers
        withdrawals += rows
    acct = sim.accounts[account["account_id"]]
    assert len(deposits) == len(acct.deposits.items) and len(withdrawals) == len(acct.withdrawals.items)
    assert all(isinstance(d["id"], str) and isinstance(d["status"], int) for d in deposits)
    assert all(len(w["applyTime"]) == 19 and w["applyTime"][10] == " " and "transactionFee" in w for w in withdrawals)


def test_deposit_offset_paging(sim, account):
    window = {"startTime": sim.now_ms() - 90 * DAY * 7, "endTime": sim.now_ms()}
    window["startTime"] = window["endTime"] - 90 * DAY + 1
    everything = call(sim, account, "/sapi/v1/capital/deposit/hisrec", window)[1]
    paged = [r for offset in range(0, len(everything) + 2, 2)
             for r in call(sim, account, "/sapi/v1/capital/deposit/hisrec", {**window, "offset": offset, "limit": 2})[1]]
    assert paged == everything


def test_dividends_rows_total_and_window(sim, account):
    now = sim.now_ms()
    body = call(sim, account, "/sapi/v1/asset/assetDividend", {"startTime": now - 180 * DAY, "endTime": now,
                                                              "limit": 2})[1]
    assert set(body) == {"rows", "total"} and len(body["rows"]) <= 2 and body["total"] >= len(body["rows"])
    assert call(sim, account, "/sapi/v1/asset/assetDividend", {"limit": 501})[1]["code"] == -1130
    assert call(sim, account, "/sapi/v1/asset/assetDividend",
                {"startTime": now - 181 * DAY, "endTime": now})[1]["code"] == -1127


def test_withdraw_history_uid_weight_allows_ten_a_minute(sim, account):
    codes = [call(sim, account, "/sapi/v1/capital/withdraw/history")[0] for _ in range(11)]
    assert codes == [200] * 10 + [429]


# -- rate limits --------------------------------------------------------------------------------------
def test_weight_is_per_ip_across_accounts(sim, account):
    other = sim.create_account("live", seed=22, positions=3, activities=20)
    call(sim, account, "/api/v3/account", ip="10.0.0.7")
    assert call(sim, other, "/api/v3/account", ip="10.0.0.7")[2]["X-MBX-USED-WEIGHT-1M"] == "40"
    assert call(sim, other, "/api/v3/account", ip="10.0.0.8")[2]["X-MBX-USED-WEIGHT-1M"] == "20"


def test_429_then_418_bans_that_grow(sim, account):
    sim.weights.limit, sim.weights.ban_seconds = 50, 2
    assert [call(sim, account, "/api/v3/account")[0] for _ in range(2)] == [200, 200]
    status, body, headers = call(sim, account, "/api/v3/account")
    assert (status, body["code"]) == (429, -1003) and body["msg"].startswith("Too much request weight used")
    assert headers["Retry-After"] == "60" and headers["X-MBX-USED-WEIGHT-1M"] == "40"
    status, body, headers = call(sim, account, "/api/v3/account")        # kept sending: banned
    assert status == 418 and "IP banned until" in body["msg"] and headers["Retry-After"] == "2"
    assert call(sim, account, "/api/v3/exchangeInfo", signed=False)[0] == 418
    sim.clock.advance(60)                                               # ban over, new window
    assert call(sim, account, "/api/v3/account")[0] == 200
    call(sim, account, "/api/v3/account")
    assert call(sim, account, "/api/v3/account")[0] == 429
    assert call(sim, account, "/api/v3/account")[2]["Retry-After"] == "4"   # the second ban is longer


def test_fault_shapes(sim):
    limited = sim.rate_limited_response(2.5)
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    assert json.loads(limited.body)["code"] == -1003
    assert json.loads(sim.server_error_response(503).body)["code"] == -1008


# -- the generated account ----------------------------------------------------------------------------
def _invariant_differences(truth: dict) -> dict:
    sums: dict[str, Decimal] = {}
    for t in truth["transactions"]:
        if t["status"] != "canceled" and t["quantity"] is not None:
            sums[t["symbol"]] = sums.get(t["symbol"], Decimal(0)) + Decimal(t["quantity"])
    held = {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    return {a: (sums.get(a, 0), held.get(a, 0)) for a in set(sums) | set(held) if sums.get(a, 0) != held.get(a, 0)}


@pytest.mark.parametrize("positions, activities", [(3, 20), (0, 10), (40, 3000)])
def test_balances_equal_the_sum_of_the_history(sim, positions, activities):
    created = sim.create_account("live", seed=4, positions=positions, activities=activities)
    truth = sim.truth(created["account_id"])
    assert len(truth["positions"]) == positions
    assert _invariant_differences(truth) == {}
    assert truth["unreachable"]["symbols"] == ["ETHBUSD"]          # traded once, delisted since
    symbols = {t["broker_id"].split(":")[1] for t in truth["transactions"] if t["broker_id"].startswith("trade:")}
    if activities >= 3000:
        assert {"BTCUSDT", "ETHUSDT", "ETHBTC", "BNBUSDT"} <= symbols
        assert any(t["type"] == "fee" and t["symbol"] == "BNB" for t in truth["transactions"])
        assert {"transfer", "reward", "trade", "fee"} <= {t["type"] for t in truth["transactions"]}
        assert {"open", "partially_filled", "filled", "canceled"} <= {o["status"] for o in truth["orders"]}


def test_same_seed_same_account(sim):
    a = sim.create_account("live", seed=9, positions=8, activities=500)
    b = sim.create_account("live", seed=9, positions=8, activities=500)
    first, second = sim.truth(a["account_id"]), sim.truth(b["account_id"])
    first.pop("broker_account_id"), second.pop("broker_account_id")
    assert json.dumps(first) == json.dumps(second)
    assert a["credentials"] != b["credentials"]                   # keys stay unique per account


_DIGEST = """
import hashlib, json
from sandbox.base import SimClock
from sandbox.brokers.binance import BinanceSim
sim = BinanceSim(SimClock())
created = sim.create_account("live", seed=5, positions=60, activities=3000)
print(hashlib.sha256(json.dumps(sim.truth(created["account_id"]), sort_keys=True).encode()).hexdigest())
"""


def test_same_seed_same_account_in_another_process():
    """Nothing may depend on set order, which changes with PYTHONHASHSEED."""
    root = Path(__file__).resolve().parents[2]
    digests = {subprocess.run([sys.executable, "-c", _DIGEST], cwd=root, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(n)}).stdout for n in (1, 2)}
    assert len(digests) == 1


def test_advance_adds_everything_and_keeps_the_invariant(sim, account):
    before = sim.truth(account["account_id"])
    opened = {o["broker_id"] for o in before["orders"] if o["status"] in ("open", "partially_filled")}
    added = sim.advance(account["account_id"])
    after = sim.truth(account["account_id"])
    assert _invariant_differences(after) == {}
    new_ids = {t["broker_id"] for t in after["transactions"]} - {t["broker_id"] for t in before["transactions"]}
    assert set(added["trades"]) | {added["dividend"], added["deposit"], added["close_record"]} <= new_ids
    assert added["new_symbol"] and not any(added["new_symbol"] in t["broker_id"] for t in before["transactions"])
    assert added["closed"] not in {p["symbol"] for p in after["positions"]}
    assert added["closed"] in {p["symbol"] for p in before["positions"]}
    statuses = {o["broker_id"]: o["status"] for o in after["orders"]}
    assert all(statuses[o] == "open" for o in added["orders"])
    assert all(statuses[o] == "canceled" and o in opened for o in added["canceled_orders"])


def test_advance_with_chosen_changes_only(sim, account):
    added = sim.advance(account["account_id"], fills=2)
    assert set(added) == {"trades", "new_symbol"} and len(added["trades"]) >= 2


def test_the_largest_account_is_generated_whole(sim):
    # how long it takes: benchmarks/sandbox_generation.py
    created = sim.create_account("live", seed=1, positions=2000, activities=200_000)
    acct = sim.accounts[created["account_id"]]
    records = (sum(len(b.trades) for b in acct.books.values()) + len(acct.deposits.items)
               + len(acct.withdrawals.items) + len(acct.dividends.items))
    assert 190_000 <= records <= 200_001 and sum(1 for v in acct.totals.values() if v) == 2000


# -- over real HTTP ----------------------------------------------------------------------------------
def test_served_over_http_with_the_control_api(sandbox):
    sandbox.sims["binance"].reset_limits()
    created = requests.post(sandbox.urls["control"] + "/control/accounts",
                            json={"broker": "binance", "seed": 3, "positions": 3, "activities": 30}, timeout=30).json()
    assert set(created["credentials"]) == {"api_key", "api_secret"} and created["environment"] == "live"
    query = urlencode({"timestamp": int(time.time() * 1000)})
    signature = hmac.new(created["credentials"]["api_secret"].encode(), query.encode(), hashlib.sha256).hexdigest()
    response = requests.get(f"{sandbox.urls['binance']}/api/v3/account?{query}&signature={signature}",
                            headers={"X-MBX-APIKEY": created["credentials"]["api_key"]}, timeout=10)
    assert response.status_code == 200 and response.headers["X-MBX-USED-WEIGHT-1M"]
    assert str(response.json()["uid"]) == created["broker_account_id"]
    assert requests.get(sandbox.urls["binance"] + "/api/v3/nothing", timeout=10).status_code == 404


# -- the minimum a first sync needs ---------------------------------------------------------------
def test_window_requests_places_windows_as_few_requests_allow():
    from sandbox.brokers.binance.truth import window_requests

    # Nothing recorded: the windows still have to be asked, one per span (inclusive ends).
    assert window_requests([], 0, 99, 9, 1000, offset_paged=True) == 10
    assert window_requests([], 0, 100, 9, 1000, offset_paged=True) == 11
    # 5 records in one window of page 2: 5 // 2 + 1 = 3 offset pages, or shorter windows of
    # at most 1 record each (a page of 2 is then short): 5 windows. Three is fewer.
    assert window_requests([1, 2, 3, 4, 5], 0, 9, 9, 2, offset_paged=True) == 3
    # Without offsets (assetDividend) a window may hold at most `page` records.
    assert window_requests([1, 2, 3, 4, 5], 0, 9, 9, 2, offset_paged=False) == 3
    assert window_requests([1, 2, 3, 4, 5], 0, 9, 9, 5, offset_paged=False) == 1


def test_minimum_counts_symbols_pages_and_windows(sim):
    from sandbox.brokers.binance import handlers

    created = sim.create_account("live", seed=8, positions=20, activities=1500)
    acct = sim.accounts[created["account_id"]]
    minimum = sim.truth(created["account_id"])["minimum"]
    trading = [b for b in acct.books.values() if b.info.trading]
    detail = minimum["detail"]
    assert detail["my_trades"] == sum(len(b.trades) // 1000 + 1 for b in trading if b.trades)
    assert detail["all_orders"] == sum(len(b.orders) // 1000 + 1 for b in trading if b.orders)
    assert (detail["account"], detail["exchange_info"]) == (1, 1)
    history_ms = sim.now_ms() - min(acct.deposits.times[0], *(b.trade_times[0] for b in acct.books.values()))
    assert detail["deposits"] == detail["withdrawals"] == -(-history_ms // (handlers.DEPOSIT_WINDOW_MS + 1))
    assert detail["dividends"] == -(-history_ms // (handlers.DIVIDEND_WINDOW_MS + 1))
    assert minimum["requests"] == sum(detail.values())
    # /api weight only: account and exchangeInfo 20 each, myTrades and allOrders 20 a page
    assert minimum["cost"] == 20.0 * (2 + detail["my_trades"] + detail["all_orders"])


def test_a_full_adapter_fetch_makes_at_least_the_minimum_of_requests(sandbox):
    """A first sync as backend/sync/pipeline.py runs it (a fresh adapter per step), counted
    by the sandbox: never below the minimum, and not far above it."""
    from backend.brokers.adapters.binance import BinanceAdapter
    from backend.brokers.dtos import Credentials
    from backend.brokers.http import BrokerSession

    binance = sandbox.sims["binance"]
    limits = binance.weights.limit, binance.sapi_weights.uid_limit
    binance.reset_limits()
    # One IP for every test, and a first sync reads the withdraw history (18,000 UID weight
    # a call) twice: lift both budgets, as --limits off does.
    binance.weights.limit, binance.sapi_weights.uid_limit = 10 ** 9, 10 ** 9
    try:
        created = binance.create_account("live", seed=14, positions=40, activities=3000)
        minimum = binance.truth(created["account_id"])["minimum"]
        creds = Credentials(**created["credentials"])

        def build() -> BinanceAdapter:
            session = BrokerSession(broker="binance", base_url=sandbox.urls["binance"],
                                    scope=BinanceAdapter.rate_scope(creds, "live"), limiter=None,
                                    vendor_errors=BinanceAdapter.vendor_errors, secrets=creds.secrets(),
                                    sleep=lambda seconds: None)
            return BinanceAdapter(credentials=creds, environment="live", session=session)

        before = dict(sandbox.stats.get("binance", {}))
        build().fetch_positions()
        list(build().fetch_transactions(None))
        list(build().fetch_orders(None, ()))
        after = sandbox.stats["binance"]
    finally:
        binance.weights.limit, binance.sapi_weights.uid_limit = limits
        binance.reset_limits()
    made = after["requests"] - before.get("requests", 0)
    assert after["429"] == before.get("429", 0)
    assert minimum["requests"] > 0 and minimum["cost"] > 0
    assert minimum["requests"] <= made <= 1.5 * minimum["requests"], (made, minimum)
