"""A break the re-pull fixes is never recorded, on every broker.

The feed lags: one record is missing while the transactions step reads, and is there again
by the time reconcile asks for its window (the fault is removed between the two steps).
Reconcile finds the difference, asks each broker for the located window once (Alpaca
activities by time, Coinbase fills by time, Binance myTrades per symbol by time, Kraken
Ledgers by asset and time), stores the record, and records nothing."""
from __future__ import annotations

from decimal import Decimal

import pytest

from backend.reconcile.models import Break
from backend.sync import pipeline
from backend.sync.models import BrokerTransaction, SyncCursor, SyncRun
from tests.factories import make_connection, sandbox_account, sandbox_requests, sandbox_truth

from .helpers import inject, put_right

pytestmark = pytest.mark.django_db

# broker -> (environment, the broker's own id of a truth transaction, the rows one trade makes)
BROKERS = {
    "alpaca": ("paper", lambda tx: tx["broker_id"], 1),
    "coinbase": ("live", lambda tx: tx["broker_id"].split(":")[1], 1),          # fill:<entry_id>
    "binance": ("live", lambda tx: ":".join(tx["broker_id"].split(":")[1:3]), 3),   # trade:SYMBOL:id -> SYMBOL:id
    "kraken": ("live", lambda tx: tx["broker_id"], 1),                           # one ledger row per asset
}


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_a_record_the_re_pull_brings_back_is_never_a_break(sandbox, redis_client, broker):
    environment, record_id, rows = BROKERS[broker]
    if broker == "binance":
        sandbox.sims["binance"].reset_limits()          # weight is per IP: earlier tests share it
    account = sandbox_account(sandbox, broker=broker, environment=environment, seed=5, positions=4, activities=60)
    connection = make_connection(account, broker=broker)
    truth = sandbox_truth(sandbox, account["account_id"])
    trades = [t for t in truth["transactions"] if t["type"] == "trade" and Decimal(t["quantity"] or 0) < 0
              and not t["broker_id"].endswith(":quote")]
    trade = trades[len(trades) // 2]
    inject(sandbox, account["account_id"], kind="drop", record=record_id(trade))

    run = SyncRun.objects.create(connection=connection, trigger="test")
    for step in ("positions", "transactions", "orders"):
        pipeline.run_step(run, step)
    assert not BrokerTransaction.objects.filter(connection=connection, broker_id=trade["broker_id"]).exists()
    cursor = SyncCursor.objects.get(connection=connection, stream="transactions").cursor
    put_right(sandbox, account["account_id"])                # the record shows up late
    endpoint = f"alpaca-{environment}" if broker == "alpaca" else broker
    before = sandbox_requests(sandbox, endpoint)
    pipeline.run_step(run, "reconcile")
    made = sandbox_requests(sandbox, endpoint) - before
    run.refresh_from_db()

    summary = run.steps["reconcile"]
    assert summary["differences"] >= 1 and summary["fixed_by_repull"] == summary["differences"]
    assert summary["breaks"] == 0 and not Break.objects.filter(connection=connection).exists()
    assert made == summary["requests"] >= 1 and summary["repull"] >= 1
    assert summary["created"] == rows                          # the trade's rows, stored once
    assert BrokerTransaction.objects.filter(connection=connection, broker_id=trade["broker_id"]).count() == 1
    assert SyncCursor.objects.get(connection=connection, stream="transactions").cursor == cursor
