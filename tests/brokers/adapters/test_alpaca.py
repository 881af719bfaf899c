"""AlpacaAdapter against the running sandbox over real HTTP, plus the documentation's payloads."""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from backend.brokers.adapters import alpaca as alpaca_module
from backend.brokers.adapters.alpaca import AlpacaAdapter, parse_activity, parse_order, parse_position, rate_wait
from backend.brokers.dtos import AssetClass, Credentials, SkippedRecord, TransactionType
from backend.brokers.errors import AuthError, PermanentError, RateLimited, TransientError
from backend.brokers.http import BrokerSession, SessionPolicy
from sandbox.faults import FaultPlan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alpaca"


def load(name: str):
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


@pytest.fixture
def sim(sandbox):
    return sandbox.sims["alpaca"]


def make_adapter(sandbox, account, *, env=None, creds=None, policy=None, sleeps=None):
    env = env or account["environment"]
    creds = creds or Credentials(**account["credentials"])
    session = BrokerSession(broker="alpaca", base_url=sandbox.urls[f"alpaca-{env}"],
                            scope=AlpacaAdapter.rate_scope(creds, env), limiter=None,
                            vendor_errors=AlpacaAdapter.vendor_errors, secrets=creds.secrets(),
                            policy=policy, sleep=(sleeps.append if sleeps is not None else lambda s: None))
    return AlpacaAdapter(credentials=creds, environment=env, session=session)


def collect(pages):
    items, skipped, cursor, requests_used, count = [], [], None, 0, 0
    for page in pages:
        items += page.items
        skipped += page.skipped
        cursor, requests_used, count = page.cursor, requests_used + page.requests, count + 1
    return items, skipped, cursor, requests_used, count


def as_truth(tx):
    return {"broker_id": tx.broker_id, "type": tx.type.value, "symbol": tx.asset.symbol if tx.asset else "",
            "quantity": tx.quantity, "amount": tx.amount, "status": tx.status}


def truth_decimals(row):
    return {**row, "quantity": None if row["quantity"] is None else Decimal(row["quantity"]),
            "amount": None if row["amount"] is None else Decimal(row["amount"])}


# -- identity ---------------------------------------------------------------------------------------
def test_describe():
    info = AlpacaAdapter.describe()
    assert info["key"] == "alpaca" and info["environments"] == ["paper", "live"]
    assert [f["name"] for f in info["credential_fields"]] == ["api_key", "api_secret"]
    assert "200" in info["rate_limit"]


def test_verify_credentials_and_auth_errors(sandbox, sim):
    account = sim.create_account("live", seed=31, positions=3, activities=20)
    info = make_adapter(sandbox, account).verify_credentials()
    assert info.account_id == account["broker_account_id"] and info.currency == "USD"
    wrong = Credentials(api_key=account["credentials"]["api_key"], api_secret="S" * 40)
    with pytest.raises(AuthError) as exc:
        make_adapter(sandbox, account, creds=wrong).verify_credentials()
    assert exc.value.status == 401 and exc.value.code == 40110000 and "S" * 12 not in str(exc.value)
    with pytest.raises(AuthError):                     # a live key at the paper host
        make_adapter(sandbox, account, env="paper").verify_credentials()
    sim.revoke(account["account_id"])
    with pytest.raises(AuthError) as exc:
        make_adapter(sandbox, account).fetch_positions()
    assert account["credentials"]["api_secret"] not in str(exc.value.as_dict())


# -- full and incremental sync ----------------------------------------------------------------------------
def test_full_fetch_matches_truth(sandbox, sim):
    account = sim.create_account("paper", seed=21, positions=30, activities=2500, rate_limit_per_min=10_000)
    adapter = make_adapter(sandbox, account)
    truth = sim.truth(account["account_id"])
    txs, skipped, cursor, used, pages = collect(adapter.fetch_transactions(None))
    assert not skipped and len(txs) == 2500
    assert used == 2500 // 100 + 1 and pages == math.ceil(used / alpaca_module.PAGES_PER_CHECKPOINT)
    assert [as_truth(t) for t in txs] == [truth_decimals(r) for r in truth["transactions"]]
    assert cursor["last_id"] == txs[-1].broker_id
    assert cursor["watermark"] == max(t.occurred_at for t in txs).isoformat()
    orders, skipped, _, _, _ = collect(adapter.fetch_orders(None))
    assert not skipped
    assert {o.broker_id: o.status for o in orders} == {o["broker_id"]: o["status"] for o in truth["orders"]}
    snapshot = adapter.fetch_positions()
    assert {p.asset.symbol: p.quantity for p in snapshot.positions} == {
        p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    assert snapshot.cash == {"USD": Decimal(truth["cash"]["USD"])} and snapshot.requests == 2
    classes = {p.asset.asset_class for p in snapshot.positions}
    assert classes == {AssetClass.EQUITY, AssetClass.CRYPTO}
    assert all(p.asset.exchange for p in snapshot.positions if p.asset.asset_class == AssetClass.EQUITY)
    unknown = [t for t in txs if t.broker_type == "MEM"]
    assert unknown and all(t.type == TransactionType.OTHER and t.raw["activity_type"] == "MEM" for t in unknown)


def test_incremental_fetch_gets_only_new_records(sandbox, sim):
    account = sim.create_account("live", seed=22, positions=12, activities=400)
    adapter = make_adapter(sandbox, account)
    _, _, tx_cursor, _, _ = collect(adapter.fetch_transactions(None))
    orders, _, order_cursor, _, _ = collect(adapter.fetch_orders(None))
    open_ids = [o.broker_id for o in orders if o.is_open]
    # Nothing new: one request each, nothing but the orders sharing the watermark instant.
    items, _, same, used, _ = collect(adapter.fetch_transactions(tx_cursor))
    assert items == [] and used == 1 and same == tx_cursor
    again, _, same_orders, used, _ = collect(adapter.fetch_orders(order_cursor))
    assert used == 1 and same_orders == order_cursor
    assert {o.submitted_at.isoformat() for o in again} <= {order_cursor["watermark"]}

    added = sim.advance(account["account_id"])
    items, _, new_cursor, _, _ = collect(adapter.fetch_transactions(tx_cursor))
    assert [t.broker_id for t in items] == added["activities"]
    assert new_cursor["last_id"] == added["activities"][-1] and new_cursor["watermark"] >= tx_cursor["watermark"]
    types = {t.type for t in items}
    assert {TransactionType.TRADE, TransactionType.DIVIDEND, TransactionType.SPLIT, TransactionType.DEPOSIT} <= types
    fresh, _, _, _, _ = collect(adapter.fetch_orders(order_cursor, open_ids))
    by_id = {o.broker_id: o for o in fresh}
    assert set(added["orders"]) <= set(by_id)
    for canceled in added["canceled_orders"]:
        assert by_id[canceled].status in ("canceled",) and by_id[canceled].canceled_at is not None


def test_order_paging_never_loses_orders_sharing_a_submitted_at(sandbox, sim, monkeypatch):
    account = sim.create_account("paper", seed=23, positions=20, activities=600, rate_limit_per_min=10_000)
    truth_ids = {o["broker_id"] for o in sim.truth(account["account_id"])["orders"]}
    ledger = sim.accounts[account["account_id"]].ledger
    biggest_tie = max(Counter(ledger.order_us).values())
    assert biggest_tie >= 2
    # Any page that can hold the biggest group of same-instant orders pages through losslessly.
    for limit in (biggest_tie + 1, 7, 11):
        monkeypatch.setattr(alpaca_module, "ORDER_PAGE_LIMIT", limit)
        orders, _, cursor, used, _ = collect(make_adapter(sandbox, account).fetch_orders(None))
        assert {o.broker_id for o in orders} == truth_ids
        assert cursor["watermark"] == max(o.submitted_at for o in orders).isoformat()


def test_open_orders_are_refreshed(sandbox, sim):
    account = sim.create_account("paper", seed=24, positions=10, activities=200)
    adapter = make_adapter(sandbox, account)
    orders, _, cursor, _, _ = collect(adapter.fetch_orders(None))
    open_ids = [o.broker_id for o in orders if o.is_open]
    assert open_ids
    missing = "11111111-2222-4333-8444-555555555555"
    # Few ids: one GET each (a missing one is skipped, not fatal).
    refreshed, skipped, _, used, _ = collect(adapter.fetch_orders(cursor, open_ids[:1] + [missing]))
    assert open_ids[0] in {o.broker_id for o in refreshed}
    assert [s.raw["id"] for s in skipped] == [missing] and used == 1 + 2
    # Many ids: one status=open listing, then a GET only for what it did not show.
    many = open_ids + [missing] * 4 + [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
    refreshed, skipped, _, used, _ = collect(adapter.fetch_orders(cursor, many))
    assert set(open_ids) <= {o.broker_id for o in refreshed}
    assert len(skipped) == 4 and used == 1 + 1 + 4


# -- error kinds ----------------------------------------------------------------------------------------------
def test_429_from_fault_burst_is_rate_limited_with_the_reset_wait(sandbox, sim):
    account = sim.create_account("paper", seed=25, positions=3, activities=20)
    sandbox.faults.set(FaultPlan(target="alpaca-paper", burst_429=1, retry_after=1.0))
    with pytest.raises(RateLimited) as exc:
        make_adapter(sandbox, account, policy=SessionPolicy(max_inplace_wait=0)).verify_credentials()
    assert 1.0 <= exc.value.retry_after <= 2.0 and exc.value.status == 429 and exc.value.code == 42910000
    sleeps: list[float] = []
    sandbox.faults.set(FaultPlan(target="alpaca-paper", burst_429=1, retry_after=1.0))
    assert make_adapter(sandbox, account, sleeps=sleeps).verify_credentials().account_id
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0


def test_the_simulators_own_limit_is_rate_limited(sandbox, sim):
    account = sim.create_account("paper", seed=26, positions=3, activities=20, rate_limit_per_min=2)
    adapter = make_adapter(sandbox, account)
    adapter.verify_credentials()
    adapter.verify_credentials()
    with pytest.raises(RateLimited) as exc:                     # ~60 s wait: raised to the task, not slept
        adapter.verify_credentials()
    assert 55 <= exc.value.retry_after <= 60


def test_5xx_and_malformed_bodies_are_transient(sandbox, sim):
    account = sim.create_account("paper", seed=27, positions=3, activities=20)
    sleeps: list[float] = []
    sandbox.faults.set(FaultPlan(target="alpaca-paper", fail_next=3, error_status=503))
    with pytest.raises(TransientError) as exc:
        make_adapter(sandbox, account, sleeps=sleeps).fetch_positions()
    assert exc.value.status == 503 and len(sleeps) == 2
    sandbox.faults.set(FaultPlan(target="alpaca-paper", malformed_rate=1.0))
    with pytest.raises(TransientError):
        list(make_adapter(sandbox, account).fetch_transactions(None))
    sandbox.faults.set(FaultPlan(target="alpaca-paper", fail_next=1, error_status=500))
    assert make_adapter(sandbox, account).verify_credentials().account_id        # retried in place


def test_bad_request_is_permanent(sandbox, sim):
    account = sim.create_account("paper", seed=28, positions=3, activities=20)
    with pytest.raises(PermanentError) as exc:
        make_adapter(sandbox, account)._get("/v2/account/activities/FFFFF")
    assert exc.value.status == 422 and exc.value.code == 40010001


def fake_response(status, body=b"", headers=None):
    response = requests.Response()
    response.status_code, response._content = status, body
    response.headers.update(headers or {})
    return response


def test_vendor_error_table():
    errors = AlpacaAdapter.vendor_errors
    html = fake_response(403, b"<html><body><h1>403 Forbidden</h1></body></html>", {"Content-Type": "text/html"})
    assert isinstance(errors(html, None), AuthError)
    forbidden = {"code": 40310000, "message": "insufficient balance for USDT (requested: 221.63, available: 0)"}
    assert isinstance(errors(fake_response(403), forbidden), AuthError)
    assert isinstance(errors(fake_response(403), {"message": "forbidden."}), AuthError)
    assert isinstance(errors(fake_response(404), {"code": 40410000, "message": "order is not found."}),
                      PermanentError)
    assert isinstance(errors(fake_response(400), {"message": "Invalid format for parameter start"}), PermanentError)
    assert isinstance(errors(fake_response(504), None), TransientError)
    assert errors(fake_response(200), [{"id": "x"}]) is None
    reset = str(int(time.time()) + 30)
    limited = errors(fake_response(429, headers={"X-Ratelimit-Reset": reset}), {"code": 42910000})
    assert isinstance(limited, RateLimited) and 28 <= limited.retry_after <= 30
    assert rate_wait(fake_response(429, headers={"Retry-After": "7"})) == 7
    assert rate_wait(fake_response(429, headers={"X-Ratelimit-Reset": str(int(time.time()) + 9999)})) == 60
    assert rate_wait(fake_response(429)) == alpaca_module.DEFAULT_RATE_WAIT


def test_bad_record_is_skipped_and_the_page_goes_on(sandbox, sim):
    account = sim.create_account("paper", seed=29, positions=5, activities=60)
    ledger = sim.accounts[account["account_id"]].ledger
    broken = next(a for a in ledger.acts if a.kind == "FILL")
    broken.side = "sideways"
    txs, skipped, cursor, _, _ = collect(make_adapter(sandbox, account).fetch_transactions(None))
    assert len(txs) == 59 and [s.raw["id"] for s in skipped] == [broken.id]
    assert cursor["last_id"] == ledger.act_ids[-1]


# -- the documentation's payloads ----------------------------------------------------------------------------------
def test_documented_activities_parse():
    rows = {r["id"][:17]: parse_activity(r) for r in load("activities.json")}
    fill = rows["20220202135509981"]
    assert fill.type == TransactionType.TRADE and fill.quantity == Decimal("2") and fill.amount == Decimal("-349.56")
    assert fill.occurred_at.isoformat() == "2022-02-02T18:55:09.981482+00:00" and fill.asset.symbol == "AAPL"
    sell = rows["20190524113406977"]
    assert sell.quantity == Decimal("-1") and sell.amount == Decimal("1.63") and sell.side == "sell"
    coin = rows["20220614095930224"]
    assert coin.asset.symbol == "LTC" and coin.asset.asset_class == AssetClass.CRYPTO
    assert coin.occurred_at.microsecond == 224037                    # nanoseconds cut, not rounded
    div = rows["20190801011955195"]
    assert div.type == TransactionType.DIVIDEND and div.quantity is None and div.amount == Decimal("1.02")
    assert div.price == Decimal("0.51") and div.occurred_at.isoformat() == "2019-08-01T00:00:00+00:00"
    assert rows["20240322000000000"].type == TransactionType.DEPOSIT
    cfee = rows["20220812000000000"]
    assert cfee.type == TransactionType.FEE and cfee.asset.symbol == "ETH" and cfee.quantity == Decimal("-0.000195")
    split_out, split_in = rows["20240201000000000"], rows["20240201000000001"]
    assert split_out.type == split_in.type == TransactionType.SPLIT
    assert split_out.quantity + split_in.quantity == Decimal("20")
    assert rows["20240305000000000"].type == TransactionType.WITHDRAWAL            # TRANS by sign
    assert rows["20240306000000000"].status == "canceled"
    vof, new = rows["20240307000000000"], rows["20240308000000000"]
    assert vof.type == new.type == TransactionType.OTHER and new.broker_type == "ZZNEW"
    assert new.quantity is None and new.raw["description"] == "a type nobody documented yet"
    assert new.status == "correct"
    assert isinstance(parse_activity({"activity_type": "DIV"}), SkippedRecord)
    assert isinstance(parse_activity({"id": "1::x", "activity_type": "FILL", "qty": "x"}), SkippedRecord)


def test_documented_positions_account_and_orders_parse():
    aapl, btc, tsla = (parse_position(r) for r in load("positions.json"))
    assert (aapl.asset.symbol, aapl.asset.asset_class, aapl.asset.exchange) == ("AAPL", AssetClass.EQUITY, "NASDAQ")
    assert (btc.asset.symbol, btc.asset.asset_class, btc.quantity) == ("BTC", AssetClass.CRYPTO, Decimal("0.000207296"))
    assert tsla.quantity == Decimal("-5") and tsla.market_value == Decimal("-1190")
    notional, crypto, stop = (parse_order(r) for r in load("orders.json"))
    assert notional.quantity is None and notional.notional == Decimal("500") and notional.status == "open"
    assert notional.submitted_at.isoformat() == "2021-03-16T18:38:01.937734+00:00"
    assert crypto.asset.symbol == "BTC" and crypto.status == "filled" and crypto.filled_quantity == Decimal("0.0015")
    assert stop.status == "open" and stop.broker_status == "done_for_day" and stop.stop_price == Decimal("370.5")
    assert isinstance(parse_order({"id": "x", "status": "new"}), SkippedRecord)


class StubSession:
    """Answers get_json from fixtures, for the account-level parsing."""

    def __init__(self, answers):
        self.answers = answers

    def get_json(self, path, **kw):
        return self.answers[path]


def test_documented_account_parses():
    session = StubSession({"/v2/account": load("account.json"), "/v2/positions": load("positions.json")})
    adapter = AlpacaAdapter(credentials=Credentials(api_key="PKX", api_secret="s"), environment="paper",
                            session=session)
    assert adapter.verify_credentials().account_id == "e6fe16f3-64a4-4921-8928-cadf02f92f98"
    snapshot = adapter.fetch_positions()
    assert snapshot.cash == {"USD": Decimal("1234.56")} and len(snapshot.positions) == 3
