"""An unchanged re-sync per broker: what a sync costs when the broker has nothing new.

    python benchmarks/resync.py                                  # alpaca, coinbase, binance, kraken, ibkr
    python benchmarks/resync.py --brokers coinbase --positions 2000 --repeats 10

For each broker one medium account is synced once in full, then re-synced `--repeats`
times without anything changing at the broker, through a real Celery worker (one process,
`--concurrency` threads). Prints, per broker: the requests each step (stream) made in an
unchanged re-sync, the worker process's CPU per re-sync (from /proc, its idle CPU over the
same wall time taken off; its mean and median) and, where task metering is on, the CPU the
sync's task executions themselves spent; wall time per re-sync. One warm-up re-sync after
the full sync is not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

BROKERS = ("alpaca", "coinbase", "binance", "kraken", "ibkr")
ENVIRONMENT = {"alpaca": "paper"}
STEPS = ("positions", "transactions", "orders", "reconcile", "write_log")
WARM_UP_SECONDS = 7.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default=",".join(BROKERS))
    parser.add_argument("--positions", type=int, default=150)
    parser.add_argument("--activities", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def process_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_per_second(env: common.BenchEnv, seconds: float = 5.0) -> float:
    """What the worker spends doing nothing (heartbeats, the broker connection's polling):
    taken off each re-sync's CPU in proportion to its wall time."""
    before = process_cpu(env.worker.pid)
    time.sleep(seconds)
    return (process_cpu(env.worker.pid) - before) / seconds


def metered_cpu(run_id: int) -> float | None:
    """The CPU the run's task executions spent, as the worker recorded them (metering on)."""
    from backend.sync.metering import executions_for_run

    executions = executions_for_run(run_id)
    return sum(e["cpu_s"] for e in executions) if executions else None


def resync(env: common.BenchEnv, connection, idle_rate: float) -> dict:
    from backend.sync.models import SyncRun
    from backend.sync.services import sync_request

    cpu0 = process_cpu(env.worker.pid)
    started = time.monotonic()
    run, _ = sync_request(connection=connection, trigger="bench")
    while True:
        run.refresh_from_db()
        if not run.is_active:
            break
        time.sleep(0.01)
    wall = time.monotonic() - started
    time.sleep(0.05)               # the last task's own return path, after the run is ended
    cpu = process_cpu(env.worker.pid) - cpu0 - idle_rate * (time.monotonic() - started)
    try:
        metered = metered_cpu(run.pk)
    except ImportError:            # a version without task metering
        metered = None
    requests = {s: int(run.steps.get(s, {}).get("requests", 0)) for s in STEPS}
    created = sum(int(run.steps.get(s, {}).get("created", 0)) for s in STEPS)
    return {"state": run.state, "wall_s": wall, "cpu_s": max(cpu, 0.0), "metered_cpu_s": metered,
            "requests": requests, "created": created}


def bench_broker(env: common.BenchEnv, broker: str, args, idle_rate: float) -> dict:
    spec = {"broker": broker, "seed": args.seed, "positions": args.positions, "activities": args.activities,
            "environment": ENVIRONMENT.get(broker, "live"), **common.UNLIMITED_ACCOUNT_OPTIONS.get(broker, {})}
    account = env.control("POST", "/accounts", spec)
    connection = env.connect(broker, account)
    full = env.timed_sync(connection, broker)
    time.sleep(WARM_UP_SECONDS)        # the value-history rebuild the full sync asked for runs first
    resync(env, connection, idle_rate)  # one warm-up re-sync, not counted
    runs = [resync(env, connection, idle_rate) for _ in range(args.repeats)]
    median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    metered = [r["metered_cpu_s"] for r in runs if r["metered_cpu_s"] is not None]
    return {"broker": broker, "full": full, "runs": runs, "states": sorted({r["state"] for r in runs}),
            # CPU as a mean: /proc counts in ticks of 10 ms, so only a sum over repeats is exact enough
            "wall_s": median("wall_s"), "cpu_s": statistics.fmean(r["cpu_s"] for r in runs),
            "cpu_median_s": median("cpu_s"),
            "metered_cpu_s": statistics.fmean(metered) if metered else None,
            "requests": {s: statistics.median(r["requests"][s] for r in runs) for s in STEPS},
            "created": sum(r["created"] for r in runs)}


def print_result(r: dict) -> None:
    requests = ", ".join(f"{s} {n:g}" for s, n in r["requests"].items() if s not in ("write_log",))
    metered = f", task executions {1000 * r['metered_cpu_s']:.0f} ms" if r["metered_cpu_s"] is not None else ""
    print(f"{r['broker']:9s} full sync {r['full']['state']} {r['full']['seconds']:.1f}s; unchanged re-sync "
          f"{'/'.join(r['states'])}: requests {sum(r['requests'].values()):g} ({requests}); worker CPU "
          f"{1000 * r['cpu_s']:.0f} ms (median {1000 * r['cpu_median_s']:.0f}){metered}; "
          f"wall {1000 * r['wall_s']:.0f} ms; new rows {r['created']}", flush=True)


def main() -> int:
    args = parse_args()
    env = common.BenchEnv(limits="off", concurrency=args.concurrency, workers=1,
                          extra_env={"SYNC_TASK_METERING": "true"})
    results = []
    try:
        env.start()
        idle_rate = idle_cpu_per_second(env)
        print(f"worker idle CPU {1000 * idle_rate:.1f} ms/s (taken off); {args.positions} positions, "
              f"{args.activities} activities per account; {args.repeats} re-syncs each", flush=True)
        for broker in args.brokers.split(","):
            results.append(bench_broker(env, broker.strip(), args, idle_rate))
            print_result(results[-1])
        out = ROOT / "var" / "bench-resync.json"
        out.write_text(json.dumps({"args": vars(args), "idle_cpu_per_s": idle_rate, "results": results},
                                  indent=2, default=str))
        print(f"figures saved to {out.relative_to(ROOT)}")
    finally:
        env.stop()
    return 0 if all(r["states"] == ["succeeded"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
