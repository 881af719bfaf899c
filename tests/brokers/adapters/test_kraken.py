"""KrakenAdapter against the simulated Kraken over real HTTP, plus parsing of the payloads
copied from Kraken's documentation (tests/brokers/fixtures/kraken)."""
from __future__ import annotations

import json
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import redis as redis_lib

from backend.brokers.adapters.kraken import KrakenAdapter
from backend.brokers.adapters.kraken.assets import AssetBook
from backend.brokers.adapters.kraken.client import sign_request
from backend.brokers.adapters.kraken.mapping import kraken_order, ledger_transaction
from backend.brokers.dtos import Credentials, TransactionType
from backend.brokers.errors import AuthError, PermanentError, RateLimited, TransientError
from backend.brokers.http import BrokerSession, SessionPolicy
from backend.brokers.nonce import LocalNonceSource, RedisNonceSource
from sandbox.faults import FaultPlan
from tests.conftest import TEST_REDIS_URL

FIXTURES = Path(__file__).parent.parent / "fixtures" / "kraken"
STRICT = SessionPolicy(transient_retries=0, max_inplace_wait=0, read_timeout=5)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(), parse_float=Decimal)["result"]


def make_account(sandbox, **spec) -> dict:
    spec = {"seed": 21, "positions": 6, "activities": 260, "tier": "none", **spec}
    sandbox.sims["kraken"].reset_limits()       # public calls share one per-IP budget across tests
    return sandbox.sims["kraken"].create_account("live", **spec)


def build(sandbox, account: dict, redis_client=None, *, policy=SessionPolicy(), nonces=None, creds=None,
          limiter=None) -> KrakenAdapter:
    credentials = creds or Credentials(**account["credentials"])
    session = BrokerSession(broker="kraken", base_url=sandbox.urls["kraken"],
                            scope=KrakenAdapter.rate_scope(credentials, "live"), limiter=limiter, policy=policy,
                            vendor_errors=KrakenAdapter.vendor_errors, secrets=credentials.secrets(),
                            sleep=lambda s: None)
    if nonces is None:
        nonces = RedisNonceSource(redis_client) if redis_client is not None else LocalNonceSource()
    return KrakenAdapter(credentials=credentials, environment="live", session=session, nonces=nonces)


def drain(pages):
    items, cursors, skipped, requests = [], [], [], 0
    for page in pages:
        items += page.items
        skipped += page.skipped
        cursors.append(page.cursor)
        requests += page.requests
    return items, cursors, skipped, requests


def as_truth(t) -> dict:
    return {"broker_id": t.broker_id, "type": t.type.value, "symbol": t.asset.symbol if t.asset else "",
            "quantity": t.quantity, "amount": t.amount, "status": t.status}


def normalise(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for row in rows:
        row = dict(row)
        for key in ("quantity", "amount"):
            row[key] = Decimal(row[key]) if row[key] is not None else None
        out[row["broker_id"]] = row
    return out


# -- auth ----------------------------------------------------------------------------------
def test_signature_matches_the_documented_vector():
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert sign_request(secret, "/0/private/AddOrder", 1616492376594, body) == \
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


def test_verify_returns_an_id_derived_from_the_key(sandbox, redis_client):
    account = make_account(sandbox)
    info = build(sandbox, account, redis_client).verify_credentials()
    assert info.account_id == account["broker_account_id"] == sandbox.sims["kraken"].truth(account["account_id"])["broker_account_id"]
    assert account["credentials"]["api_key"] not in info.account_id and "api key" in info.raw["account_id_source"].lower()
    assert not any(account["credentials"]["api_key"] in k.decode() for k in redis_client.keys("*"))


def test_verify_names_the_missing_permissions(sandbox, redis_client):
    account = make_account(sandbox, permissions=["query_funds", "query_open"])
    with pytest.raises(AuthError) as caught:
        build(sandbox, account, redis_client).verify_credentials()
    assert "Query Ledger Entries" in caught.value.message and "Query Closed Orders & Trades" in caught.value.message
    assert "Query Open Orders" not in caught.value.message.split(";")[0]


@pytest.mark.parametrize("change, code", [("key", "EAPI:Invalid key"), ("secret", "EAPI:Invalid signature")])
def test_wrong_credentials_are_auth_errors_without_secrets(sandbox, redis_client, change, code):
    account = make_account(sandbox)
    creds = dict(account["credentials"])
    creds["api_key" if change == "key" else "api_secret"] = "QUJD" * 22
    with pytest.raises(AuthError) as caught:
        build(sandbox, account, redis_client, creds=Credentials(**creds), policy=STRICT).verify_credentials()
    assert caught.value.code == code
    for secret in (*creds.values(), *account["credentials"].values()):
        assert secret[:12] not in str(caught.value)


def test_a_private_key_that_is_not_base64_is_an_auth_error(sandbox):
    account = make_account(sandbox)
    creds = Credentials(api_key=account["credentials"]["api_key"], api_secret="not base64!")
    with pytest.raises(AuthError):
        build(sandbox, account, creds=creds, policy=STRICT).fetch_positions()


# -- positions -----------------------------------------------------------------------------
def test_positions_merge_staked_balances_and_match_the_truth(sandbox, redis_client):
    account = make_account(sandbox, positions=8)
    snapshot = build(sandbox, account, redis_client).fetch_positions()
    truth = sandbox.sims["kraken"].truth(account["account_id"])
    assert {p.asset.symbol: p.quantity for p in snapshot.positions} == \
        {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    assert snapshot.cash == {k: Decimal(v) for k, v in truth["cash"].items()}
    assert all(p.current_price and p.market_value == p.quantity * p.current_price for p in snapshot.positions)
    eth = next(p for p in snapshot.positions if p.asset.symbol == "ETH")
    assert eth.broker_symbol == "XETH" and set(eth.raw["balances"]) == {"XETH", "ETH2.S"}
    assert snapshot.requests <= 4           # Balance, Ticker (+ Assets, AssetPairs once per process)


# -- transactions --------------------------------------------------------------------------
def test_full_fetch_matches_the_truth_and_joins_trades(sandbox, redis_client):
    account = make_account(sandbox)
    items, cursors, skipped, _ = drain(build(sandbox, account, redis_client).fetch_transactions(None))
    truth = sandbox.sims["kraken"].truth(account["account_id"])
    assert not skipped and len(items) == len({t.broker_id for t in items})
    assert normalise([as_truth(t) for t in items]) == normalise(truth["transactions"])
    marks = [c["watermark"] for c in cursors]
    assert marks == sorted(marks) and cursors[-1]["ledger"]["range"] is None
    trades = [t for t in items if t.type is TransactionType.TRADE]
    assert trades and all(t.order_id.startswith("O") and t.side in ("buy", "sell") for t in trades)
    legs = [t for t in trades if t.asset and t.price is not None]
    assert legs and all(t.currency in ("USD", "EUR", "BTC") for t in legs)
    assert [t.occurred_at for t in items] == sorted(t.occurred_at for t in items)


def count_private_calls(adapter: KrakenAdapter) -> Counter:
    """Private calls the adapter makes from now on, by method."""
    real, calls = adapter.client.private, Counter()

    def counted(method, params=None):
        calls[method] += 1
        return real(method, params)

    adapter.client.private = counted
    return calls


@pytest.mark.parametrize("activities", [120, 900, 3000])
def test_trades_are_read_in_the_fewest_pages_kraken_allows(sandbox, redis_client, activities):
    """TradesHistory is walked oldest first alongside the ledger: ceil(trades / 50) requests
    (the sandbox's own minimum), where reading a time window around each ledger page took
    about twice as many; every trade row still gets its trade."""
    account = make_account(sandbox, activities=activities)
    adapter = build(sandbox, account, redis_client)
    calls = count_private_calls(adapter)
    items, _, _, _ = drain(adapter.fetch_transactions(None))
    minimum = sandbox.sims["kraken"].truth(account["account_id"])["minimum"]["detail"]
    assert calls["TradesHistory"] == minimum["trades_history"]
    assert calls["Ledgers"] <= minimum["ledgers"] + 1                 # + the last look for rows that came meanwhile
    trades = [t for t in items if t.type is TransactionType.TRADE]
    assert trades and all(t.order_id.startswith("O") for t in trades)


def test_a_key_that_may_not_read_trades_still_syncs_its_ledger(sandbox, redis_client):
    """TradesHistory refused (the key lost "Query Closed Orders & Trades" after it was
    checked): the ledger rows are all stored, without the trades' prices, and the refusal is
    asked once, not once per ledger page."""
    account = make_account(sandbox, activities=400, permissions=["query_funds", "query_open", "query_ledger"])
    adapter = build(sandbox, account, redis_client)
    calls = count_private_calls(adapter)
    items, _, skipped, _ = drain(adapter.fetch_transactions(None))
    truth = sandbox.sims["kraken"].truth(account["account_id"])
    assert not skipped and {t.broker_id for t in items} == {t["broker_id"] for t in truth["transactions"]}
    assert calls["TradesHistory"] == 1
    assert all(t.order_id in ("", None) for t in items if t.type is TransactionType.TRADE)


def test_incremental_sync_of_an_unchanged_account_is_one_request(sandbox, redis_client):
    account = make_account(sandbox)
    _, cursors, _, _ = drain(build(sandbox, account, redis_client).fetch_transactions(None))
    again, later, _, requests = drain(build(sandbox, account, redis_client).fetch_transactions(cursors[-1]))
    assert again == [] and requests == 1 and later[-1]["watermark"] == cursors[-1]["watermark"]


def test_incremental_sync_after_advance_gets_exactly_the_new_rows(sandbox, redis_client):
    account = make_account(sandbox)
    _, cursors, _, _ = drain(build(sandbox, account, redis_client).fetch_transactions(None))
    added = sandbox.sims["kraken"].advance(account["account_id"])
    new, later, _, _ = drain(build(sandbox, account, redis_client).fetch_transactions(cursors[-1]))
    assert [t.broker_id for t in new] == added["ledger_ids"]
    assert later[-1]["watermark"] > cursors[-1]["watermark"]


def test_a_sync_that_dies_mid_range_resumes_without_gaps_or_repeats(sandbox, redis_client):
    account = make_account(sandbox, activities=400)
    pages = build(sandbox, account, redis_client).fetch_transactions(None)
    first = [next(pages), next(pages), next(pages)]             # then the worker dies
    assert first[-1].cursor["ledger"]["range"] is not None      # in the middle of a frozen range
    sandbox.sims["kraken"].advance(account["account_id"])       # and the account moves meanwhile
    rest, _, _, _ = drain(build(sandbox, account, redis_client).fetch_transactions(first[-1].cursor))
    seen = [t.broker_id for p in first for t in p.items] + [t.broker_id for t in rest]
    truth = [t["broker_id"] for t in sandbox.sims["kraken"].truth(account["account_id"])["transactions"]]
    assert len(seen) == len(set(seen)) and set(seen) == set(truth)


def test_a_count_that_changes_mid_walk_restarts_the_range(sandbox, redis_client):
    account = make_account(sandbox, activities=300)
    adapter = build(sandbox, account, redis_client)
    real = adapter.client.private
    calls = []

    def flaky(method, params=None):
        result = real(method, params)
        calls.append((method, dict(params or {})))
        if method == "Ledgers" and params and params.get("ofs") and len(calls) < 6:
            result = {**result, "count": result["count"] + 1}    # a record appeared inside the range
        return result

    adapter.client.private = flaky
    items, _, _, _ = drain(adapter.fetch_transactions(None))
    truth = {t["broker_id"] for t in sandbox.sims["kraken"].truth(account["account_id"])["transactions"]}
    assert {t.broker_id for t in items} == truth and len(items) == len(truth)
    assert sum(1 for m, p in calls if m == "Ledgers" and not p.get("end")) >= 2     # started over


def test_a_record_that_cannot_be_parsed_is_skipped_not_fatal(sandbox, redis_client):
    account = make_account(sandbox)
    sim = sandbox.sims["kraken"]
    bad = sim.truth(account["account_id"])["transactions"][5]["broker_id"]
    sim.corrupt(account["account_id"], bad, amount="twelve")
    items, _, skipped, _ = drain(build(sandbox, account, redis_client).fetch_transactions(None))
    assert [s.raw["id"] for s in skipped] == [bad] and bad not in {t.broker_id for t in items}
    assert len(items) == len(sim.truth(account["account_id"])["transactions"]) - 1


def test_history_calls_cost_two_and_public_calls_spend_the_ips_budget(sandbox, redis_client):
    account = make_account(sandbox)
    costs: list[tuple[str, str, float]] = []

    class Recorder:
        def acquire(self, broker, scope, cost=1):
            costs.append((broker, scope, cost))
            return 0.0

        def rule_for(self, broker):
            return None

        def strikes(self, scope, reset=False):
            return 0

    adapter = build(sandbox, account, redis_client, limiter=Recorder())
    adapter.client.private("Balance")
    adapter.client.private("Ledgers")
    adapter.client.private("TradesHistory")
    adapter.client.public("Time")
    key_scope = adapter.session.scope
    assert costs == [("kraken", key_scope, 1), ("kraken", key_scope, 2), ("kraken", key_scope, 2),
                     ("kraken-public", "kraken-public:ip:default", 1)]   # every user's public calls, one IP


# -- orders --------------------------------------------------------------------------------
def test_orders_full_then_refresh_of_open_ones(sandbox, redis_client):
    account = make_account(sandbox)
    sim = sandbox.sims["kraken"]
    orders, cursors, skipped, _ = drain(build(sandbox, account, redis_client).fetch_orders(None, ()))
    truth = {o["broker_id"]: o["status"] for o in sim.truth(account["account_id"])["orders"]}
    assert not skipped and {o.broker_id: o.status for o in orders} == truth
    assert all(o.asset is not None and o.broker_symbol for o in orders)
    open_ids = [o.broker_id for o in orders if o.is_open]
    again, _, _, requests = drain(build(sandbox, account, redis_client).fetch_orders(cursors[-1], open_ids))
    assert {o.broker_id for o in again} == set(open_ids) and requests == 2      # ClosedOrders + OpenOrders
    added = sim.advance(account["account_id"], fills=1, orders=1, cancel_orders=1)
    fresh, _, _, _ = drain(build(sandbox, account, redis_client).fetch_orders(cursors[-1], open_ids))
    statuses = {o.broker_id: o.status for o in fresh}
    assert statuses[added["canceled_order_ids"][0]] == "canceled"
    assert statuses[added["new_open_order_ids"][0]] == "open"
    assert set(added["order_ids"]) <= set(statuses)


def test_open_orders_no_list_returns_are_queried_by_id(sandbox, redis_client):
    account = make_account(sandbox)
    adapter = build(sandbox, account, redis_client)
    _, cursors, _, _ = drain(adapter.fetch_orders(None, ()))
    old = next(o["broker_id"] for o in sandbox.sims["kraken"].truth(account["account_id"])["orders"]
               if o["status"] == "filled")
    fresh, _, _, _ = drain(build(sandbox, account, redis_client).fetch_orders(cursors[-1], [old]))
    assert [o.status for o in fresh if o.broker_id == old] == ["filled"]


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("plan, kind", [
    (dict(error_rate=1.0, error_status=503), TransientError),
    (dict(error_rate=1.0, error_status=520), TransientError),
    (dict(malformed_rate=1.0), TransientError),
    (dict(burst_429=5), RateLimited),
])
def test_error_kinds(sandbox, redis_client, plan, kind):
    account = make_account(sandbox)
    adapter = build(sandbox, account, redis_client, policy=STRICT)
    sandbox.faults.set(FaultPlan(target="kraken", path_contains="/private/", **plan))
    with pytest.raises(kind) as caught:
        adapter.client.private("Ledgers")
    if kind is RateLimited:
        assert caught.value.retry_after == pytest.approx(2 / 0.33)      # cost 2 over the Starter decay


def test_rate_limit_from_the_real_counter_is_retried_after_the_decay(sandbox, redis_client):
    account = make_account(sandbox, tier="starter")
    sim = sandbox.sims["kraken"]
    waits: list[float] = []
    adapter = build(sandbox, account, redis_client)
    adapter.session.sleep = lambda s: (waits.append(s), _age_counter(sim, account, s))
    for _ in range(18):
        adapter.client.private("Balance")
    assert waits and all(w == pytest.approx(1 / 0.33) for w in waits)


def _age_counter(sim, account, seconds):
    with sim.lock:
        sim.counters[account["credentials"]["api_key"]][1] -= seconds


@pytest.mark.parametrize("message, kind", [
    ("EService:Unavailable", TransientError), ("EService:Busy", TransientError),
    ("EAPI:Invalid nonce", TransientError), ("EGeneral:Invalid arguments", PermanentError),
    ("EQuery:Unknown asset pair", PermanentError), ("EGeneral:Permission denied", AuthError),
    ("EService: Throttled: 1", RateLimited), ("EGeneral:Temporary lockout", RateLimited),
])
def test_vendor_error_table(message, kind):
    class Response:
        status_code = 200
        request = type("R", (), {"url": "https://api.kraken.com/0/private/Balance"})()

    assert isinstance(KrakenAdapter.vendor_errors(Response(), {"error": [message]}), kind)
    assert KrakenAdapter.vendor_errors(Response(), {"error": [], "result": {}}) is None


def test_a_rejected_nonce_is_retried_with_a_fresh_one(sandbox, redis_client):
    account = make_account(sandbox)
    real = RedisNonceSource(redis_client)

    class StaleOnce:
        issued = []

        def next(self, key):
            nonce = 1 if not self.issued else real.next(key)
            self.issued.append(nonce)
            return nonce

        def exclusive(self, key):
            return real.exclusive(key)

    build(sandbox, account, redis_client).client.private("Balance")          # the sim has seen a big nonce
    source = StaleOnce()
    assert build(sandbox, account, nonces=source).client.private("Balance")
    assert source.issued[0] == 1 and len(source.issued) == 2


def test_two_workers_signing_with_one_key_never_get_invalid_nonce(sandbox, redis_client):
    account = make_account(sandbox, tier="none")
    sim = sandbox.sims["kraken"]
    rejected = sim.error_counts["EAPI:Invalid nonce"]
    errors: list[Exception] = []

    def worker():
        # Its own nonce source and session, as a separate Celery worker process would have.
        adapter = build(sandbox, account, nonces=RedisNonceSource(redis_lib.Redis.from_url(TEST_REDIS_URL)),
                        policy=STRICT)
        try:
            for _ in range(40):
                adapter.client.private("Balance")
        except Exception as exc:      # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sim.error_counts["EAPI:Invalid nonce"] == rejected


def test_the_nonce_source_is_shared_and_monotonic(redis_client):
    a = RedisNonceSource(redis_client, clock=lambda: 1_000.0)
    b = RedisNonceSource(redis_client, clock=lambda: 1_000.0)
    issued = [src.next("key") for src in (a, b, a, b)]
    assert issued == [1_000_000_000, 1_000_000_001, 1_000_000_002, 1_000_000_003]
    late = RedisNonceSource(redis_client, clock=lambda: 2_000.0)
    assert late.next("key") == 2_000_000_000 and a.next("key") == 2_000_000_001
    assert a.next("other key") == 1_000_000_000


# -- documented payloads -------------------------------------------------------------------
def doc_book() -> AssetBook:
    return AssetBook(fixture("assets"), fixture("asset_pairs"))


def test_documented_ledger_rows_parse():
    rows = fixture("ledgers")["ledger"]
    gbp = ledger_transaction("L4UESK-KG3EQ-UFO4T5", rows["L4UESK-KG3EQ-UFO4T5"], doc_book(), None)
    assert gbp.type is TransactionType.TRADE and gbp.asset is None and gbp.currency == "GBP"
    assert gbp.amount == Decimal("-24.5490") and gbp.fee == Decimal("0.0490")
    assert gbp.occurred_at.isoformat() == "2023-07-04T09:54:44.178700+00:00"
    kfee = ledger_transaction("LKLSX7-VUXD4-HDLK2P", rows["LKLSX7-VUXD4-HDLK2P"], doc_book(), None)
    assert kfee.asset is None and kfee.amount is None and kfee.quantity is None


def test_documented_trade_joins_its_ledger_leg():
    trade = fixture("trades_history")["trades"]["THVRQM-33VKH-UCI7BS"]
    row = {"refid": "THVRQM-33VKH-UCI7BS", "time": Decimal("1688667796.8802"), "type": "trade", "subtype": "",
           "aclass": "currency", "asset": "XXBT", "amount": "0.0200000000", "fee": "0.0000000000",
           "balance": "1.0200000000"}
    leg = ledger_transaction("LBASE1-AAAAA-BBBBBB", row, doc_book(), trade)
    assert (leg.asset.symbol, leg.quantity, leg.price, leg.currency, leg.side, leg.order_id) == \
        ("BTC", Decimal("0.02"), Decimal("30010.00000"), "USD", "buy", "OQCLML-BW3P3-BUCMWZ")


def test_documented_closed_orders_parse():
    closed = fixture("closed_orders")["closed"]
    stop = kraken_order("O37652-RJWRT-IMO74O", closed["O37652-RJWRT-IMO74O"], doc_book())
    assert (stop.status, stop.asset.symbol, stop.asset.currency, stop.order_type) == \
        ("canceled", "BTC", "GBP", "stop-loss-limit")
    assert stop.stop_price == Decimal("23667.0") and stop.canceled_at and stop.filled_quantity == 0
    filled = kraken_order("OBGFYP-XVQNL-P4GMWF", closed["OBGFYP-XVQNL-P4GMWF"], doc_book())
    assert (filled.status, filled.limit_price, filled.filled_avg_price) == \
        ("filled", Decimal("1860.76"), Decimal("1860.76"))


def test_documented_balance_merges_shadows_and_skips_fee_credits():
    class Stub:
        def private(self, method, params=None):
            return fixture("balance")

        def public(self, method, params=None):
            return fixture("ticker")

        def book(self, refresh=False):
            return doc_book()

    session = BrokerSession(broker="kraken", base_url="http://unused", scope="s")
    adapter = KrakenAdapter(credentials=Credentials(api_key="k", api_secret="s"), environment="live",
                            session=session, nonces=LocalNonceSource())
    adapter.client = Stub()
    snapshot = adapter.fetch_positions()
    assert {p.asset.symbol: p.quantity for p in snapshot.positions} == {
        "BTC": Decimal("0.01234567"), "ETH": Decimal("1.75"), "DOT": Decimal("32011.21197"), "USDT": Decimal("10")}
    assert snapshot.cash == {"USD": Decimal("241983.1415")}
    assert next(p for p in snapshot.positions if p.asset.symbol == "BTC").current_price == Decimal("27947.90000")
