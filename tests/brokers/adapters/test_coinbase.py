"""CoinbaseAdapter against the running sandbox over real HTTP, plus parsing of documented
payloads and the vendor error table."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jwt
import pytest
import requests

from backend.brokers.adapters.coinbase import CoinbaseAdapter
from backend.brokers.adapters.coinbase import adapter as adapter_module
from backend.brokers.adapters.coinbase import parse
from backend.brokers.adapters.coinbase.auth import JwtSigner
from backend.brokers.dtos import Credentials, TransactionType
from backend.brokers.errors import AuthError, PermanentError, RateLimited, TransientError
from backend.brokers.http import BrokerSession
from sandbox.faults import FaultPlan

FIXTURES = Path(__file__).parent.parent / "fixtures" / "coinbase"


def build(sandbox, credentials: dict) -> CoinbaseAdapter:
    creds = Credentials(**credentials)
    session = BrokerSession(broker="coinbase", base_url=sandbox.urls["coinbase"],
                            scope=CoinbaseAdapter.rate_scope(creds, "live"), limiter=None,
                            vendor_errors=CoinbaseAdapter.vendor_errors, secrets=creds.secrets(),
                            sleep=lambda seconds: None)
    return CoinbaseAdapter(credentials=creds, environment="live", session=session)


@pytest.fixture(scope="module")
def synced(sandbox_server):
    """One account fully fetched once; tests that change it make their own."""
    sim = sandbox_server.sims["coinbase"]
    account = sim.create_account("live", seed=41, positions=12, activities=1200)
    adapter = build(sandbox_server, account["credentials"])
    tx_pages = list(adapter.fetch_transactions(None))
    order_pages = list(adapter.fetch_orders(None))
    return {"sim": sim, "account": account, "adapter": adapter, "tx_pages": tx_pages, "order_pages": order_pages}


def row_of(t) -> dict:
    return {"broker_id": t.broker_id, "type": t.type.value, "symbol": t.asset.symbol if t.asset else "",
            "quantity": t.quantity, "amount": t.amount, "status": t.status}


def truth_row(r: dict) -> dict:
    return {**r, "quantity": None if r["quantity"] is None else Decimal(r["quantity"]),
            "amount": None if r["amount"] is None else Decimal(r["amount"])}


# -- verify ---------------------------------------------------------------------------------------
def test_verify_returns_the_portfolio_and_warns_about_trading_keys(sandbox):
    sim = sandbox.sims["coinbase"]
    quiet = sim.create_account("live", seed=42, positions=3, activities=20)
    info = build(sandbox, quiet["credentials"]).verify_credentials()
    assert info.account_id == quiet["broker_account_id"] and info.warnings == ()
    loud = sim.create_account("live", seed=43, positions=3, activities=20, can_trade=True, can_transfer=True)
    warnings = build(sandbox, loud["credentials"]).verify_credentials().warnings
    assert len(warnings) == 2 and all("view-only key" in w for w in warnings)


# -- full fetch -----------------------------------------------------------------------------------
def test_full_fetch_matches_truth(synced):
    truth = synced["sim"].truth(synced["account"]["account_id"])
    fetched = [row_of(t) for p in synced["tx_pages"] for t in p.items]
    assert len(fetched) == len({r["broker_id"] for r in fetched})
    assert sorted(fetched, key=lambda r: r["broker_id"]) == sorted(
        (truth_row(r) for r in truth["transactions"]), key=lambda r: r["broker_id"])
    assert not any(p.skipped for p in synced["tx_pages"])
    assert len(synced["tx_pages"]) > 2                       # checkpoints along the way
    orders = {o.broker_id: o.status for p in synced["order_pages"] for o in p.items}
    assert orders == {o["broker_id"]: o["status"] for o in truth["orders"]}


def test_positions_match_truth(synced):
    snapshot = synced["adapter"].fetch_positions()
    truth = synced["sim"].truth(synced["account"]["account_id"])
    assert {p.asset.symbol: p.quantity for p in snapshot.positions} == {
        p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    assert snapshot.cash == {k: Decimal(v) for k, v in truth["cash"].items()}
    eth = next(p for p in snapshot.positions if p.asset.symbol == "ETH")
    assert "accounts" in eth.raw                             # ETH and ETH2 wallets merged
    assert all(p.current_price and p.market_value == p.quantity * p.current_price for p in snapshot.positions)
    assert snapshot.requests == 2


def test_unchanged_account_costs_few_requests(synced):
    adapter = synced["adapter"]
    adapter.handoff.clear()                   # no positions fetch just before
    open_ids = [o.broker_id for p in synced["order_pages"] for o in p.items if o.is_open]
    assert open_ids
    tx = list(adapter.fetch_transactions(synced["tx_pages"][-1].cursor))
    orders = list(adapter.fetch_orders(synced["order_pages"][-1].cursor, open_ids))
    assert [len(p.items) for p in tx] == [0] and [len(p.items) for p in orders] == [0]
    # one fills request + one v3 accounts listing (no v2 listing: no balance moved); one orders
    # request + one OPEN listing. In a sync the v3 listing is the positions step's own.
    assert sum(p.requests for p in tx) == 2 and sum(p.requests for p in orders) == 2
    assert tx[-1].cursor["watermark"] == synced["tx_pages"][-1].cursor["watermark"]


def test_incremental_fetch_gets_only_new_records(sandbox):
    sim = sandbox.sims["coinbase"]
    account = sim.create_account("live", seed=44, positions=6, activities=300)
    adapter = build(sandbox, account["credentials"])
    tx_cursor = list(adapter.fetch_transactions(None))[-1].cursor
    first_orders = list(adapter.fetch_orders(None))
    open_ids = [o.broker_id for p in first_orders for o in p.items if o.is_open]
    added = sim.advance(account["account_id"])
    pages = list(adapter.fetch_transactions(tx_cursor))
    assert sorted(t.broker_id for p in pages for t in p.items) == sorted(added["transactions"])
    assert pages[-1].cursor["watermark"] > tx_cursor["watermark"]
    orders = {o.broker_id: o.status for p in adapter.fetch_orders(first_orders[-1].cursor, open_ids) for o in p.items}
    assert set(orders) == set(added["orders"]) | set(added["canceled_orders"])
    assert all(orders[i] == "canceled" for i in added["canceled_orders"])
    positions = {p.asset.symbol for p in adapter.fetch_positions().positions}
    assert added["closed_position"] not in positions
    truth = sim.truth(account["account_id"])
    assert positions == {p["symbol"] for p in truth["positions"]}


def test_every_wallet_is_read_again_after_a_day(synced):
    cursor = json.loads(json.dumps(synced["tx_pages"][-1].cursor))
    cursor["v2"]["swept"] = "2020-01-01T00:00:00.000000Z"
    synced["adapter"].handoff.clear()         # no positions fetch just before
    pages = list(synced["adapter"].fetch_transactions(cursor))
    wallets = len(cursor["v2"]["after"])
    assert [len(p.items) for p in pages] == [0]
    assert sum(p.requests for p in pages) == 3 + wallets           # fills, v3 and v2 listings, one per wallet
    assert pages[-1].cursor["v2"]["swept"] > "2020"


def test_only_wallets_whose_balance_moved_are_read_between_full_passes(sandbox):
    sim = sandbox.sims["coinbase"]
    account = sim.create_account("live", seed=45, positions=8, activities=200)
    adapter = build(sandbox, account["credentials"])
    cursor = list(adapter.fetch_transactions(None))[-1].cursor
    wallets = len(cursor["v2"]["after"])
    assert wallets >= 5

    quiet = list(adapter.fetch_transactions(cursor))
    assert [len(p.items) for p in quiet] == [0]
    assert sum(p.requests for p in quiet) == 2                      # fills, v3 accounts; no v2 request at all

    coin = next(p["symbol"] for p in sim.truth(account["account_id"])["positions"] if p["symbol"] != "BTC")
    received = sim.receive_in(account["account_id"], coin, Decimal("0.5"))
    pages = list(adapter.fetch_transactions(quiet[-1].cursor))
    assert [t.broker_id for p in pages for t in p.items] == [f"v2:{received['record']}"]
    # fills, v3 accounts, and the moved currency's wallet alone (by its known id, no listing)
    assert sum(p.requests for p in pages) == 2 + len(cursor["v2"]["ids"][coin]) == 3

    full = json.loads(json.dumps(pages[-1].cursor))
    full["v2"]["swept"] = "2020-01-01T00:00:00.000000Z"            # the full pass is due
    swept = list(adapter.fetch_transactions(full))
    assert [len(p.items) for p in swept] == [0]
    assert sum(p.requests for p in swept) == 3 + wallets            # fills, v3 and v2 listings, every wallet


def test_the_transactions_fetch_reads_balances_from_the_positions_fetch_of_its_execution(sandbox):
    sim = sandbox.sims["coinbase"]
    account = sim.create_account("live", seed=46, positions=5, activities=100)
    adapter = build(sandbox, account["credentials"])
    cursor = list(adapter.fetch_transactions(None))[-1].cursor
    coin = next(p["symbol"] for p in sim.truth(account["account_id"])["positions"])
    received = sim.receive_in(account["account_id"], coin, Decimal("0.25"))
    adapter.fetch_positions()                                       # lists v3 after the move
    pages = list(adapter.fetch_transactions(cursor))
    assert [t.broker_id for p in pages for t in p.items] == [f"v2:{received['record']}"]
    assert sum(p.requests for p in pages) == 2                      # fills, the moved wallet
    assert "coinbase_v3_accounts" not in adapter.handoff             # used once: a later fetch lists again


def test_a_sync_resumes_from_any_checkpoint(sandbox, monkeypatch):
    monkeypatch.setattr(adapter_module, "CHECKPOINT_ITEMS", 40)
    sim = sandbox.sims["coinbase"]
    account = sim.create_account("live", seed=45, positions=5, activities=700)
    adapter = build(sandbox, account["credentials"])
    pages = list(adapter.fetch_transactions(None))
    everything = {t.broker_id for p in pages for t in p.items}
    assert pages[0].cursor["fills"]["run"] is not None       # checkpoint inside the fills walk
    for i in (0, 1, len(pages) - 3):
        before = {t.broker_id for p in pages[: i + 1] for t in p.items}
        resumed = {t.broker_id for p in build(sandbox, account["credentials"]).fetch_transactions(pages[i].cursor)
                   for t in p.items}
        assert before | resumed == everything


# -- errors ---------------------------------------------------------------------------------------
def test_bad_or_revoked_key_is_an_auth_error(sandbox):
    sim = sandbox.sims["coinbase"]
    account = sim.create_account("live", seed=46, positions=2, activities=10)
    sim.revoke(account["account_id"])
    with pytest.raises(AuthError) as exc:
        build(sandbox, account["credentials"]).verify_credentials()
    assert exc.value.status == 401 and account["credentials"]["api_key"] not in str(exc.value)
    blind = sim.create_account("live", seed=47, positions=2, activities=10, can_view=False)
    with pytest.raises(AuthError):
        build(sandbox, blind["credentials"]).verify_credentials()
    with pytest.raises(AuthError) as exc:
        list(build(sandbox, blind["credentials"]).fetch_transactions(None))
    assert exc.value.status == 403


def test_a_malformed_private_key_is_an_auth_error_without_the_secret(sandbox, synced):
    secret = "-----BEGIN EC PRIVATE KEY-----\nnot-really-a-key-material-at-all\n-----END EC PRIVATE KEY-----"
    adapter = build(sandbox, {"api_key": synced["account"]["credentials"]["api_key"], "api_secret": secret})
    with pytest.raises(AuthError) as exc:
        adapter.verify_credentials()
    assert "not-really" not in str(exc.value) and exc.value.__cause__ is None


def test_429_is_rate_limited_with_the_wait(sandbox, synced):
    adapter = build(sandbox, synced["account"]["credentials"])
    sandbox.faults.set(FaultPlan(target="coinbase", burst_429=1, retry_after=30))
    with pytest.raises(RateLimited) as exc:
        adapter.fetch_positions()
    assert exc.value.retry_after == pytest.approx(30.0)
    sandbox.faults.set(FaultPlan(target="coinbase", burst_429=1, retry_after=0.5))
    assert adapter.fetch_positions().positions                 # a short wait is retried in place


def test_5xx_and_malformed_bodies_are_transient(sandbox, synced):
    adapter = build(sandbox, synced["account"]["credentials"])
    sandbox.faults.set(FaultPlan(target="coinbase", fail_next=3, error_status=503))
    with pytest.raises(TransientError) as exc:
        adapter.fetch_positions()
    assert exc.value.status == 503
    sandbox.faults.set(FaultPlan(target="coinbase", malformed_rate=1.0))
    with pytest.raises(TransientError):
        adapter.verify_credentials()


def test_invalid_argument_is_permanent(sandbox, synced):
    adapter = build(sandbox, synced["account"]["credentials"])
    with pytest.raises(PermanentError) as exc:
        list(adapter.fetch_orders({"since": "2024-01-01T00:00:00Z", "seen": [], "run": {"page": "x1"}}))
    assert exc.value.code == "INVALID_ARGUMENT"


def test_a_bad_record_is_skipped_not_fatal(sandbox, monkeypatch):
    from sandbox.brokers.coinbase import render

    account = sandbox.sims["coinbase"].create_account("live", seed=48, positions=3, activities=60)
    real = render.fill
    broken = {}

    def corrupt(book, f):
        body = real(book, f)
        if not broken:
            broken["id"] = body["entry_id"]
            body["price"] = "twelve"
        return body

    monkeypatch.setattr(render, "fill", corrupt)
    pages = list(build(sandbox, account["credentials"]).fetch_transactions(None))
    skipped = [s for p in pages for s in p.skipped]
    assert [s.raw["entry_id"] for s in skipped] == [broken["id"]] and "price" in skipped[0].reason
    assert sum(len(p.items) for p in pages) > 0


def _response(status: int, body, headers=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize("status,body,kind,code", [
    (401, "Unauthorized", AuthError, None),
    (403, {"error": "PERMISSION_DENIED", "error_details": "Missing required scopes", "message": "x"}, AuthError,
     "PERMISSION_DENIED"),
    (401, {"errors": [{"id": "revoked_token", "message": "revoked"}]}, AuthError, "revoked_token"),
    (429, {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}, RateLimited,
     "rate_limit_exceeded"),
    (400, {"error": "INVALID_ARGUMENT", "error_details": "bad", "message": "bad"}, PermanentError, "INVALID_ARGUMENT"),
    (404, {"errors": [{"id": "not_found", "message": "Not found"}]}, PermanentError, "not_found"),
    (500, {"errors": [{"id": "internal_server_error", "message": "x"}]}, TransientError, "internal_server_error"),
    (502, "<html>bad gateway</html>", TransientError, ""),
])
def test_vendor_error_table(status, body, kind, code):
    parsed = None if isinstance(body, str) else body
    error = CoinbaseAdapter.vendor_errors(_response(status, body, {"x-ratelimit-reset": "2.5"}), parsed)
    assert isinstance(error, kind)
    assert error.code == (code or None)
    if kind is RateLimited:
        assert error.retry_after == 2.5
    assert CoinbaseAdapter.vendor_errors(_response(200, {"accounts": []}), {"accounts": []}) is None


# -- JWT ------------------------------------------------------------------------------------------
def test_jwt_matches_the_sdk_claims_and_is_fresh_per_attempt(synced):
    creds = synced["account"]["credentials"]
    signer = JwtSigner(creds["api_key"], creds["api_secret"].replace("\n", "\\n"), "https://api.coinbase.com")
    _, _, first = signer("GET", "/api/v3/brokerage/accounts", [("limit", 1)], None, {})
    _, _, second = signer("GET", "/api/v3/brokerage/accounts", None, None, {})
    token = first["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == creds["api_key"] and header["typ"] == "JWT"
    public = signer._key.public_key()
    claims = jwt.decode(token, public, algorithms=["ES256"], options={"verify_aud": False})
    assert claims["uri"] == "GET api.coinbase.com/api/v3/brokerage/accounts"
    assert claims["iss"] == "cdp" and claims["sub"] == creds["api_key"] and claims["exp"] - claims["nbf"] == 120
    assert jwt.get_unverified_header(second["Authorization"][7:])["nonce"] != header["nonce"]
    assert "PRIVATE" not in repr(signer)


# -- documented payloads --------------------------------------------------------------------------
def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def test_documented_fill():
    [t] = parse.fill_transactions(load("fills.json")["fills"][0])
    assert (t.broker_id, t.type, t.asset.symbol, t.quantity, t.price) == (
        "fill:22222-2222222-22222222", TransactionType.TRADE, "BTC", Decimal("0.001"), Decimal("10000.00"))
    assert t.amount == Decimal("-11.25") and t.fee == Decimal("1.25") and t.currency == "USD"
    assert t.side == "buy" and t.order_id == "0000-000000-000000" and t.occurred_at.isoformat() == \
        "2021-05-31T09:59:59+00:00"
    coin_quoted = {**load("fills.json")["fills"][0], "product_id": "ETH-BTC", "side": "SELL", "price": "0.05",
                   "size": "2", "commission": "0.0006"}
    base, quote = parse.fill_transactions(coin_quoted)
    assert (base.quantity, base.amount) == (Decimal("-2"), Decimal("0.0994"))
    assert (quote.broker_id, quote.asset.symbol, quote.quantity, quote.amount) == (
        "fill:22222-2222222-22222222:quote", "BTC", Decimal("0.0994"), None)


def test_fill_variants():
    raw = load("fills.json")["fills"][0]
    [quoted] = parse.fill_transactions({**raw, "size": "10.00", "size_in_quote": True})
    assert quoted.quantity == Decimal("0.001") and quoted.amount == Decimal("-11.25")
    [reversal] = parse.fill_transactions({**raw, "trade_type": "REVERSAL"})
    assert (reversal.quantity, reversal.amount) == (Decimal("-0.001"), Decimal("11.25"))
    assert reversal.broker_type == "REVERSAL"
    with pytest.raises(Exception) as exc:
        parse.fill_transactions({**raw, "trade_time": "yesterday"})
    assert "RFC3339" in str(exc.value)


def test_documented_order_and_account():
    order = parse.order(load("orders.json")["orders"][0])
    assert (order.status, order.side, order.order_type, order.notional, order.quantity) == (
        "filled", "buy", "market", Decimal("6.36"), None)
    assert order.filled_quantity == Decimal("0.000297920684505") and order.asset.currency == "USDT"
    assert parse.account_balance(load("accounts.json")["accounts"][0]) == ("BTC", Decimal("0.0123"))


def test_documented_v2_transactions():
    send, deposit, fill, reward, unknown = load("v2_transactions.json")["data"]
    t = parse.v2_transaction(send)
    assert (t.broker_id, t.type, t.asset.symbol, t.quantity, t.amount, t.status) == (
        "v2:459aad99-2c41-5698-ac71-b6b81a05196c", TransactionType.TRANSFER, "BTC", Decimal("-0.36775642"), None,
        "executed")
    assert t.fee is None and t.currency == "GBP" and t.description == "Sent Bitcoin"
    d = parse.v2_transaction(deposit)
    assert (d.type, d.asset, d.amount, d.quantity, d.currency) == (
        TransactionType.DEPOSIT, None, Decimal("100.00"), None, "USD")
    assert parse.v2_transaction(fill) is None                      # repeated by v3 fills
    r = parse.v2_transaction(reward)
    assert (r.type, r.asset.symbol, r.broker_symbol) == (TransactionType.REWARD, "ETH", "ETH2")
    u = parse.v2_transaction(unknown)
    assert (u.type, u.asset.symbol, u.quantity, u.raw["type"]) == (
        TransactionType.OTHER, "CELO", Decimal("1.5"), "mystery_new_type")
