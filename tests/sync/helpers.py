"""Run a sync in-process (same code the tasks call) and compare rows with the sandbox's truth."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from backend.sync import pipeline
from backend.sync.models import BrokerOrder, BrokerPosition, BrokerTransaction, SyncRun

CHAIN = ("positions", "transactions", "orders", "reconcile", "write_log")


def sync_in_process(connection, *, steps=CHAIN) -> SyncRun:
    run = SyncRun.objects.create(connection=connection, trigger="test")
    for step in steps:
        pipeline.run_step(run, step)
    run.refresh_from_db()
    return run


def stored_positions(connection) -> dict[str, Decimal]:
    """Open holdings other than cash, by asset."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for p in (BrokerPosition.objects.filter(connection=connection, is_open=True).select_related("asset")
              .exclude(asset__asset_class="fiat")):
        totals[p.asset.symbol] += p.quantity
    return dict(totals)


def stored_cash(connection) -> dict[str, Decimal]:
    """Cash holdings (fiat assets) by currency, zero balances left out."""
    return {p.asset.symbol: p.quantity for p in BrokerPosition.objects.filter(
        connection=connection, is_open=True, asset__asset_class="fiat").select_related("asset") if p.quantity}


def truth_positions(truth: dict) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for p in truth["positions"]:
        totals[p["symbol"]] += Decimal(p["quantity"])
    return {k: v for k, v in totals.items() if v != 0}


def assert_matches_truth(connection, truth: dict) -> None:
    """Every account row equals the sandbox's truth: nothing lost, nothing doubled."""
    assert stored_positions(connection) == truth_positions(truth)
    assert stored_cash(connection) == {c: Decimal(v) for c, v in truth.get("cash", {}).items() if Decimal(v)}
    stored_tx = set(BrokerTransaction.objects.filter(connection=connection).values_list("broker_id", flat=True))
    truth_tx = {t["broker_id"] for t in truth["transactions"]}
    assert stored_tx == truth_tx, (len(stored_tx - truth_tx), len(truth_tx - stored_tx))
    assert BrokerTransaction.objects.filter(connection=connection).count() == len(truth["transactions"])
    stored_orders = dict(BrokerOrder.objects.filter(connection=connection).values_list("broker_id", "status"))
    assert stored_orders == {o["broker_id"]: o["status"] for o in truth["orders"]}
