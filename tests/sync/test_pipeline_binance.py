"""Binance through the pipeline, where each step has a fresh adapter: the orders step uses
what the trades step stored (via prime) instead of re-reading the wallet history."""
from __future__ import annotations

import pytest

from backend.sync.models import SyncCursor
from tests.factories import make_connection, sandbox_account, sandbox_advance, sandbox_truth

from .helpers import assert_matches_truth, sync_in_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def binance(sandbox, redis_client):
    sandbox.sims["binance"].reset_limits()
    account = sandbox_account(sandbox, broker="binance", environment="live", seed=17, positions=8, activities=400)
    return account, make_connection(account, broker="binance")


def test_orders_step_asks_only_the_pairs_the_trades_step_found(sandbox, binance):
    account, connection = binance
    run = sync_in_process(connection)
    assert run.state == "succeeded" and run.reconcile_differences == []
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))
    trades = SyncCursor.objects.get(connection=connection, stream="transactions").cursor["trades"]
    orders = SyncCursor.objects.get(connection=connection, stream="orders").cursor
    assert "rediscover" not in orders
    pairs_with_trades = sum(1 for n in trades.values() if n)
    # account + one allOrders page per pair (+ a few for pairs with many orders) + open orders
    assert run.steps["orders"]["requests"] <= 2 + pairs_with_trades * 2 + 1

    sandbox_advance(sandbox, account["account_id"])
    again = sync_in_process(connection)
    assert again.state == "succeeded"
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))
    assert again.steps["orders"]["requests"] < run.steps["orders"]["requests"]
