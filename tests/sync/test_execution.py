"""One task execution runs several steps; an unchanged re-sync writes nothing; the lock is
renewed while held (the Alpaca sandbox over real HTTP, PostgreSQL, Redis; in-process)."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from backend.brokers.dtos import AssetClass, AssetRef, Position
from backend.sync import execution, metering, pipeline, writers
from backend.sync.models import BrokerPosition, SyncRun
from tests.factories import make_connection, sandbox_account, sandbox_advance, sandbox_truth

from .helpers import assert_matches_truth, sync_in_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpaca(sandbox, redis_client):
    account = sandbox_account(sandbox, broker="alpaca", environment="live", seed=13, positions=10, activities=300)
    return account, make_connection(account, broker="alpaca")


def _execute(run_id: int, start: str = "positions", **options) -> tuple[SyncRun, list[str]]:
    """What a chain task does with its run (workers/tasks.py), without the task around it."""
    run = execution.load_run(run_id)
    lock = execution.ConnectionLock(run.connection_id)
    assert lock.acquire()
    try:
        steps = execution.Execution(run, lock, **options).run_from(start)
    finally:
        lock.release()
    run.refresh_from_db()
    return run, steps


def test_a_young_execution_runs_every_step_and_the_chain_keeps_five(sandbox, alpaca):
    account, connection = alpaca
    run = SyncRun.objects.create(connection=connection, trigger="test")
    done, steps = _execute(run.pk)
    assert steps == ["positions", "transactions", "orders", "reconcile", "write_log"]
    assert done.state == SyncRun.State.SUCCEEDED
    assert all(done.steps[s]["finished_at"] for s in steps)          # each step still says when it ran
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))


def test_an_old_execution_hands_over_after_its_step(sandbox, alpaca):
    _, connection = alpaca
    run = SyncRun.objects.create(connection=connection, trigger="test")
    first, steps = _execute(run.pk, continue_seconds=0)
    assert steps == ["positions"] and first.state == SyncRun.State.RUNNING
    assert first.current_step == "transactions"                      # where a re-queue would start
    rest, steps = _execute(run.pk, start="transactions")
    assert steps == ["transactions", "orders", "reconcile", "write_log"] and rest.state == SyncRun.State.SUCCEEDED
    again, steps = _execute(run.pk, start="positions")                 # nothing left to do
    assert steps == []


def test_the_lock_is_renewed_while_held_and_a_lost_lock_stops_the_execution(redis_client):
    lock = execution.ConnectionLock(987654, ttl=1)
    assert lock.acquire()
    assert not execution.ConnectionLock(987654).acquire()           # one execution per connection
    time.sleep(0.6)
    lock.renew()                                                     # another full second from now
    time.sleep(0.6)
    assert not execution.ConnectionLock(987654).acquire()           # still held past its first ttl
    time.sleep(1.1)                                                  # not renewed: expires
    other = execution.ConnectionLock(987654)
    assert other.acquire()
    with pytest.raises(execution.LockLost):
        lock.renew()
    lock.release()                                                   # leaves the other holder's lock alone
    assert not execution.ConnectionLock(987654).acquire()
    other.release()


def test_an_unchanged_resync_writes_nothing_and_carries_the_clean_reconcile(sandbox, alpaca):
    account, connection = alpaca
    first = sync_in_process(connection)
    assert first.steps["reconcile"]["breaks"] == 0 and "carried_from" not in first.steps["reconcile"]
    written = dict(BrokerPosition.objects.filter(connection=connection).values_list("broker_symbol", "updated_at"))

    with CaptureQueriesContext(db) as queries:
        again = sync_in_process(connection)
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].startswith(("INSERT", "UPDATE", "DELETE")) and "sync_syncrun" not in q["sql"]
              and "connections_brokerconnection" not in q["sql"]]
    assert again.state == SyncRun.State.SUCCEEDED
    assert writes == [], writes                        # no position, transaction, order or cursor rewritten
    assert dict(BrokerPosition.objects.filter(connection=connection)
                .values_list("broker_symbol", "updated_at")) == written
    assert again.steps["positions"]["updated"] == 0 and again.steps["transactions"]["created"] == 0
    assert again.steps["reconcile"]["carried_from"] == first.pk
    # before: about 36 statements; the run's own rows are the bulk of what is left
    assert len(queries.captured_queries) <= 24, len(queries.captured_queries)

    sandbox_advance(sandbox, account["account_id"], fills=2, deposit=True, dividend=False, split=False,
                    close_position=False, orders=0, cancel_orders=0, new_symbol=False)
    moved = sync_in_process(connection)                # something new: reconcile compares again
    assert moved.steps["transactions"]["created"] > 0 and "carried_from" not in moved.steps["reconcile"]
    assert moved.steps["reconcile"]["breaks"] == 0
    assert_matches_truth(connection, sandbox_truth(sandbox, account["account_id"]))


def test_a_lasting_break_is_compared_again_at_every_sync(sandbox, alpaca):
    """A clean result is carried; one with an open break never is (its window is re-pulled)."""
    from tests.reconcile.helpers import inject

    account, connection = alpaca
    truth = sandbox_truth(sandbox, account["account_id"])
    sell = next(t for t in truth["transactions"] if t["type"] == "trade" and Decimal(t["quantity"]) < 0)
    inject(sandbox, account["account_id"], kind="drop", record=sell["broker_id"])
    first = sync_in_process(connection)
    assert first.steps["reconcile"]["breaks"] == 1
    again = sync_in_process(connection)
    assert again.steps["reconcile"]["breaks"] == 1 and "carried_from" not in again.steps["reconcile"]


def test_a_previous_run_that_failed_is_never_carried_over(sandbox, alpaca):
    _, connection = alpaca
    sync_in_process(connection)
    SyncRun.objects.create(connection=connection, trigger="test", state=SyncRun.State.FAILED)
    after_failure = sync_in_process(connection)
    assert "carried_from" not in after_failure.steps["reconcile"]


def test_positions_are_written_only_when_they_changed(alpaca):
    """Hand-worked: 3 holdings stored; the broker then reports one with a new quantity, one
    with a new price only, one as before, and no longer the third of the old ones."""
    _, connection = alpaca

    def held(symbol, quantity, price):
        return Position(asset=AssetRef(symbol=symbol, asset_class=AssetClass.EQUITY, currency="USD"),
                        broker_symbol=symbol, quantity=Decimal(quantity), current_price=Decimal(price),
                        market_value=Decimal(quantity) * Decimal(price), raw={"qty": Decimal(quantity)})

    from django.utils import timezone

    first = writers.positions_replace(connection, [held("AAA", "10", "5.5"), held("BBB", "2", "100"),
                                                   held("CCC", "1", "1")], timezone.now())
    assert (first["created"], first["updated"], first["moved"]) == (3, 0, 3)
    same = writers.positions_replace(connection, [held("AAA", "10", "5.5"), held("BBB", "2", "100"),
                                                  held("CCC", "1", "1")], timezone.now())
    assert (same["created"], same["updated"], same["closed"], same["moved"]) == (0, 0, 0, 0)
    # AAA 10 -> 12 (moved), BBB price 100 -> 101 (written, not moved), CCC gone (closed, moved)
    later = writers.positions_replace(connection, [held("AAA", "12", "5.5"), held("BBB", "2", "101")],
                                      timezone.now())
    assert (later["created"], later["updated"], later["closed"], later["moved"]) == (0, 2, 1, 2)
    stored = {p.broker_symbol: p for p in BrokerPosition.objects.filter(connection=connection)}
    assert stored["AAA"].quantity == 12 and stored["BBB"].current_price == 101
    assert not stored["CCC"].is_open and stored["CCC"].quantity == 0
    back = writers.positions_replace(connection, [held("AAA", "12", "5.5"), held("BBB", "2", "101"),
                                                  held("CCC", "1", "1")], timezone.now())
    assert (back["created"], back["updated"], back["moved"]) == (0, 1, 1)     # reopened
    assert BrokerPosition.objects.get(connection=connection, broker_symbol="CCC").is_open


def test_metering_records_each_execution_cost(settings, sandbox, alpaca, redis_client):
    settings.SYNC_TASK_METERING = True
    _, connection = alpaca
    run = SyncRun.objects.create(connection=connection, trigger="test")
    start = metering.count()
    with metering.metered("sync.fetch_positions", run.pk) as meter:
        loaded = execution.load_run(run.pk)
        meter.loaded(loaded)
        lock = execution.ConnectionLock(connection.pk)
        assert lock.acquire()
        execution.Execution(loaded, lock).run_from("positions")
        lock.release()
    with metering.metered("sync.fetch_transactions", run.pk) as meter:
        meter.loaded(execution.load_run(run.pk))           # its step is done: nothing to do
    [full, idle] = metering.executions(start)
    rows = sum(int(info.get("created", 0)) + int(info.get("updated", 0)) for info in
               SyncRun.objects.get(pk=run.pk).steps.values())
    assert full["run"] == run.pk and full["requests"] >= 4 and full["rows"] == rows > 0 and full["cpu_s"] > 0
    assert idle["requests"] == 0 and idle["rows"] == 0
    figures = metering.summary([full, idle])
    assert figures["executions"] == 2 and figures["without_request"] == 1
    assert figures["cpu_per_request_ms"] == pytest.approx(1000 * (full["cpu_s"] + idle["cpu_s"]) / full["requests"])
    assert metering.executions_for_run(run.pk) == [full, idle]


def test_the_metering_fit_recovers_the_fixed_costs():
    """Hand-worked: executions costing 45 ms + 7 ms per request + 0.5 ms per row exactly.
       (0 requests, 0 rows)      45 ms
       (10 requests, 0 rows)     45 + 70       = 115 ms
       (0 requests, 1000 rows)   45 + 500      = 545 ms
       (5 requests, 200 rows)    45 + 35 + 100 = 180 ms"""
    records = [{"cpu_s": ms / 1000, "requests": req, "rows": rows}
               for req, rows, ms in [(0, 0, 45), (10, 0, 115), (0, 1000, 545), (5, 200, 180)]]
    fitted = metering.fit(records)
    assert fitted["per_execution_ms"] == pytest.approx(45)
    assert fitted["per_request_ms"] == pytest.approx(7)
    assert fitted["per_row_ms"] == pytest.approx(0.5)
    figures = metering.summary(records)
    # 885 ms over 4 executions, 15 requests, 1,200 rows
    assert figures["cpu_per_execution_ms"] == pytest.approx(885 / 4)
    assert figures["cpu_per_request_ms"] == pytest.approx(885 / 15)
    assert figures["cpu_per_1000_rows_s"] == pytest.approx(0.885 / 1.2)
    assert figures["without_request"] == 2
    assert metering.fit(records[:2]) is None                     # too few to tell three costs apart


def _binance_with_one_slot_left(sandbox, seed: int):
    """A Binance connection whose IP scope has every step slot but one held by other runs;
    returns the connection, the limiter, the scope and those holders."""
    from django.conf import settings

    from backend.brokers.registry import default_limiter

    sandbox.sims["binance"].reset_limits()
    account = sandbox_account(sandbox, broker="binance", environment="live", seed=seed, positions=4, activities=80)
    connection = make_connection(account, broker="binance")
    limiter = default_limiter()
    scope = pipeline.adapter_for(connection).session.scope
    others = [f"run:other-{i}" for i in range(settings.BROKER_RATE_LIMITS["binance"]["max_active_steps"] - 1)]
    assert all(limiter.take_slot("binance", scope, holder, ttl=120) for holder in others)
    return connection, limiter, scope, others


def test_an_execution_keeps_its_budget_slot_across_steps_and_gives_it_back_at_its_end(sandbox, redis_client,
                                                                                    monkeypatch):
    """Binance: with one slot left, the execution takes it at its first step, runs every step
    on it (a waiter that came meanwhile is not handed it between steps), and its end hands
    it to that waiter."""
    connection, limiter, scope, others = _binance_with_one_slot_left(sandbox, seed=31)
    run = SyncRun.objects.create(connection=connection, trigger="test")
    lock = execution.ConnectionLock(connection.pk)
    assert lock.acquire()
    seen = []
    runner = execution.Execution(execution.load_run(run.pk), lock)

    real_step = pipeline.run_step

    def step_then_a_newcomer(run, name, factory):       # the real step, then someone asks for a slot
        real_step(run, name, factory)
        if name == "positions":
            seen.append(limiter.claim_slot("binance", scope, "run:late|positions", ttl=60, lease=600).taken)

    monkeypatch.setattr(pipeline, "run_step", step_then_a_newcomer)
    try:
        steps = runner.run_from("positions")
    finally:
        lock.release()
    assert steps == ["positions", "transactions", "orders", "reconcile", "write_log"]
    assert seen == [False]                                    # the slot stayed with the execution
    assert limiter.waiters(scope) == []                       # its end handed the slot to the waiter
    assert limiter.claim_slot("binance", scope, "run:late|positions", ttl=60, lease=600).taken
    for holder in [*others, "run:late"]:
        limiter.release_slot("binance", scope, holder)


def test_a_step_whose_budget_is_spent_keeps_its_slot_for_its_retry(sandbox, redis_client):
    """Binance: the step holding the last slot finds the IP's weight spent. It gives its thread
    back but keeps the slot until its retry is due (a waiter would find the same budget spent
    and hand the slot on after one request, or none): the waiter is not woken, and the retry
    finds the slot still its own."""
    from django.conf import settings

    from backend.brokers.errors import RateLimited
    from backend.brokers.http import SessionPolicy

    connection, limiter, scope, others = _binance_with_one_slot_left(sandbox, seed=37)
    run = SyncRun.objects.create(connection=connection, trigger="test")
    holder, slots = f"run:{run.pk}", f"{limiter.prefix}:slots:{scope}"
    lock = execution.ConnectionLock(connection.pk)
    assert lock.acquire()
    assert limiter.acquire("binance", scope, settings.BROKER_RATE_LIMITS["binance"]["limit"]) == 0   # all spent
    try:
        with pytest.raises(RateLimited) as raised:
            execution.Execution(execution.load_run(run.pk), lock).run_from("positions")
    finally:
        lock.release()
    wait = raised.value.retry_after
    assert raised.value.local and raised.value.scope == scope and wait > SessionPolicy().max_inplace_wait
    # Held until the retry is due, plus the grace: 61 s of window + 30 s, not the step's 300 s lease.
    expires = float(redis_client.zscore(slots, holder))
    assert expires - time.time() == pytest.approx(wait + pipeline.SLOT_HOLD_GRACE, abs=5)
    late = limiter.claim_slot("binance", scope, "run:late|positions", ttl=60, lease=600)
    assert not late.taken and late.woken == ()
    assert limiter.waiters(scope) == ["run:late|positions"]
    retry = limiter.claim_slot("binance", scope, f"{holder}|positions", ttl=60, lease=600)
    assert retry.taken                                          # the retry's claim finds the slot its own
    assert limiter.waiters(scope) == ["run:late|positions"]     # and passes nobody
    for name in [*others, holder]:
        limiter.release_slot("binance", scope, name)


def test_only_a_wait_on_the_slots_own_budget_keeps_the_slot(redis_client):
    """A broker's own 429, a wait in line, or a spent budget of another scope (Binance's
    per-account UID weight) says nothing about the slot's budget: the slot goes back."""
    from backend.brokers.errors import RateLimited
    from backend.brokers.registry import default_limiter

    limiter, scope = default_limiter(), "binance:ip:test-hold"

    class Run:
        pk = 0

    def holding(name: str) -> Run:
        run = Run()
        assert limiter.take_slot("binance", scope, name, ttl=120)
        run.held_slot, run.renew_slot = (limiter, "binance", scope, name), None
        return run

    kept = holding("run:kept")
    assert pipeline.hold_slot_through_wait(kept, RateLimited("spent", retry_after=20, local=True, scope=scope))
    assert kept.held_slot is None                       # release_slot has nothing to give back now
    assert float(redis_client.zscore(f"{limiter.prefix}:slots:{scope}", "run:kept")) - time.time() == \
        pytest.approx(20 + pipeline.SLOT_HOLD_GRACE, abs=5)
    for error in (RateLimited("HTTP 429", retry_after=20),
                  RateLimited("uid weight spent", retry_after=20, local=True, scope="binance-uid:acct"),
                  pipeline.SlotWait("in line", member="run:x|positions", retry_after=300)):
        run = holding("run:other")
        assert not pipeline.hold_slot_through_wait(run, error)
        assert run.held_slot is not None                # the execution's end gives it back as before
        pipeline.release_slot(run)
        assert redis_client.zscore(f"{limiter.prefix}:slots:{scope}", "run:other") is None
    limiter.release_slot("binance", scope, "run:kept")
