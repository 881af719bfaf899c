"""Refresh the latest prices of everything 100,000 portfolios hold, at the real rate limits.

    python benchmarks/prices.py [--portfolios 100000] [--per-portfolio 6]

A bulk fixture (no syncs) writes the portfolios, one connection each spread over the four
brokers, and their open positions drawn from a universe of ~2,000 equities and ~600 coins,
into a database of its own (BENCH_DATABASE_URL). The sandbox runs as its own process with
its real limits and our limiter keeps the real rules (backend/config/settings/brokers.py).
Then listings are discovered and each source's latest prices refreshed, and it prints per
source: listings priced, requests against ceil(listings / batch), wall time against the
rate-limit bound, and rows written.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import BENCH_DATABASE_URL, BENCH_REDIS_URL, _recreate_database  # noqa: E402
from sandbox.endpoints import free_port_block  # noqa: E402
from scripts import procs  # noqa: E402

BROKERS = ("alpaca", "binance", "kraken", "coinbase")
EQUITIES, BINANCE_COINS = 2_000, 600
BATCH_ROWS = 20_000


def bound_seconds(key: str, requests: int, cost: float) -> float:
    """The least time the budget allows (settings' rules): what is beyond the first window's
    allowance, at the sustained rate."""
    if key == "alpaca":                              # 200 a minute per key
        return max(0, requests - 200) / (200 / 60)
    if key == "binance":                             # 6,000 weight a minute per IP
        return max(0.0, cost - 6000) / 100
    if key == "kraken":                              # leaky 30, 1 a second
        return max(0, requests - 30) / 1.0
    return max(0, requests - 10) / (10 / 1.05)       # coinbase-public: 10 a second


def start(port: int) -> None:
    _recreate_database(BENCH_DATABASE_URL)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "backend.config.settings", "BROKERSYNC_ENV": "local",
                       "DATABASE_URL": BENCH_DATABASE_URL, "REDIS_URL": BENCH_REDIS_URL, "DEBUG": "false",
                       "BROKER_SANDBOX": f"127.0.0.1:{port}", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
    (ROOT / "var").mkdir(exist_ok=True)
    sandbox = procs.start("sandbox", procs.sandbox_cmd(port), dict(os.environ), ROOT / "var" / "bench-prices-sandbox.log")
    procs.wait_http(f"http://127.0.0.1:{port}/control/health", sandbox, "sandbox")


def operator_key(port: int) -> None:
    """An Alpaca account's key stands in for the operator's market-data key."""
    import requests
    from django.conf import settings

    account = requests.post(f"http://127.0.0.1:{port}/control/accounts", timeout=60,
                            json={"broker": "alpaca", "environment": "live", "seed": 1, "positions": 1,
                                  "activities": 3}).json()
    settings.MARKETDATA_ALPACA_KEY_ID = account["credentials"]["api_key"]
    settings.MARKETDATA_ALPACA_SECRET_KEY = account["credentials"]["api_secret"]


def universe() -> dict[str, list[tuple[str, str]]]:
    from sandbox.brokers.alpaca.universe import CRYPTO, equity
    from sandbox.brokers.binance.universe import REAL_COINS, invented_coins
    from sandbox.brokers.coinbase.market import CORE_COINS
    from sandbox.brokers.kraken.market import REAL_COINS as KRAKEN_COINS

    return {
        "alpaca": [(equity(i).symbol, "equity") for i in range(EQUITIES)] + [(c, "crypto") for c, _ in CRYPTO],
        "binance": [(c, "crypto") for c in REAL_COINS] + [(c, "crypto") for c in invented_coins()[:BINANCE_COINS]],
        "kraken": [(c.canonical, "crypto") for c in KRAKEN_COINS] + [("USD", "fiat"), ("EUR", "fiat")],
        "coinbase": [(c, "crypto") for c, _ in CORE_COINS] + [("USD", "fiat")],
    }


def bulk_fixture(portfolios: int, per_portfolio: int) -> dict[str, int]:
    from django.contrib.auth import get_user_model

    from backend.connections.models import BrokerConnection
    from backend.portfolio.models import Asset, Portfolio
    from backend.sync.models import BrokerPosition

    rng = random.Random(7)
    held = universe()
    assets = {}
    for broker, items in held.items():
        for symbol, cls in items:
            assets[(symbol, cls)] = None
    Asset.objects.bulk_create([Asset(symbol=s, asset_class=c) for s, c in assets], ignore_conflicts=True)
    ids = {(a.symbol, a.asset_class): a.id for a in Asset.objects.all()}
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"u{i}") for i in range(portfolios // 100)])
    made = 0
    for start in range(0, portfolios, BATCH_ROWS // per_portfolio):
        count = min(BATCH_ROWS // per_portfolio, portfolios - start)
        pf = Portfolio.objects.bulk_create([Portfolio(owner_id=users[(start + i) // 100].id, name=f"p{start + i}")
                                            for i in range(count)])
        conns = BrokerConnection.objects.bulk_create([
            BrokerConnection(owner_id=p.owner_id, portfolio_id=p.id, broker=BROKERS[(start + i) % 4],
                             broker_account_id=f"a{start + i}", status="active") for i, p in enumerate(pf)])
        positions = []
        for c in conns:
            for symbol, cls in rng.sample(held[c.broker], min(per_portfolio, len(held[c.broker]))):
                positions.append(BrokerPosition(connection_id=c.id, portfolio_id=c.portfolio_id,
                                                asset_id=ids[(symbol, cls)], broker_symbol=f"{symbol}:{cls}",
                                                quantity=1))
        BrokerPosition.objects.bulk_create(positions, batch_size=BATCH_ROWS)
        made += len(positions)
    return {"portfolios": portfolios, "positions": made, "assets": len(ids)}


def refresh() -> list[dict]:
    from backend.market import services
    from backend.market.sources import source_open

    rows = []
    for key in BROKERS:
        source = source_open(key)
        started = time.monotonic()
        result = services.prices_refresh_latest(source_key=key, source=source, now=_open_market())
        seconds = time.monotonic() - started
        cost = {"binance": 4.0}.get(key, 1.0) * result.requests
        minimum = _minimum(key, result.listings, source.batch_size)
        rows.append({"source": key, "listings": result.listings, "written": result.written,
                     "requests": result.requests, "minimum": minimum, "seconds": seconds,
                     "bound": bound_seconds(key, minimum, cost), "waited": source.session.rate_wait_seconds})
    return rows


def _minimum(key: str, listings: int, batch: int) -> int:
    if key != "alpaca":
        return math.ceil(listings / batch)
    from backend.market.models import Price

    # Alpaca asks stocks and crypto at two paths: one ceil per path.
    equities = Price.objects.filter(source="alpaca", interval="latest", asset__asset_class="equity").count()
    return math.ceil(equities / batch) + math.ceil((listings - equities) / batch)


def _open_market():
    from datetime import datetime, timezone

    return datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)     # a Tuesday, 10:00 New York: equities too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--per-portfolio", type=int, default=6)
    args = parser.parse_args()
    port = free_port_block()
    try:
        start(port)
        operator_key(port)
        t = time.monotonic()
        fixture = bulk_fixture(args.portfolios, args.per_portfolio)
        print(f"fixture: {fixture['portfolios']:,} portfolios, {fixture['positions']:,} open positions, "
              f"{fixture['assets']:,} assets ({time.monotonic() - t:.1f} s)")
        from backend.market import services

        t = time.monotonic()
        found = services.listings_discover()
        print(f"listings discovered in {time.monotonic() - t:.1f} s: {dict(found)}")
        rows = refresh()
        print(f"{'source':<9} {'listings':>8} {'written':>8} {'requests':>8} {'ceil(n/b)':>9} "
              f"{'wall s':>7} {'bound s':>7} {'waited s':>8}")
        for r in rows:
            print(f"{r['source']:<9} {r['listings']:>8} {r['written']:>8} {r['requests']:>8} {r['minimum']:>9} "
                  f"{r['seconds']:>7.2f} {r['bound']:>7.2f} {r['waited']:>8.2f}")
        total = sum(r["requests"] for r in rows)
        print(f"total: {total} requests for {sum(r['listings'] for r in rows):,} listings held by "
              f"{fixture['portfolios']:,} portfolios ({fixture['positions']:,} positions)")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
