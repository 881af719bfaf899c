"""A withdrawal's counterpart hidden: one user's Coinbase account sends BTC to their Kraken
account, and Kraken's feed leaves the deposit out while its balance counts it. Kraken's
reconcile finds a transfer break pointing at the Coinbase withdrawal; Coinbase adds up."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from backend.sync.models import BrokerTransaction
from tests.factories import UserFactory, make_connection, sandbox_account, sandbox_advance, sandbox_truth

from .helpers import inject, open_breaks, put_right, sync, transfer

pytestmark = pytest.mark.django_db
FEE = Decimal("0.0001")


@pytest.fixture
def moved(sandbox, redis_client):
    user = UserFactory()
    coinbase = sandbox_account(sandbox, broker="coinbase", environment="live", seed=5, positions=4, activities=40)
    kraken = sandbox_account(sandbox, broker="kraken", environment="live", seed=5, positions=3, activities=30)
    btc = next(Decimal(p["quantity"]) for p in sandbox_truth(sandbox, coinbase["account_id"])["positions"]
               if p["symbol"] == "BTC")
    amount = (btc / 10).quantize(Decimal("0.00000001"))
    legs = transfer(sandbox, **{"from": coinbase["account_id"], "to": kraken["account_id"], "asset": "BTC",
                                "amount": str(amount), "fee": str(FEE)})
    # later Kraken activity, so the deposit lies before the cursor a first sync leaves (Kraken's
    # cursor re-reads its newest second: the activity must come at least a second later)
    time.sleep(1.1)
    sandbox_advance(sandbox, kraken["account_id"], fills=1, deposit=True, reward=False, close_position=False,
                    orders=0, cancel_orders=0)
    return (amount, legs, make_connection(coinbase, broker="coinbase", user=user), kraken,
            make_connection(kraken, broker="kraken", user=user))


def test_a_hidden_deposit_of_a_transfer_is_a_transfer_break_at_the_receiving_side(sandbox, moved):
    amount, legs, coinbase, kraken_account, kraken = moved
    inject(sandbox, kraken_account["account_id"], kind="drop", record=legs["deposit"]["record"])
    sent, _ = sync(coinbase, "coinbase", sandbox)
    assert sent.steps["reconcile"]["breaks"] == 0              # the sending side adds up

    run, made = sync(kraken, "kraken", sandbox)
    [found] = open_breaks(kraken)
    withdrawal = BrokerTransaction.objects.get(connection=coinbase, broker_id=f"v2:{legs['withdrawal']['record']}")
    broker = sum((Decimal(p["quantity"]) for p in sandbox_truth(sandbox, kraken_account["account_id"])["positions"]
                  if p["symbol"] == "BTC"), Decimal(0))
    # Coinbase's row: -(amount + fee); Kraken credited `amount`, which its history lacks
    assert withdrawal.quantity == -(amount + FEE)
    assert (found.kind, found.asset.symbol, found.counterpart_id) == ("transfer", "BTC", withdrawal.pk)
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (broker, broker - amount, amount)
    assert found.window_start < withdrawal.occurred_at < found.window_end
    assert "coinbase" in found.detail and found.legs == []
    # the re-pull asked Kraken's ledger for BTC in the transfer's window (and the asset list)
    assert made == run.steps["reconcile"]["requests"] >= 1

    put_right(sandbox, kraken_account["account_id"])
    cleared, made = sync(kraken, "kraken", sandbox)
    found.refresh_from_db()
    assert found.resolved_at is not None and open_breaks(kraken) == []
    assert made == cleared.steps["reconcile"]["requests"] >= 1 and cleared.steps["reconcile"]["created"] == 1
    assert BrokerTransaction.objects.filter(connection=kraken, broker_id=legs["deposit"]["record"]).exists()
