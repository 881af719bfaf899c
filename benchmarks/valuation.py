"""Value and history figures (targets in the project's issue: value 100,000 portfolios from the
latest prices in under 60 s on 2 cores, in SQL; rebuild a 200,000-activity, 5-year history in
under 10 s; extend it by one day in under 100 ms).

    python benchmarks/valuation.py                     # both parts
    python benchmarks/valuation.py --part value --portfolios 100000
    python benchmarks/valuation.py --part history --activities 200000 --years 5

Builds its data with COPY into a PostgreSQL database of its own (BENCH_DATABASE_URL, dropped
and recreated): nothing here is synced, the rows are what syncs and price refreshes write.
Prints the figures and writes them to var/bench-valuation.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from datetime import date, datetime, time as clock, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import BENCH_DATABASE_URL, _recreate_database  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
BROKERS = ("alpaca", "coinbase", "binance", "kraken")
# What a crypto broker quotes its coins in, by source (first is where the position is held).
COIN_QUOTES = {"coinbase": ("USD",), "binance": ("USDT", "EUR"), "kraken": ("USD", "EUR")}
BASES = (("USD", 80), ("EUR", 15), ("GBP", 5))             # share of portfolios per base currency, %
RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "USDT": Decimal("0.9995"), "USDC": Decimal("1.0001")}


def setup() -> None:
    _recreate_database(BENCH_DATABASE_URL)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "backend.config.settings", "DATABASE_URL": BENCH_DATABASE_URL,
                       "BROKERSYNC_ENV": "local", "DEBUG": "false", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# -- COPY --------------------------------------------------------------------------------------
def copy_rows(model, columns: list[str], rows) -> int:
    """COPY `rows` (tuples in `columns` order) into the model's table; every other column gets
    its field's default, prepared once (an encrypted empty key is encrypted once, not per row)."""
    from django.db import connection
    from django.db.models import DateTimeField

    fixed = {}
    for f in model._meta.concrete_fields:
        if f.column in columns or f.primary_key:
            continue
        if f.has_default():
            value = f.get_default()
        elif isinstance(f, DateTimeField) and not f.null:
            value = NOW
        elif not f.null and f.get_internal_type() in ("CharField", "TextField"):
            value = ""
        else:
            value = None
        fixed[f.column] = f.get_db_prep_save(value, connection)
    names = columns + list(fixed)
    tail = tuple(fixed.values())
    count = 0
    with connection.cursor() as cursor:
        sql = f'COPY {model._meta.db_table} ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) FROM STDIN'
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(tuple(row) + tail)
                count += 1
    return count


def ids_of(model, **filters) -> list[int]:
    return list(model.objects.filter(**filters).order_by("pk").values_list("pk", flat=True))


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# -- value ---------------------------------------------------------------------------------------
def build_fleet(n_portfolios: int, rng: random.Random) -> dict:
    from django.contrib.auth import get_user_model

    from backend.connections.models import BrokerConnection
    from backend.market.models import Price
    from backend.portfolio.models import Asset, Portfolio
    from backend.sync.models import BrokerPosition

    started = time.monotonic()
    n_users = max(1, n_portfolios // 10)
    copy_rows(get_user_model(), ["username", "password", "email", "date_joined"],
              ((f"bench{i}", "!", f"bench{i}@example.com", NOW) for i in range(n_users)))
    users = ids_of(get_user_model())
    bases = [code for code, share in BASES for _ in range(share)]
    copy_rows(Portfolio, ["owner_id", "name", "base_currency"],
              ((users[i % n_users], f"portfolio {i}", rng.choice(bases)) for i in range(n_portfolios)))
    portfolios = ids_of(Portfolio)
    brokers = [rng.choice(BROKERS) for _ in portfolios]
    copy_rows(BrokerConnection, ["owner_id", "portfolio_id", "broker", "environment", "broker_account_id", "status"],
              ((users[i % n_users], pk, b, "paper" if b == "alpaca" else "live", f"acct{i}", "active")
               for i, (pk, b) in enumerate(zip(portfolios, brokers))))
    connections = ids_of(BrokerConnection)

    equities = [f"EQ{i:04d}" for i in range(3000)]
    coins = [f"C{i:03d}" for i in range(300)] + ["USDT", "USDC"]
    copy_rows(Asset, ["symbol", "asset_class", "currency"],
              [(s, "equity", "USD") for s in equities] + [(s, "crypto", "USD") for s in coins]
              + [(c, "fiat", c) for c in ("USD", "EUR", "GBP")])
    asset = {(a.asset_class, a.symbol): a.pk for a in Asset.objects.all()}

    def holdings(broker):
        if broker == "alpaca":
            return [(asset[("equity", s)], f"{s}") for s in rng.sample(equities, 10)] + [(asset[("fiat", "USD")], "cash:USD")]
        cash = "EUR" if broker == "kraken" and rng.random() < 0.3 else "USD"
        return [(asset[("crypto", s)], s) for s in rng.sample(coins[:300], 8)] + [(asset[("fiat", cash)], f"cash:{cash}")]

    rows = ((cid, pid, asset_id, symbol, Decimal(rng.randint(1, 50_000)) / 100, True)
            for cid, pid, b in zip(connections, portfolios, brokers) for asset_id, symbol in holdings(b))
    n_positions = copy_rows(BrokerPosition, ["connection_id", "portfolio_id", "asset_id", "broker_symbol", "quantity",
                                             "is_open"], rows)

    def prices():
        for s in equities:                       # the latest trade, and two older ones kept
            for k in range(3):
                yield (asset[("equity", s)], "USD", "latest", NOW - timedelta(minutes=1 + 7 * k),
                       Decimal(rng.randint(1000, 50_000)) / 100, "alpaca")
        for s in coins[:300]:
            for n, (source, quotes) in enumerate(COIN_QUOTES.items()):
                for quote in quotes:           # (asset, quote, interval, at) is unique: sources a microsecond apart
                    at = NOW - timedelta(seconds=rng.randint(5, 600), microseconds=n)
                    yield (asset[("crypto", s)], quote, "latest", at, Decimal(rng.randint(1, 10**7)) / 1000, source)
        for code, rate in RATES.items():
            asset_id = asset[("fiat", code)] if code in ("EUR", "GBP") else asset[("crypto", code)]
            yield (asset_id, "USD", "latest", NOW - timedelta(seconds=30), rate, "kraken")

    n_prices = copy_rows(Price, ["asset_id", "quote", "interval", "at", "price", "source"], prices())
    analyze()
    return {"portfolios": n_portfolios, "positions": n_positions, "latest_prices": n_prices,
            "build_s": round(time.monotonic() - started, 1)}


def bench_value(n_portfolios: int) -> dict:
    from django.db import connection

    from backend.portfolio.models import Portfolio, PortfolioValue
    from backend.portfolio.snapshot import portfolio_values_refresh
    from backend.portfolio.value import portfolio_value

    rng = random.Random(7)
    built = build_fleet(n_portfolios, rng)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('work_mem')")
        backend_pid, work_mem = cursor.fetchone()
    rss_before = _rss_mb()
    timings = []
    for _ in range(2):                            # the first inserts, the second updates every row
        started = time.monotonic()
        valued = portfolio_values_refresh(now=NOW)
        timings.append(time.monotonic() - started)
    sample = [Portfolio.objects.get(pk=pk) for pk in rng.sample(list(Portfolio.objects.values_list("pk", flat=True)),
                                                                 50)]
    per_request = []
    for p in sample:
        started = time.monotonic()
        live = portfolio_value(portfolio=p, now=NOW)
        per_request.append((time.monotonic() - started) * 1000)
        stored = PortfolioValue.objects.get(portfolio=p)
        assert abs(stored.total - live.total) < Decimal("1e-9"), (p.pk, stored.total, live.total)
    return {**built, "valued": valued, "refresh_insert_s": round(timings[0], 2), "refresh_update_s": round(timings[1], 2),
            "python_peak_rss_mb": round(_rss_mb(), 1), "python_rss_growth_mb": round(_rss_mb() - rss_before, 1),
            "postgres_backend_peak_mb": _proc_peak_mb(backend_pid), "work_mem": work_mem,
            "one_portfolio_value_ms_median": round(statistics.median(per_request), 1),
            "checked_against_live_value": len(sample)}


# -- history -----------------------------------------------------------------------------------
def build_account(n_activities: int, years: int, rng: random.Random) -> dict:
    """One connection whose 200,000 activities spread over `years` years: trades in 150 stocks
    and 50 coins, dividends, fees, deposits and withdrawals, coins sent in and out; a close for
    every stock (weekdays) and coin (every day), and the currencies' rates."""
    from django.contrib.auth import get_user_model

    from backend.connections.models import BrokerConnection
    from backend.market.models import Price
    from backend.market.rates import day_start
    from backend.portfolio.models import Asset, Portfolio
    from backend.sync.models import BrokerTransaction

    started = time.monotonic()
    user = get_user_model().objects.create(username="history-bench")
    portfolio = Portfolio.objects.create(owner=user, name="history bench")
    connection = BrokerConnection.objects.create(owner=user, portfolio=portfolio, broker="kraken", environment="live",
                                                 broker_account_id="history-bench", status="active")
    end = date.today() - timedelta(days=1)
    start = end - timedelta(days=365 * years)
    stocks = [Asset.objects.get_or_create(symbol=f"HS{i:03d}", asset_class="equity")[0].pk for i in range(150)]
    coins = [Asset.objects.get_or_create(symbol=f"HC{i:02d}", asset_class="crypto")[0].pk for i in range(50)]
    eur = Asset.objects.get_or_create(symbol="EUR", asset_class="fiat")[0].pk
    base_price = {a: Decimal(rng.randint(500, 50_000)) / 100 for a in stocks + coins}

    def price_of(asset_id, day):
        drift = 1 + Decimal((day - start).days % 97 - 48) / 1000        # moves every day, stays positive
        return (base_price[asset_id] * drift).quantize(Decimal("0.0001"))

    def closes():
        day = start
        while day <= end:
            for a in coins:
                yield (a, "USD", "1d", day_start(day), price_of(a, day), "kraken")
            if day.weekday() < 5:
                for a in stocks:
                    yield (a, "USD", "1d", day_start(day), price_of(a, day), "alpaca")
                yield (eur, "USD", "1d", day_start(day), RATES["EUR"], "kraken")
            day += timedelta(days=1)

    n_closes = copy_rows(Price, ["asset_id", "quote", "interval", "at", "price", "source"], closes())
    span = (end - start).days

    def activities():
        held = {a: Decimal(0) for a in stocks + coins}
        for i in range(n_activities):
            day = start + timedelta(days=i * span // n_activities)
            at = datetime.combine(day, clock(9), tzinfo=timezone.utc) + timedelta(seconds=i % 30_000)
            roll = rng.random()
            a = rng.choice(stocks if roll < 0.5 else coins)
            if roll < 0.8:                          # a trade; sells only from what is held
                qty = Decimal(rng.randint(1, 20))
                if held[a] >= qty and rng.random() < 0.4:
                    qty = -qty
                held[a] += qty
                yield (a, f"b{i}", "trade", at, qty, -qty * price_of(a, day), "USD")
            elif roll < 0.88:
                yield (None, f"b{i}", "dividend", at, None, Decimal(rng.randint(1, 5000)) / 100, "USD")
            elif roll < 0.93:
                yield (None, f"b{i}", "fee", at, None, -Decimal(rng.randint(1, 500)) / 100, "USD")
            elif roll < 0.97:
                amount = Decimal(rng.randint(100, 10_000))
                yield (None, f"b{i}", "deposit" if rng.random() < 0.8 else "withdrawal", at, None,
                       amount if rng.random() < 0.8 else -amount, "EUR" if rng.random() < 0.2 else "USD")
            else:                                   # a coin sent in (or out, from what is held)
                coin = rng.choice(coins)
                qty = Decimal(rng.randint(1, 10)) / 10
                qty = -qty if held[coin] >= qty and rng.random() < 0.3 else qty
                held[coin] += qty
                yield (coin, f"b{i}", "transfer", at, qty, None, "USD")

    rows = ((connection.pk, portfolio.pk, asset_id, broker_id, kind, "executed", at, qty, amount, currency)
            for asset_id, broker_id, kind, at, qty, amount, currency in activities())
    n_rows = copy_rows(BrokerTransaction, ["connection_id", "portfolio_id", "asset_id", "broker_id", "type", "status",
                                           "occurred_at", "quantity", "amount", "currency"], rows)
    analyze()
    return {"portfolio": portfolio, "connection": connection, "start": start, "end": end, "activities": n_rows,
            "closes": n_closes, "assets": len(stocks) + len(coins), "build_s": round(time.monotonic() - started, 1)}


def bench_history(n_activities: int, years: int) -> dict:
    from backend.market.models import Price
    from backend.market.rates import day_start
    from backend.portfolio.history.rebuild import history_rebuild
    from backend.portfolio.models import DailyValue, HistoryState
    from backend.sync.models import BrokerTransaction

    rng = random.Random(11)
    built = build_account(n_activities, years, rng)
    portfolio, connection, end = built.pop("portfolio"), built.pop("connection"), built["end"]
    rss_before = _rss_mb()
    started = time.monotonic()
    full = history_rebuild(portfolio_id=portfolio.pk, since=None, through=end - timedelta(days=1))
    full_s = time.monotonic() - started
    rss_full = _rss_mb()
    # The next day: its closes arrive and a sync adds its ~110 activities; then extend.
    last = BrokerTransaction.objects.filter(connection=connection).order_by("-occurred_at").first()
    new = [BrokerTransaction(connection=connection, portfolio=portfolio, asset_id=last.asset_id, broker_id=f"new{i}",
                             type="trade", occurred_at=datetime.combine(end, clock(14), tzinfo=timezone.utc),
                             quantity=Decimal(1), amount=-Decimal(100)) for i in range(110)]
    BrokerTransaction.objects.bulk_create(new)
    Price.objects.filter(at=day_start(end)).update(price=Price.objects.filter(at=day_start(end)).first().price)
    state = HistoryState.objects.get(portfolio=portfolio)
    saved = {f: getattr(state, f) for f in ("through", "checkpoint", "currency")}
    extensions = []
    for _ in range(5):                             # extend the same day again from the same state each time
        HistoryState.objects.filter(pk=state.pk).update(**saved)
        DailyValue.objects.filter(portfolio=portfolio, day=end).delete()
        started = time.monotonic()
        extended = history_rebuild(portfolio_id=portfolio.pk, since=end - timedelta(days=1), through=end)
        extensions.append((time.monotonic() - started) * 1000)
        assert extended.resumed
    middle = built["start"] + (end - built["start"]) / 2
    started = time.monotonic()
    partial = history_rebuild(portfolio_id=portfolio.pk, since=middle, through=end)
    partial_s = time.monotonic() - started
    return {**built, "start": str(built["start"]), "end": str(end), "days": full.rows // 2,
            "rows_written": DailyValue.objects.filter(portfolio=portfolio).count(),
            "full_rebuild_s": round(full_s, 2), "extend_one_day_ms_median": round(statistics.median(extensions), 1),
            "extend_one_day_ms_max": round(max(extensions), 1), "rebuild_from_the_middle_s": round(partial_s, 2),
            "rebuild_from_the_middle_rows": partial.rows, "python_rss_growth_full_mb": round(rss_full - rss_before, 1)}


# -- figures -------------------------------------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_peak_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None                                 # PostgreSQL on another machine
    return round(int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("value", "history", "both"), default="both")
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=5)
    args = parser.parse_args()
    setup()
    figures = {}
    if args.part in ("value", "both"):
        figures["value"] = bench_value(args.portfolios)
        v = figures["value"]
        print(f"value {v['valued']:,} portfolios ({v['positions']:,} positions, {v['latest_prices']:,} latest prices) "
              f"in one statement: {v['refresh_insert_s']} s first, {v['refresh_update_s']} s refreshed "
              f"(target < 60 s); PostgreSQL backend peak {v['postgres_backend_peak_mb']} MB (work_mem "
              f"{v['work_mem']}), this process peak {v['python_peak_rss_mb']} MB; one portfolio's live value "
              f"(GET .../value/) median {v['one_portfolio_value_ms_median']} ms, {v['checked_against_live_value']} "
              f"checked equal to the refresh")
    if args.part in ("history", "both"):
        figures["history"] = bench_history(args.activities, args.years)
        h = figures["history"]
        print(f"history of {h['activities']:,} activities in {h['assets']} assets over {h['days']:,} days "
              f"({h['closes']:,} closes): full rebuild {h['full_rebuild_s']} s (target < 10 s), "
              f"+{h['python_rss_growth_full_mb']} MB; extend by one day median {h['extend_one_day_ms_median']} ms, "
              f"max {h['extend_one_day_ms_max']} ms (target < 100 ms); rebuild from the middle "
              f"{h['rebuild_from_the_middle_s']} s ({h['rebuild_from_the_middle_rows']:,} rows)")
    out = ROOT / "var" / "bench-valuation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
