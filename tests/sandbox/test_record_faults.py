"""Record faults (sandbox/record_faults.py) over the control API: per account, removable, and
applied where the simulator pages, so a faulty feed still pages whole. Transfers between
two brokers' accounts. (tests/reconcile feeds these faults through the sync pipeline.)"""
from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from tests.factories import sandbox_account, sandbox_truth


def control(sandbox, method: str, path: str, **body) -> requests.Response:
    return requests.request(method, f"{sandbox.urls['control']}/control{path}", json=body or None, timeout=30)


def activities(sandbox, account, **params) -> list[dict]:
    creds = account["credentials"]
    headers = {"APCA-API-KEY-ID": creds["api_key"], "APCA-API-SECRET-KEY": creds["api_secret"]}
    rows, token = [], None
    while True:
        extra = {"page_token": token} if token else {}
        page = requests.get(sandbox.urls["alpaca-paper"] + "/v2/account/activities", headers=headers, timeout=30,
                            params={"direction": "asc", "page_size": 100, **params, **extra}).json()
        rows.append(page)
        if len(page) < 100:
            return rows
        token = page[-1]["id"]


@pytest.fixture
def alpaca(sandbox):
    account = sandbox_account(sandbox, broker="alpaca", environment="paper", seed=5, positions=6, activities=150)
    return account, sandbox_truth(sandbox, account["account_id"])


def test_faults_are_listed_and_removed_one_by_one(sandbox, alpaca):
    account, truth = alpaca
    path = f"/accounts/{account['account_id']}/faults"
    first = control(sandbox, "POST", path, kind="drop", record=truth["transactions"][3]["broker_id"]).json()
    second = control(sandbox, "POST", path, kind="round", symbol="ETH", decimals=4).json()
    assert [f["id"] for f in control(sandbox, "GET", path).json()["faults"]] == [first["id"], second["id"]]
    assert control(sandbox, "DELETE", f"{path}/{first['id']}").json()["removed"][0]["kind"] == "drop"
    assert [f["kind"] for f in control(sandbox, "GET", path).json()["faults"]] == ["round"]
    assert control(sandbox, "DELETE", f"{path}/{first['id']}").status_code == 404
    assert control(sandbox, "DELETE", path).json()["removed"][0]["kind"] == "round"


@pytest.mark.parametrize("body, message", [
    ({"kind": "explode", "record": "x"}, "unknown or unsupported fault kind"),
    ({"kind": "drop"}, "needs the id of a record"),
    ({"kind": "drop", "record": "no-such-id"}, "no activity"),
    ({"kind": "round", "symbol": "NOPE"}, "no holding"),
    ({"kind": "drop", "record": "x", "when": "now"}, "unknown fault fields"),
])
def test_a_fault_the_account_cannot_have_is_refused(sandbox, alpaca, body, message):
    account, _ = alpaca
    response = control(sandbox, "POST", f"/accounts/{account['account_id']}/faults", **body)
    assert response.status_code == 400 and message in response.json()["error"]
    assert control(sandbox, "GET", f"/accounts/{account['account_id']}/faults").json()["faults"] == []


def test_faults_need_an_account_and_a_kind_the_broker_serves(sandbox):
    assert control(sandbox, "POST", "/accounts/alpaca:999999/faults", kind="drop", record="x").status_code == 404
    kraken = sandbox_account(sandbox, broker="kraken", environment="live", seed=3, positions=2, activities=10)
    refused = control(sandbox, "POST", f"/accounts/{kraken['account_id']}/faults", kind="round", symbol="BTC")
    assert refused.status_code == 400 and "this broker serves ['drop']" in refused.json()["error"]


def test_a_dropped_activity_leaves_full_pages(sandbox, alpaca):
    account, truth = alpaca
    dropped = truth["transactions"][5]["broker_id"]                  # on the first page
    control(sandbox, "POST", f"/accounts/{account['account_id']}/faults", kind="drop", record=dropped)
    pages = activities(sandbox, account)
    ids = [row["id"] for page in pages for row in page]
    assert len(pages[0]) == 100 and dropped not in ids
    assert ids == [t["broker_id"] for t in truth["transactions"] if t["broker_id"] != dropped]
    control(sandbox, "DELETE", f"/accounts/{account['account_id']}/faults")
    assert dropped in [row["id"] for page in activities(sandbox, account) for row in page]


def test_a_doubled_split_is_copied_then_withdrawn(sandbox, alpaca):
    account, truth = alpaca
    remove, add = [t["broker_id"] for t in truth["transactions"] if t["type"] == "split"][:2]
    fault = control(sandbox, "POST", f"/accounts/{account['account_id']}/faults", kind="double_split",
                    record=add).json()
    rows = {row["id"]: row for page in activities(sandbox, account, activity_types="SPLIT") for row in page}
    assert list(rows)[:4] == [remove, remove + "-dup", add, add + "-dup"]
    assert rows[add + "-dup"]["qty"] == rows[add]["qty"] and rows[add + "-dup"]["status"] == "executed"

    control(sandbox, "DELETE", f"/accounts/{account['account_id']}/faults/{fault['id']}")
    rows = {row["id"]: row for page in activities(sandbox, account, activity_types="SPLIT") for row in page}
    assert rows[remove + "-dup"]["status"] == rows[add + "-dup"]["status"] == "canceled"


def test_a_rounded_holding_is_reported_rounded(sandbox, alpaca):
    account, truth = alpaca
    creds = account["credentials"]
    headers = {"APCA-API-KEY-ID": creds["api_key"], "APCA-API-SECRET-KEY": creds["api_secret"]}
    control(sandbox, "POST", f"/accounts/{account['account_id']}/faults", kind="round", symbol="ETH", decimals=3)
    positions = requests.get(sandbox.urls["alpaca-paper"] + "/v2/positions", headers=headers, timeout=30).json()
    eth = next(p for p in positions if p["symbol"] == "ETHUSD")
    exact = next(Decimal(p["quantity"]) for p in truth["positions"] if p["symbol"] == "ETH")
    assert Decimal(eth["qty"]) == exact.quantize(Decimal("0.001")) != exact


def test_a_transfer_moves_the_coins_from_one_broker_to_another(sandbox):
    coinbase = sandbox_account(sandbox, broker="coinbase", environment="live", seed=3, positions=3, activities=20)
    kraken = sandbox_account(sandbox, broker="kraken", environment="live", seed=3, positions=2, activities=10)

    def btc(account):
        truth = sandbox_truth(sandbox, account["account_id"])
        return sum((Decimal(p["quantity"]) for p in truth["positions"] if p["symbol"] == "BTC"), Decimal(0))

    before = btc(coinbase), btc(kraken)
    legs = control(sandbox, "POST", "/transfers", **{"from": coinbase["account_id"], "to": kraken["account_id"],
                                                     "asset": "BTC", "amount": "0.01", "fee": "0.0002"}).json()
    assert btc(coinbase) == before[0] - Decimal("0.0102") and btc(kraken) == before[1] + Decimal("0.01")
    truth = sandbox_truth(sandbox, kraken["account_id"])
    assert any(t["broker_id"] == legs["deposit"]["record"] for t in truth["transactions"])

    too_much = control(sandbox, "POST", "/transfers", **{"from": coinbase["account_id"], "to": kraken["account_id"],
                                                         "asset": "BTC", "amount": "100000", "fee": "0"})
    assert too_much.status_code == 400 and "holds less than" in too_much.json()["error"]
    assert control(sandbox, "POST", "/transfers", **{"from": coinbase["account_id"], "to": kraken["account_id"],
                                                     "asset": "BTC", "amount": "-1"}).status_code == 400
