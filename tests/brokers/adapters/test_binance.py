"""BinanceAdapter against the Binance sandbox over real HTTP, plus the documented payloads.

Covered: full history equals the sandbox's truth (delisted pairs recorded as failed,
never claimed), an unchanged account costs one request, incremental syncs bring exactly
the new records, an interrupted sync resumes without repeating itself, every error kind,
the clock resync, and weights charged to the shared per-IP limiter."""
from __future__ import annotations

import json
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import requests
from urllib.parse import parse_qs, urlparse

from backend.brokers.adapters.binance import BinanceAdapter
from backend.brokers.adapters.binance import adapter as adapter_module
from backend.brokers.adapters.binance import parse, transactions
from backend.brokers.adapters.binance.discovery import Walk
from backend.brokers.adapters.binance.markets import Market, Markets, balance_totals, changed_assets
from backend.brokers.dtos import Credentials, TransactionType
from backend.brokers.errors import AuthError, BadRecord, PermanentError, RateLimited, TransientError
from backend.brokers.http import BrokerSession, SessionPolicy
from backend.brokers.ratelimit import RateLimiter, RateRule
from sandbox.brokers.binance import handlers
from sandbox.faults import FaultPlan

STRICT = SessionPolicy(transient_retries=0, max_inplace_wait=0, read_timeout=5)


@pytest.fixture
def sim(sandbox):
    binance = sandbox.sims["binance"]
    binance.reset_limits()                       # weight is per IP: 127.0.0.1 is shared by every test
    limit, ban, uid_limit = binance.weights.limit, binance.weights.ban_seconds, binance.sapi_weights.uid_limit
    # Withdraw history allows 10 calls a minute per account and a 2-year first sync takes 9;
    # these tests sync one account several times a minute, production does not.
    binance.sapi_weights.uid_limit = 10 ** 9
    yield binance
    binance.weights.limit, binance.weights.ban_seconds, binance.sapi_weights.uid_limit = limit, ban, uid_limit
    binance.reset_limits()


@pytest.fixture
def account(sim):
    return sim.create_account("live", seed=31, positions=6, activities=300)


def build(sandbox, account, policy=SessionPolicy(), limiter=None, credentials=None, http=None,
          **options) -> BinanceAdapter:
    credentials = credentials or Credentials(**account["credentials"])
    session = BrokerSession(broker="binance", base_url=sandbox.urls["binance"],
                            scope=BinanceAdapter.rate_scope(credentials, "live"), limiter=limiter, policy=policy,
                            vendor_errors=BinanceAdapter.vendor_errors, secrets=credentials.secrets(),
                            sleep=lambda s: None, http=http)
    return BinanceAdapter(credentials=credentials, environment="live", session=session, **options)


def drain(pages):
    pages = list(pages)
    return [i for p in pages for i in p.items], pages


def truth_of(sim, account):
    return json.loads(json.dumps(sim.truth(account["account_id"])))


# -- full and incremental ------------------------------------------------------------------------
def test_full_history_matches_the_truth(sandbox, sim, account):
    adapter = build(sandbox, account)
    truth = truth_of(sim, account)
    snapshot = adapter.fetch_positions()
    assert {p.asset.symbol: p.quantity for p in snapshot.positions} == \
        {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}

    items, pages = drain(adapter.fetch_transactions(None))
    mine = {t.broker_id: t for t in items}
    assert len(mine) == len(items), "no record twice"
    assert set(mine) == {t["broker_id"] for t in truth["transactions"]}
    for expected in truth["transactions"]:
        got = mine[expected["broker_id"]]
        assert (got.type.value, got.status, got.asset.symbol) == (expected["type"], expected["status"], expected["symbol"])
        assert got.quantity == Decimal(expected["quantity"])
    marks = [p.cursor["watermark"] for p in pages]
    assert marks == sorted(marks)
    final = pages[-1].coverage
    assert final["complete"] and final["mode"] == "full"
    # Delisted: answers -1121, or is not asked at all when its assets reconcile without it.
    assert set(truth["unreachable"]["symbols"]) <= set(final["symbols_failed"]) | set(final["symbols_skipped"])
    assert not set(final["symbols_failed"]) & set(final["symbols_known"])

    orders, _ = drain(build(sandbox, account).fetch_orders(None, ()))     # a fresh adapter, as the pipeline does
    assert {o.broker_id: o.status for o in orders} == {o["broker_id"]: o["status"] for o in truth["orders"]}


def test_unchanged_account_costs_one_request(sandbox, sim, account):
    _, pages = drain(build(sandbox, account).fetch_transactions(None))
    orders, order_pages = drain(build(sandbox, account).fetch_orders(None, ()))
    again, later = drain(build(sandbox, account).fetch_transactions(pages[-1].cursor))
    assert again == [] and sum(p.requests for p in later) == 1
    assert later[-1].cursor == pages[-1].cursor and later[-1].coverage["mode"] == "unchanged"
    open_ids = [o.broker_id for o in orders if o.is_open]
    refreshed, order_later = drain(build(sandbox, account).fetch_orders(order_pages[-1].cursor, open_ids))
    assert sum(p.requests for p in order_later) <= 2          # account, and openOrders when coins are locked
    assert {o.broker_id for o in refreshed} == set(open_ids)


def test_incremental_sync_brings_exactly_the_new_records(sandbox, sim, account):
    items, pages = drain(build(sandbox, account).fetch_transactions(None))
    orders, order_pages = drain(build(sandbox, account).fetch_orders(None, ()))
    before = truth_of(sim, account)
    added = sim.advance(account["account_id"])
    after = truth_of(sim, account)

    new, new_pages = drain(build(sandbox, account).fetch_transactions(pages[-1].cursor))
    expected = {t["broker_id"] for t in after["transactions"]} - {t["broker_id"] for t in before["transactions"]}
    assert {t.broker_id for t in new} == expected
    assert any(t.broker_symbol == added["new_symbol"] for t in new), "a pair never traded before"
    assert new_pages[-1].coverage["mode"] == "incremental"
    assert added["new_symbol"] in new_pages[-1].coverage["symbols_covered"]
    assert "ETHBUSD" not in new_pages[-1].coverage["symbols_covered"]       # known delisted: not asked again

    open_ids = [o.broker_id for o in orders if o.is_open]
    changed, _ = drain(build(sandbox, account).fetch_orders(order_pages[-1].cursor, open_ids))
    statuses = {o["broker_id"]: o["status"] for o in after["orders"]}
    got = {o.broker_id: o.status for o in changed}
    assert all(got[o] == "open" for o in added["orders"])
    assert all(got[o] == "canceled" for o in added["canceled_orders"])
    assert all(got[o] == statuses[o] for o in open_ids)
    new_orders = set(statuses) - {o["broker_id"] for o in before["orders"]}
    assert new_orders <= set(got)


def test_a_pending_deposit_is_read_again_until_credited(sandbox, sim, account):
    _, pages = drain(build(sandbox, account).fetch_transactions(None))
    waiting = sim.advance(account["account_id"], pending_deposit=True, fills=1)["pending_deposit"]
    seen, pages = drain(build(sandbox, account).fetch_transactions(pages[-1].cursor))
    assert {t.broker_id: t.status for t in seen}[waiting] == "pending"
    # Balances did not move, but a deposit is pending: the wallet history is read again.
    again, pages = drain(build(sandbox, account).fetch_transactions(pages[-1].cursor))
    assert pages[-1].coverage["mode"] == "incremental" and {t.broker_id for t in again} == {waiting}
    sim.advance(account["account_id"], settle_deposits=True)
    settled, pages = drain(build(sandbox, account).fetch_transactions(pages[-1].cursor))
    assert {t.broker_id: t.status for t in settled} == {waiting: "executed"}
    quiet, pages = drain(build(sandbox, account).fetch_transactions(pages[-1].cursor))
    assert quiet == [] and pages[-1].coverage["mode"] == "unchanged"


def test_an_interrupted_sync_resumes_without_repeating(sandbox, sim, account, monkeypatch):
    monkeypatch.setattr(transactions, "FLUSH_SYMBOLS", 3)        # a checkpoint every 3 symbols
    head = []
    for page in build(sandbox, account).fetch_transactions(None):
        head.append(page)
        if len(page.coverage.get("symbols_covered", [])) == 3:
            break                                                  # the worker dies mid-way through the symbols
    todo = head[-1].cursor["pass"]["todo"]
    assert todo and not set(todo) & set(head[-1].coverage["symbols_covered"])
    rest, tail = drain(build(sandbox, account).fetch_transactions(head[-1].cursor))
    done = [t.broker_id for p in head for t in p.items]
    assert not set(done) & {t.broker_id for t in rest}
    assert set(done) | {t.broker_id for t in rest} == {t["broker_id"] for t in truth_of(sim, account)["transactions"]}
    # 3 symbols: no wallet walk again, and exchangeInfo is the first adapter's (kept per process)
    assert tail[-1].coverage["complete"] and tail[0].requests == 3


def test_the_syncs_of_a_process_share_exchange_info_for_a_while(sandbox, account, monkeypatch):
    asked = []
    http = requests.Session()
    http.hooks["response"].append(lambda r, *a, **k: asked.append(urlparse(r.url).path))
    first = build(sandbox, account, http=http).markets()
    second = build(sandbox, account, http=http).markets()
    assert asked.count("/api/v3/exchangeInfo") == 1 and second is first     # the second sync took the first's copy
    monkeypatch.setattr(adapter_module, "SHARED_MARKETS_TTL", 0.0)
    third = build(sandbox, account, http=http).markets()
    assert asked.count("/api/v3/exchangeInfo") == 2 and third is not first  # past its time it is asked again
    assert set(third.by_symbol) == set(first.by_symbol)


def test_a_pair_interrupted_mid_walk_is_finished_first(sandbox, sim, account, monkeypatch):
    monkeypatch.setattr(transactions, "FLUSH_ITEMS", 40)          # a checkpoint inside a pair's pages
    monkeypatch.setattr(transactions, "TRADES_PAGE", 20)
    head = []
    for page in build(sandbox, account).fetch_transactions(None):
        head.append(page)
        if page.coverage.get("symbol_partial"):
            break                                                  # the worker dies inside a pair
    partial = head[-1].coverage["symbol_partial"]
    assert head[-1].cursor["pass"]["current"] == partial and partial in head[-1].cursor["pass"]["todo"]
    rest, tail = drain(build(sandbox, account).fetch_transactions(head[-1].cursor))
    first_covered = next(p.coverage["symbols_covered"] for p in tail if p.coverage.get("symbols_covered"))
    assert first_covered[0] == partial
    done = [t.broker_id for p in head for t in p.items]
    assert not set(done) & {t.broker_id for t in rest}
    assert set(done) | {t.broker_id for t in rest} == {t["broker_id"] for t in truth_of(sim, account)["transactions"]}
    assert tail[-1].coverage["assets_unreconciled"] == {}


def test_pairs_walked_before_a_wait_are_handed_over_not_asked_again(sandbox, sim, account, redis_client):
    """The IP's weight is spent mid-walk: the pairs walked since the last page come out in
    a page before the wait is raised (the pipeline saves it), so the retry asks none again."""
    asked = []
    http = requests.Session()
    http.hooks["response"].append(lambda r, *a, **k: asked.append(parse_qs(urlparse(r.url).query).get("symbol")))
    # account 20 + exchangeInfo 20 + 4 myTrades (80): the fifth pair has to wait.
    limiter = RateLimiter(redis_client, {"binance": RateRule("window", 120, 61)})
    pages = []
    with pytest.raises(RateLimited):
        for page in build(sandbox, account, STRICT, limiter=limiter, http=http).fetch_transactions(None):
            pages.append(page)
    first = [s[0] for s in asked if s]
    assert len(first) == 4 and pages[-1].coverage["symbols_covered"] == first       # fewer than FLUSH_SYMBOLS
    rest, _ = drain(build(sandbox, account, http=http).fetch_transactions(pages[-1].cursor))
    walked = [s[0] for s in asked if s]
    assert len(walked) == len(set(walked)), "no pair asked twice"
    done = {t.broker_id for p in pages for t in p.items}
    assert done | {t.broker_id for t in rest} == {t["broker_id"] for t in truth_of(sim, account)["transactions"]}


def limited_orders_adapter(sandbox, sim, account, redis_client, tx_cursor: dict, weight: float, name: str):
    """An adapter primed with the transactions step's cursor, on a fresh budget of `weight`
    a minute (its own limiter prefix) and with the sandbox's weight count reset, so what the
    budget holds is exactly what the test says; returns it and the paths it asks."""
    sim.reset_limits()
    asked: list[str] = []
    http = requests.Session()
    http.hooks["response"].append(lambda r, *a, **k: asked.append(urlparse(r.url).path))
    redis_client.delete(*redis_client.keys(f"test:{name}:*") or ["-"])
    limiter = RateLimiter(redis_client, {"binance": RateRule("window", weight, 61)}, prefix=f"test:{name}")
    adapter = build(sandbox, account, STRICT, limiter=limiter, http=http)
    adapter.prime({"transactions": tx_cursor})
    return adapter, asked


def test_an_orders_pass_that_must_wait_before_its_first_pair_keeps_its_start(sandbox, sim, account, redis_client):
    """The weight runs out right after the orders pass read the account (20): the pass
    comes out in a page before the wait is raised, so its retry goes on with the pairs and
    does not read the account again (a step retried on a spent budget used to spend 20 each
    time and never reach a pair)."""
    _, tx_pages = drain(build(sandbox, account).fetch_transactions(None))
    adapter, asked = limited_orders_adapter(sandbox, sim, account, redis_client, tx_pages[-1].cursor,
                                            20, "orders-pass-wait")           # the account read, no more
    pages = []
    with pytest.raises(RateLimited):
        for page in adapter.fetch_orders(None, ()):
            pages.append(page)
    assert asked == ["/api/v3/account"] and len(pages) == 1 and pages[0].items == []
    assert pages[0].cursor["pass"]["todo"]                            # the pass, with every pair still to walk
    again = build(sandbox, account, http=adapter.session.http)
    again.prime({"transactions": tx_pages[-1].cursor})
    orders, _ = drain(again.fetch_orders(pages[0].cursor, ()))
    assert asked.count("/api/v3/account") == 1 and "/api/v3/allOrders" in asked
    whole = build(sandbox, account)                                   # the same pass without a wait
    whole.prime({"transactions": tx_pages[-1].cursor})
    expected, _ = drain(whole.fetch_orders(None, ()))
    assert expected and sorted(o.broker_id for o in orders) == sorted(o.broker_id for o in expected)


def test_pairs_walked_before_a_wait_on_open_orders_are_kept(sandbox, sim, account, redis_client):
    """Every pair's allOrders fits the budget but the open orders do not: the pairs' orders
    come out in a page before the wait is raised, so the retry reads only the open orders
    (it used to walk every pair again, 20 each, on every retry)."""
    _, tx_pages = drain(build(sandbox, account).fetch_transactions(None))
    whole = build(sandbox, account)
    whole.prime({"transactions": tx_pages[-1].cursor})
    expected, _ = drain(whole.fetch_orders(None, ()))
    assert any(o.is_open for o in expected)                           # so open orders are asked for
    pairs = len(whole.trade_symbols)
    adapter, asked = limited_orders_adapter(sandbox, sim, account, redis_client, tx_pages[-1].cursor,
                                            20 + 20 * pairs, "open-orders-wait")      # account + pairs
    pages = []
    with pytest.raises(RateLimited):
        for page in adapter.fetch_orders(None, ()):
            pages.append(page)
    assert asked.count("/api/v3/allOrders") == pairs and "/api/v3/openOrders" not in asked
    assert pages and pages[-1].cursor["pass"]["todo"] == []
    asked.clear()
    again = build(sandbox, account, http=adapter.session.http)
    again.prime({"transactions": tx_pages[-1].cursor})
    rest, _ = drain(again.fetch_orders(pages[-1].cursor, ()))
    assert "/api/v3/allOrders" not in asked and "/api/v3/openOrders" in asked
    got = {o.broker_id for p in pages for o in p.items} | {o.broker_id for o in rest}
    assert got == {o.broker_id for o in expected}


def test_the_steps_of_one_execution_share_one_account_read(sandbox, sim, account):
    """Positions, then the transactions and orders passes, each need the balances: one
    execution's adapters (sharing its handoff, as the pipeline wires them) read the account
    once while the read is under a minute old, and again once it is older."""
    from backend.brokers.adapters.binance import adapter as binance_adapter

    asked = []
    http = requests.Session()
    http.hooks["response"].append(lambda r, *a, **k: asked.append(urlparse(r.url).path))
    handoff: dict = {}
    steps = []
    for _ in range(3):
        step = build(sandbox, account, http=http)
        step.handoff = handoff
        steps.append(step)
    steps[0].fetch_positions()
    _, tx_pages = drain(steps[1].fetch_transactions(None))
    steps[2].prime({"transactions": tx_pages[-1].cursor})
    orders, _ = drain(steps[2].fetch_orders(None, ()))
    assert asked.count("/api/v3/account") == 1 and orders
    at, body = handoff["binance_account"]
    handoff["binance_account"] = (at - binance_adapter.ACCOUNT_REUSE_SECONDS, body)     # a minute later
    build(sandbox, account, http=http).fetch_positions()                          # its own handoff
    later = build(sandbox, account, http=http)
    later.handoff = handoff
    later.fetch_positions()
    assert asked.count("/api/v3/account") == 3


def test_candidate_symbols():
    markets = Markets([Market("ETHUSDT", "ETH", "USDT", "TRADING"), Market("ETHBTC", "ETH", "BTC", "TRADING"),
                       Market("SOLBTC", "SOL", "BTC", "TRADING"), Market("DOGEUSDT", "DOGE", "USDT", "TRADING"),
                       Market("ETHBUSD", "ETH", "BUSD", "BREAK"), Market("SOLBUSD", "SOL", "BUSD", "BREAK")])
    # Held or moved: ETH, USDT. BTC is a common quote; delisted pairs only with both sides known.
    assert markets.full({"ETH", "USDT"}) == {"ETHUSDT", "ETHBTC"}
    assert markets.full({"ETH", "USDT", "BUSD"}) == {"ETHUSDT", "ETHBTC", "ETHBUSD"}
    assert markets.full({"ETH", "USDT"}, deep=True) == {"ETHUSDT", "ETHBTC", "DOGEUSDT"}
    # Incremental: a trade moves both of its assets.
    assert markets.changed({"SOL", "BTC"}) == {"SOLBTC"}
    assert markets.changed({"ETH"}) == set()
    assert balance_totals({"balances": [{"asset": "BTC", "free": "0.5", "locked": "0.25"},
                                        {"asset": "ETH", "free": "0", "locked": "0"}]}) == ({"BTC": "0.75"}, {"BTC"})
    assert changed_assets({"BTC": "0.75", "ETH": "1"}, {"BTC": "0.750", "SOL": "2"}) == {"ETH", "SOL"}


# -- reconcile-guided discovery ------------------------------------------------------------------------
def traded_pairs(truth) -> set[str]:
    return {t["broker_id"].split(":")[1] for t in truth["transactions"] if t["broker_id"].startswith("trade:")}


@pytest.fixture
def small(sim):
    """Holds USDT, BTC, BNB; ETH and SOL were deposited, traded and closed; the BUSD episode
    (ETHBUSD, delisted now) nets to zero on ETH and BUSD."""
    return sim.create_account("live", seed=40, positions=3, activities=30)


def test_a_first_sync_walks_only_the_pairs_reconcile_needs(sandbox, sim, small):
    truth = truth_of(sim, small)
    items, pages = drain(build(sandbox, small).fetch_transactions(None))
    final = pages[-1].coverage
    walked = set(final["symbols_covered"]) | set(final["symbols_failed"])
    # Each of these moved an asset that did not reconcile until it was walked: USDT (funded,
    # then spent), BTC, BNB, ETH and SOL (bought or deposited, sold) ...
    assert walked == traded_pairs(truth) == {"BNBUSDT", "BTCUSDT", "ETHBTC", "ETHUSDT", "SOLUSDT"}
    # ... and once they had, every asset reconciled: the other 14 candidates were not asked,
    # among them the delisted ETHBUSD (its round trip nets to zero) and pairs such as SOLBTC
    # whose two coins were both explained already.
    assert final["symbols_skipped"] == {s: "both assets reconcile" for s in [
        "BNBBTC", "BNBBUSD", "BNBETH", "BTCBUSD", "BTCFDUSD", "BUSDUSDT", "ETHBNB", "ETHBUSD", "EURUSDT",
        "FDUSDUSDT", "SOLBTC", "SOLBUSD", "SOLETH", "USDCUSDT"]}
    assert final["candidates"] == len(walked) + len(final["symbols_skipped"]) == 19
    assert final["assets_unreconciled"] == {}
    assert pages[-1].cursor["skipped"] == final["symbols_skipped"]          # kept for the next syncs
    assert {t.broker_id for t in items} == {t["broker_id"] for t in truth["transactions"]}


def test_skipped_pairs_cost_no_request(sandbox, sim, small):
    asked = []
    http = requests.Session()
    http.hooks["response"].append(lambda r, *a, **k: asked.append(urlparse(r.url).path))
    drain(build(sandbox, small, http=http).fetch_transactions(None))
    assert asked.count("/api/v3/myTrades") == 5 == truth_of(sim, small)["minimum"]["detail"]["my_trades"]


def test_an_unreconciled_asset_is_walked_on_every_candidate_pair(sandbox, sim, small):
    from tests.reconcile.helpers import inject

    deposit = next(d for d in sim.accounts[small["account_id"]].deposits.items if d.coin == "SOL")
    inject(sandbox, small["account_id"], kind="drop", record=deposit.id)     # the feed leaves it out
    items, pages = drain(build(sandbox, small).fetch_transactions(None))
    final = pages[-1].coverage
    walked = set(final["symbols_covered"]) | set(final["symbols_failed"])
    # SOL's balance (0) no longer adds up: every candidate pair of SOL is asked, even those
    # of coins that reconcile (SOLBTC, SOLETH) and the delisted SOLBUSD (-1121).
    sol_pairs = {"SOLUSDT", "SOLBTC", "SOLETH", "SOLBUSD"}
    assert walked == traded_pairs(truth_of(sim, small)) | sol_pairs
    assert "SOLBUSD" in final["symbols_failed"] and not sol_pairs & set(final["symbols_skipped"])
    # The coverage map names the asset and by how much it is off: the dropped deposit.
    assert Decimal(final["assets_unreconciled"]["SOL"]) == Decimal(deposit.amount) / 10 ** 8
    assert set(final["assets_unreconciled"]) == {"SOL"}


def test_deep_walks_every_candidate_pair(sandbox, sim, small):
    sim.weights.limit = 10 ** 9                 # every pair quoted in USDT, BTC or BNB: past a minute's weight
    adapter = build(sandbox, small, **BinanceAdapter.adapter_options({"deep": True}))
    assert adapter.deep_scan
    items, pages = drain(adapter.fetch_transactions(None))
    final = pages[-1].coverage
    assert final["deep"] is True and "symbols_skipped" not in final
    assert len(final["symbols_covered"]) + len(final["symbols_failed"]) == final["candidates"] > 19
    assert {t.broker_id for t in items} == {t["broker_id"] for t in truth_of(sim, small)["transactions"]}
    assert BinanceAdapter.adapter_options({}) == BinanceAdapter.adapter_options({"deep": "yes"}) == \
        {"deep_scan": False}


def _leg(asset, change, status="executed", **extra):
    from datetime import datetime, timezone

    from backend.brokers.symbols import coin_asset

    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    if asset in ("EUR", "USD"):
        return parse.Transaction(broker_id="x", type=TransactionType.DEPOSIT, broker_type="DEPOSIT", occurred_at=when,
                                 amount=change, currency=asset, status=status, **extra)
    return parse.Transaction(broker_id="x", type=TransactionType.TRADE, broker_type=extra.pop("broker_type", "TRADE"),
                             occurred_at=when, asset=coin_asset(asset), quantity=change, status=status, **extra)


def test_the_walk_adds_executed_legs_only_and_tells_third_asset_commissions():
    walk = Walk({"baseline": {"BTC": "0.5", "EUR": "100", "BNB": "0.99"}})
    walk.add([_leg("BTC", Decimal("0.7")), _leg("BTC", Decimal("-0.2")),      # 0.7 - 0.2 = 0.5: adds up
              _leg("EUR", Decimal("150")), _leg("EUR", Decimal("50"), status="pending")])   # 150 of 100
    walk.add([_leg("BNB", Decimal("-0.01"), broker_type="COMMISSION", fee=Decimal("0.01"))], ("BTC", "USDT"))
    # EUR: 100 - 150 = -50; BNB: 0.99 - (-0.01) = 1 (its deposit not seen yet); BTC adds up.
    assert walk.unreconciled() == {"BNB": "1", "EUR": "-50"}
    assert walk.state["fee_assets"] == ["BNB"]                  # paid on BTCUSDT: any pair can move it
    walk.add([_leg("BTC", Decimal("-0.001"), broker_type="COMMISSION", fee=Decimal("0.001"))], ("BTC", "USDT"))
    assert walk.state["fee_assets"] == ["BNB"]                  # BTC's own pair: not a third asset


@given(st.lists(st.tuples(st.sampled_from(["BTC", "ETH", "EUR"]),
                          st.decimals(min_value=-1000, max_value=1000, places=8, allow_nan=False),
                          st.sampled_from(["executed", "executed", "pending", "canceled"])), max_size=30),
       st.integers(min_value=0, max_value=30))
@settings(max_examples=60, deadline=None)
def test_a_resumed_walk_has_the_residuals_of_an_unbroken_one(legs, cut):
    """The walk's state survives the cursor (JSON) between two executions of a pass."""
    baseline = {"BTC": "1.5", "ETH": "0", "EUR": "20"}
    whole = Walk({"baseline": dict(baseline)})
    whole.add([_leg(a, c, s) for a, c, s in legs])
    first = Walk({"baseline": dict(baseline)})
    first.add([_leg(a, c, s) for a, c, s in legs[:cut]])
    resumed = Walk(json.loads(json.dumps(first.state)))
    resumed.add([_leg(a, c, s) for a, c, s in legs[cut:]])
    expected = {a: Decimal(baseline.get(a, "0")) - sum((c for b, c, s in legs if b == a and s == "executed"),
                                                       Decimal(0)) for a in ("BTC", "ETH", "EUR")}
    assert resumed.residuals() == whole.residuals() == {a: r for a, r in expected.items() if r}


def test_orders_follow_the_pairs_walked_plus_every_open_order(sandbox, sim, small):
    _, pages = drain(build(sandbox, small).fetch_transactions(None))
    adapter = build(sandbox, small)
    adapter.prime({"transactions": pages[-1].cursor})              # what the pipeline hands the orders step
    orders, order_pages = drain(adapter.fetch_orders(None, ()))
    truth = truth_of(sim, small)
    final = order_pages[-1].coverage
    assert set(final["symbols_covered"]) == traded_pairs(truth)   # allOrders only where trades are
    assert {o.broker_id: o.status for o in orders} == {o["broker_id"]: o["status"] for o in truth["orders"]}
    assert final["open_orders"] == sum(1 for o in truth["orders"] if o["status"] in ("open", "partially_filled"))


# -- credentials ------------------------------------------------------------------------------------
def test_verify_credentials_and_permission_warnings(sandbox, sim):
    plain = sim.create_account("live", seed=32, positions=3, activities=20)
    info = build(sandbox, plain).verify_credentials()
    assert info.account_id == plain["broker_account_id"] and info.warnings == ()
    risky = sim.create_account("live", seed=33, positions=3, activities=20, can_trade=True, can_withdraw=True)
    warnings = build(sandbox, risky).verify_credentials().warnings
    assert len(warnings) == 2 and any("withdraw" in w for w in warnings) and any("trade" in w for w in warnings)


@pytest.mark.parametrize("key, secret, code", [
    ("K" * 64, None, -2015),            # unknown key
    (None, "S" * 64, -1022),            # wrong secret
    ("bad-key", None, -2014),
])
def test_bad_keys_are_auth_errors_without_secrets(sandbox, sim, account, key, secret, code):
    credentials = Credentials(api_key=key or account["credentials"]["api_key"],
                              api_secret=secret or account["credentials"]["api_secret"])
    with pytest.raises(AuthError) as caught:
        build(sandbox, account, STRICT, credentials=credentials).verify_credentials()
    assert caught.value.code == code
    assert account["credentials"]["api_secret"][:12] not in str(caught.value)


def test_a_server_clock_ahead_is_resynced(sandbox, sim, account):
    sandbox.clock.advance(90)                      # the server's time moves past our recvWindow
    try:
        adapter = build(sandbox, account)
        assert adapter.verify_credentials().account_id == account["broker_account_id"]
        assert 85_000 < adapter._clock_offset_ms < 95_000
    finally:
        sandbox.clock.advance(-90)


# -- rate limits and errors --------------------------------------------------------------------------
@pytest.fixture
def one_minute(sim, monkeypatch):
    """Pin the weight windows to the first second of the next minute, so no window ends
    mid-test. Returns the pinned time (ms)."""
    pinned = (sim.now_ms() // 60_000 + 1) * 60_000 + 1_000
    monkeypatch.setattr(sim, "rate_now_ms", lambda: pinned)
    return pinned


def test_weight_limit_gives_429_then_418(sandbox, sim, account, one_minute):
    sim.weights.limit, sim.weights.ban_seconds = 50, 7
    build(sandbox, account, STRICT).fetch_positions()       # one sync each: a fresh adapter reads the account
    build(sandbox, account, STRICT).fetch_positions()
    with pytest.raises(RateLimited) as first:
        build(sandbox, account, STRICT).fetch_positions()
    assert not first.value.banned and 1 <= first.value.retry_after <= 60
    with pytest.raises(RateLimited) as second:           # kept sending after the 429
        build(sandbox, account, STRICT).fetch_positions()
    assert second.value.banned and second.value.status == 418
    # "IP banned until <ms>": the wait runs to that time (7 s after the pinned clock).
    assert abs(second.value.retry_after - ((one_minute + 7_000) / 1000 - time.time())) < 2


@pytest.mark.parametrize("retry_after, least", [(30, 30), (0, 1)])
def test_429_waits_and_never_trusts_zero(sandbox, sim, account, retry_after, least):
    sandbox.faults.set(FaultPlan(target="binance", burst_429=1, retry_after=retry_after))
    with pytest.raises(RateLimited) as caught:
        build(sandbox, account, STRICT).fetch_positions()
    assert caught.value.retry_after >= least and caught.value.code == -1003


@pytest.mark.parametrize("plan", [dict(fail_next=3, error_status=503), dict(fail_next=3, error_status=500),
                                  dict(malformed_rate=1.0)])
def test_server_errors_and_bad_bodies_are_transient(sandbox, sim, account, plan):
    sandbox.faults.set(FaultPlan(target="binance", **plan))
    with pytest.raises(TransientError):
        list(build(sandbox, account).fetch_transactions(None))


def test_a_record_that_cannot_be_read_is_skipped(sandbox, sim, account, monkeypatch):
    real = handlers.render_trade
    victim = sim.accounts[account["account_id"]].books["BTCUSDT"].trades[0].id
    monkeypatch.setattr(handlers, "render_trade",
                        lambda t: {**real(t), "qty": "lots"} if t.id == victim else real(t))
    items, pages = drain(build(sandbox, account).fetch_transactions(None))
    skipped = [s for p in pages for s in p.skipped]
    assert len(skipped) == 1 and "qty" in skipped[0].reason and skipped[0].raw["id"] == victim
    assert f"trade:BTCUSDT:{victim}" not in {t.broker_id for t in items}
    assert pages[-1].cursor["trades"]["BTCUSDT"] > victim          # the page still moved on


def test_weights_are_charged_to_the_shared_ip_budget(sandbox, sim, account, redis_client):
    limiter = RateLimiter(redis_client, {"binance": RateRule("window", 6000, 61)})
    adapter = build(sandbox, account, limiter=limiter)
    adapter.verify_credentials()                                   # account 20, apiRestrictions (/sapi) 0
    adapter.fetch_positions()                                      # account 20, ticker/price (all) 4
    other = Credentials(api_key="Z" * 64, api_secret="z" * 64)
    assert BinanceAdapter.rate_scope(other, "live") == adapter.session.scope == "binance:ip:default"
    assert limiter.used("binance", adapter.session.scope) == 44


def test_withdraw_history_budget_is_the_accounts_not_the_ips(sandbox, sim, account, redis_client, one_minute):
    sim.sapi_weights.uid_limit = 180_000                          # Binance's: 10 withdraw-history calls a minute
    limiter = RateLimiter(redis_client, {"binance": RateRule("window", 6000, 61)})
    drain(build(sandbox, account, limiter=limiter).fetch_transactions(None))       # 9 of them (2 years)
    orders, pages = drain(build(sandbox, account, limiter=limiter).fetch_orders(None, ()))
    assert pages[-1].cursor["rediscover"] is True                 # the rest of the wallet history, next time
    assert {o.broker_id for o in orders} == {o["broker_id"] for o in truth_of(sim, account)["orders"]}
    adapter = build(sandbox, account, limiter=limiter)
    assert limiter.blocked_for(adapter.session.scope) == 0       # the 429 was the account's, not the IP's
    assert limiter.blocked_for(adapter._uid_budget().scope) > 50            # until the minute ends


def test_the_egress_ip_setting_names_the_scope(settings):
    settings.BINANCE_EGRESS_IP = "203.0.113.7"
    assert BinanceAdapter.rate_scope(Credentials(api_key="a"), "live") == "binance:ip:203.0.113.7"


def test_each_egress_address_has_its_own_budget(sandbox, sim, account, redis_client, settings, one_minute):
    """Two workers bound to 127.0.0.1 and 127.0.0.2 (BROKER_EGRESS_IP): the sandbox counts
    weight per client address and so does our limiter, so each address has its own 6,000."""
    from backend.brokers.marketdata.binance import BinanceSource
    from backend.brokers.registry import build_adapter

    sim.weights.limit = 50                                        # two account reads (20 each) a minute
    limiter = RateLimiter(redis_client, {"binance": RateRule("window", 45, 61)})
    adapters = {}
    for ip in ("127.0.0.1", "127.0.0.2"):
        settings.BROKER_EGRESS_IP = ip
        adapters[ip] = build_adapter("binance", environment="live", credentials=Credentials(**account["credentials"]),
                                     limiter=limiter, base_url=sandbox.urls["binance"])
        assert adapters[ip].session.scope == f"binance:ip:{ip}" == BinanceSource.rate_scope()
    for adapter in adapters.values():
        adapter.account_body()
        adapter.handoff.clear()                                   # another sync's read, not this one's again
        adapter.account_body()
    # 40 on each address: one address alone would have been told to wait (429 at Binance).
    assert [sim.weights.used(ip, one_minute) for ip in adapters] == [40, 40]
    assert [limiter.used("binance", f"binance:ip:{ip}") for ip in adapters] == [40, 40]
    assert limiter.acquire("binance", "binance:ip:127.0.0.2", 20) > 0          # that address's budget is spent
    settings.BROKER_EGRESS_IP = ""
    settings.BINANCE_EGRESS_IP = "203.0.113.7"                  # names the scope, binds nothing
    assert BinanceAdapter.rate_scope(Credentials(api_key="a"), "live") == "binance:ip:203.0.113.7"


def _response(status, headers=None):
    return SimpleNamespace(status_code=status, headers=headers or {})


@pytest.mark.parametrize("status, body, kind, extra", [
    (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, AuthError, {}),
    (400, {"code": -2014, "msg": "API-key format invalid."}, AuthError, {}),
    (400, {"code": -1022, "msg": "Signature for this request is not valid."}, AuthError, {}),
    (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}, TransientError, {}),
    (400, {"code": -1121, "msg": "Invalid symbol."}, PermanentError, {}),
    (400, {"code": -1127, "msg": "More than 24 hours between startTime and endTime."}, PermanentError, {}),
    (503, {"code": -1008, "msg": "Server is currently overloaded with other requests."}, TransientError, {}),
    (500, None, TransientError, {}),
    (400, {"code": -1001, "msg": "Internal error; unable to process your request."}, TransientError, {}),
    (429, {"code": -1003, "msg": "Too much request weight used"}, RateLimited, {"banned": False}),
    (418, {"code": -1003, "msg": "Way too much request weight used; IP banned until 9999999999999."},
     RateLimited, {"banned": True}),
])
def test_vendor_error_table(status, body, kind, extra):
    error = BinanceAdapter.vendor_errors(_response(status, {"Retry-After": "12"}), body)
    assert type(error) is kind
    for name, value in extra.items():
        assert getattr(error, name) == value
    assert BinanceAdapter.vendor_errors(_response(200), {"uid": 1}) is None


def test_a_ban_without_retry_after_waits_until_the_time_it_names():
    error = BinanceAdapter.vendor_errors(_response(418), {"code": -1003, "msg": "IP banned until 4102444800000."})
    assert error.banned and error.retry_after > 10 ** 8


# -- documented payloads (rest-api.md, wallet docs), parsed by hand ----------------------------------------
def test_documented_trade_becomes_three_legs():
    raw = {"symbol": "BNBBTC", "id": 28457, "orderId": 100234, "orderListId": -1, "price": "4.00000100",
           "qty": "12.00000000", "quoteQty": "48.000012", "commission": "10.10000000", "commissionAsset": "BNB",
           "time": 1499865549590, "isBuyer": True, "isMaker": False, "isBestMatch": True}
    base, quote, fee = parse.trade_legs(raw, "BNB", "BTC")
    assert (base.broker_id, base.asset.symbol, base.quantity, base.price, base.side) == \
        ("trade:BNBBTC:28457", "BNB", Decimal("12"), Decimal("4.00000100"), "buy")
    assert (quote.asset.symbol, quote.quantity, quote.type) == ("BTC", Decimal("-48.000012"), TransactionType.TRADE)
    assert (fee.asset.symbol, fee.quantity, fee.type, fee.order_id) == \
        ("BNB", Decimal("-10.1"), TransactionType.FEE, "BNBBTC:100234")
    assert base.occurred_at.isoformat() == "2017-07-12T13:19:09.590000+00:00"


def test_fiat_quoted_trade_moves_cash_not_a_coin():
    raw = {"symbol": "BTCEUR", "id": 1, "orderId": 2, "price": "50000", "qty": "0.1", "quoteQty": "5000",
           "commission": "0", "commissionAsset": "EUR", "time": 1, "isBuyer": False}
    [leg] = parse.trade_legs(raw, "BTC", "EUR")
    assert (leg.quantity, leg.amount, leg.currency) == (Decimal("-0.1"), Decimal("5000"), "EUR")


def test_documented_wallet_records():
    deposit = {"id": "769800519366885376", "amount": "0.001", "coin": "BNB", "network": "BNB", "status": 1,
               "address": "bnb136ns6lfw4zs5hg4n85vdthaad7hq5m4gtkgf23", "addressTag": "101764890",
               "txId": "98A3EA56", "insertTime": 1661493146000, "completeTime": 1661493146000, "transferType": 0,
               "confirmTimes": "1/1", "unlockConfirm": 0, "walletType": 0}
    [leg] = parse.deposit_legs(deposit)
    assert (leg.broker_id, leg.type, leg.asset.symbol, leg.quantity) == \
        ("deposit:769800519366885376", TransactionType.TRANSFER, "BNB", Decimal("0.001"))
    [waiting] = parse.deposit_legs({**deposit, "status": 0})          # not credited yet: not counted
    assert waiting.status == "pending" and parse.deposit_pending({**deposit, "status": 0})
    withdrawal = {"id": "b6ae22b3aa844210a7041aee7589627c", "amount": "8.91000000", "transactionFee": "0.004",
                  "coin": "USDT", "status": 6, "address": "0x94df8b35", "txId": "0xb5ef8c13",
                  "applyTime": "2019-10-12 11:12:02", "network": "ETH", "transferType": 0}
    out, fee = parse.withdrawal_legs(withdrawal)
    assert (out.quantity, fee.quantity, fee.type, out.status) == \
        (Decimal("-8.91"), Decimal("-0.004"), TransactionType.FEE, "executed")
    assert out.occurred_at.isoformat() == "2019-10-12T11:12:02+00:00"
    assert parse.withdrawal_legs({**withdrawal, "status": 3})[0].status == "canceled"
    with pytest.raises(BadRecord):
        parse.withdrawal_legs({**withdrawal, "status": 42})
    [reward] = parse.dividend_legs({"id": 1637366104, "amount": "10.00000000", "asset": "BHFT",
                                    "divTime": 1563189166000, "enInfo": "BHFT distribution", "tranId": 2968885920})
    assert (reward.type, reward.asset.symbol, reward.quantity, reward.description) == \
        (TransactionType.REWARD, "BHFT", Decimal("10"), "BHFT distribution")


def test_documented_order():
    raw = {"symbol": "LTCBTC", "orderId": 1, "orderListId": -1, "clientOrderId": "myOrder1", "price": "0.1",
           "origQty": "1.0", "executedQty": "0.0", "cummulativeQuoteQty": "0.0", "status": "NEW",
           "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "stopPrice": "0.0", "icebergQty": "0.0",
           "time": 1499827319559, "updateTime": 1499827319559, "isWorking": True, "workingTime": 1499827319559,
           "origQuoteOrderQty": "0.000000", "selfTradePreventionMode": "NONE"}
    order = parse.order(raw, "LTC")
    assert (order.broker_id, order.status, order.is_open, order.side, order.limit_price, order.stop_price) == \
        ("LTCBTC:1", "open", True, "buy", Decimal("0.1"), None)
    old = parse.order({**raw, "status": "FILLED", "executedQty": "1.0", "cummulativeQuoteQty": "-1.00000000"}, "LTC")
    assert old.status == "filled" and old.filled_avg_price is None      # < 0 means "not available"
    assert parse.order({**raw, "status": "SOMETHING_NEW"}, "LTC").status == "other"


def test_positions_are_valued_in_dollars(sandbox, account):
    snapshot = build(sandbox, account).fetch_positions()
    valued = [p for p in snapshot.positions if p.market_value is not None]
    assert valued, "coins with a USDT pair are valued"
    assert all(p.market_value == p.quantity * p.current_price for p in valued)
