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


def test_a_step_without_a_budget_slot_waits_without_spending_weight(sandbox, binance):
    """Binance's weight is one budget per IP for every user: at most max_active_steps steps
    spend it at once. The next one joins the wait queue (our own pacing, never counted
    against the run) before it sends anything; the release of a slot hands it that slot."""
    from django.conf import settings

    from backend.brokers.errors import RateLimited
    from backend.brokers.registry import default_limiter
    from backend.sync import pipeline
    from backend.sync.models import SyncRun
    from tests.factories import sandbox_requests

    account, connection = binance
    limiter = default_limiter()
    adapter = pipeline.adapter_for(connection)
    scope, most = adapter.session.scope, settings.BROKER_RATE_LIMITS["binance"]["max_active_steps"]
    others = [f"run:other-{i}" for i in range(most)]
    assert all(limiter.take_slot("binance", scope, holder, ttl=60) for holder in others)

    run = SyncRun.objects.create(connection=connection, trigger="test")
    before = sandbox_requests(sandbox, "binance")
    with pytest.raises(RateLimited) as waiting:
        pipeline.run_step(run, "positions")
    assert waiting.value.local and waiting.value.retry_after == settings.SYNC_SLOT_WAIT_SECONDS   # a fallback only
    assert sandbox_requests(sandbox, "binance") == before
    assert limiter.waiters(scope) == [f"run:{run.pk}|positions"]

    woken = limiter.release_slot_and_wake("binance", scope, others[0])
    assert woken == (f"run:{run.pk}|positions",) and limiter.waiters(scope) == []
    assert not limiter.take_slot("binance", scope, "run:newcomer", ttl=60)    # the freed slot is the waiter's
    pipeline.run_step(run, "positions")
    assert sandbox_requests(sandbox, "binance") > before
    assert limiter.take_slot("binance", scope, "run:next", ttl=60)   # the step gave its slot back
    for holder in others[1:] + ["run:next"]:
        limiter.release_slot("binance", scope, holder)


def test_a_first_sync_skips_pairs_that_reconcile_and_deep_walks_them(sandbox, binance):
    """Through the pipeline: the coverage map says which pairs were not asked and why, the
    rows still equal the truth, and the connection's {"deep": true} walks every candidate."""
    from backend.sync import pipeline

    account, connection = binance
    run = sync_in_process(connection)
    assert run.state == "succeeded" and run.reconcile_differences == []
    truth = sandbox_truth(sandbox, account["account_id"])
    assert_matches_truth(connection, truth)
    coverage = SyncCursor.objects.get(connection=connection, stream="transactions").coverage
    skipped = coverage["symbols_skipped"]
    assert skipped and set(skipped.values()) == {"both assets reconcile"} and coverage["assets_unreconciled"] == {}
    traded = {t["broker_id"].split(":")[1] for t in truth["transactions"] if t["broker_id"].startswith("trade:")}
    assert not traded & set(skipped)

    connection.options = {"deep": True}
    connection.save(update_fields=["options"])
    assert pipeline.adapter_for(connection).deep_scan
    connection.options = {}
    assert not pipeline.adapter_for(connection).deep_scan
