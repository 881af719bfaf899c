"""Chaos: the delivery guarantees under the failures production will see.

    1. kill -9 a worker mid-step      acks_late + visibility timeout re-deliver its message,
                                      the reaper re-queues its run; the step resumes from its cursor
    2. restart Redis mid-sync         queued messages, locks and limiter state are gone; the
                                      reaper brings every lost run back after its lease
    3. restart PostgreSQL mid-sync    every database session is cut; steps roll back and retry
    4. a flaky sandbox                20% 5xx, 5% hangs past the read timeout, 5% cut bodies
    5. a rate-limit wait longer than the lease: the sleeping run is not reaped

After each: every run ended (succeeded or failed), every account has a succeeded run, and
every account's rows equal the sandbox's truth: nothing lost, nothing doubled. Only the
Redis restart may fail a run (lost three times over); such an account is synced again, as
the dispatcher would, and must then match. Everywhere else every run must succeed.

Each test has its own redis-server, workers and beat stand-in (tests/chaos/conftest.py);
nothing here touches the machine's Redis or PostgreSQL server, or the session worker.
"""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection as django_connection

from backend.sync.models import BrokerTransaction, SyncRun
from sandbox.faults import FaultPlan
from tests.factories import make_connection, raw_db_connection, sandbox_account, sandbox_truth
from tests.sync.helpers import assert_matches_truth

from .conftest import APP_NAME_PREFIX, LEASE_SECONDS

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

# Big enough that the transactions step of three accounts sharing one worker takes a few
# seconds (checkpoints every 2,000 rows), small enough that a resumed step stays well
# under the lease: the connection lock expires with the lease.
BIG_ACTIVITIES = 8_000
RAISED_LIMIT = 100_000            # the sandbox's per-account limit; the workers' rule is raised to match


def alpaca_accounts(sandbox, count: int, *, seed: int, activities: int = BIG_ACTIVITIES, environment="live"):
    accounts = [sandbox_account(sandbox, broker="alpaca", environment=environment, seed=seed + i, positions=15,
                                activities=activities, rate_limit_per_min=RAISED_LIMIT) for i in range(count)]
    return [(account, make_connection(account, broker="alpaca")) for account in accounts]


def runs_of(ids) -> list[SyncRun]:
    return list(SyncRun.objects.filter(pk__in=list(ids)).order_by("pk"))


def in_transactions_with_rows(ids):
    """Every run is in its transactions step, and at least one has committed rows."""
    runs = runs_of(ids)
    if all(r.current_step == "transactions" and r.state == "running" for r in runs) and \
            any(r.steps.get("transactions", {}).get("created", 0) > 0 for r in runs):
        return runs
    return None


def settle(chaos, sandbox, pairs, run_ids, *, timeout: float, rerun_failed: bool) -> dict:
    """Wait for every run to end; re-run an account whose run the chaos failed (when allowed);
    then every run is final, every account has a succeeded run, and its rows match the truth."""
    runs = chaos.wait_final(run_ids, timeout=timeout)
    failed = [r for r in runs if r.state != SyncRun.State.SUCCEEDED]
    if failed and not rerun_failed:
        raise AssertionError(f"runs failed under chaos: {[(r.pk, r.failed_step, r.error_kind, r.error_message) for r in failed]}"
                             f"\n{chaos.report()}")
    reruns = []
    for _, connection in pairs:
        if not SyncRun.objects.filter(connection=connection, state=SyncRun.State.SUCCEEDED).exists():
            reruns.append(chaos.sync(connection, trigger="api").pk)
    if reruns:
        chaos.stats["reruns"] += len(reruns)
        chaos.wait_final(reruns, timeout=60)

    active = list(SyncRun.objects.filter(state__in=SyncRun.ACTIVE_STATES).values_list("pk", "state"))
    assert not active, f"runs not in a final state: {active}\n{chaos.report()}"
    for account, connection in pairs:
        assert SyncRun.objects.filter(connection=connection, state=SyncRun.State.SUCCEEDED).exists(), \
            f"{account['account_id']}: no succeeded run\n{chaos.report()}"
        truth = sandbox_truth(sandbox, account["account_id"])
        try:
            assert_matches_truth(connection, truth)
        except AssertionError as exc:
            raise AssertionError(f"{account['account_id']} does not match the sandbox's truth: {exc}\n"
                                 f"{chaos.report()}") from None
    return {"failed": [(r.pk, r.error_kind, r.error_message[:120]) for r in failed], "reruns": reruns}


def created_per_connection(connection) -> int:
    return sum(int(r.steps.get("transactions", {}).get("created", 0))
               for r in SyncRun.objects.filter(connection=connection))


def test_worker_killed_mid_step(chaos, sandbox):
    """kill -9 worker A while three runs are in their transactions step; worker B gets the
    steps back twice over (Redis re-delivers A's unacked messages after the visibility
    timeout; the reaper re-queues the runs after the lease) and the lock lets one through."""
    pairs = alpaca_accounts(sandbox, 3, seed=310)
    worker_a = chaos.start_worker("a")
    run_ids = [chaos.sync(connection).pk for _, connection in pairs]

    at_kill = chaos.wait_until(lambda: in_transactions_with_rows(run_ids), timeout=60,
                               what="three runs in their transactions step with rows committed")
    worker_a.kill9()
    killed_at = time.time()
    # (a run whose positions step just ended is at its transactions step before it commits any)
    committed = {r.pk: r.steps.get("transactions", {}).get("created", 0) for r in runs_of(run_ids)}
    assert any(0 < n < BIG_ACTIVITIES for n in committed.values()), committed     # killed mid-step
    assert all(r.state == SyncRun.State.RUNNING for r in runs_of(run_ids))

    # Worker B starts once A's messages are past the visibility timeout, so its startup sweep
    # of Redis's unacked set hands them out again; the reaper (lease 8 s) has re-queued the
    # runs by then as well. Both copies reach B: the connection lock runs one at a time.
    unacked = chaos.redis.client()
    chaos.wait_until(lambda: _unacked_older_than(unacked, killed_at, 10.5), timeout=30,
                     what="worker A's unacked messages to pass the visibility timeout")
    chaos.start_worker("b")

    settle(chaos, sandbox, pairs, run_ids, timeout=90, rerun_failed=False)
    counters = chaos.counters()
    assert counters["requeued_by_reaper"] >= 1, counters
    assert counters["redelivered"] >= 1, counters
    for (account, connection), (run_id, before) in zip(pairs, committed.items()):
        truth_count = len(sandbox_truth(sandbox, account["account_id"])["transactions"])
        # Nothing doubled: each row was created exactly once, across every run and retry.
        assert BrokerTransaction.objects.filter(connection=connection).count() == truth_count
        assert created_per_connection(connection) == truth_count, (run_id, before, chaos.report())
    print(f"killed with rows committed {committed} at step {[r.current_step for r in at_kill]}; {counters}")


def _unacked_older_than(client, since: float, age: float) -> bool:
    """Every message in Redis's unacked set was delivered more than `age` seconds ago
    (or none is left: a sweep already restored them)."""
    newest = client.zrange("unacked_index", -1, -1, withscores=True)
    if not newest:
        return time.time() - since > age
    return time.time() - newest[0][1] > age


def test_redis_restarted_mid_sync(chaos, sandbox):
    """kill -9 the private Redis mid-sync and start an empty one on the same port 2 s later:
    queued and unacked messages, locks and limiter windows are gone. Workers reconnect; every
    run left queued or running comes back through the reaper after its lease."""
    pairs = alpaca_accounts(sandbox, 3, seed=320)
    pairs += alpaca_accounts(sandbox, 2, seed=325, activities=1_500, environment="paper")
    chaos.start_worker("a", concurrency=3)
    chaos.start_worker("b", concurrency=3)
    run_ids = [chaos.sync(connection).pk for _, connection in pairs]

    chaos.wait_until(lambda: in_transactions_with_rows(run_ids[:3]), timeout=60,
                     what="the big runs in their transactions step with rows committed")
    chaos.redis.kill()
    down_until = time.monotonic() + 2
    while time.monotonic() < down_until:
        chaos.maybe_tick()                       # beat keeps ticking; its sends fail meanwhile
    chaos.redis.start()

    outcome = settle(chaos, sandbox, pairs, run_ids, timeout=120, rerun_failed=True)
    counters = chaos.counters()
    # Every worker is back on the new Redis: it reconnected, or it died and the supervisor
    # restarted it (kombu 5.7.0 can crash a worker whose connection drops with unacked
    # messages: "Unrecoverable error: AttributeError ... 'hostname'"; see conftest.supervise).
    originals = [w for w in chaos.workers if not w.restarted and "restart" not in w.label]
    chaos.wait_until(lambda: all(w.count(r"Connected to redis://") >= 2 for w in originals), timeout=30,
                     what="the surviving workers to reconnect")
    alive = [w for w in chaos.workers if w.proc.poll() is None]
    assert len(alive) == 2, chaos.report()
    print(f"redis restarted; {outcome}; {counters}")


def test_postgres_restarted_mid_sync(chaos, sandbox):
    """Every database session of the workers is cut, over and over for 3 s, while runs are in
    their transactions step. Steps fail with OperationalError/InterfaceError, roll back and are
    retried; every run still succeeds.

    Why this stands in for a PostgreSQL restart: what a restart does to its clients is end
    every session (the server terminates each backend, exactly as pg_terminate_backend does)
    and refuse or drop the sessions that try to come back while it starts. Terminating every
    session again each 100 ms for 3 s does both, from the clients' side, without stopping the
    machine's shared server. Only the chaos workers' sessions (application_name bs-chaos-*)
    are cut: the test process (beat stand-in and observer) and the session worker keep theirs.
    """
    pairs = alpaca_accounts(sandbox, 3, seed=330)
    chaos.start_worker("a")
    run_ids = [chaos.sync(connection).pk for _, connection in pairs]
    chaos.wait_until(lambda: in_transactions_with_rows(run_ids), timeout=60,
                     what="three runs in their transactions step with rows committed")

    terminated = _cut_sessions(chaos, seconds=3.0)
    assert terminated > 0, "no worker session was cut"
    settle(chaos, sandbox, pairs, run_ids, timeout=90, rerun_failed=False)
    counters = chaos.counters()
    assert counters["infra_retries"] >= 1, counters
    for (account, connection) in pairs:
        truth_count = len(sandbox_truth(sandbox, account["account_id"])["transactions"])
        assert created_per_connection(connection) == truth_count, chaos.report()
    print(f"database sessions cut {terminated} times; {counters}")


def _cut_sessions(chaos, *, seconds: float) -> int:
    """pg_terminate_backend every chaos-worker session of the test database, every 100 ms,
    from a separate psycopg connection, while the test thread keeps beat ticking."""
    d = django_connection.settings_dict
    killer = raw_db_connection(autocommit=True)
    count = [0]
    stop = threading.Event()

    def cut():
        while not stop.is_set():
            rows = killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND application_name LIKE %s",
                [d["NAME"], APP_NAME_PREFIX + "%"]).fetchall()
            count[0] += sum(1 for (ok,) in rows if ok)
            stop.wait(0.1)

    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            chaos.maybe_tick()
    finally:
        stop.set()
        thread.join(5)
        killer.close()
    return count[0]


def test_flaky_sandbox(chaos, sandbox):
    """20% 5xx, 5% hangs past the read timeout, 5% bodies cut in half, on every broker the
    sandbox simulates; every run still succeeds (in-place retries, then step retries with
    backoff) and matches the truth."""
    from sandbox.brokers import SIMULATORS

    # The lease must outlast the longest silence of a live step: a page can take three
    # attempts of BROKER_READ_TIMEOUT (2 s) plus backoff, after up to CHECKPOINT_SECONDS (5 s)
    # of pages since the last heartbeat. With 8 s the reaper would re-queue live runs.
    chaos.set_lease(25)
    pairs = alpaca_accounts(sandbox, 1, seed=340, activities=2_000, environment="paper")
    pairs += alpaca_accounts(sandbox, 1, seed=341, activities=2_000, environment="live")
    others = {"coinbase": dict(positions=4, activities=150), "binance": dict(positions=4, activities=150),
              "kraken": dict(positions=3, activities=100)}
    targets = ["alpaca-paper", "alpaca-live"]
    for broker, size in others.items():
        if broker in SIMULATORS:
            account = sandbox_account(sandbox, broker=broker, environment="live", seed=342, **size)
            pairs.append((account, make_connection(account, broker=broker)))
            targets.append(broker)
    for i, target in enumerate(targets):
        # Binance: the /api endpoints only. Its /sapi withdraw history is UID-weighted at 18,000
        # of 180,000 a minute (10 calls/min, every attempt charged), so with 20% faults there a
        # first sync spends minutes waiting for the budget (measured: 225 s for one account).
        sandbox.faults.set(FaultPlan(target=target, error_rate=0.2, error_status=503, timeout_rate=0.05,
                                     hang_seconds=2.5, malformed_rate=0.05, seed=40 + i,
                                     path_contains="/api/" if target == "binance" else ""))

    chaos.start_worker("a", concurrency=6)
    run_ids = [chaos.sync(connection).pk for _, connection in pairs]
    settle(chaos, sandbox, pairs, run_ids, timeout=150, rerun_failed=False)
    injected = chaos.faults_injected()
    assert injected.get("5xx", 0) > 0 and injected.get("timeout", 0) > 0 and injected.get("malformed", 0) > 0, injected
    print(f"flaky sandbox over {targets}: {chaos.counters()}")



def test_rate_limit_wait_longer_than_the_lease_is_not_reaped(chaos, sandbox):
    """A broker that says "wait 15 s" to a worker whose lease is 8 s: the step's retry is
    due in 15 s, the run is asleep, not dead. The reaper must leave it alone (a re-queue
    here would start a second chain, and three of them would fail the run as "lost")."""
    pairs = alpaca_accounts(sandbox, 1, seed=350, activities=300, environment="paper")
    sandbox.faults.set(FaultPlan(target="alpaca-paper", burst_429=1, retry_after=15,
                                 path_contains="/v2/account/activities"))
    chaos.start_worker("a")
    run_ids = [chaos.sync(connection).pk for _, connection in pairs]
    settle(chaos, sandbox, pairs, run_ids, timeout=60, rerun_failed=False)
    run = SyncRun.objects.get(pk=run_ids[0])
    counters = chaos.counters()
    assert chaos.faults_injected().get("429") == 1
    assert counters["requeued_by_reaper"] == 0 and "_requeues" not in run.steps, chaos.report()
    assert (run.finished_at - run.started_at).total_seconds() > LEASE_SECONDS   # it did sleep past the lease
    print(f"rate-limited past the lease; {counters}")
