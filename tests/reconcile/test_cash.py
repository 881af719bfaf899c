"""Cash reconciles: every broker's sandbox accounts add up per currency (the history's `amount`s,
fees included, equal the cash the broker reports), before and after time passes; a hidden
cash movement is a cash break of exactly its amount; accounts without a feed (file imports,
manual entries) reconcile to nothing."""
from __future__ import annotations

from decimal import Decimal

import pytest

from backend.reconcile.models import Break
from backend.reconcile.services import reconcile_connection
from backend.reconcile.totals import differences_for
from backend.sync.models import BrokerPosition, BrokerTransaction, SyncRun
from tests.factories import make_connection, sandbox_account, sandbox_advance, sandbox_truth
from tests.sync.helpers import stored_cash

from .helpers import inject, open_breaks, put_right, sync

pytestmark = pytest.mark.django_db
ACCOUNTS = {"alpaca": ("paper", "alpaca-paper", 60), "coinbase": ("live", "coinbase", 60),
            "binance": ("live", "binance", 60), "kraken": ("live", "kraken", 30)}


@pytest.mark.parametrize("broker", sorted(ACCOUNTS))
def test_every_brokers_cash_adds_up(sandbox, redis_client, broker):
    environment, endpoint, activities = ACCOUNTS[broker]
    if broker == "binance":
        sandbox.sims["binance"].reset_limits()
    account = sandbox_account(sandbox, broker=broker, environment=environment, seed=23, positions=4,
                              activities=activities)
    connection = make_connection(account, broker=broker)
    for _ in range(2):
        run, _ = sync(connection, endpoint, sandbox)
        assert run.state == "succeeded" and run.steps["reconcile"]["breaks"] == 0
        assert [d for d in differences_for(connection) if d.is_cash] == []
        truth_cash = {c: Decimal(v) for c, v in sandbox_truth(sandbox, account["account_id"])["cash"].items()
                      if Decimal(v)}
        assert stored_cash(connection) == truth_cash
        sandbox_advance(sandbox, account["account_id"])
    # not vacuous: the brokers that hold fiat report it (Binance's sandbox accounts hold none)
    assert bool(truth_cash) == (broker != "binance")


def test_a_hidden_fiat_deposit_is_a_cash_break_of_its_amount(sandbox, redis_client):
    account = sandbox_account(sandbox, broker="coinbase", environment="live", seed=23, positions=4, activities=60)
    truth = sandbox_truth(sandbox, account["account_id"])
    deposit = next(t for t in truth["transactions"] if t["type"] == "deposit")
    inject(sandbox, account["account_id"], kind="drop", record=deposit["broker_id"].split(":")[1])
    connection = make_connection(account, broker="coinbase")

    run, made = sync(connection, "coinbase", sandbox)
    [found] = open_breaks(connection)
    cash, amount = Decimal(truth["cash"]["USD"]), Decimal(deposit["amount"])
    assert (found.kind, found.currency) == ("cash", "USD")
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (cash, cash - amount, amount)
    assert made == run.steps["reconcile"]["requests"] >= 1

    put_right(sandbox, account["account_id"])
    sync(connection, "coinbase", sandbox)
    found.refresh_from_db()
    assert found.resolved_at is not None


@pytest.mark.parametrize("broker, streams, breaks", [
    ("csv", {}, 0), ("manual", {}, 0), ("alpaca", {"sync_positions": False}, 0), ("alpaca", {}, 2)])
def test_accounts_without_a_feed_reconcile_to_nothing(user, broker, streams, breaks):
    """The same rows: 5 AAPL bought for 500 USD in the history, 3 AAPL and no cash reported. A
    broker's connection has two breaks (an unexplained disposal of 2 AAPL, 500 USD of cash the
    history spent); an import or manual account, whose holdings are its history, has none, nor
    has a connection whose positions are not synced (nothing reported to compare with)."""
    from backend.portfolio.services import assets_resolve
    from backend.brokers.dtos import AssetClass, AssetRef

    connection = make_connection({"environment": "live", "broker_account_id": f"{broker}-1",
                                  "credentials": {}}, broker=broker, user=user, **streams)
    aapl = assets_resolve([AssetRef("AAPL", AssetClass.EQUITY)])[("equity", "AAPL")]
    common = {"connection": connection, "portfolio": connection.portfolio, "asset": aapl, "type": "trade"}
    BrokerTransaction.objects.create(broker_id="1", occurred_at="2024-01-02T15:00Z", quantity=5, price=100,
                                     amount=-500, **common)
    BrokerPosition.objects.create(connection=connection, portfolio=connection.portfolio, asset=aapl,
                                  broker_symbol="AAPL", quantity=3)
    Break.objects.create(connection=connection, portfolio=connection.portfolio, key="cash:EUR", currency="EUR",
                         kind="cash", broker_quantity=1, ledger_quantity=0, difference=1,
                         first_seen_at="2024-01-01T00:00Z", last_seen_at="2024-01-01T00:00Z")
    run = SyncRun.objects.create(connection=connection, trigger="test", state="succeeded")

    summary = reconcile_connection(run=run, repull=lambda windows: None)
    assert summary["breaks"] == breaks and len(open_breaks(connection)) == breaks
    assert summary["resolved"] == 1                 # the old break, whatever the account
    if breaks:
        kinds = sorted((b.kind, b.difference) for b in open_breaks(connection))
        assert kinds == [("cash", Decimal(500)), ("unexplained_disposal", Decimal(-2))]
        assert summary["repull"] == "unsupported"
