"""How long the ledger takes: the full ledger of a 200,000-activity account under FIFO and
HIFO, the incremental recompute after one day of new fills (targets: full under 5 s,
incremental under 100 ms, HIFO not quadratic) and the per-asset recompute after a fill found
three months late.

    python benchmarks/ledger.py [--activities 200000] [--skip-engine]

Prints, for the lot engine alone (rows already in memory -> events -> lots) and for the
whole recompute through PostgreSQL (read rows, run, write lots/disposals/income in one
transaction): wall time and peak Python memory (tracemalloc, measured in a separate run so
it does not slow the timed one). The recompute is timed on a first build under FIFO and
HIFO, on method switches of an existing ledger (which write only the rows that differ) and
on a replay that changes nothing, with this process's CPU time beside the wall time (on a
shared machine the wall time includes waiting for a core). Uses its own database
(BENCH_DATABASE_URL), recreated.
"""
from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import BENCH_DATABASE_URL, bench_django  # noqa: E402

SYMBOLS = [f"S{i:02d}" for i in range(20)]
START = datetime(2019, 1, 2, 14, 30, tzinfo=timezone.utc)
CENT = Decimal("0.01")


def synthetic_history(n: int, seed: int = 7):
    """(symbol, kind, when, quantity, amount) tuples: ~75% fills (buys and partial sells of
    what is held, so lots pile up), 15% dividends, 10% fees, over about five years."""
    rng = random.Random(seed)
    held = {s: Decimal(0) for s in SYMBOLS}
    price = {s: Decimal(rng.randint(20, 400)) for s in SYMBOLS}
    step = timedelta(seconds=5 * 365 * 86400 // n)
    when = START
    for i in range(n):
        when += step
        symbol = rng.choice(SYMBOLS)
        price[symbol] = max(Decimal(1), (price[symbol] * Decimal(rng.uniform(0.98, 1.02))).quantize(CENT))
        roll = rng.random()
        if roll < 0.75:
            sell = held[symbol] > 0 and rng.random() < 0.45
            qty = Decimal(rng.randint(1, 20)) if not sell else min(held[symbol], Decimal(rng.randint(1, 30)))
            signed = -qty if sell else qty
            held[symbol] += signed
            yield symbol, "trade", when, signed, -signed * price[symbol]
        elif roll < 0.9:
            yield symbol, "dividend", when, None, Decimal(rng.randint(1, 5000)) / 100
        else:
            yield symbol, "fee", when, None, -Decimal(rng.randint(1, 300)) / 100


def setup_database(n: int):
    bench_django()
    from django.contrib.auth import get_user_model

    from backend.brokers.dtos import Credentials
    from backend.connections.models import BrokerConnection
    from backend.portfolio.models import Asset, Portfolio

    user = get_user_model().objects.create(username="bench")
    # Wash sales off for the FIFO / HIFO figures; one more line turns them on.
    portfolio = Portfolio.objects.create(owner=user, name="bench", wash_sales=False)
    connection = BrokerConnection(owner=user, portfolio=portfolio, broker="alpaca", environment="paper",
                                  broker_account_id="bench", status="active")
    connection.set_credentials(Credentials(api_key="k", api_secret="s"))
    connection.save()
    assets = {s: Asset.objects.create(symbol=s, asset_class="equity") for s in SYMBOLS}
    insert(connection, assets, synthetic_history(n), prefix="a")
    # A table that grew by 200,000 rows at once has been analyzed by autovacuum before anyone
    # reads it in production; without statistics the planner ignores the time index.
    from django.db import connection as db

    with db.cursor() as cursor:
        # Synced long before the recomputes timed here: only rows a test changes count as changed.
        cursor.execute("UPDATE sync_brokertransaction SET updated_at = updated_at - interval '1 day'")
        cursor.execute("ANALYZE")
    return connection, assets


def insert(connection, assets, history, *, prefix: str) -> int:
    from backend.sync.models import BrokerTransaction

    rows = [BrokerTransaction(connection=connection, portfolio_id=connection.portfolio_id, asset=assets[symbol],
                              broker_id=f"{prefix}{i}", type=kind, broker_type={"trade": "FILL", "dividend": "DIV",
                                                                                "fee": "FEE"}[kind],
                              occurred_at=when, broker_symbol=symbol, quantity=qty, amount=amount)
            for i, (symbol, kind, when, qty, amount) in enumerate(history)]
    BrokerTransaction.objects.bulk_create(rows, batch_size=5000)
    return len(rows)


def back_dated_fill(connection, assets, when, n: int):
    """A fill a sync found late: one buy of S03 at `when` (the sync reports `since`=`when`)."""
    from backend.sync.models import BrokerTransaction

    return BrokerTransaction.objects.create(connection=connection, portfolio_id=connection.portfolio_id,
                                            asset=assets["S03"], broker_id=f"late{n}", type="trade", broker_type="FILL",
                                            occurred_at=when, broker_symbol="S03", quantity=Decimal(3),
                                            amount=Decimal("-123.45"))


def engine_run(rows, method: str, wash: bool = False):
    """The engine as a recompute runs it: with the cyclic collector paused (ledger_recompute
    pauses it; with it on, its passes over the millions of live objects cost about half as
    much again)."""
    from backend.core.gcpause import collector_paused
    from backend.ledger.engine import Ledger
    from backend.ledger.events import build_events

    class NoPrices:
        def value(self, *a):
            return None

        def fx(self, currency, day):
            return Decimal(1) if currency == "USD" else None

    wash_assets = {r.asset_id for r in rows} if wash else ()
    with collector_paused():
        return Ledger(method=method, pricer=NoPrices(), wash_assets=wash_assets).run(
            build_events(rows, fiat=frozenset({"USD"})))


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def timed_cpu(fn) -> tuple[float, float, object]:
    """Wall time and this process's CPU time: on a shared machine the wall time includes the
    time other processes had the cores; the CPU time is ours alone (not the database's)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=5, help="incremental recomputes to time")
    parser.add_argument("--skip-engine", action="store_true", help="only the recomputes through PostgreSQL")
    args = parser.parse_args()
    n = args.activities
    print(f"building a {n:,}-activity account in {BENCH_DATABASE_URL.rsplit('/', 1)[-1]} ...", flush=True)
    connection, assets = setup_database(n)
    from django.db.models import F

    from backend.ledger.loading import rows_for_portfolio
    from backend.ledger.services import ledger_recompute
    from backend.portfolio.models import Portfolio
    from backend.sync.models import BrokerTransaction

    load_s, rows = timed(lambda: rows_for_portfolio(portfolio_id=connection.portfolio_id))
    print(f"read {len(rows):,} rows from PostgreSQL: {load_s:.2f} s")
    print("\nlot engine alone (rows in memory -> events -> lots, disposals, income)")
    for method, wash in () if args.skip_engine else (("fifo", False), ("hifo", False), ("hifo", True)):
        seconds, ledger = timed(lambda: engine_run(rows, method, wash))
        label = method + (" + wash sales" if wash else "")
        print(f"  {label:<18} {seconds:5.2f} s, peak {peak_mib(lambda: engine_run(rows, method, wash)):6.1f} MiB, "
              f"{len(ledger.lots):,} lots, {len(ledger.disposals):,} disposals")
    print("  hifo scaling (time per activity stays flat when it is not quadratic):")
    for size in () if args.skip_engine else (n // 4, n // 2, n):
        seconds, _ = timed(lambda: engine_run(rows[:size], "hifo"))
        print(f"    {size:>8,} activities: {seconds:5.2f} s = {seconds / size * 1e6:5.1f} us/activity")
    print("\nfull recompute through PostgreSQL (read, run, write in one transaction): wall / our CPU")
    pid = connection.portfolio_id
    steps = (("fifo, first build", "fifo", False, True), ("hifo, first build", "hifo", False, True),
             ("switch hifo -> fifo", "fifo", False, False), ("switch fifo -> hifo", "hifo", False, False),
             ("switch to hifo + wash sales", "hifo", True, False), ("replay, nothing changed", "hifo", True, False))
    for label, method, wash, empty in steps:
        if empty:                          # a portfolio whose ledger was never computed
            from backend.ledger.models import Disposal, Income, LedgerState, Lot
            for model in (Disposal, Income, Lot, LedgerState):
                model.objects.filter(portfolio_id=pid).delete()
        Portfolio.objects.filter(pk=pid).update(cost_basis_method=method, wash_sales=wash)
        full = label.startswith("replay")
        wall, cpu, result = timed_cpu(lambda: ledger_recompute(portfolio_id=pid, full=full))
        assert not result["incremental"], result
        print(f"  {label:<28} {wall:5.2f} s / {cpu:5.2f} s")
    print("\nincremental recompute after one day of new fills (HIFO + wash sales, from the saved state)")
    samples, day = [], rows[-1].occurred_at + timedelta(days=1)
    for d in range(args.days):
        start = (day + timedelta(days=d)).replace(hour=14, minute=30)
        history = [(s, k, start + (w - START) / 5000, q, a)
                   for s, k, w, q, a in synthetic_history(40, seed=100 + d)]
        insert(connection, assets, history, prefix=f"day{d}-")
        seconds, result = timed(lambda: ledger_recompute(portfolio_id=connection.portfolio_id, since=start))
        assert result["incremental"], result
        samples.append(seconds * 1000)
    print(f"  40 new activities a day, {args.days} days: median {statistics.median(samples):.0f} ms, "
          f"max {max(samples):.0f} ms")
    print("\nback-dated fill 3 months before the end, in one asset (HIFO + wash sales, per asset from the "
          "checkpoint before it)")
    # The fills above came in more than READ_MARGIN ago (a later sync finds the late fill):
    # rows updated within it of the last recompute count as changed too.
    BrokerTransaction.objects.filter(portfolio_id=connection.portfolio_id).update(
        updated_at=F("updated_at") - timedelta(days=1))
    samples = []
    for d in range(args.days):
        fill = back_dated_fill(connection, assets, rows[-1].occurred_at - timedelta(days=91 + d), d)
        seconds, result = timed(lambda: ledger_recompute(portfolio_id=connection.portfolio_id,
                                                         since=fill.occurred_at))
        assert result["assets"] == [assets["S03"].pk], result
        samples.append(seconds * 1000)
    print(f"  {args.days} fills: median {statistics.median(samples):.0f} ms, max {max(samples):.0f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
