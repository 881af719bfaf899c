"""The Coinbase simulator answers like Coinbase: ES256 JWT auth, v3/v2 paging, rate limits
with x-ratelimit-* headers, deterministic accounts whose history adds up to the balances."""
from __future__ import annotations

import secrets
import time
from collections import defaultdict
from decimal import Decimal
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sandbox.base import SimClock
from sandbox.brokers.coinbase import CoinbaseSim
from sandbox.http import Request

V3 = "/api/v3/brokerage"


# -- helpers -----------------------------------------------------------------------------------
def make_jwt(creds: dict, method: str, host: str, path: str, *, ccxt: bool = False, **override) -> str:
    key = serialization.load_pem_private_key(creds["api_secret"].encode(), password=None)
    now = int(time.time())
    uri = f"{method} {host}{path}"
    claims = {"sub": creds["api_key"], "iss": "cdp", "nbf": now, "exp": now + 120, "uri": uri}
    if ccxt:
        claims = {"sub": creds["api_key"], "iss": "coinbase-cloud", "nbf": now, "exp": now + 120, "iat": now,
                  "aud": ["retail_rest_api_proxy"], "uris": [uri]}
    claims.update(override.pop("claims", {}))
    headers = {"kid": override.pop("kid", creds["api_key"]), "nonce": secrets.token_hex()}
    return jwt.encode(claims, key, algorithm="ES256", headers=headers)


def call(sandbox, creds: dict, path: str, params=None, *, token: str | None = None, method: str = "GET"):
    base = sandbox.urls["coinbase"]
    host = urlsplit(base).netloc
    token = token or make_jwt(creds, method, host, path)
    return requests.request(method, base + path, params=params, headers={"Authorization": f"Bearer {token}"},
                            timeout=10)


@pytest.fixture
def account(sandbox):
    return sandbox.sims["coinbase"].create_account("live", seed=11, positions=5, activities=400)


def sums_by_symbol(truth: dict) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for row in truth["transactions"]:
        if row["status"] != "canceled" and row["quantity"] is not None:
            sums[row["symbol"]] += Decimal(row["quantity"])
    return {s: q for s, q in sums.items() if q != 0}


def assert_invariant(sim: CoinbaseSim, account_id: str) -> dict:
    truth = sim.truth(account_id)
    positions = {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    assert sums_by_symbol(truth) == positions
    book = sim.books[account_id]
    for w in book.wallet_list:       # every v2 wallet history adds up to its balance
        assert sum((t.amount for t in w.txs if t.status == "completed"), Decimal(0)) == w.balance
        assert w.balance >= 0
    usd_quoted = {f"fill:{f.entry_id}" for f in book.fills if f.product.endswith("-USD")}
    cash = sum((Decimal(r["amount"]) for r in truth["transactions"] if r["status"] != "canceled"
                and r["amount"] is not None and (r["symbol"] == "" or r["broker_id"] in usd_quoted)), Decimal(0))
    assert cash == Decimal(truth["cash"]["USD"])
    return truth


# -- auth ----------------------------------------------------------------------------------------
def test_official_and_ccxt_jwts_are_accepted(sandbox, account):
    creds = account["credentials"]
    assert creds["api_secret"].startswith("-----BEGIN EC PRIVATE KEY-----")
    assert creds["api_key"].startswith("organizations/") and "/apiKeys/" in creds["api_key"]
    r = call(sandbox, creds, f"{V3}/key_permissions")
    assert r.status_code == 200
    assert r.json() == {"can_view": True, "can_trade": False, "can_transfer": False,
                        "portfolio_uuid": account["broker_account_id"], "portfolio_type": "DEFAULT"}
    host = urlsplit(sandbox.urls["coinbase"]).netloc
    token = make_jwt(creds, "GET", host, "/v2/accounts", ccxt=True)
    assert call(sandbox, creds, "/v2/accounts", token=token).status_code == 200


@pytest.mark.parametrize("case", ["no_header", "other_key", "expired", "too_long", "query_in_uri", "wrong_path",
                                  "wrong_host", "wrong_method", "unknown_kid", "bad_issuer", "hs256"])
def test_bad_jwts_get_plain_401(sandbox, account, case):
    sim = sandbox.sims["coinbase"]
    creds = account["credentials"]
    host = urlsplit(sandbox.urls["coinbase"]).netloc
    path = f"{V3}/accounts"
    now = int(time.time())
    tokens = {
        "other_key": lambda: make_jwt({**creds, "api_secret": sim.create_account(
            "live", seed=99, positions=1, activities=2)["credentials"]["api_secret"]}, "GET", host, path),
        "expired": lambda: make_jwt(creds, "GET", host, path, claims={"nbf": now - 300, "exp": now - 5}),
        "too_long": lambda: make_jwt(creds, "GET", host, path, claims={"exp": now + 600}),
        "query_in_uri": lambda: make_jwt(creds, "GET", host, path + "?limit=2"),
        "wrong_path": lambda: make_jwt(creds, "GET", host, f"{V3}/portfolios"),
        "wrong_host": lambda: make_jwt(creds, "GET", "api.coinbase.com", path),
        "wrong_method": lambda: make_jwt(creds, "POST", host, path),
        "unknown_kid": lambda: make_jwt(creds, "GET", host, path, kid="organizations/x/apiKeys/y",
                                        claims={"sub": "organizations/x/apiKeys/y"}),
        "bad_issuer": lambda: make_jwt(creds, "GET", host, path, claims={"iss": "someone"}),
        "hs256": lambda: jwt.encode({"sub": creds["api_key"]}, "secret-secret-secret-secret-1234", algorithm="HS256",
                                    headers={"kid": creds["api_key"], "nonce": "ab"}),
    }
    if case == "no_header":
        r = requests.get(sandbox.urls["coinbase"] + path, timeout=10)
    else:
        r = call(sandbox, creds, path, params={"limit": 2} if case == "query_in_uri" else None, token=tokens[case]())
    assert r.status_code == 401
    assert r.text == "Unauthorized"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_revoked_key_gets_the_same_401(sandbox, account):
    sandbox.sims["coinbase"].revoke(account["account_id"])
    r = call(sandbox, account["credentials"], f"{V3}/accounts")
    assert (r.status_code, r.text) == (401, "Unauthorized")


def test_key_without_view_scope_gets_403_missing_scopes(sandbox):
    acct = sandbox.sims["coinbase"].create_account("live", seed=12, positions=2, activities=10, can_view=False,
                                                   can_trade=True, can_transfer=True)
    assert call(sandbox, acct["credentials"], f"{V3}/key_permissions").json()["can_trade"] is True
    r = call(sandbox, acct["credentials"], f"{V3}/accounts")
    assert r.status_code == 403 and '"error_details":"Missing required scopes"' in r.text
    r = call(sandbox, acct["credentials"], "/v2/accounts")
    assert r.status_code == 403 and r.json()["errors"][0]["id"] == "invalid_scope"


# -- v3 paging ------------------------------------------------------------------------------------
def test_v3_accounts_page_with_cursor_has_next_and_size(sandbox):
    acct = sandbox.sims["coinbase"].create_account("live", seed=13, positions=60, activities=300)
    creds = acct["credentials"]
    first = call(sandbox, creds, f"{V3}/accounts").json()
    assert first["size"] == 49 and first["has_next"] is True and isinstance(first["size"], int)
    rest = call(sandbox, creds, f"{V3}/accounts", {"cursor": first["cursor"], "limit": 500}).json()
    assert rest["has_next"] is False and rest["cursor"] == ""
    uuids = [a["uuid"] for a in first["accounts"] + rest["accounts"]]
    assert len(uuids) == len(set(uuids)) == len(sandbox.sims["coinbase"].books[acct["account_id"]].wallet_list)
    one = first["accounts"][0]
    assert set(one) >= {"uuid", "currency", "available_balance", "hold", "type", "retail_portfolio_id"}
    assert call(sandbox, creds, f"{V3}/accounts/{one['uuid']}").json()["account"] == one


def test_fills_newest_first_with_empty_cursor_when_done(sandbox, account):
    creds = account["credentials"]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        body = call(sandbox, creds, f"{V3}/orders/historical/fills", params).json()
        seen += body["fills"]
        pages += 1
        cursor = body["cursor"]
        if cursor == "":
            break
    times = [f["sequence_timestamp"] for f in seen]
    assert times == sorted(times, reverse=True) and pages > 1
    assert len({f["entry_id"] for f in seen}) == len(sandbox.sims["coinbase"].books[account["account_id"]].fills)
    f = seen[0]
    assert isinstance(f["size_in_quote"], bool) and "fillSource" in f and isinstance(f["price"], str)
    # start_sequence_timestamp keeps fills strictly after it; product_ids is a repeated key
    mid = times[len(times) // 2]
    after = call(sandbox, creds, f"{V3}/orders/historical/fills",
                 {"start_sequence_timestamp": mid, "limit": 250}).json()["fills"]
    assert [x["sequence_timestamp"] for x in after] == [t for t in times if t > mid][:250]
    both = call(sandbox, creds, f"{V3}/orders/historical/fills",
                [("product_ids", "BTC-USD"), ("product_ids", "ETH-USD"), ("limit", "250")]).json()["fills"]
    assert both and {x["product_id"] for x in both} <= {"BTC-USD", "ETH-USD"}
    assert len(both) == sum(1 for x in seen if x["product_id"] in ("BTC-USD", "ETH-USD"))


def test_orders_batch_filters_and_pages(sandbox, account):
    creds = account["credentials"]
    sim = sandbox.sims["coinbase"]
    book = sim.books[account["account_id"]]
    body = call(sandbox, creds, f"{V3}/orders/historical/batch", {"limit": 50}).json()
    assert body["has_next"] is True and body["cursor"] and len(body["orders"]) == 50
    assert isinstance(body["orders"][0]["number_of_fills"], str)
    open_orders = call(sandbox, creds, f"{V3}/orders/historical/batch", {"order_status": "OPEN"}).json()["orders"]
    assert {o["order_id"] for o in open_orders} == set(book.open_orders)
    ids = [book.orders[0].order_id, book.orders[3].order_id]
    by_id = call(sandbox, creds, f"{V3}/orders/historical/batch", [("order_ids", i) for i in ids]).json()["orders"]
    assert sorted(o["order_id"] for o in by_id) == sorted(ids)
    one = call(sandbox, creds, f"{V3}/orders/historical/{ids[0]}").json()["order"]
    assert one["order_id"] == ids[0] and one["status"] in ("FILLED", "CANCELLED", "EXPIRED", "OPEN")
    bad = call(sandbox, creds, f"{V3}/orders/historical/batch", {"start_date": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_ARGUMENT"


def test_products_have_prices(sandbox, account):
    creds = account["credentials"]
    body = call(sandbox, creds, f"{V3}/products", [("product_ids", "BTC-USD"), ("product_ids", "NOPE-USD")]).json()
    assert [p["product_id"] for p in body["products"]] == ["BTC-USD"] and Decimal(body["products"][0]["price"]) > 0
    assert call(sandbox, creds, f"{V3}/products/BTC-USD").json()["price"] == body["products"][0]["price"]
    assert call(sandbox, creds, f"{V3}/products/NOPE-USD").status_code == 404


# -- v2 paging ------------------------------------------------------------------------------------
def test_v2_transactions_page_both_ways(sandbox, account):
    creds = account["credentials"]
    book = sandbox.sims["coinbase"].books[account["account_id"]]
    usd = book.wallets["USD"]
    path = f"/v2/accounts/{usd.v2_id}/transactions"
    first = call(sandbox, creds, path).json()
    assert len(first["data"]) == 25 and first["pagination"]["order"] == "desc"
    assert first["data"][0]["id"] == usd.txs[-1].id                       # newest first by default
    assert first["pagination"]["next_uri"].startswith(path + "?")
    asc, after = [], None
    while True:
        params = {"order": "asc", "limit": 1000, **({"starting_after": after} if after else {})}
        body = call(sandbox, creds, path, params)
        page = body.json()
        assert page["pagination"]["limit"] == 100                            # clamped to the max
        asc += page["data"]
        after = page["pagination"]["next_starting_after"]
        if not after:
            assert page["pagination"]["next_uri"] is None
            break
    assert [t["id"] for t in asc] == [t.id for t in usd.txs]
    assert sum(Decimal(t["amount"]["amount"]) for t in asc if t["status"] == "completed") == usd.balance
    assert {t["type"] for t in asc} >= {"fiat_deposit", "advanced_trade_fill"}
    empty = call(sandbox, creds, path, {"order": "asc", "starting_after": usd.txs[-1].id}).json()
    assert empty["data"] == [] and empty["pagination"]["next_uri"] is None
    accounts = call(sandbox, creds, "/v2/accounts", {"limit": 100}).json()
    assert {a["id"] for a in accounts["data"]} == {w.v2_id for w in book.wallet_list}
    assert call(sandbox, creds, "/v2/accounts/nope/transactions").json()["errors"][0]["id"] == "not_found"


# -- rate limits ----------------------------------------------------------------------------------
def _direct(sim: CoinbaseSim, creds: dict, path: str) -> object:
    host = "127.0.0.1:1"
    token = make_jwt(creds, "GET", host, path)
    return sim.handle("live", Request("GET", path, headers={"authorization": f"Bearer {token}"}, host=host))


def test_v3_limit_is_30_per_second_per_key_with_headers():
    sim = CoinbaseSim(SimClock())
    creds = sim.create_account("live", seed=1, positions=2, activities=10)["credentials"]
    sim.wall = lambda: 1_000_000.25            # freeze the fixed 1-second window
    answers = [_direct(sim, creds, f"{V3}/key_permissions") for _ in range(31)]
    assert [a.status for a in answers[:30]] == [200] * 30
    assert answers[0].headers["x-ratelimit-limit"] == "30" and answers[0].headers["x-ratelimit-remaining"] == "29"
    assert answers[0].headers["x-ratelimit-reset"] == "0.750"
    limited = answers[30]
    assert limited.status == 429 and limited.headers["x-ratelimit-remaining"] == "0"
    assert b'"error":"RESOURCE_EXHAUSTED"' in limited.body
    assert _direct(sim, creds, "/v2/accounts").status == 200                   # v2 has its own budget
    other = sim.create_account("live", seed=2, positions=2, activities=10)["credentials"]
    assert _direct(sim, other, f"{V3}/key_permissions").status == 200           # per key
    sim.wall = lambda: 1_000_001.25
    assert _direct(sim, creds, f"{V3}/key_permissions").status == 200           # next window


def test_v2_limit_is_hourly_with_v2_error_body():
    sim = CoinbaseSim(SimClock())
    creds = sim.create_account("live", seed=1, positions=2, activities=10)["credentials"]
    sim.limits["v2"] = (3, 3600.0)              # the real budget is 10,000 per hour
    sim.wall = lambda: 7200.0 + 600
    answers = [_direct(sim, creds, "/v2/accounts") for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert answers[3].body == b'{"errors":[{"id":"rate_limit_exceeded","message":"Too many requests"}]}'
    assert answers[3].headers["x-ratelimit-reset"] == "3000.000"
    assert sim.limits["v3"] == (30, 1.0)


def test_rate_limits_none_account_is_never_refused():
    sim = CoinbaseSim(SimClock())
    free = sim.create_account("live", seed=1, positions=2, activities=10, rate_limits="none")["credentials"]
    held = sim.create_account("live", seed=2, positions=2, activities=10)["credentials"]
    sim.limits["v3"], sim.limits["v2"] = (2, 1.0), (2, 3600.0)
    sim.wall = lambda: 1_000_000.25
    for path in (f"{V3}/key_permissions", "/v2/accounts"):
        assert [_direct(sim, free, path).status for _ in range(5)] == [200] * 5
        assert [_direct(sim, held, path).status for _ in range(3)] == [200, 200, 429]   # others keep the limits
    answer = _direct(sim, free, f"{V3}/key_permissions")
    assert answer.headers["x-ratelimit-limit"] == "1000000000"
    with pytest.raises(ValueError):
        sim.create_account("live", seed=3, positions=1, activities=5, rate_limits="off")


def test_fault_shapes():
    sim = CoinbaseSim(SimClock())
    limited = sim.rate_limited_response(7)
    assert limited.status == 429 and limited.headers["x-ratelimit-reset"] == "7.000"
    assert sim.server_error_response(503).status == 503


# -- generation -----------------------------------------------------------------------------------
def test_same_seed_same_account_byte_for_byte(sandbox):
    a, b = CoinbaseSim(SimClock()), CoinbaseSim(SimClock())
    ra = a.create_account("live", seed=21, positions=30, activities=1000)
    rb = b.create_account("live", seed=21, positions=30, activities=1000)
    assert ra == rb
    assert a.truth(ra["account_id"]) == b.truth(rb["account_id"])
    assert a.create_account("live", seed=21, positions=30, activities=1000)["credentials"] != ra["credentials"]


@pytest.mark.parametrize("positions,activities", [(3, 20), (0, 15), (1, 5), (40, 3000)])
def test_history_adds_up_to_balances(positions, activities):
    sim = CoinbaseSim(SimClock())
    acct = sim.create_account("live", seed=positions + activities, positions=positions, activities=activities)
    truth = assert_invariant(sim, acct["account_id"])
    assert len(truth["positions"]) == positions
    assert len(truth["transactions"]) >= activities
    if activities >= 1000:
        types = {r["type"] for r in truth["transactions"]}
        assert types >= {"trade", "deposit", "withdrawal", "transfer", "reward"}
        assert {o["status"] for o in truth["orders"]} >= {"open", "filled", "canceled", "expired"}
        kinds = {t.type for w in sim.books[acct["account_id"]].wallet_list for t in w.txs}
        assert kinds >= {"send", "receive", "fiat_deposit", "fiat_withdrawal", "earn_payout", "trade",
                         "staking_transfer", "advanced_trade_fill"}
        assert {f.product for f in sim.books[acct["account_id"]].fills} >= {"ETH-BTC", "BTC-USDC", "SOL-USD"}


def test_advance_adds_a_bit_of_everything_and_keeps_the_invariant():
    sim = CoinbaseSim(SimClock())
    acct = sim.create_account("live", seed=31, positions=8, activities=200)
    before = sim.truth(acct["account_id"])
    open_before = {o["broker_id"] for o in before["orders"] if o["status"] == "open"}
    added = sim.advance(acct["account_id"])
    after = assert_invariant(sim, acct["account_id"])
    assert len(after["positions"]) == 7 and added["closed_position"]
    assert added["closed_position"] not in {p["symbol"] for p in after["positions"]}
    new = {r["broker_id"] for r in after["transactions"]} - {r["broker_id"] for r in before["transactions"]}
    assert new == set(added["transactions"])
    types = {r["type"] for r in after["transactions"] if r["broker_id"] in new}
    assert types >= {"trade", "reward", "deposit"}
    statuses = {o["broker_id"]: o["status"] for o in after["orders"]}
    assert added["canceled_orders"] and set(added["canceled_orders"]) <= open_before
    assert all(statuses[i] == "canceled" for i in added["canceled_orders"])
    assert sum(1 for i in added["orders"] if statuses[i] == "open") == 2
    book = sim.books[acct["account_id"]]
    assert book.fills[-1].t > int(sim.clock.now() * 1_000_000) - 60_000_000     # stamped at the sim clock
    sim.advance(acct["account_id"], fills=3)
    assert_invariant(sim, acct["account_id"])


def test_the_largest_account_is_generated_whole():
    # how long it takes: benchmarks/sandbox_generation.py
    sim = CoinbaseSim(SimClock())
    acct = sim.create_account("live", seed=1, positions=2000, activities=200_000)
    truth = sim.truth(acct["account_id"])
    assert len(truth["positions"]) == 2000 and len(truth["transactions"]) >= 200_000


# -- the minimum a first sync needs ---------------------------------------------------------------
def test_minimum_counts_every_page_a_sync_must_read():
    sim = CoinbaseSim(SimClock())
    acct = sim.create_account("live", seed=5, positions=12, activities=1200)
    book = sim.books[acct["account_id"]]
    minimum = sim.truth(acct["account_id"])["minimum"]
    pages = lambda n, size: max(1, -(-n // size))       # noqa: E731 - lists say whether more follows
    v2 = pages(len(book.wallet_list), 100) + sum(pages(len(w.txs), 100) for w in book.wallet_list)
    assert minimum["v2"] == v2
    assert minimum["requests"] == (pages(len(book.wallet_list), 250) + pages(len(book.fills), 250)
                                   + pages(len(book.orders), 1000) + v2)
    assert minimum["cost"] == float(minimum["requests"])
    # the advanced_trade_fill twins are paged through although the truth leaves them out
    assert sum(len(w.txs) for w in book.wallet_list) > sum(1 for t in sim.truth(acct["account_id"])["transactions"]
                                                           if t["broker_id"].startswith("v2:"))


def test_a_full_adapter_fetch_makes_at_least_the_minimum_of_requests(sandbox):
    """A first sync as backend/sync/pipeline.py runs it (a fresh adapter per step), counted
    by the sandbox: never below the minimum, and not far above it."""
    from backend.brokers.adapters.coinbase import CoinbaseAdapter
    from backend.brokers.dtos import Credentials
    from backend.brokers.http import BrokerSession

    sim = sandbox.sims["coinbase"]
    acct = sim.create_account("live", seed=6, positions=40, activities=3000, rate_limits="none")
    minimum = sim.truth(acct["account_id"])["minimum"]
    creds = Credentials(**acct["credentials"])

    def build() -> CoinbaseAdapter:
        session = BrokerSession(broker="coinbase", base_url=sandbox.urls["coinbase"],
                                scope=CoinbaseAdapter.rate_scope(creds, "live"), limiter=None,
                                vendor_errors=CoinbaseAdapter.vendor_errors, secrets=creds.secrets(),
                                sleep=lambda seconds: None)
        return CoinbaseAdapter(credentials=creds, environment="live", session=session)

    before = dict(sandbox.stats.get("coinbase", {}))
    build().fetch_positions()
    list(build().fetch_transactions(None))
    list(build().fetch_orders(None, ()))
    after = sandbox.stats["coinbase"]
    made = after["requests"] - before.get("requests", 0)
    assert after["429"] == before.get("429", 0)
    assert minimum["requests"] > 0
    assert minimum["requests"] <= made <= 1.5 * minimum["requests"], (made, minimum)
