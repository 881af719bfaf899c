"""Every portfolio's latest value, refreshed by one SQL statement.

A Python loop per holding cannot value 100,000 portfolios every minute; the database can:
one INSERT ... SELECT ranks the latest prices of every open position by the pricing rule
(backend/market/valuation.py: the position's broker's source first, then the base currency,
the pivots and the rest as quotes, then the newest), converts with the latest rates and sums
per portfolio into PortfolioValue. The rates (a few dozen currency pairs) are worked out in
Python by the same PriceBook every other value uses, and handed to the statement as a table.
On PostgreSQL the arithmetic is exact (numeric); the SQLite of a zero-setup local run keeps
15 significant digits, like everything else it sums.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import connection as db, transaction
from django.utils import timezone

from backend.connections.models import BrokerConnection
from backend.market.models import Price
from backend.market.rates import PIVOTS
from backend.market.valuation import LIVE_MAX_AGE, Pricer, book_load
from backend.sync.models import BrokerPosition

from .models import Asset, Portfolio, PortfolioValue

log = logging.getLogger("brokersync.portfolio")

SQL = """
WITH rates(code, base, rate) AS (VALUES {rates}),
latest AS (
    SELECT asset_id, quote, source, price, at FROM (
        SELECT asset_id, quote, source, price, at,
               ROW_NUMBER() OVER (PARTITION BY asset_id, quote, source ORDER BY at DESC) AS newest
        FROM {price} WHERE "interval" = 'latest' AND at >= %s) AS l
    WHERE newest = 1),
held AS (
    SELECT pos.id, pos.portfolio_id, pos.asset_id, pos.quantity, a.asset_class, a.symbol, a.multiplier, c.broker,
           pf.base_currency
    FROM {position} pos
    JOIN {asset} a ON a.id = pos.asset_id
    JOIN {connection} c ON c.id = pos.connection_id
    JOIN {portfolio} pf ON pf.id = pos.portfolio_id
    WHERE pos.is_open AND pos.quantity <> 0),
ranked AS (
    SELECT h.id, h.portfolio_id, h.quantity * l.price * h.multiplier * r.rate AS value, l.at,
           ROW_NUMBER() OVER (PARTITION BY h.id ORDER BY
               CASE WHEN l.source = h.broker THEN 0 ELSE 1 END,
               CASE WHEN l.quote = h.base_currency THEN 0 {pivot_ranks} ELSE {other_rank} END,
               l.quote, l.at DESC, l.source) AS pick
    FROM held h
    JOIN latest l ON l.asset_id = h.asset_id
    JOIN rates r ON r.code = l.quote AND r.base = h.base_currency
    WHERE h.asset_class <> 'fiat'),
valued AS (
    SELECT portfolio_id, value, at, 0 AS is_cash FROM ranked WHERE pick = 1
    UNION ALL
    SELECT h.portfolio_id, h.quantity * r.rate, NULL, 1
    FROM held h JOIN rates r ON r.code = h.symbol AND r.base = h.base_currency
    WHERE h.asset_class = 'fiat'),
per_held AS (SELECT portfolio_id, COUNT(*) AS n FROM held GROUP BY portfolio_id),
per_valued AS (
    SELECT portfolio_id, SUM(value) AS total, SUM(CASE WHEN is_cash = 1 THEN value ELSE 0 END) AS cash,
           COUNT(*) AS n, MIN(at) AS oldest
    FROM valued GROUP BY portfolio_id)
INSERT INTO {snapshot} (portfolio_id, currency, total, cash, holdings, unpriced, oldest_price_at, computed_at)
SELECT pf.id, pf.base_currency, COALESCE(v.total, 0), COALESCE(v.cash, 0), COALESCE(v.n, 0),
       COALESCE(h.n, 0) - COALESCE(v.n, 0), v.oldest, %s
FROM {portfolio} pf
LEFT JOIN per_held h ON h.portfolio_id = pf.id
LEFT JOIN per_valued v ON v.portfolio_id = pf.id
WHERE TRUE
ON CONFLICT (portfolio_id) DO UPDATE SET
    currency = EXCLUDED.currency, total = EXCLUDED.total, cash = EXCLUDED.cash, holdings = EXCLUDED.holdings,
    unpriced = EXCLUDED.unpriced, oldest_price_at = EXCLUDED.oldest_price_at, computed_at = EXCLUDED.computed_at
"""


def portfolio_values_refresh(*, now: datetime | None = None) -> int:
    """Value every portfolio from the latest prices in one statement; returns how many."""
    started = time.monotonic()
    now = now or timezone.now()
    rates = _rates(now)
    if not rates:
        return 0
    sql = SQL.format(rates=", ".join(["(%s, %s, CAST(%s AS NUMERIC))"] * len(rates)), **_tables(),
                     pivot_ranks=" ".join(f"WHEN l.quote = '{p}' THEN {i + 1}" for i, p in enumerate(PIVOTS)),
                     other_rank=len(PIVOTS) + 1)
    params = [v for row in rates for v in row] + [now - LIVE_MAX_AGE, now]
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(sql, params)
        # SQLite does not count the rows of an INSERT ... SELECT upsert; it writes one per portfolio.
        count = cursor.rowcount if cursor.rowcount >= 0 else Portfolio.objects.count()
    log.info("portfolio.values_refreshed portfolios=%s ms=%s", count, int((time.monotonic() - started) * 1000))
    return count


def _rates(now: datetime) -> list[tuple[str, str, str]]:
    """(code, base, rate) for every quote of a latest price and every cash currency held, into
    every base currency in use, at the latest rates; a pair no source lists is left out
    (what needs it is unpriced)."""
    bases = set(Portfolio.objects.order_by().values_list("base_currency", flat=True).distinct())
    if not bases:
        return []
    quotes = set(Price.objects.filter(interval=Price.Interval.LATEST, at__gte=now - LIVE_MAX_AGE)
                 .order_by().values_list("quote", flat=True).distinct())
    cash = set(BrokerPosition.objects.filter(is_open=True, asset__asset_class="fiat")
               .order_by().values_list("asset__symbol", flat=True).distinct())
    codes = quotes | cash | bases
    book = book_load(asset_ids=(), currencies=codes, start=now.date(), end=now.date(), latest=True)
    rows = []
    for base in sorted(bases):
        pricer = Pricer(book, base)
        rows += [(code, base, str(rate)) for code in sorted(codes) if (rate := pricer.rate(code, None)) is not None]
    return rows


def _tables() -> dict[str, str]:
    quote = db.ops.quote_name
    return {"price": quote(Price._meta.db_table), "position": quote(BrokerPosition._meta.db_table),
            "asset": quote(Asset._meta.db_table), "connection": quote(BrokerConnection._meta.db_table),
            "portfolio": quote(Portfolio._meta.db_table), "snapshot": quote(PortfolioValue._meta.db_table)}
