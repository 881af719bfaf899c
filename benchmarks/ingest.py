"""How fast the sync stores transactions: the writer against PostgreSQL's floor (COPY) and
against the naive way (`update_or_create` per record), on the same realistic records.

    python benchmarks/ingest.py [--rows 200000] [--sample 5000] [--page 2000] [--profile]

The records are the sandbox's Alpaca history of one account (fills, dividends, fees,
deposits, splits...) rendered as the API answers, read back as JSON with Decimal numbers and
parsed by the Alpaca adapter: the DTOs a sync hands the writer. Each way starts from an
empty table and commits every page (`--page`, default the pipeline's checkpoint size):

- COPY: one `COPY ... FROM STDIN` per page straight into the table (rows built from the DTOs
  with the same values, `raw` as JSON): the floor, since it checks nothing;
- writer: `writers.transactions_upsert` per page, then a second pass over the same rows
  (all unchanged: nothing to insert or rewrite);
- update_or_create: one `update_or_create` per record on the first `--sample` records,
  its rows/s extrapolated to the whole set (at ~120 rows/s the whole set would take half
  an hour).

Prints rows/s (wall) and Python CPU per row (the worker's share of the cost) for each,
and the ratios the targets are stated in. `--profile` adds the writer's top functions by
own time. Uses its own database (BENCH_DATABASE_URL, recreated); needs no sandbox or worker.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import BENCH_DATABASE_URL, _recreate_database  # noqa: E402

NOW = datetime(2026, 10, 1, tzinfo=timezone.utc)


def setup_database():
    _recreate_database(BENCH_DATABASE_URL)
    os.environ.update({"DATABASE_URL": BENCH_DATABASE_URL, "DJANGO_SETTINGS_MODULE": "backend.config.settings",
                       "BROKERSYNC_ENV": "local", "DEBUG": "false", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from backend.brokers.dtos import Credentials
    from backend.connections.models import BrokerConnection
    from backend.portfolio.models import Portfolio

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create(username="bench")
    portfolio = Portfolio.objects.create(owner=user, name="bench")
    connection = BrokerConnection(owner=user, portfolio=portfolio, broker="alpaca", environment="live",
                                  broker_account_id="bench", status="active")
    connection.set_credentials(Credentials(api_key="k", api_secret="s"))
    connection.save()
    return connection


def alpaca_records(n: int, positions: int = 2000) -> list:
    """`n` Transaction DTOs as the Alpaca adapter makes them from the sandbox's history."""
    from backend.brokers.adapters.alpaca import parse_activity
    from backend.brokers.dtos import Transaction
    from backend.brokers.http import json_loads
    from sandbox.brokers.alpaca.generator import generate

    ledger = generate(seed=11, positions=positions, activities=n)[0]
    records = [parse_activity(row) for row in json_loads(json.dumps([a.render() for a in ledger.acts[:n]]))]
    return [r for r in records if isinstance(r, Transaction)]


def pages(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def empty_table() -> None:
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("TRUNCATE sync_brokertransaction CASCADE")
        cursor.execute("VACUUM ANALYZE sync_brokertransaction")


def measured(label: str, rows: int, fn) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = {"way": label, "rows": rows, "seconds": round(wall, 3), "rows_per_s": round(rows / wall),
               "python_cpu_ms_per_row": round(cpu * 1000 / rows, 4)}
    print(f"{label:<28} {rows:>8,} rows {wall:>8.2f} s {rows / wall:>10,.0f} rows/s "
          f"{cpu * 1000 / rows:>8.4f} ms Python CPU/row", flush=True)
    return figures


# -- the three ways ---------------------------------------------------------------------------
def by_copy(connection, items: list, page: int) -> None:
    """COPY the rows into the table, a page per transaction: no conflict check, no counts."""
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import connection as db, transaction

    from backend.portfolio.services import assets_resolve

    encode = DjangoJSONEncoder(separators=(",", ":")).encode
    sql = ("COPY sync_brokertransaction (connection_id, portfolio_id, asset_id, broker_id, type, broker_type, "
           "status, occurred_at, broker_symbol, quantity, price, amount, fee, currency, side, order_id, "
           "description, raw, first_seen_at, updated_at) FROM STDIN")
    for chunk in pages(items, page):
        assets = assets_resolve(t.asset for t in chunk if t.asset)
        with transaction.atomic(), db.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for t in chunk:
                asset = assets[(str(t.asset.asset_class), t.asset.symbol)].pk if t.asset else None
                copy.write_row((connection.pk, connection.portfolio_id, asset, t.broker_id, str(t.type),
                                t.broker_type[:48], t.status, t.occurred_at, t.broker_symbol, t.quantity, t.price,
                                t.amount, t.fee, t.currency, t.side, t.order_id, t.description, encode(t.raw),
                                NOW, NOW))


def by_writer(connection, items: list, page: int) -> dict:
    from django.db import transaction

    from backend.sync import writers

    totals: dict = {}
    for chunk in pages(items, page):
        with transaction.atomic():
            counts = writers.transactions_upsert(connection, chunk, NOW)
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals


def by_update_or_create(connection, items: list, page: int) -> None:
    from django.db import transaction

    from backend.portfolio.services import assets_resolve
    from backend.sync.models import BrokerTransaction

    for chunk in pages(items, page):
        with transaction.atomic():
            for t in chunk:
                asset = assets_resolve([t.asset])[(str(t.asset.asset_class), t.asset.symbol)] if t.asset else None
                BrokerTransaction.objects.update_or_create(
                    connection=connection, broker_id=t.broker_id,
                    defaults=dict(portfolio_id=connection.portfolio_id, asset=asset, type=str(t.type),
                                  broker_type=t.broker_type[:48], status=t.status, occurred_at=t.occurred_at,
                                  broker_symbol=t.broker_symbol, quantity=t.quantity, price=t.price, amount=t.amount,
                                  fee=t.fee, currency=t.currency, side=t.side, order_id=t.order_id,
                                  description=t.description, raw=t.raw))


def profile_writer(connection, items: list, page: int) -> None:
    empty_table()
    profiler = cProfile.Profile()
    profiler.runcall(by_writer, connection, items, page)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    print("\nwriter profile (first pass, own time):\n" + out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=5_000, help="records written by update_or_create")
    parser.add_argument("--page", type=int, default=None, help="rows per page (default: the pipeline's)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    connection = setup_database()
    from django.db import connection as db

    from backend.sync.models import BrokerTransaction
    from backend.sync.pipeline import CHECKPOINT_ROWS

    page = args.page or CHECKPOINT_ROWS
    started = time.perf_counter()
    items = alpaca_records(args.rows)
    print(f"{len(items):,} Alpaca transaction records built in {time.perf_counter() - started:.1f} s; "
          f"pages of {page:,}; PostgreSQL {db.cursor().connection.info.server_version}\n", flush=True)
    n = len(items)

    empty_table()
    copy = measured("COPY", n, lambda: by_copy(connection, items, page))
    assert BrokerTransaction.objects.count() == n
    empty_table()
    counts: dict = {}
    writer = measured("writer", n, lambda: counts.update(by_writer(connection, items, page)))
    assert BrokerTransaction.objects.count() == n and counts["created"] == n, counts
    again: dict = {}
    unchanged = measured("writer, same rows again", n, lambda: again.update(by_writer(connection, items, page)))
    assert again["created"] == 0 and again.get("changed", 0) == 0, again
    sample = items[:args.sample]
    empty_table()
    naive = measured(f"update_or_create (sample)", len(sample), lambda: by_update_or_create(connection, sample, page))
    if args.profile:
        profile_writer(connection, items, page)

    ratios = {"writer_over_copy": round(writer["rows_per_s"] / copy["rows_per_s"], 3),
              "writer_over_update_or_create": round(writer["rows_per_s"] / naive["rows_per_s"], 1),
              "unchanged_over_copy": round(unchanged["rows_per_s"] / copy["rows_per_s"], 3)}
    print(f"\nwriter / COPY: {ratios['writer_over_copy']:.2f}x (target >= 0.5x)   "
          f"writer / update_or_create: {ratios['writer_over_update_or_create']:.1f}x (target >= 10x; "
          f"update_or_create's rows/s from {len(sample):,} records, extrapolated)   "
          f"unchanged pass / COPY: {ratios['unchanged_over_copy']:.2f}x")
    print(f"writer counts, first pass: {counts}\nwriter counts, second pass: {again}")
    out = ROOT / "var" / "bench-ingest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"page": page, "ways": [copy, writer, unchanged, naive], "ratios": ratios,
                               "counts": [counts, again]}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
