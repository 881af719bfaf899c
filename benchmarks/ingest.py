"""How fast the sync stores transactions: the writer against PostgreSQL's floor (COPY) and
against the naive way (`update_or_create` per record), on the same realistic records.

    python benchmarks/ingest.py [--rows 200000] [--sample 5000] [--page 2000] [--profile]

The records are the sandbox's Alpaca history of one account (fills, dividends, fees,
deposits, splits...) rendered as the API answers, read back as JSON with Decimal numbers and
parsed by the Alpaca adapter: the DTOs a sync hands the writer. Every way commits a page
(`--page`, default the pipeline's checkpoint size) per transaction:

- COPY: one `COPY ... FROM STDIN` per page straight into the table (rows built from the DTOs
  with the same values, `raw` as JSON): the floor, since it checks nothing;
- writer: `writers.transactions_upsert` per page; then a second pass over the same rows
  (all unchanged: nothing to insert or rewrite);
- update_or_create: one `update_or_create` per record on the first `--sample` records (at a
  few hundred rows/s the whole set would take many minutes).

The machine these run on is shared, so each way races COPY page by page: a page of COPY
(into an account of its own), a page of the way measured, the next page of each... The load
of the moment falls on both alike, and every ratio is to the COPY pages it was interleaved
with; writer / update_or_create is (writer / COPY) x (COPY / update_or_create).

Prints rows/s (wall) and Python CPU per row (the worker's share of the cost) for each way,
the ratios the targets are stated in, and the Python CPU per row of a sync's page by stage
(JSON decode, adapter parse, writer). `--profile` adds the writer's top functions by own
time. Uses its own database (BENCH_DATABASE_URL, recreated); needs no sandbox or worker.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_django  # noqa: E402

NOW = datetime(2026, 10, 1, tzinfo=timezone.utc)


def setup_database():
    bench_django()
    from django.contrib.auth import get_user_model

    from backend.brokers.dtos import Credentials
    from backend.connections.models import BrokerConnection
    from backend.portfolio.models import Portfolio

    user = get_user_model().objects.create(username="bench")
    portfolio = Portfolio.objects.create(owner=user, name="bench")

    def account(name: str):
        connection = BrokerConnection(owner=user, portfolio=portfolio, broker="alpaca", environment="live",
                                      broker_account_id=name, status="active")
        connection.set_credentials(Credentials(api_key="k", api_secret="s"))
        connection.save()
        return connection
    return account


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


class Way:
    """One way of storing pages: its time (wall, Python CPU) summed over the pages it ran."""

    def __init__(self, label: str, store):
        self.label, self.store = label, store
        self.rows, self.wall, self.cpu = 0, 0.0, 0.0
        self.totals: dict = {}

    def run(self, chunk: list) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        counts = self.store(chunk)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.rows += len(chunk)
        for key, value in (counts or {}).items():
            if isinstance(value, int):
                self.totals[key] = self.totals.get(key, 0) + value

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall

    def show(self) -> None:
        print(f"{self.label:<28} {self.rows:>8,} rows {self.wall:>8.2f} s {self.rows_per_s:>10,.0f} rows/s "
              f"{self.cpu * 1000 / self.rows:>8.4f} ms Python CPU/row", flush=True)

    def figures(self) -> dict:
        return {"way": self.label, "rows": self.rows, "seconds": round(self.wall, 3),
                "rows_per_s": round(self.rows_per_s), "python_cpu_ms_per_row": round(self.cpu * 1000 / self.rows, 4),
                "counts": self.totals}


def race(items: list, page: int, copy: Way, other: Way) -> float:
    """Page by page, COPY and the other way, taking turns at going first; the other's rows/s
    over COPY's."""
    for i, chunk in enumerate(pages(items, page)):
        for way in (copy, other) if i % 2 == 0 else (other, copy):
            way.run(chunk)
    copy.show()
    other.show()
    print(f"{'':<28} {other.label} / COPY: {other.rows_per_s / copy.rows_per_s:.3f}x\n", flush=True)
    return other.rows_per_s / copy.rows_per_s


# -- the three ways (each stores one page in one transaction) ----------------------------------
COPY_SQL = ("COPY sync_brokertransaction (connection_id, portfolio_id, asset_id, broker_id, type, broker_type, "
            "status, occurred_at, broker_symbol, quantity, price, amount, fee, currency, side, order_id, "
            "description, raw, first_seen_at, updated_at) FROM STDIN")


def by_copy(connection):
    """COPY the page into the table: no conflict check, no counts."""
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import connection as db, transaction

    from backend.sync.writers import asset_ids

    encode = DjangoJSONEncoder(separators=(",", ":")).encode

    def store(chunk: list) -> None:
        assets = asset_ids(t.asset for t in chunk if t.asset)      # as the writer finds them
        with transaction.atomic(), db.cursor() as cursor, cursor.cursor.copy(COPY_SQL) as copy:
            for t in chunk:
                asset = assets[(str(t.asset.asset_class), t.asset.symbol)] if t.asset else None
                copy.write_row((connection.pk, connection.portfolio_id, asset, t.broker_id, str(t.type),
                                t.broker_type[:48], t.status, t.occurred_at, t.broker_symbol, t.quantity, t.price,
                                t.amount, t.fee, t.currency, t.side, t.order_id, t.description, encode(t.raw),
                                NOW, NOW))
    return store


def by_writer(connection):
    from django.db import transaction

    from backend.sync import writers

    def store(chunk: list) -> dict:
        with transaction.atomic():
            return writers.transactions_upsert(connection, chunk, NOW)
    return store


def by_update_or_create(connection):
    from django.db import transaction

    from backend.portfolio.services import assets_resolve
    from backend.sync.models import BrokerTransaction

    def store(chunk: list) -> None:
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
    return store


def page_cpu(connection, n: int, page: int) -> dict:
    """Python CPU per row of a sync's pages of Alpaca activities, by stage: JSON bytes as the
    API answers (100 a response) to Python objects, objects to DTOs (the adapter), DTOs to rows
    (the writer, a page per transaction). The DTO list is discarded after each page, as a
    sync does."""
    from django.db import transaction

    from backend.brokers.adapters.alpaca import parse_activity
    from backend.brokers.http import json_loads
    from backend.sync import writers
    from sandbox.brokers.alpaca.generator import generate

    ledger = generate(seed=12, positions=500, activities=n)[0]
    bodies = [json.dumps([a.render() for a in ledger.acts[i:i + 100]]).encode() for i in range(0, n, 100)]
    spent = {"decode": 0.0, "parse": 0.0, "write": 0.0}
    for start in range(0, len(bodies), page // 100):
        clock = time.process_time()
        decoded = [json_loads(body) for body in bodies[start:start + page // 100]]
        spent["decode"] += time.process_time() - clock
        clock = time.process_time()
        items = [parse_activity(raw) for body in decoded for raw in body]
        spent["parse"] += time.process_time() - clock
        clock = time.process_time()
        with transaction.atomic():
            writers.transactions_upsert(connection, items, NOW)
        spent["write"] += time.process_time() - clock
    per_row = {stage: round(seconds * 1000 / n, 4) for stage, seconds in spent.items()}
    print(f"sync page Python CPU per row ({n:,} rows): " + ", ".join(f"{k} {v:.4f} ms" for k, v in per_row.items())
          + f", total {sum(spent.values()) * 1000 / n:.4f} ms")
    return per_row


def profile_writer(account, items: list, page: int) -> None:
    store = by_writer(account("profiled"))
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [store(chunk) for chunk in pages(items, page)])
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

    account = setup_database()
    from django.db import connection as db

    from backend.sync.pipeline import CHECKPOINT_ROWS

    page = args.page or CHECKPOINT_ROWS
    started = time.perf_counter()
    items = alpaca_records(args.rows)
    n = len(items)
    print(f"{n:,} Alpaca transaction records built in {time.perf_counter() - started:.1f} s; "
          f"pages of {page:,}; PostgreSQL {db.cursor().connection.info.server_version}\n", flush=True)

    from backend.sync.writers import asset_ids

    asset_ids(t.asset for t in items if t.asset)       # the assets exist, as they mostly do at a sync
    empty_table()
    written = account("writer")
    copy, writer = Way("COPY", by_copy(account("copy-1"))), Way("writer", by_writer(written))
    writer_over_copy = race(items, page, copy, writer)
    assert writer.totals["created"] == n, writer.totals
    copy2, unchanged = Way("COPY", by_copy(account("copy-2"))), Way("writer, same rows again", by_writer(written))
    unchanged_over_copy = race(items, page, copy2, unchanged)
    assert unchanged.totals["created"] == 0 and unchanged.totals.get("changed", 0) == 0, unchanged.totals
    sample = items[:args.sample]
    copy3, naive = Way("COPY", by_copy(account("copy-3"))), Way("update_or_create", by_update_or_create(
        account("update_or_create")))
    naive_over_copy = race(sample, page, copy3, naive)
    empty_table()
    stages = page_cpu(account("pages"), min(n, 20_000), page)
    if args.profile:
        profile_writer(account, items, page)

    ratios = {"writer_over_copy": round(writer_over_copy, 3), "unchanged_over_copy": round(unchanged_over_copy, 3),
              "writer_over_update_or_create": round(writer_over_copy / naive_over_copy, 1)}
    print(f"\nwriter / COPY: {ratios['writer_over_copy']:.2f}x (target >= 0.5x)   "
          f"writer / update_or_create: {ratios['writer_over_update_or_create']:.1f}x (target >= 10x; "
          f"update_or_create on {len(sample):,} records)   "
          f"unchanged pass / COPY: {ratios['unchanged_over_copy']:.2f}x")
    print(f"writer counts, first pass: {writer.totals}\nwriter counts, second pass: {unchanged.totals}")
    out = ROOT / "var" / "bench-ingest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"page": page, "ratios": ratios, "page_cpu_ms_per_row": stages,
                               "ways": [w.figures() for w in (copy, writer, copy2, unchanged, copy3, naive)]},
                              indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
