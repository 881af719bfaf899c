"""The Alpaca simulator answers as Alpaca Trading API v2 does (docs/brokers.md §1)."""
from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
import requests

from sandbox.brokers.alpaca.generator import generate

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ACTIVITY_ID = re.compile(r"^\d{17}::[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}


@pytest.fixture
def alpaca(sandbox):
    return sandbox.sims["alpaca"]


@pytest.fixture
def account(alpaca):
    return alpaca.create_account("paper", seed=11, positions=40, activities=1500)


@pytest.fixture
def small(alpaca):
    """Fewer than 500 orders: one request lists them all."""
    return alpaca.create_account("paper", seed=12, positions=20, activities=500)


def call(sandbox, account, path, env=None, headers=None, **params):
    env = env or account["environment"]
    creds = account["credentials"]
    if headers is None:
        headers = {"APCA-API-KEY-ID": creds["api_key"], "APCA-API-SECRET-KEY": creds["api_secret"]}
    return requests.get(sandbox.urls[f"alpaca-{env}"] + path, params=params, headers=headers, timeout=10)


def all_activities(sandbox, account, direction="asc", **params):
    rows, token = [], None
    while True:
        extra = {"page_token": token} if token else {}
        page = call(sandbox, account, "/v2/account/activities", direction=direction, **params, **extra).json()
        if not page:
            return rows
        rows += page
        token = page[-1]["id"]


# -- auth ------------------------------------------------------------------------------------------
def test_auth_accepts_the_key_pair_and_rejects_anything_else(sandbox, alpaca, account):
    assert call(sandbox, account, "/v2/account").status_code == 200
    creds = account["credentials"]
    wrong = {"APCA-API-KEY-ID": creds["api_key"], "APCA-API-SECRET-KEY": "x" * 40}
    for headers in (wrong, {}, {"APCA-API-KEY-ID": creds["api_key"]}):
        response = call(sandbox, account, "/v2/account", headers=headers)
        assert response.status_code == 401 and response.json() == UNAUTHORIZED
    # A paper key is unknown to live and the other way round.
    assert call(sandbox, account, "/v2/account", env="live").status_code == 401
    live = alpaca.create_account("live", seed=11, positions=3, activities=20)
    assert live["credentials"]["api_key"].startswith("AK") and creds["api_key"].startswith("PK")
    assert call(sandbox, live, "/v2/account").status_code == 200
    assert call(sandbox, live, "/v2/account", env="paper").json() == UNAUTHORIZED


def test_revoked_key_gets_the_auth_error(sandbox, alpaca, account):
    alpaca.revoke(account["account_id"])
    response = call(sandbox, account, "/v2/positions")
    assert response.status_code == 401 and response.json() == UNAUTHORIZED


# -- shapes --------------------------------------------------------------------------------------------
def test_account_fields_and_types(sandbox, account):
    body = call(sandbox, account, "/v2/account").json()
    assert body["id"] == account["broker_account_id"] and UUID.match(body["id"])
    for key in ("cash", "buying_power", "equity", "long_market_value", "short_market_value", "portfolio_value"):
        assert isinstance(body[key], str) and DECIMAL.match(body[key]), key
    assert isinstance(body["daytrade_count"], int) and isinstance(body["crypto_tier"], int)
    assert isinstance(body["pattern_day_trader"], bool) and body["status"] == "ACTIVE"
    assert RFC3339.match(body["created_at"]) and DATE.match(body["balance_asof"])
    assert body["account_number"].startswith("PA")


def test_positions_equities_crypto_and_shorts(sandbox, account):
    rows = call(sandbox, account, "/v2/positions").json()
    assert len(rows) == 40
    crypto = [r for r in rows if r["asset_class"] == "crypto"]
    shorts = [r for r in rows if r["side"] == "short"]
    assert crypto and shorts
    for r in crypto:
        assert r["exchange"] == "CRYPTO" and r["symbol"].endswith("USD") and "/" not in r["symbol"]
    for r in shorts:
        assert Decimal(r["qty"]) < 0 and Decimal(r["market_value"]) < 0 and r["asset_class"] == "us_equity"
    for r in rows:
        assert UUID.match(r["asset_id"])
        for key in ("qty", "avg_entry_price", "market_value", "cost_basis", "current_price", "unrealized_pl"):
            assert isinstance(r[key], str) and DECIMAL.match(r[key]), key


def test_activity_shapes_and_the_mix(sandbox, account):
    rows = all_activities(sandbox, account)
    assert len(rows) == 1500
    kinds = Counter(r["activity_type"] for r in rows)
    assert {"FILL", "DIV", "DIVNRA", "FEE", "CFEE", "INT", "CSD", "CSW", "JNLC", "SPLIT", "ACATS", "ACATC",
            "MEM"} <= set(kinds)
    for r in rows:
        assert ACTIVITY_ID.match(r["id"]), r["id"]
        if r["activity_type"] == "FILL":
            assert set(r) == {"id", "activity_type", "transaction_time", "type", "price", "qty", "side", "symbol",
                              "leaves_qty", "cum_qty", "order_id", "order_status"}
            assert RFC3339.match(r["transaction_time"]) and r["type"] in ("fill", "partial_fill")
            assert UUID.match(r["order_id"]) and r["side"] in ("buy", "sell")
        else:
            assert DATE.match(r["date"]) and isinstance(r["net_amount"], str)
            assert r["status"] in ("executed", "correct", "canceled")
    fills = [r for r in rows if r["activity_type"] == "FILL"]
    assert any("/" in r["symbol"] for r in fills) and any(r["type"] == "partial_fill" for r in fills)
    cfee = next(r for r in rows if r["activity_type"] == "CFEE")
    assert Decimal(cfee["qty"]) < 0 and cfee["net_amount"] == "0" and cfee["symbol"].endswith("USD")
    splits = [r for r in rows if r["activity_type"] == "SPLIT"]
    assert splits[0]["description"].startswith("REMOVE") and splits[1]["description"].startswith("ADD")
    assert Decimal(splits[0]["qty"]) < 0 < Decimal(splits[1]["qty"]) and splits[0]["symbol"] == splits[1]["symbol"]
    assert any(r.get("status") == "canceled" for r in rows)
    # The id stamp is New York time: 5 h (EST) or 4 h (EDT) behind transaction_time.
    fill = fills[0]
    stamp = fill["id"][:17]
    assert fill["transaction_time"][:4] == stamp[:4] and int(fill["transaction_time"][11:13]) - int(stamp[8:10]) in (4, 5)


# -- activity paging and filters -----------------------------------------------------------------------
def test_activity_paging_both_directions(sandbox, account):
    asc = all_activities(sandbox, account, "asc")
    desc = all_activities(sandbox, account, "desc")
    assert [r["id"] for r in asc] == sorted(r["id"] for r in asc)
    assert desc == asc[::-1]
    first = call(sandbox, account, "/v2/account/activities").json()
    assert len(first) == 100 and first[0]["id"] == asc[-1]["id"]         # default: desc, 100
    token = asc[500]["id"]
    after = call(sandbox, account, "/v2/account/activities", direction="asc", page_token=token, page_size=3).json()
    before = call(sandbox, account, "/v2/account/activities", direction="desc", page_token=token, page_size=3).json()
    assert after == asc[501:504] and before == asc[497:500][::-1]
    big = call(sandbox, account, "/v2/account/activities", page_size=1000).json()
    assert len(big) == 100                                              # served at the maximum
    last = call(sandbox, account, "/v2/account/activities", direction="asc", page_token=asc[-1]["id"]).json()
    assert last == []


def test_activity_filters(sandbox, account):
    asc = all_activities(sandbox, account)
    divs_fees = all_activities(sandbox, account, activity_types="DIV,FEE")
    assert divs_fees == [r for r in asc if r["activity_type"] in ("DIV", "FEE")]
    fills = all_activities(sandbox, account, category="trade_activity")
    assert fills and fills == [r for r in asc if r["activity_type"] == "FILL"]
    by_path = call(sandbox, account, "/v2/account/activities/CFEE", direction="asc").json()
    assert by_path == [r for r in asc if r["activity_type"] == "CFEE"][:100]
    bad = call(sandbox, account, "/v2/account/activities/FFFFF")
    assert bad.status_code == 422 and bad.json() == {"code": 40010001, "message": "invalid activity type: FFFFF"}
    assert call(sandbox, account, "/v2/account/activities", activity_types="DIV,NOPE").status_code == 422
    assert call(sandbox, account, "/v2/account/activities", after="yesterday").status_code == 422
    assert call(sandbox, account, "/v2/account/activities", direction="up").status_code == 422
    day = next(r for r in asc if r["activity_type"] == "DIV")["date"]
    on_day = call(sandbox, account, "/v2/account/activities", date=day, direction="asc").json()
    assert on_day and all(r.get("date", day) == day for r in on_day)
    assert all(r["transaction_time"][:10] == day for r in on_day if "transaction_time" in r)
    middle = next(r for r in asc[700:] if r["activity_type"] == "FILL")["transaction_time"]
    after = call(sandbox, account, "/v2/account/activities", direction="asc", after=middle, page_size=5).json()
    assert after and all(r["id"] > next(a["id"] for a in asc if a.get("transaction_time") == middle) for r in after)


# -- orders -----------------------------------------------------------------------------------------------
def all_orders(sandbox, account, **params):
    return call(sandbox, account, "/v2/orders", status="all", direction="asc", limit=500, **params).json()


def test_orders_status_limit_and_time_window(sandbox, alpaca, small):
    account = small
    orders = all_orders(sandbox, account)
    truth = {o["broker_id"]: o["status"] for o in alpaca.truth(account["account_id"])["orders"]}
    assert len(orders) == len(truth) and 50 < len(orders) < 500
    assert {o["status"] for o in orders} >= {"filled", "canceled", "expired", "partially_filled"}
    default = call(sandbox, account, "/v2/orders").json()                 # status=open, desc
    assert default and all(truth[o["id"]] in ("open", "partially_filled") for o in default)
    assert [o["submitted_at"] for o in default] == sorted((o["submitted_at"] for o in default), reverse=True)
    closed = call(sandbox, account, "/v2/orders", status="closed", limit=500).json()
    assert len(closed) + len(default) == len(orders)
    assert len(call(sandbox, account, "/v2/orders", status="all").json()) == 50
    middle = orders[len(orders) // 2]
    after = call(sandbox, account, "/v2/orders", status="all", direction="asc", after=middle["submitted_at"]).json()
    assert after and all(o["submitted_at"] > middle["submitted_at"] for o in after)     # exclusive
    until = call(sandbox, account, "/v2/orders", status="all", until=middle["submitted_at"], limit=500).json()
    assert until and all(o["submitted_at"] < middle["submitted_at"] for o in until)
    symbol = orders[0]["symbol"]
    only = call(sandbox, account, "/v2/orders", status="all", symbols=symbol, limit=500).json()
    assert only and all(o["symbol"] == symbol for o in only)
    assert len(only) == sum(o["symbol"] == symbol for o in orders)
    assert call(sandbox, account, "/v2/orders", status="everything").status_code == 422


def test_orders_share_submitted_at_and_fills_match_orders(sandbox, small):
    account = small
    orders = all_orders(sandbox, account)
    ties = Counter(o["submitted_at"] for o in orders)
    assert max(ties.values()) >= 2
    by_id = {o["id"]: o for o in orders}
    filled = defaultdict(Decimal)
    for r in all_activities(sandbox, account, activity_types="FILL"):
        filled[r["order_id"]] += Decimal(r["qty"])
    for order_id, qty in filled.items():
        assert Decimal(by_id[order_id]["filled_qty"]) == qty


def test_order_by_id_and_not_found(sandbox, small):
    account = small
    some = all_orders(sandbox, account)[3]
    assert call(sandbox, account, f"/v2/orders/{some['id']}").json() == some
    missing = call(sandbox, account, "/v2/orders/61e69015-8549-4bfd-b9c3-01e75843f47d")
    assert missing.status_code == 404 and missing.json() == {"code": 40410000, "message": "order is not found."}


def test_assets(sandbox, account):
    assert call(sandbox, account, "/v2/assets/AAPL").json()["class"] == "us_equity"
    btc = call(sandbox, account, "/v2/assets/BTC/USD").json()
    assert btc["symbol"] == "BTC/USD" and btc["class"] == "crypto"
    assert call(sandbox, account, "/v2/assets/BTCUSD").json()["id"] == btc["id"]
    assert call(sandbox, account, "/v2/assets/NOPE1").status_code == 404


# -- rate limit ----------------------------------------------------------------------------------------------
def test_rate_limit_headers_and_429(sandbox, alpaca):
    account = alpaca.create_account("live", seed=2, positions=3, activities=20, rate_limit_per_min=3)
    answers = [call(sandbox, account, "/v2/account") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Ratelimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["X-Ratelimit-Limit"] == "3" for a in answers)
    reset = int(answers[0].headers["X-Ratelimit-Reset"])
    assert time.time() + 55 < reset <= time.time() + 61
    assert answers[3].json() == {"code": 42910000, "message": "rate limit exceeded"}
    alpaca.accounts[account["account_id"]].window_end = 0            # the minute is over
    assert call(sandbox, account, "/v2/account").status_code == 200
    default = alpaca.create_account("live", seed=2, positions=3, activities=20)
    assert call(sandbox, default, "/v2/account").headers["X-Ratelimit-Limit"] == "200"


def test_fault_shapes_are_alpacas(alpaca):
    limited = alpaca.rate_limited_response(2.0)
    assert limited.status == 429 and json.loads(limited.body)["code"] == 42910000
    assert int(limited.headers["X-Ratelimit-Reset"]) >= time.time() + 1
    assert json.loads(alpaca.server_error_response(503).body)["code"] == 50310000


# -- determinism, invariant, advance --------------------------------------------------------------------------
def test_same_seed_same_bytes(sandbox, alpaca):
    one = alpaca.create_account("paper", seed=5, positions=10, activities=300)
    two = alpaca.create_account("paper", seed=5, positions=10, activities=300)
    other = alpaca.create_account("paper", seed=6, positions=10, activities=300)
    for path, params in (("/v2/account/activities", {"direction": "asc"}), ("/v2/positions", {}),
                         ("/v2/orders", {"status": "all", "limit": 500})):
        a, b = call(sandbox, one, path, **params), call(sandbox, two, path, **params)
        assert a.content == b.content
        assert call(sandbox, other, path, **params).content != a.content
    assert one["credentials"] != two["credentials"]


def check_invariant(truth):
    sums = defaultdict(Decimal)
    for t in truth["transactions"]:
        if t["status"] != "canceled" and t["quantity"] is not None:
            sums[t["symbol"]] += Decimal(t["quantity"])
    held = {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    assert {s: q for s, q in sums.items() if q} == held


@pytest.mark.parametrize("positions,activities", [(3, 20), (10, 100), (120, 5000), (0, 30)])
def test_invariant_and_sizes(alpaca, positions, activities):
    account = alpaca.create_account("live", seed=3, positions=positions, activities=activities)
    truth = alpaca.truth(account["account_id"])
    assert len(truth["positions"]) == positions
    assert len(truth["transactions"]) == activities
    assert len({p["symbol"] for p in truth["positions"]}) == positions
    check_invariant(truth)


def test_advance_adds_a_bit_of_everything(sandbox, alpaca, account):
    before_last = all_activities(sandbox, account, "desc")[0]["id"]
    open_before = {o["id"] for o in call(sandbox, account, "/v2/orders", limit=500).json()}
    added = alpaca.advance(account["account_id"])
    new_rows = call(sandbox, account, "/v2/account/activities", direction="asc", page_token=before_last).json()
    assert [r["id"] for r in new_rows] == added["activities"]
    kinds = Counter(r["activity_type"] for r in new_rows)
    assert kinds["FILL"] >= 4 and kinds["DIV"] == 1 and kinds["SPLIT"] == 2 and kinds["CSD"] == 1
    positions = {p["symbol"] for p in call(sandbox, account, "/v2/positions").json()}
    assert added["new_symbol"] in positions and added["closed_symbol"] not in positions
    assert added["split_symbol"] in positions
    open_now = {o["id"] for o in call(sandbox, account, "/v2/orders", limit=500).json()}
    assert set(added["canceled_orders"]) <= open_before and not set(added["canceled_orders"]) & open_now
    canceled = call(sandbox, account, f"/v2/orders/{added['canceled_orders'][0]}").json()
    assert canceled["status"] == "canceled" and canceled["canceled_at"]
    assert len(open_now - open_before) == 2
    check_invariant(alpaca.truth(account["account_id"]))
    only_fills = alpaca.advance(account["account_id"], fills=2)
    assert len(only_fills["activities"]) == 2 and "split_symbol" not in only_fills
    with pytest.raises(TypeError):
        alpaca.advance(account["account_id"], meteor=True)


def test_control_api_creates_and_advances(sandbox):
    control = sandbox.urls["control"]
    body = {"broker": "alpaca", "environment": "live", "seed": 9, "positions": 4, "activities": 40,
            "rate_limit_per_min": 1000}
    created = requests.post(control + "/control/accounts", json=body, timeout=10)
    assert created.status_code == 201
    account = created.json()
    assert set(account["credentials"]) == {"api_key", "api_secret"}
    assert call(sandbox, account, "/v2/account").headers["X-Ratelimit-Limit"] == "1000"
    advanced = requests.post(control + f"/control/accounts/{account['account_id']}/advance", json={"orders": 1},
                             timeout=10)
    assert advanced.status_code == 200 and len(advanced.json()["orders"]) == 1
    truth = requests.get(control + f"/control/accounts/{account['account_id']}/truth", timeout=10).json()
    check_invariant(truth)


def test_the_largest_account_is_generated_whole():
    # how long it takes: benchmarks/sandbox_generation.py
    ledger, _, _, _ = generate(1, 2000, 200_000)
    assert len(ledger.acts) == 200_000 and len(ledger.holdings) == 2000


# -- the minimum a first sync needs ---------------------------------------------------------------
def test_minimum_counts_pages_of_100_activities_and_500_orders(alpaca):
    account = alpaca.create_account("paper", seed=8, positions=10, activities=1000)
    truth = alpaca.truth(account["account_id"])
    minimum = truth["minimum"]
    # positions + account (cash), then pages that end with a short one (empty at 1,000 = 10 x 100)
    assert minimum["detail"] == {"positions": 1, "account": 1, "activities": 11,
                                 "orders": len(truth["orders"]) // 500 + 1}
    assert minimum["requests"] == 14 + len(truth["orders"]) // 500 and minimum["cost"] == minimum["requests"]


def test_a_full_adapter_fetch_makes_at_least_the_minimum_of_requests(sandbox, alpaca):
    """A first sync as backend/sync/pipeline.py runs it (a fresh adapter per step), counted
    by the sandbox: never below the minimum, and not far above it."""
    from backend.brokers.adapters.alpaca import AlpacaAdapter
    from backend.brokers.dtos import Credentials
    from backend.brokers.http import BrokerSession

    account = alpaca.create_account("paper", seed=13, positions=40, activities=3000, rate_limit_per_min=100_000)
    minimum = alpaca.truth(account["account_id"])["minimum"]
    creds = Credentials(**account["credentials"])

    def build() -> AlpacaAdapter:
        session = BrokerSession(broker="alpaca", base_url=sandbox.urls["alpaca-paper"],
                                scope=AlpacaAdapter.rate_scope(creds, "paper"), limiter=None,
                                vendor_errors=AlpacaAdapter.vendor_errors, secrets=creds.secrets(),
                                sleep=lambda seconds: None)
        return AlpacaAdapter(credentials=creds, environment="paper", session=session)

    before = dict(sandbox.stats.get("alpaca-paper", {}))
    build().fetch_positions()
    list(build().fetch_transactions(None))
    list(build().fetch_orders(None, ()))
    after = sandbox.stats["alpaca-paper"]
    made = after["requests"] - before.get("requests", 0)
    assert after["429"] == before.get("429", 0)
    assert minimum["requests"] > 0
    assert minimum["requests"] <= made <= 1.5 * minimum["requests"], (made, minimum)
