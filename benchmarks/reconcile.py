"""What reconcile costs, per broker, through the real worker: on a clean account, and with one
fill missing from the feed (found, re-pulled, typed; then put right and cleared).

    python benchmarks/reconcile.py                                  # every broker, 20,000 activities
    python benchmarks/reconcile.py --brokers alpaca --activities 200000

For each broker it prints the reconcile step's time on a clean account; then, with one fill
in the middle of the history dropped from the feed, the requests of the targeted re-pull
against the requests of the full history (what a re-sync from scratch would ask for), the
break it recorded, and the re-pull that clears it once the sandbox is put right.
Limits are lifted (--limits off, as sync_throughput.py) so the figures are our own cost.
"""
from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

# broker -> the broker's own id of a truth transaction (what a record fault names)
RECORD_ID = {
    "alpaca": lambda tx: tx["broker_id"],
    "coinbase": lambda tx: tx["broker_id"].split(":")[1],
    "binance": lambda tx: ":".join(tx["broker_id"].split(":")[1:3]),
    "kraken": lambda tx: tx["broker_id"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="alpaca,coinbase,binance,kraken")
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--activities", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def account(env: common.BenchEnv, broker: str, args) -> dict:
    spec = {"broker": broker, "seed": args.seed, "positions": args.positions, "activities": args.activities,
            **common.UNLIMITED_ACCOUNT_OPTIONS.get(broker, {})}
    return env.control("POST", "/accounts", spec)


def reconcile_figures(connection) -> dict:
    from backend.sync.models import SyncRun

    run = SyncRun.objects.filter(connection=connection).order_by("-id").first()
    step = run.steps["reconcile"]
    return {"ms": step.get("duration_ms"), "requests": step.get("requests", 0), "breaks": step.get("breaks"),
            "types": step.get("types"), "fixed": step.get("fixed_by_repull", 0),
            "transactions_requests": run.steps.get("transactions", {}).get("requests", 0)}


def bench_broker(env: common.BenchEnv, broker: str, args) -> dict:
    clean = env.connect(broker, account(env, broker, args))
    env.timed_sync(clean, broker)
    out = {"broker": broker, "clean": reconcile_figures(clean)}

    faulty = account(env, broker, args)
    truth = env.control("GET", f"/accounts/{faulty['account_id']}/truth")
    sells = [t for t in truth["transactions"] if t["type"] == "trade" and Decimal(t["quantity"] or 0) < 0
             and not t["broker_id"].endswith(":quote")]
    fill = sells[len(sells) // 2]
    path = f"/accounts/{faulty['account_id']}/faults"
    env.control("POST", path, {"kind": "drop", "record": RECORD_ID[broker](fill)})
    connection = env.connect(broker, faulty)
    out["sync"] = env.timed_sync(connection, broker)
    out["found"] = reconcile_figures(connection)
    env.control("DELETE", path)
    env.timed_sync(connection, broker)
    out["cleared"] = reconcile_figures(connection)
    return out


def main() -> int:
    args = parse_args()
    env = common.BenchEnv(limits="off", concurrency=4)
    env.start()
    results = []
    try:
        for broker in args.brokers.split(","):
            results.append(bench_broker(env, broker, args))
            print_result(results[-1], args)
    finally:
        env.stop()
    out = ROOT / "var" / "bench-reconcile.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nraw figures: {out}")
    return 0


def print_result(r: dict, args) -> None:
    clean, found, cleared = r["clean"], r["found"], r["cleared"]
    print(f"\n== {r['broker']} ({args.activities:,} activities)")
    print(f"   clean account: reconcile {clean['ms']} ms, {clean['requests']} requests, {clean['breaks']} breaks")
    print(f"   one fill dropped: the full history took {found['transactions_requests']} requests; the re-pull "
          f"{found['requests']} ({found['requests'] / max(1, found['transactions_requests']):.1%}); reconcile "
          f"{found['ms']} ms; breaks {found['breaks']} {found['types']}")
    print(f"   put right: the re-pull {cleared['requests']} requests, fixed {cleared['fixed']} difference(s), "
          f"breaks {cleared['breaks']}; reconcile {cleared['ms']} ms")


if __name__ == "__main__":
    sys.exit(main())
