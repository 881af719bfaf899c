"""A fleet of sandbox accounts across the four brokers, synced with the real default rate
limits and sandbox latency, from the worker count and pool recommended for 2 cores.

    python benchmarks/fleet.py                       # 1,000 accounts, 2 workers x 16 threads
    python benchmarks/fleet.py --accounts 200 --latency-ms 20
    python benchmarks/fleet.py --accounts 100 --egress 2          # 2 workers on 127.0.0.1 and 127.0.0.2
    python benchmarks/fleet.py --accounts 100 --kill-worker-at 0.3  # kill -9 a worker 30% into the round

Prints: wall time of the initial round against the lower bound that the rate budgets,
page sizes and latency allow (the headline ratio), requests per broker, 429s and 418s
received (target zero), rows per second, peak worker memory, CPU seconds per 1,000 rows,
and the same for an incremental round after a fifth of the accounts changed. Every
account has a user and a portfolio of its own (its ledger and value history are rebuilt
after its syncs, on the same workers), and its rows are checked against the sandbox's truth;
Binance orders that ended without a fill on a pair with no trade are counted apart, as the
documented blind spot they are (docs/brokers.md).

`--egress N` spreads the workers over N loopback source addresses (BROKER_EGRESS_IP): the
sandbox counts Binance weight per client address as Binance does, so N addresses give N
budgets, and the bound divides Binance's weight among them. `--kill-worker-at F` kill -9s a
worker once a fraction F of the initial round's runs ended and starts a replacement; the
run is re-queued by the reaper (called here every few seconds, as beat would each minute,
with a lease of LEASE_ON_KILL seconds) and the truth check then proves nothing lost or doubled.
The workers meter every sync task execution (SYNC_TASK_METERING): executions, those
without a request, CPU per execution, per request and per row.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.minimums import minimum_for  # noqa: E402

# Share of accounts per broker, and account sizes: most people hold a few positions and a
# few hundred records; a few are heavy traders.
DEFAULT_MIX = "alpaca:0.35,coinbase:0.15,binance:0.15,kraken:0.15,ibkr:0.2"
SIZE_TIERS = [  # (share, positions range, activities range)
    (0.70, (3, 10), (20, 300)),
    (0.25, (10, 40), (300, 1500)),
    (0.05, (40, 150), (1500, 4000)),
]
ENVIRONMENT = {"alpaca": "paper"}
LEASE_ON_KILL = 120          # seconds without a heartbeat before a killed worker's run is re-queued
REAP_EVERY = 5.0             # the beat stand-in's period while a worker may have been killed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--mix", default=DEFAULT_MIX)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (recommended: 1 per core)")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="sandbox latency added to every answer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument("--egress", type=int, default=1,
                        help="loopback source addresses the workers are spread over (at least one worker each)")
    parser.add_argument("--kill-worker-at", type=float, default=None, metavar="FRACTION",
                        help="kill -9 a worker once this fraction of the initial round's runs ended")
    args = parser.parse_args()
    args.workers = max(args.workers, args.egress)
    return args


def draw_accounts(args) -> list[dict]:
    rng = random.Random(args.seed)
    brokers, weights = zip(*((b, float(w)) for b, w in (p.split(":") for p in args.mix.split(","))))
    specs = []
    for i in range(args.accounts):
        broker = rng.choices(brokers, weights)[0]
        tier = rng.choices(SIZE_TIERS, [t[0] for t in SIZE_TIERS])[0]
        specs.append({"broker": broker, "environment": ENVIRONMENT.get(broker, "live"), "seed": args.seed * 100_000 + i,
                      "positions": rng.randint(*tier[1]), "activities": rng.randint(*tier[2])})
    return specs


def lower_bound(minimums: list[tuple[str, dict]], latency_s: float, capacity: int, egress: int = 1) -> dict:
    """The fastest the round could possibly go: the slowest single account (its requests
    in sequence, and its own rate budget), every broker-wide budget (Binance's weight per
    IP, shared out over `egress` addresses), and the total latency spread over every
    worker thread."""
    per_account = [max(common.rate_bound_seconds(b, m), m["requests"] * latency_s) for b, m in minimums]
    binance_weight = sum(m.get("cost", m["requests"]) for b, m in minimums if b == "binance")
    shared = {"binance_ip_weight": binance_weight_seconds(binance_weight, egress)}
    total_latency = sum(m["requests"] for _, m in minimums) * latency_s / capacity
    bound = max([max(per_account, default=0), total_latency, *shared.values()])
    return {"seconds": bound, "slowest_account": max(per_account, default=0), "latency_over_threads": total_latency,
            "binance_weight": binance_weight, "egress": egress, **shared}


def binance_weight_seconds(weight: float, egress: int = 1) -> float:
    """The least time Binance's per-IP budgets need to grant `weight` spread evenly over
    `egress` addresses (each grants its first minute at once)."""
    return common.rate_bound_seconds("binance", {"cost": weight / max(1, egress), "requests": 0})


def run_round(env: common.BenchEnv, connections: list, timeout: float, kill_at: float | None = None) -> dict:
    from backend.sync.models import SyncRun
    from backend.sync.services import sync_request

    before = env.control("GET", "/stats")
    started = time.monotonic()
    start_time = timezone_now()
    runs = [sync_request(connection=c, trigger="bench")[0].pk for c in connections]
    peak_active, killed, reaped, last_reap = 0, None, 0, started
    while time.monotonic() - started < timeout:
        active = SyncRun.objects.filter(pk__in=runs, state__in=SyncRun.ACTIVE_STATES).count()
        peak_active = max(peak_active, active)
        if not active:
            break
        if kill_at is not None and killed is None and 1 - active / len(runs) >= kill_at:
            killed = kill_one_worker(env, runs, time.monotonic() - started)
        if killed is not None and time.monotonic() - last_reap >= REAP_EVERY:
            reaped += reap_stale_runs()
            last_reap = time.monotonic()
        time.sleep(1)
    wall = time.monotonic() - started
    after = env.control("GET", "/stats")
    finished = SyncRun.objects.filter(pk__in=runs)
    states = Counter(finished.values_list("state", flat=True))
    rows = sum(int(info.get("created", 0)) + int(info.get("updated", 0))
               for steps in finished.values_list("steps", flat=True) for k, info in steps.items()
               if isinstance(info, dict) and k in ("positions", "transactions", "orders"))
    per_endpoint = {e: {k: after["endpoints"].get(e, {}).get(k, 0) - before["endpoints"].get(e, {}).get(k, 0)
                        for k in ("requests", "429", "418", "5xx")} for e in after["endpoints"]}
    weight = (after.get("budgets", {}).get("binance_ip_weight", 0)
              - before.get("budgets", {}).get("binance_ip_weight", 0))
    return {"wall_s": wall, "states": dict(states), "rows": rows, "endpoints": per_endpoint,
            "binance_ip_weight": weight, "peak_active": peak_active, "phases": broker_phases(finished, start_time),
            "killed": killed, "reaped": reaped}


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def broker_phases(runs, start_time) -> dict[str, float]:
    """Seconds from the round's start until the last run of each broker ended."""
    phases: dict[str, float] = {}
    for broker, finished in runs.values_list("connection__broker", "finished_at"):
        if finished is not None:
            phases[broker] = max(phases.get(broker, 0.0), (finished - start_time).total_seconds())
    return phases


def kill_one_worker(env: common.BenchEnv, runs: list[int], at_s: float) -> dict:
    """kill -9 the first worker while it is busy, start its replacement."""
    from backend.sync.models import SyncRun

    running = SyncRun.objects.filter(pk__in=runs, state=SyncRun.State.RUNNING).count()
    env.kill_worker(0)
    print(f"   killed worker 0 (kill -9) at {at_s:.0f}s with {running} runs running; replacement started",
          flush=True)
    return {"at_s": at_s, "running": running}


def reap_stale_runs() -> int:
    """What beat's reaper entry does: re-queue runs whose lease ran out (a dead worker's)."""
    from backend.sync.scheduling import reap_stale

    return reap_stale()


def check_truth(env: common.BenchEnv, pairs: list) -> list[str]:
    """What differs between each account's stored rows and the sandbox's truth (target:
    nothing), one line per account that differs, saying how."""
    from backend.sync.models import BrokerOrder, BrokerTransaction

    differences, invisible = [], 0
    for account, connection in pairs:
        truth = env.control("GET", f"/accounts/{account['account_id']}/truth")
        stored = list(BrokerTransaction.objects.filter(connection=connection).values_list("broker_id", flat=True))
        tx = set(stored)
        truth_tx = {t["broker_id"] for t in truth["transactions"]}
        orders = dict(BrokerOrder.objects.filter(connection=connection).values_list("broker_id", "status"))
        truth_orders = {o["broker_id"]: o["status"] for o in truth["orders"]}
        unseen = _invisible_by_design(account, truth, orders)
        invisible += len(unseen)
        wrong = {k: (orders.get(k), v) for k, v in truth_orders.items() if orders.get(k) != v and k not in unseen}
        parts = [f"{len(truth_tx - tx)} transactions missing" if truth_tx - tx else "",
                 f"{len(stored) - len(tx)} transactions doubled" if len(stored) > len(tx) else "",
                 f"{len(tx - truth_tx)} transactions extra" if tx - truth_tx else "",
                 f"{len(set(orders) - set(truth_orders))} orders extra" if set(orders) - set(truth_orders) else "",
                 "orders " + ", ".join(f"{k} stored {a} truth {b}" for k, (a, b) in list(wrong.items())[:3])
                 if wrong else ""]
        if any(parts):
            differences.append(f"{account['account_id']}: " + "; ".join(p for p in parts if p))
    if invisible:
        print(f"   Binance orders cancelled or expired without a fill on a pair with no trade, not stored "
              f"(invisible by design without the deep option, docs/brokers.md): {invisible}", flush=True)
    return differences


def _invisible_by_design(account: dict, truth: dict, stored: dict) -> set[str]:
    """Binance lists orders only per symbol, and the orders step asks for the pairs with
    trades plus every open order: an order that ended without a fill on a pair with no trade
    is not seen (docs/brokers.md, "What stays invisible"). Those missing orders, by id."""
    if not account["account_id"].startswith("binance:"):
        return set()
    traded = {t["broker_id"].split(":")[1] for t in truth["transactions"] if t["broker_id"].startswith("trade:")}
    return {o["broker_id"] for o in truth["orders"]
            if o["broker_id"] not in stored and o["status"] in ("canceled", "expired", "rejected")
            and o["broker_id"].split(":")[0] not in traded}


def print_truth_check(differences: list[str]) -> None:
    print(f"   accounts not matching the sandbox's truth: {len(differences)}", flush=True)
    for line in differences[:20]:
        print(f"     {line}")


def print_round(name: str, r: dict, bound: dict | None, usage: dict, minimum: dict | None = None,
                egress: int = 1) -> None:
    requests = defaultdict(int)
    for endpoint, figures in r["endpoints"].items():
        requests[endpoint.split("-")[0]] += figures["requests"]
    n429 = sum(f["429"] for f in r["endpoints"].values())
    n418 = sum(f["418"] for f in r["endpoints"].values())
    print(f"\n== {name}: {r['wall_s']:.1f}s wall, runs {r['states']}")
    if r.get("phases"):
        print("   last run ended per broker: " + ", ".join(f"{b} {s:.0f}s" for b, s in sorted(r["phases"].items())))
    if r.get("killed"):
        print(f"   a worker was killed at {r['killed']['at_s']:.0f}s ({r['killed']['running']} runs running); "
              f"runs re-queued by the reaper: {r['reaped']}")
    if bound:
        print(f"   lower bound {bound['seconds']:.1f}s (slowest account {bound['slowest_account']:.1f}s, "
              f"Binance IP weight {bound['binance_ip_weight']:.1f}s over {bound.get('egress', 1)} egress "
              f"address(es), latency/threads "
              f"{bound['latency_over_threads']:.1f}s) -> ratio {r['wall_s'] / max(bound['seconds'], 1e-9):.2f}")
    print("   requests " + ", ".join(f"{b} {n}" + (f" (minimum {minimum[b]}, {n / max(1, minimum[b]):.2f}x)"
                                                  if minimum and b in minimum else "")
                                    for b, n in sorted(requests.items()) if n) + f"; 429s {n429}, 418s {n418}")
    if r.get("binance_ip_weight"):
        # How well the shared budget was spent, apart from how much the adapter chose to ask:
        # the least time the weight actually spent needs, against the wall time.
        spent_s = binance_weight_seconds(r["binance_ip_weight"], egress)
        floor = f" (minimum {minimum_weight:,.0f})" if (minimum_weight := (bound or {}).get("binance_weight")) else ""
        print(f"   Binance IP weight spent {r['binance_ip_weight']:,}{floor}: needs {spent_s:.0f}s at "
              f"6,000/min on each of {egress} address(es), {100 * spent_s / max(r['wall_s'], 1e-9):.0f}% of the wall time")
    print(f"   rows {r['rows']}, {r['rows'] / max(r['wall_s'], 1e-9):,.0f} rows/s; worker CPU {usage['cpu_s']:.1f}s "
          f"({1000 * usage['cpu_s'] / max(1, r['rows']):.2f}s per 1,000 rows); peak worker RSS {usage['peak_rss_mb']:.0f} MB")


def metering_count() -> int:
    from backend.sync import metering

    return metering.count()


def print_metering(since: int, worker_cpu_s: float) -> dict:
    """Where the workers' CPU went in the round, from the task metering (SYNC_TASK_METERING):
    sync step executions, those that made no broker request (waits, retries, chain tasks whose
    step was done), and their CPU per execution, per request and per row, with a fit of the
    three; then the other tasks (ledger, value history, prices) and what no task spent (Celery
    itself: receiving, acknowledging and publishing messages)."""
    from backend.sync import metering

    found = metering.records(since)
    figures = metering.summary(metering.step_records(found))
    others = metering.other_tasks(found)
    outside = worker_cpu_s - figures["cpu_s"] - sum(cpu for _, cpu in others.values())
    figures["other_tasks"] = {name: {"executions": n, "cpu_s": cpu} for name, (n, cpu) in sorted(others.items())}
    figures["outside_tasks_cpu_s"] = outside
    per_row = 1000 / max(1, figures["rows"])
    print(f"   worker CPU by kind: sync steps {figures['cpu_s']:.1f}s ({per_row * figures['cpu_s']:.2f}s per 1,000 rows), "
          + "".join(f"{name} {cpu:.1f}s in {n:,}, " for name, (n, cpu) in sorted(others.items(), key=lambda i: -i[1][1]))
          + f"outside any task {outside:.1f}s ({per_row * outside:.2f}s per 1,000 rows)")
    print(f"   task executions {figures['executions']:,} ({figures['without_request']:,} without a request, "
          f"{100 * figures['cpu_without_request_s'] / max(figures['cpu_s'], 1e-9):.1f}% of their CPU); "
          f"CPU {figures['cpu_s']:.1f}s: {figures['cpu_per_execution_ms']:.1f} ms per execution, "
          f"{figures['cpu_per_request_ms']:.1f} ms per request, {figures['cpu_per_1000_rows_s']:.2f} s per 1,000 rows")
    if figures["fit"]:
        print("   fit: {per_execution_ms:.1f} ms per execution + {per_request_ms:.2f} ms per request + "
              "{per_row_ms:.3f} ms per row".format(**figures["fit"]))
    return figures


def main() -> int:
    args = parse_args()
    # With a worker to kill, a short lease lets the reaper re-queue its runs within the round.
    extra = {"SYNC_TASK_METERING": "true"}
    if args.kill_worker_at is not None:
        extra["SYNC_RUN_LEASE_SECONDS"] = str(LEASE_ON_KILL)
    env = common.BenchEnv(limits="real", concurrency=args.concurrency, workers=args.workers, egress=args.egress,
                          extra_env=extra)
    try:
        env.start()
        env.control("POST", "/faults", {"target": "*", "latency_ms": args.latency_ms})
        started = time.monotonic()
        accounts = [env.control("POST", "/accounts", spec) for spec in draw_accounts(args)]
        print(f"created {len(accounts)} sandbox accounts in {time.monotonic() - started:.1f}s", flush=True)
        pairs = [(a, env.connect(a["account_id"].split(":")[0], a, own_user=True)) for a in accounts]
        minimums = [(a["account_id"].split(":")[0], minimum_for(a["account_id"].split(":")[0],
                                                               env.control("GET", f"/accounts/{a['account_id']}/truth")))
                    for a in accounts]
        bound = lower_bound(minimums, args.latency_ms / 1000, args.workers * args.concurrency, args.egress)
        cpu0, metered0 = env.worker_usage()["cpu_s"], metering_count()
        initial = run_round(env, [c for _, c in pairs], args.timeout, args.kill_worker_at)
        usage = env.worker_usage()
        minimum = defaultdict(int)
        for broker, m in minimums:
            minimum[broker] += m["requests"]
        print_round("initial sync", initial, bound, {**usage, "cpu_s": usage["cpu_s"] - cpu0}, minimum, args.egress)
        initial["metering"] = print_metering(metered0, usage["cpu_s"] - cpu0)
        initial["truth_differences"] = check_truth(env, pairs)
        print_truth_check(initial["truth_differences"])

        rng = random.Random(args.seed + 1)
        for account, _ in rng.sample(pairs, k=max(1, len(pairs) // 5)):
            env.control("POST", f"/accounts/{account['account_id']}/advance", {})
        cpu1, metered1 = env.worker_usage()["cpu_s"], metering_count()
        incremental = run_round(env, [c for _, c in pairs], args.timeout)
        usage2 = env.worker_usage()
        print_round("incremental round (a fifth of the accounts changed)", incremental, None,
                    {**usage2, "cpu_s": usage2["cpu_s"] - cpu1}, egress=args.egress)
        incremental["metering"] = print_metering(metered1, usage2["cpu_s"] - cpu1)
        incremental["truth_differences"] = check_truth(env, pairs)
        print_truth_check(incremental["truth_differences"])
        out = ROOT / "var" / "bench-fleet.json"
        out.write_text(json.dumps({"args": vars(args), "bound": bound, "initial": initial,
                                   "incremental": incremental, "worker": usage2}, indent=2, default=str))
        print(f"figures saved to {out.relative_to(ROOT)}")
    finally:
        env.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
