"""A 100,000-row file import through the real Celery worker (the `imports` queue): wall time
from upload to the record's end, rows per second, and the worker's peak memory.

    python benchmarks/imports.py [--rows 100000] [--layout generic|fidelity]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, dropped and recreated) and Redis
(BENCH_REDIS_URL); starts and stops its own worker. Prints figures; asserts nothing."""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BenchEnv  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "NVDA", "VOO", "VTI", "SCHB", "AMZN", "GOOG", "BRK.B", "JPM"]


def generic_file(rows: int, seed: int = 7) -> bytes:
    """Deposits, buys, sells, dividends and fees over ten years, oldest first."""
    rnd = random.Random(seed)
    lines = ["date,type,symbol,quantity,price,fees,amount,currency,description,id,asset_class"]
    for i in range(rows):
        day = f"{2014 + i * 10 // rows}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        kind = rnd.choices(["buy", "sell", "dividend", "deposit", "fee"], [40, 25, 20, 10, 5])[0]
        symbol = rnd.choice(SYMBOLS)
        if kind in ("buy", "sell"):
            lines.append(f"{day},{kind},{symbol},{rnd.randint(1, 50)},{rnd.randint(1000, 90000) / 100},1,,USD,,,")
        elif kind == "dividend":
            lines.append(f"{day},dividend,{symbol},,,,{rnd.randint(1, 9999) / 100},USD,,,")
        else:
            lines.append(f"{day},{kind},,,,,{rnd.randint(100, 99999) / 100},USD,,,")
    return ("\n".join(lines) + "\n").encode()


def fidelity_file(rows: int) -> bytes:
    """The Fidelity sample's 17 rows, repeated across the days of ten years (newest first)."""
    sample = (Path(__file__).resolve().parents[1] / "tests/fixtures/imports/fidelity.csv").read_text().splitlines()
    header = next(i for i, line in enumerate(sample) if line.startswith("Run Date"))
    data = [line for line in sample[header + 1:] if line[:2].isdigit()]
    out = [sample[header]]
    for i in range(rows):
        line = data[i % len(data)]
        out.append(f"{1 + i % 12:02d}/{1 + i % 28:02d}/{2014 + i * 10 // rows}" + line[10:])
    return ("\n".join(reversed(out[1:])).join([out[0] + "\n", "\n"])).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--layout", choices=["generic", "fidelity"], default="generic")
    args = parser.parse_args()
    content = generic_file(args.rows) if args.layout == "generic" else fidelity_file(args.rows)
    env = BenchEnv(concurrency=2)
    env.start()
    try:
        return run(env, content, args)
    finally:
        env.stop()


def run(env: BenchEnv, content: bytes, args) -> int:
    from django.contrib.auth import get_user_model

    from backend.imports.models import FileImport
    from backend.imports.services import import_create
    from backend.portfolio.models import Portfolio
    from backend.sync.models import BrokerTransaction

    user = get_user_model().objects.create(username="bench-imports")
    portfolio = Portfolio.objects.create(owner=user, name="bench imports")
    figures = []
    for attempt in ("first import", "same file again"):
        started = time.monotonic()
        record, _ = import_create(portfolio=portfolio, content=content, file_name="bench.csv", format_key=args.layout)
        while record.status not in FileImport.FINAL:
            time.sleep(0.25)
            record.refresh_from_db()
        seconds = time.monotonic() - started
        figures.append((attempt, record, seconds))
        if record.status != "succeeded":
            print(f"{attempt}: {record.status}: {record.message} {record.errors[:3]}")
            return 1
    usage = env.worker_usage()
    print(f"\nimport of {args.rows:,} {args.layout} rows ({len(content) / 1e6:.1f} MB) through the worker")
    for attempt, record, seconds in figures:
        print(f"  {attempt:16s} {seconds:7.1f} s  {record.rows_read / seconds:8,.0f} rows/s  "
              f"new {record.rows_imported:,}  already there {record.rows_duplicate:,}")
    stored = BrokerTransaction.objects.filter(connection=figures[0][1].connection).count()
    print(f"  stored transactions: {stored:,}; worker CPU {usage['cpu_s']:.1f} s, "
          f"peak memory {usage['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
