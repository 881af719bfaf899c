"""Keys that can trade or withdraw: Kraken's rights are probed with calls that change
nothing, reported like the other brokers', and an operator may refuse such keys."""
from __future__ import annotations

import pytest

from backend.brokers import registry
from backend.brokers.dtos import Credentials
from backend.connections.models import BrokerConnection

pytestmark = pytest.mark.django_db
URL = "/api/v1/connections/"


def kraken_verify(account):
    adapter = registry.build_adapter("kraken", environment="live", credentials=Credentials(**account["credentials"]))
    return adapter.verify_credentials()


@pytest.mark.parametrize("rights, can_trade, can_withdraw", [
    ({}, False, False),
    ({"can_trade": True}, True, False),
    ({"can_withdraw": True}, False, True),
    ({"permissions": "full"}, True, True),
])
def test_kraken_reports_what_the_key_may_do(broker_account, rights, can_trade, can_withdraw):
    info = kraken_verify(broker_account("kraken", **rights))
    assert (info.can_trade, info.can_withdraw) == (can_trade, can_withdraw)
    assert any("can trade" in w for w in info.warnings) == can_trade
    assert any("can withdraw" in w for w in info.warnings) == can_withdraw


def test_the_probes_change_nothing(broker_account, sandbox):
    account = broker_account("kraken", permissions="full")
    sim = sandbox.sims["kraken"]
    held = sim.accounts[account["account_id"]]
    orders_before = (dict(held.orders), dict(held.open_orders))
    kraken_verify(account)
    assert (dict(held.orders), dict(held.open_orders)) == orders_before


def test_the_sandbox_answers_the_probes_as_kraken_does(broker_account):
    from backend.brokers.adapters.kraken.adapter import TRADE_PROBE, WITHDRAW_PROBE
    from backend.brokers.errors import AuthError, PermanentError

    def ask(account, method, params):
        adapter = registry.build_adapter("kraken", environment="live",
                                         credentials=Credentials(**account["credentials"]))
        return adapter.client.private(method, params)

    read_only, full = broker_account("kraken"), broker_account("kraken", permissions="full")
    for probe in (TRADE_PROBE, WITHDRAW_PROBE):
        with pytest.raises(AuthError) as denied:
            ask(read_only, *probe)
        assert denied.value.code == "EGeneral:Permission denied"
    with pytest.raises(PermanentError, match="EOrder:Order minimum not met"):
        ask(full, *TRADE_PROBE)
    with pytest.raises(PermanentError, match="EFunding:Unknown withdraw key"):
        ask(full, *WITHDRAW_PROBE)
    assert ask(full, "AddOrder", {**TRADE_PROBE[1], "volume": "0.5"})["descr"]["order"].startswith("buy 0.5")
    with pytest.raises(PermanentError, match="only validates"):
        ask(full, "AddOrder", {**TRADE_PROBE[1], "validate": False})


def test_by_default_a_kraken_key_that_can_trade_connects_with_a_warning(api, broker_account):
    response = api.post(URL, {"broker": "kraken", "environment": "live",
                              **broker_account("kraken", can_trade=True)["credentials"]}, format="json")
    assert response.status_code == 201, response.content
    assert any("can trade" in w for w in response.json()["warnings"])


@pytest.mark.parametrize("broker, environment, rights", [
    ("kraken", "live", {"can_trade": True}),
    ("kraken", "live", {"can_withdraw": True}),
    ("binance", "live", {"can_trade": True}),
    ("coinbase", "live", {"can_trade": True}),
    ("alpaca", "paper", {}),                     # Alpaca keys always can trade
])
def test_an_operator_may_refuse_keys_that_can_trade_or_withdraw(api, broker_account, settings, broker, environment,
                                                                rights):
    settings.REFUSE_KEYS_THAT_CAN_TRADE = True
    account = broker_account(broker, environment, **rights)
    response = api.post(URL, {"broker": broker, "environment": environment, **account["credentials"]}, format="json")
    assert response.status_code == 400, response.content
    [message] = response.json()["fields"]["api_key"]
    assert "accepts read-only keys only" in message
    assert not BrokerConnection.objects.exists()


def test_read_only_keys_still_connect_when_trading_keys_are_refused(api, broker_account, settings):
    settings.REFUSE_KEYS_THAT_CAN_TRADE = True
    for broker in ("kraken", "binance", "coinbase"):
        account = broker_account(broker)
        response = api.post(URL, {"broker": broker, "environment": "live", **account["credentials"]}, format="json")
        assert response.status_code == 201, (broker, response.content)
        assert response.json()["warnings"] == []
