"""Full sync of large sandbox accounts through the real worker, and the figures that matter.

    python benchmarks/sync_throughput.py                          # every broker, 2,000 positions / 200,000 activities
    python benchmarks/sync_throughput.py --brokers alpaca --limits real --activities 20000

For each broker it prints: wall time of the first (full) sync and of a second, incremental
one; the requests made against the minimum the page sizes allow; the time against the
bound the broker's real rate limit sets for that minimum; rows written per second; and
the worker's CPU seconds and peak memory.

--limits off (default) raises the sandbox's and our limiter's budgets so the figure is our
own throughput; --limits real keeps every real limit (then the wall time should sit close
to the rate-limit bound). The sandbox and the worker run as separate processes, and the
database is PostgreSQL (BENCH_DATABASE_URL), as in production.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.minimums import minimum_for  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="alpaca,coinbase,binance,kraken")
    parser.add_argument("--positions", type=int, default=2000)
    parser.add_argument("--activities", type=int, default=200_000)
    parser.add_argument("--limits", choices=("off", "real"), default="off")
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def bench_broker(env: common.BenchEnv, broker: str, args) -> dict:
    from backend.sync.models import BrokerOrder, BrokerPosition, BrokerTransaction

    spec = {"broker": broker, "seed": args.seed, "positions": args.positions, "activities": args.activities,
            **(common.UNLIMITED_ACCOUNT_OPTIONS.get(broker, {}) if args.limits == "off" else {})}
    started = time.monotonic()
    account = env.control("POST", "/accounts", spec)
    generated = time.monotonic() - started
    truth = env.control("GET", f"/accounts/{account['account_id']}/truth")
    connection = env.connect(broker, account)

    full = env.timed_sync(connection, broker)
    rows = (BrokerPosition.objects.filter(connection=connection).count()
            + BrokerTransaction.objects.filter(connection=connection).count()
            + BrokerOrder.objects.filter(connection=connection).count())
    incremental = env.timed_sync(connection, broker)
    minimum = minimum_for(broker, truth)
    return {"broker": broker, "generated_s": generated, "full": full, "incremental": incremental, "rows": rows,
            "truth_transactions": len(truth["transactions"]), "truth_positions": len(truth["positions"]),
            "truth_orders": len(truth["orders"]), "minimum": minimum,
            "bound_s": common.rate_bound_seconds(broker, minimum)}


def print_result(r: dict) -> None:
    full, inc, minimum = r["full"], r["incremental"], r["minimum"]
    print(f"\n== {r['broker']}: {r['truth_positions']} positions, {r['truth_transactions']} transactions, "
          f"{r['truth_orders']} orders (sandbox generated them in {r['generated_s']:.1f}s)")
    print(f"   full sync        {full['state']:9s} {full['seconds']:8.1f}s  requests {full['requests']:6d}"
          f" (minimum {minimum['requests']}, ratio {full['requests'] / max(1, minimum['requests']):.3f})"
          f"  rows {r['rows']}  rows/s {r['rows'] / max(full['seconds'], 1e-9):,.0f}")
    print(f"   rate-limit bound for the minimum: {r['bound_s']:.1f}s at the real limit"
          f" (time / bound = {full['seconds'] / r['bound_s']:.2f})" if r["bound_s"] else "")
    print(f"   incremental      {inc['state']:9s} {inc['seconds']:8.1f}s  requests {inc['requests']:6d}"
          f"  new rows {inc['created']}")
    print(f"   429s {full['429'] + inc['429']}  418s {full['418'] + inc['418']}  "
          f"reconcile differences {full['differences']}")


def main() -> int:
    args = parse_args()
    env = common.BenchEnv(limits=args.limits, concurrency=args.concurrency)
    results = []
    try:
        env.start()
        for broker in args.brokers.split(","):
            results.append(bench_broker(env, broker.strip(), args))
            print_result(results[-1])
        usage = env.worker_usage()
        print(f"\nworker: {usage['cpu_s']:.1f} CPU seconds, peak RSS {usage['peak_rss_mb']:.0f} MB;"
              f" limits {args.limits}; concurrency {args.concurrency}")
        out = ROOT / "var" / "bench-sync.json"
        out.write_text(json.dumps({"args": vars(args), "results": results, "worker": usage}, indent=2, default=str))
        print(f"figures saved to {out.relative_to(ROOT)}")
    finally:
        env.stop()
    return 0 if all(r["full"]["state"] == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
