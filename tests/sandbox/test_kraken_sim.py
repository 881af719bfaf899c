"""The simulated Kraken answers as docs/brokers.md §4 says Kraken does: signed POSTs,
errors as strings in an HTTP 200, newest-first pages of 50 with `count`, a per-key call
counter, and a deterministic account whose balances are the sum of its ledger."""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests

from sandbox.base import SimClock
from sandbox.brokers.kraken import KrakenSim
from sandbox.brokers.kraken.api import sign as sim_sign

DOC_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
DOC_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_SIGN = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
_nonces = itertools.count(int(time.time() * 1_000_000))


def doc_sign(secret: str, path: str, nonce: str, body: str) -> str:
    """The documented recipe, written out again here so the simulator is checked against it."""
    message = path.encode() + hashlib.sha256((nonce + body).encode()).digest()
    return base64.b64encode(hmac.new(base64.b64decode(secret), message, hashlib.sha512).digest()).decode()


def call(sandbox, creds: dict, method: str, fields: dict | None = None, *, nonce: int | None = None,
         as_json: bool = False, sign_with: str | None = None) -> tuple[requests.Response, dict]:
    nonce = nonce or next(_nonces)
    fields = {"nonce": nonce, **(fields or {})}
    body = json.dumps(fields) if as_json else urlencode(fields)
    path = f"/0/private/{method}"
    headers = {"API-Key": creds["api_key"], "API-Sign": doc_sign(sign_with or creds["api_secret"], path, str(nonce), body),
               "Content-Type": "application/json" if as_json else "application/x-www-form-urlencoded"}
    response = requests.post(sandbox.urls["kraken"] + path, data=body.encode(), headers=headers, timeout=10)
    return response, response.json()


def new_account(sandbox, **spec) -> dict:
    spec = {"seed": 3, "positions": 4, "activities": 160, **spec}
    return sandbox.sims["kraken"].create_account("live", **spec)


def walk(sandbox, creds, method: str, key: str, **fields) -> list[str]:
    ids, ofs = [], 0
    while True:
        _, body = call(sandbox, creds, method, {**fields, "ofs": ofs})
        page = list(body["result"][key])
        ids += page
        ofs += len(page)
        if not page or ofs >= body["result"]["count"]:
            return ids


def test_signature_matches_the_documented_vector():
    assert doc_sign(DOC_SECRET, "/0/private/AddOrder", "1616492376594", DOC_BODY) == DOC_SIGN
    assert sim_sign(base64.b64decode(DOC_SECRET), "/0/private/AddOrder", "1616492376594", DOC_BODY.encode()) == DOC_SIGN


def test_form_and_json_bodies_are_both_accepted(sandbox):
    account = new_account(sandbox)
    creds = account["credentials"]
    assert len(base64.b64decode(creds["api_secret"])) == 64
    form_response, form = call(sandbox, creds, "Balance")
    _, as_json = call(sandbox, creds, "Balance", as_json=True)
    assert form_response.status_code == 200 and form["error"] == [] and form == as_json
    assert {"ZUSD", "XXBT", "XETH"} <= set(form["result"])


@pytest.mark.parametrize("case, expected", [
    ("bad_key", "EAPI:Invalid key"), ("bad_signature", "EAPI:Invalid signature"),
    ("stale_nonce", "EAPI:Invalid nonce"), ("revoked", "EAPI:Invalid key"),
    ("no_permission", "EGeneral:Permission denied"),
])
def test_auth_failures_answer_200_with_kraken_errors(sandbox, case, expected):
    account = new_account(sandbox, permissions=["query_funds"] if case == "no_permission" else "read_only")
    creds = dict(account["credentials"])
    method, kwargs = "Balance", {}
    if case == "bad_key":
        creds["api_key"] = "A" * 56
    elif case == "bad_signature":
        kwargs["sign_with"] = base64.b64encode(b"x" * 64).decode()
    elif case == "stale_nonce":
        nonce = next(_nonces)
        call(sandbox, creds, "Balance", nonce=nonce)
        kwargs["nonce"] = nonce
    elif case == "revoked":
        sandbox.sims["kraken"].revoke(account["account_id"])
    else:
        method = "Ledgers"
    response, body = call(sandbox, creds, method, **kwargs)
    assert response.status_code == 200
    assert body == {"error": [expected]}


def test_ledger_pages_are_newest_first_with_count(sandbox):
    account = new_account(sandbox)
    creds = account["credentials"]
    truth = sandbox.sims["kraken"].truth(account["account_id"])
    _, first = call(sandbox, creds, "Ledgers")
    rows = first["result"]["ledger"]
    assert first["result"]["count"] == len(truth["transactions"]) and len(rows) == 50
    times = [row["time"] for row in rows.values()]
    assert times == sorted(times, reverse=True) and all(isinstance(t, float) for t in times)
    row = next(iter(rows.values()))
    assert set(row) == {"refid", "time", "type", "subtype", "aclass", "asset", "amount", "fee", "balance"}
    ids = walk(sandbox, creds, "Ledgers", "ledger")
    assert sorted(ids) == sorted(t["broker_id"] for t in truth["transactions"]) and len(set(ids)) == len(ids)


def test_ledger_start_is_exclusive_and_end_inclusive_by_time_and_id(sandbox):
    account = new_account(sandbox)
    creds = account["credentials"]
    ids = walk(sandbox, creds, "Ledgers", "ledger")[::-1]                  # oldest first
    _, body = call(sandbox, creds, "QueryLedgers", {"id": f"{ids[10]},{ids[20]}"})
    t10 = Decimal(str(body["result"][ids[10]]["time"]))
    _, by_id = call(sandbox, creds, "Ledgers", {"start": ids[10], "end": ids[20]})
    assert by_id["result"]["count"] == 10 and list(by_id["result"]["ledger"])[0] == ids[20]
    _, by_time = call(sandbox, creds, "Ledgers", {"start": str(t10)})
    assert ids[10] not in by_time["result"]["ledger"]
    _, inclusive = call(sandbox, creds, "Ledgers", {"end": str(t10)})
    assert ids[10] in inclusive["result"]["ledger"]


def test_ledger_filters_by_asset_and_type(sandbox):
    account = new_account(sandbox)
    creds = account["credentials"]
    _, xbt = call(sandbox, creds, "Ledgers", {"asset": "XBT"})          # altnames work too
    assert {r["asset"] for r in xbt["result"]["ledger"].values()} == {"XXBT"}
    _, deposits = call(sandbox, creds, "Ledgers", {"type": "deposit"})
    assert {r["type"] for r in deposits["result"]["ledger"].values()} == {"deposit"}
    _, bad = call(sandbox, creds, "Ledgers", {"type": "nonsense"})
    assert bad == {"error": ["EGeneral:Invalid arguments"]}


def test_each_trade_has_one_ledger_row_per_asset_with_the_fee_on_the_quote(sandbox):
    account = new_account(sandbox)
    creds = account["credentials"]
    _, body = call(sandbox, creds, "TradesHistory", {"ledgers": "true"})
    txid, trade = next(iter(body["result"]["trades"].items()))
    assert isinstance(trade["trade_id"], int) and isinstance(trade["time"], float) and isinstance(trade["maker"], bool)
    assert all(isinstance(trade[k], str) for k in ("price", "cost", "fee", "vol"))
    pairs = call(sandbox, creds, "QueryLedgers", {"id": ",".join(trade["ledgers"])})[1]["result"]
    assert {row["refid"] for row in pairs.values()} == {txid} and len(pairs) == 2
    _, info = requests.get(sandbox.urls["kraken"] + "/0/public/AssetPairs", params={"pair": trade["pair"]}).json().values()
    pair = info[trade["pair"]]
    by_asset = {row["asset"]: row for row in pairs.values()}
    assert Decimal(by_asset[pair["quote"]]["fee"]) == Decimal(trade["fee"]) and Decimal(by_asset[pair["base"]]["fee"]) == 0


def test_orders_use_altnames_and_page_like_the_ledger(sandbox):
    account = new_account(sandbox)
    creds = account["credentials"]
    sim = sandbox.sims["kraken"]
    _, closed = call(sandbox, creds, "ClosedOrders", {"closetime": "close"})
    order = next(iter(closed["result"]["closed"].values()))
    assert "/" not in order["descr"]["pair"] and not order["descr"]["pair"].startswith("XXBTZ")
    assert {o["status"] for o in closed["result"]["closed"].values()} <= {"closed", "canceled", "expired"}
    ids = walk(sandbox, creds, "ClosedOrders", "closed", closetime="close")
    _, opened = call(sandbox, creds, "OpenOrders")
    truth = {o["broker_id"] for o in sim.truth(account["account_id"])["orders"]}
    assert set(ids) | set(opened["result"]["open"]) == truth
    _, queried = call(sandbox, creds, "QueryOrders", {"txid": ",".join(list(opened["result"]["open"])[:2])})
    assert set(queried["result"]) == set(list(opened["result"]["open"])[:2])


def test_call_counter_refuses_past_the_tier_max_and_decays(sandbox):
    account = new_account(sandbox, tier="starter")
    creds = account["credentials"]
    sim = sandbox.sims["kraken"]
    answers = [call(sandbox, creds, "Ledgers")[1] for _ in range(8)]      # cost 2 each: 7 fit in 15
    assert all(a["error"] == [] for a in answers[:7])
    response, refused = call(sandbox, creds, "Ledgers")
    assert refused == {"error": ["EAPI:Rate limit exceeded"]} and response.status_code == 200
    assert not any(h.lower().startswith(("x-ratelimit", "retry-after")) for h in response.headers)
    assert call(sandbox, creds, "Balance")[1]["error"] == []               # cost 1 still fits
    with sim.lock:
        sim.counters[creds["api_key"]][1] -= 7                             # 7 s ago: 2.3 units decayed
    assert call(sandbox, creds, "Ledgers")[1]["error"] == []


def test_public_endpoints_and_their_per_ip_limit(sandbox):
    sim = sandbox.sims["kraken"]
    sim.reset_limits()
    base = sandbox.urls["kraken"] + "/0/public/"
    assets = requests.get(base + "Assets").json()["result"]
    assert assets["XXBT"]["altname"] == "XBT" and assets["ZUSD"]["decimals"] == 4 and "DOT.S" in assets
    pairs = requests.get(base + "AssetPairs", params={"pair": "XBTUSD"}).json()["result"]
    assert pairs["XXBTZUSD"]["base"] == "XXBT" and pairs["XXBTZUSD"]["quote"] == "ZUSD"
    ticker = requests.get(base + "Ticker", params={"pair": "XXBTZUSD,DOTUSD"}).json()["result"]
    assert set(ticker) == {"XXBTZUSD", "DOTUSD"} and isinstance(ticker["DOTUSD"]["c"][0], str)
    assert requests.get(base + "Ticker", params={"pair": "NOPE"}).json() == {"error": ["EQuery:Unknown asset pair"]}
    answers = [requests.get(base + "Time").json() for _ in range(40)]
    assert {"error": ["EGeneral:Too many requests"]} in answers
    sim.reset_limits()


def test_same_seed_same_account_byte_for_byte(sandbox):
    one = new_account(sandbox, seed=42)
    two = new_account(sandbox, seed=42)
    sim = sandbox.sims["kraken"]
    truths = [sim.truth(a["account_id"]) for a in (one, two)]
    for truth in truths:
        truth.pop("broker_account_id")
    assert truths[0] == truths[1]
    pages = [call(sandbox, a["credentials"], "Ledgers", {"ofs": 50})[0].content for a in (one, two)]
    assert pages[0] == pages[1]
    other = new_account(sandbox, seed=43)
    assert sim.truth(other["account_id"])["transactions"] != truths[0]["transactions"]


def _sums(truth: dict) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for t in truth["transactions"]:
        if t["symbol"] and t["status"] != "canceled":
            sums[t["symbol"]] = sums.get(t["symbol"], Decimal(0)) + Decimal(t["quantity"])
    return {s: q for s, q in sums.items() if q}


@pytest.mark.parametrize("positions, activities", [(3, 20), (12, 400), (60, 3000)])
def test_positions_equal_the_sum_of_their_transactions(sandbox, positions, activities):
    account = new_account(sandbox, seed=positions, positions=positions, activities=activities)
    truth = sandbox.sims["kraken"].truth(account["account_id"])
    assert len(truth["positions"]) == positions
    assert activities <= len(truth["transactions"]) <= activities + 4
    assert {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]} == _sums(truth)
    _, balances = call(sandbox, account["credentials"], "Balance")
    cash = {"ZUSD": "USD", "ZEUR": "EUR"}
    assert {cash[c]: v for c, v in balances["result"].items() if c in cash} == truth["cash"]


def test_advance_adds_a_bit_of_everything_and_keeps_the_invariant(sandbox):
    account = new_account(sandbox, seed=8, positions=6, activities=200)
    sim = sandbox.sims["kraken"]
    before = sim.truth(account["account_id"])
    added = sim.advance(account["account_id"])
    after = sim.truth(account["account_id"])
    new_ids = {t["broker_id"] for t in after["transactions"]} - {t["broker_id"] for t in before["transactions"]}
    assert new_ids == set(added["ledger_ids"])
    kinds = {t["type"] for t in after["transactions"] if t["broker_id"] in new_ids}
    assert {"deposit", "trade", "reward"} <= kinds
    assert added["closed_position"] and added["closed_position"] not in {p["symbol"] for p in after["positions"]}
    assert len(after["positions"]) == len(before["positions"]) - 1
    assert {p["symbol"]: Decimal(p["quantity"]) for p in after["positions"]} == _sums(after)
    statuses = {o["broker_id"]: o["status"] for o in after["orders"]}
    assert all(statuses[i] == "open" for i in added["new_open_order_ids"])
    assert all(statuses[i] == "canceled" for i in added["canceled_order_ids"])
    _, ledger = call(sandbox, account["credentials"], "Ledgers")
    assert set(added["ledger_ids"]) <= set(ledger["result"]["ledger"])      # newest first: on page one


def test_advance_rejects_unknown_keys(sandbox):
    account = new_account(sandbox)
    with pytest.raises(ValueError):
        sandbox.sims["kraken"].advance(account["account_id"], teleport=True)


def test_error_shapes_for_fault_injection(sandbox):
    sim = sandbox.sims["kraken"]
    assert json.loads(sim.rate_limited_response(3).body) == {"error": ["EAPI:Rate limit exceeded"]}
    assert json.loads(sim.server_error_response(503).body) == {"error": ["EService:Unavailable"]}
    assert sim.server_error_response(520).headers["Content-Type"] == "text/html"


def test_the_largest_account_is_generated_whole_and_paged_deep_in_its_history():
    # how long generating and a deep page take: benchmarks/sandbox_generation.py
    sim = KrakenSim(SimClock())
    account = sim.create_account("live", seed=1, positions=2000, activities=200_000)
    a = sim.accounts[account["account_id"]]
    assert len(a.ledger) >= 200_000
    from sandbox.brokers.kraken.api import ledgers
    page = ledgers(a, {"ofs": "150000", "end": a.ledger.items[-1].id})
    assert len(page["ledger"]) == 50 and page["count"] == len(a.ledger)


# -- the minimum a first sync needs ---------------------------------------------------------------
def test_minimum_counts_pages_of_50_and_their_costs(sandbox):
    account = new_account(sandbox, positions=8, activities=600)
    a = sandbox.sims["kraken"].accounts[account["account_id"]]
    minimum = sandbox.sims["kraken"].truth(account["account_id"])["minimum"]
    pages = lambda n: max(1, -(-n // 50))      # noqa: E731 - `count` tells where the list ends
    assert minimum["detail"] == {"balance": 1, "ledgers": pages(len(a.ledger)), "trades_history": pages(len(a.trades)),
                                 "closed_orders": pages(len(a.closed)), "open_orders": 1}
    assert minimum["requests"] == sum(minimum["detail"].values())
    # Ledgers and TradesHistory cost 2 on the call counter, the others 1
    detail = minimum["detail"]
    assert minimum["cost"] == 2 + 2 * (detail["ledgers"] + detail["trades_history"]) + detail["closed_orders"]
    empty = new_account(sandbox, positions=0, activities=0)
    assert sandbox.sims["kraken"].truth(empty["account_id"])["minimum"]["requests"] >= 5


def test_a_full_adapter_fetch_makes_at_least_the_minimum_of_requests(sandbox):
    """A first sync as backend/sync/pipeline.py runs it (a fresh adapter per step), counted
    by the sandbox: never below the minimum, and not far above it. Public calls (Assets,
    AssetPairs, Ticker) answer on the same host and are counted too."""
    from backend.brokers.adapters.kraken import KrakenAdapter
    from backend.brokers.dtos import Credentials
    from backend.brokers.http import BrokerSession
    from backend.brokers.nonce import LocalNonceSource

    sim = sandbox.sims["kraken"]
    sim.reset_limits()                          # public calls share one per-IP budget across tests
    account = new_account(sandbox, seed=15, positions=40, activities=3000, tier="none")
    minimum = sim.truth(account["account_id"])["minimum"]
    creds = Credentials(**account["credentials"])
    nonces = LocalNonceSource()

    def build() -> KrakenAdapter:
        session = BrokerSession(broker="kraken", base_url=sandbox.urls["kraken"],
                                scope=KrakenAdapter.rate_scope(creds, "live"), limiter=None,
                                vendor_errors=KrakenAdapter.vendor_errors, secrets=creds.secrets(),
                                sleep=lambda seconds: None)
        return KrakenAdapter(credentials=creds, environment="live", session=session, nonces=nonces)

    before = sandbox.stats.get("kraken", {}).get("requests", 0)
    refused = dict(sim.error_counts)
    build().fetch_positions()
    list(build().fetch_transactions(None))
    list(build().fetch_orders(None, ()))
    made = sandbox.stats["kraken"]["requests"] - before
    assert dict(sim.error_counts) == refused             # nothing refused: every request was a real one
    assert minimum["requests"] > 0 and minimum["cost"] > 0
    assert minimum["requests"] <= made <= 1.5 * minimum["requests"], (made, minimum)
