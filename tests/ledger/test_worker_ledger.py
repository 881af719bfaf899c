"""End to end: a synced sandbox account of every broker, through the real worker: the sync's
history_changed queues the ledger on its own queue, and the ledger's open lots add up to
exactly what the broker reports, before and after new activity."""
from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

import pytest

from backend.brokers.registry import ADAPTERS, get_adapter_class
from backend.ledger.models import LedgerState, Lot
from backend.sync.models import BrokerPosition
from backend.sync.services import sync_request
from tests.factories import make_connection, sandbox_account, sandbox_advance, wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for_ledger(portfolio_id: int, after=None, timeout: float = 90) -> LedgerState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = LedgerState.objects.filter(portfolio_id=portfolio_id).first()
        if state and state.computed_at and (after is None or state.computed_at > after) \
                and not state.dirty_since and not state.needs_full:
            return state
        time.sleep(0.3)
    raise AssertionError("the ledger was not recomputed")


def open_quantities(connection) -> tuple[dict, dict]:
    lots: dict[str, Decimal] = defaultdict(Decimal)
    for symbol, remaining in Lot.objects.filter(connection=connection).exclude(remaining=0) \
            .values_list("asset__symbol", "remaining"):
        lots[symbol] += remaining
    held = {p.asset.symbol: p.quantity for p in BrokerPosition.objects.filter(connection=connection, is_open=True)
            .exclude(asset__asset_class="fiat").select_related("asset") if p.quantity}
    return {k: v for k, v in lots.items() if v}, held


@pytest.mark.parametrize("broker", sorted(ADAPTERS))
def test_the_ledger_follows_each_sync(sandbox, redis_client, celery_worker_process, broker):
    if broker == "binance":
        sandbox.sims["binance"].reset_limits()      # weight is per IP: earlier tests share it
    environment = get_adapter_class(broker).environments[0]
    account = sandbox_account(sandbox, broker=broker, environment=environment, seed=44, positions=6, activities=150)
    connection = make_connection(account, broker=broker)
    run = wait_for_run(sync_request(connection=connection)[0].pk, timeout=240)
    assert run.state == "succeeded", (run.failed_step, run.error_message)
    state = wait_for_ledger(connection.portfolio_id)
    lots, held = open_quantities(connection)
    assert lots == held
    assert state.events > 0 and Lot.objects.filter(connection=connection).exists()

    sandbox_advance(sandbox, account["account_id"])
    run = wait_for_run(sync_request(connection=connection)[0].pk, timeout=240)
    assert run.state == "succeeded", (run.failed_step, run.error_message)
    wait_for_ledger(connection.portfolio_id, after=state.computed_at)
    lots, held = open_quantities(connection)
    assert lots == held
