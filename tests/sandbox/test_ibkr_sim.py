"""The simulated Flex Web Service: its answers, limits, determinism and the truth invariant."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from sandbox.base import SimClock
from sandbox.brokers.ibkr import IbkrSim
from sandbox.brokers.ibkr import render
from sandbox.brokers.ibkr.ledger import EASTERN
from sandbox.http import Request

SEND, GET = "/AccountManagement/FlexWebService/SendRequest", "/AccountManagement/FlexWebService/GetStatement"


def call(sim: IbkrSim, path: str, clock: SimClock | None = None, ua: str = "Python/3.11", **params) -> ET.Element:
    if clock is not None:
        clock.advance(1.05)                  # one request a second per token
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = sim.handle("live", Request("GET", path, query, {"user-agent": ua} if ua else {}, host="h"))
    assert response.status == 200
    return ET.fromstring(response.body)


def error_code(root: ET.Element) -> str:
    return root.findtext("ErrorCode") or ""


@pytest.fixture
def sim():
    clock = SimClock()
    sim = IbkrSim(clock)
    account = sim.create_account("live", seed=3, positions=6, activities=150)
    return sim, clock, account


def window(days: int = 30) -> dict[str, str]:
    today = datetime.now(EASTERN).date()
    return {"fd": (today - timedelta(days=days)).strftime("%Y%m%d"), "td": today.strftime("%Y%m%d")}


def test_two_calls_with_the_generation_delay(sim):
    sim, clock, account = sim
    token, query = account["credentials"]["api_secret"], account["credentials"]["api_key"]
    sent = call(sim, SEND, clock, t=token, q=query, v=3, **window(400 - 36))
    assert sent.tag == "FlexStatementResponse" and sent.findtext("Status") == "Success"
    reference = sent.findtext("ReferenceCode")
    assert reference.isdigit() and sent.findtext("Url").endswith(GET)
    first = call(sim, GET, clock, t=token, q=reference, v=3)
    assert (first.findtext("Status"), error_code(first)) == ("Warn", "1019")
    statement = call(sim, GET, clock, t=token, q=reference, v=3)
    assert statement.tag == "FlexQueryResponse"
    flex = statement.find("./FlexStatements/FlexStatement")
    assert flex.get("accountId") == account["broker_account_id"]
    sections = {child.tag for child in flex if len(child)}
    assert {"CashReport", "OpenPositions", "FxPositions", "Trades", "CashTransactions", "CorporateActions",
            "Transfers"} <= sections
    assert {e.get("currency") for e in flex.iter("Trade")} >= {"USD", "EUR", "GBP"}
    assert {e.get("assetCategory") for e in flex.iter("OpenPosition")} >= {"STK", "OPT", "BOND"}
    assert {e.get("multiplier") for e in flex.iter("OpenPosition") if e.get("assetCategory") == "OPT"} == {"100"}
    assert {e.get("type") for e in flex.iter("CorporateAction")} >= {"FS", "RS", "SO", "TC"}


@pytest.mark.parametrize("change, code", [
    (dict(ua=""), "1020"), (dict(v=2), "1020"), (dict(t="123"), "1015"), (dict(q="999"), "1014"),
    (dict(fd="20200101", td="20200301"), "1003"), (dict(span=400), "1020"),
])
def test_refusals(sim, change, code):
    sim, clock, account = sim
    params = {"t": account["credentials"]["api_secret"], "q": account["credentials"]["api_key"], "v": 3,
              **window(change.pop("span", 30))}
    ua = change.pop("ua", "Python/3.11")
    params.update(change)
    root = call(sim, SEND, clock, ua=ua, **params)
    assert (root.findtext("Status"), error_code(root)) == ("Fail", code)


def test_reference_codes_belong_to_their_token(sim):
    sim, clock, account = sim
    other = sim.create_account("live", seed=4, positions=3, activities=20)
    token = account["credentials"]["api_secret"]
    reference = call(sim, SEND, clock, t=token, q=account["credentials"]["api_key"], v=3, **window()) \
        .findtext("ReferenceCode")
    assert error_code(call(sim, GET, clock, t=other["credentials"]["api_secret"], q=reference, v=3)) == "1017"
    assert error_code(call(sim, GET, clock, t=token, q="42", v=3)) == "1017"


def test_revoked_and_expired_tokens(sim):
    sim, clock, account = sim
    expiring = sim.create_account("live", seed=5, positions=3, activities=20, token_ttl_seconds=60)
    sim.revoke(account["account_id"])
    assert error_code(call(sim, SEND, clock, t=account["credentials"]["api_secret"],
                           q=account["credentials"]["api_key"], v=3)) == "1015"
    clock.advance(61)
    assert error_code(call(sim, SEND, clock, t=expiring["credentials"]["api_secret"],
                           q=expiring["credentials"]["api_key"], v=3)) == "1012"


def test_throttle_one_a_second_and_ten_a_minute(sim):
    sim, clock, account = sim
    params = {"t": account["credentials"]["api_secret"], "q": account["credentials"]["api_key"], "v": 3}
    assert call(sim, SEND, clock, **params).findtext("Status") == "Success"
    assert error_code(call(sim, SEND, None, **params)) == "1018"          # within the same second
    codes = [error_code(call(sim, SEND, clock, **params)) for _ in range(10)]
    assert codes == [""] * 9 + ["1018"]                                    # 10 accepted in the minute
    clock.advance(60)
    assert call(sim, SEND, clock, **params).findtext("Status") == "Success"


def test_a_statement_is_the_account_as_it_was_when_asked(sim):
    sim, clock, account = sim
    token, query = account["credentials"]["api_secret"], account["credentials"]["api_key"]
    reference = call(sim, SEND, clock, t=token, q=query, v=3, **window()).findtext("ReferenceCode")
    clock.advance(600)                       # time passes; then new fills
    added = sim.advance(account["account_id"], fills=2)
    call(sim, GET, clock, t=token, q=reference, v=3)                     # 1019
    body = ET.tostring(call(sim, GET, clock, t=token, q=reference, v=3)).decode()
    assert added["transactions"] and not any(f'tradeID="{i.split(":")[1]}"' in body for i in added["transactions"])


def test_same_seed_same_account():
    a, b = IbkrSim(SimClock()), IbkrSim(SimClock())
    x = a.create_account("live", seed=9, positions=5, activities=100)
    y = b.create_account("live", seed=9, positions=5, activities=100)
    assert x == y
    ax, by = a.accounts[x["account_id"]], b.accounts[y["account_id"]]
    cutoff = ax.events[-1].at
    assert render.statement(ax, ax.opened, ax.opened + timedelta(days=364), cutoff) == \
        render.statement(by, by.opened, by.opened + timedelta(days=364), cutoff)
    truth = a.truth(x["account_id"])
    assert truth == b.truth(y["account_id"])


@pytest.mark.parametrize("changes", [{}, {"split": True, "close_position": True, "fills": 3, "cancel_orders": 1}])
def test_truth_adds_up(sim, changes):
    """Every position is the sum of its rows' quantities; each currency's cash the sum of its
    rows' amounts plus what forex trades bought of it (the invariant reconcile relies on)."""
    sim, _, account = sim
    if changes:
        sim.advance(account["account_id"], **changes)
    truth = sim.truth(account["account_id"])
    quantities, cash = defaultdict(Decimal), defaultdict(Decimal)
    currency_of = {e.truth["broker_id"]: e.attrs.get("currency", "USD")
                   for e in sim.accounts[account["account_id"]].events if e.truth}
    for row in truth["transactions"]:
        fiat = row["symbol"] in ("EUR", "GBP")
        if row["quantity"] is not None:
            (cash if fiat else quantities)[row["symbol"]] += Decimal(row["quantity"])
        if row["amount"] is not None:
            cash[currency_of[row["broker_id"]]] += Decimal(row["amount"])
    assert {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]} == \
        {k: v for k, v in quantities.items() if v}
    assert {c: Decimal(v) for c, v in truth["cash"].items()} == {k: v for k, v in cash.items() if v}
    kinds = {row["type"] for row in truth["transactions"]}
    assert kinds >= {"trade", "dividend", "interest", "fee", "deposit", "withdrawal", "split", "other", "transfer"}
    assert {o["status"] for o in truth["orders"]} == {"filled"}


def test_a_large_account_generates():
    """2,000 positions over four years (200,000 activities take ~20 s: a benchmark size)."""
    sim = IbkrSim(SimClock())
    account = sim.create_account("live", seed=1, positions=2000, activities=20_000, history_days=1400)
    truth = sim.truth(account["account_id"])
    assert len(truth["positions"]) >= 2000 and len(truth["transactions"]) >= 20_000
