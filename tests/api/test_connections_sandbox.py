"""Connecting a real adapter to the Alpaca sandbox over HTTP: the keys are checked by the
broker's own API.

The first sync's message is not sent here (the callback is only captured); sending it on
commit is tested in test_connections_api.py, which keeps it harmless to the worker of a
parallel test session consuming sync.alpaca on the shared Redis db 15."""
from __future__ import annotations

import pytest

from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio
from backend.sync.models import SyncRun
from sandbox.faults import FaultPlan

pytestmark = pytest.mark.django_db
URL = "/api/v1/connections/"


def connect(api, account, **overrides):
    body = {"broker": "alpaca", "environment": "paper", "label": "Alpaca paper",
            **account["credentials"], **overrides}
    return api.post(URL, body, format="json")


def test_good_keys_connect_and_the_first_sync_is_queued(api, account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = connect(api, account)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["broker_account_id"] == account["broker_account_id"]
    assert body["status"] == "pending"
    text = response.content.decode()
    for secret in account["credentials"].values():
        assert secret not in text
    assert body["key_hint"] == "****" + account["credentials"]["api_key"][-4:]
    assert Portfolio.objects.filter(pk=body["portfolio"], name="Alpaca paper").exists()
    run = SyncRun.objects.get(connection_id=body["id"])
    assert (run.state, run.trigger) == ("queued", "initial")
    assert len(callbacks) == 1                                  # the chain, sent once the request commits


def test_wrong_secret_is_refused_with_alpacas_reason_and_nothing_is_stored(api, account):
    response = connect(api, account, api_secret="not-the-secret")

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "The broker rejected these credentials."
    [reason] = body["fields"]["api_key"]
    assert "request is not authorized" in reason                 # Alpaca's own words
    assert account["credentials"]["api_key"] not in response.content.decode()
    assert not (BrokerConnection.objects.exists() or Portfolio.objects.exists() or SyncRun.objects.exists())


def test_the_same_account_twice_is_refused(api, account):
    assert connect(api, account).status_code == 201
    response = connect(api, account, label="twice")
    assert response.status_code == 400
    assert BrokerConnection.objects.count() == 1


@pytest.mark.parametrize("plan", [FaultPlan(target="alpaca-paper", fail_next=5, error_status=503),
                                  FaultPlan(target="alpaca-paper", burst_429=5, retry_after=30)])
def test_broker_down_or_rate_limiting_is_a_503_and_nothing_is_stored(api, account, sandbox, plan):
    sandbox.faults.set(plan)
    response = connect(api, account)

    assert response.status_code == 503, response.content
    assert "nothing was saved" in response.json()["message"]
    assert not BrokerConnection.objects.exists()


def test_patch_re_verifies_keys_and_refuses_another_account(api, broker_account, account):
    connection_id = connect(api, account).json()["id"]
    other = broker_account()

    same = api.patch(f"{URL}{connection_id}/", account["credentials"], format="json")
    wrong = api.patch(f"{URL}{connection_id}/", {**account["credentials"], "api_secret": "nope"}, format="json")
    elsewhere = api.patch(f"{URL}{connection_id}/", other["credentials"], format="json")

    assert same.status_code == 200
    assert wrong.status_code == 400 and "request is not authorized" in wrong.json()["fields"]["api_key"][0]
    assert elsewhere.status_code == 400 and other["broker_account_id"] in elsewhere.json()["fields"]["api_key"][0]
    connection = BrokerConnection.objects.get(pk=connection_id)
    assert connection.api_secret == account["credentials"]["api_secret"]


def test_revoked_keys_are_refused(api, sandbox, account):
    import requests

    requests.post(f"{sandbox.urls['control']}/control/accounts/{account['account_id']}/revoke", timeout=10)
    response = connect(api, account)
    assert response.status_code == 400
    assert "api_key" in response.json()["fields"]


def test_ibkr_key_check_answers_503_while_generating_and_the_retry_reads_that_statement(api, sandbox):
    import requests

    spec = {"broker": "ibkr", "environment": "live", "seed": 41, "positions": 3, "activities": 20,
            "generation_polls": 1}
    account = requests.post(sandbox.urls["control"] + "/control/accounts", json=spec, timeout=60).json()
    sim = sandbox.sims["ibkr"]
    body = {"broker": "ibkr", "environment": "live", "label": "IBKR", **account["credentials"]}

    first = api.post(URL, body, format="json")
    assert first.status_code == 503, first.content                  # IBKR answered 1019: come back later
    assert int(first["Retry-After"]) > 0 and not BrokerConnection.objects.exists()
    issued = len(sim.references)
    second = api.post(URL, body, format="json")                     # the client honours Retry-After (sooner here)

    assert second.status_code == 201, second.content
    assert second.json()["broker_account_id"] == account["broker_account_id"]
    assert len(sim.references) == issued                            # the same statement, not a new one
