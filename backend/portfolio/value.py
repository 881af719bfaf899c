"""A portfolio's value now: every open position at its latest price, in the base currency.

The same pricing rule as the set-based refresh (backend/portfolio/snapshot.py), worked out
for one portfolio in Python so the endpoint can show each holding's price, quote, source and
time. Cash balances (the `cash:<CCY>` fiat holdings) are converted at the latest rate. A
holding no source prices (or whose quote has no rate into the base currency) is listed
apart and left out of the total, which says how many it excludes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from backend.market.rates import PricePoint
from backend.market.valuation import Pricer, book_load, latest_by_source
from backend.sync.models import BrokerPosition

from .models import Portfolio

ZERO = Decimal(0)


@dataclass
class Line:
    """One holding (or cash balance) at one connection."""

    connection_id: int
    asset_id: int
    symbol: str
    asset_class: str
    quantity: Decimal
    multiplier: Decimal = Decimal(1)      # units of the underlying per unit held
    value: Decimal | None = None
    point: PricePoint | None = None       # the price used (None for cash)
    rate: Decimal | None = None           # cash: base units per unit of the currency
    weight: Decimal | None = None
    reason: str = ""                      # why it is unpriced


@dataclass
class ConnectionTotal:
    id: int
    label: str
    broker: str
    environment: str
    total: Decimal = ZERO
    cash: Decimal = ZERO
    unpriced: int = 0


@dataclass
class Valuation:
    portfolio_id: int
    currency: str
    as_of: datetime
    total: Decimal = ZERO
    cash: Decimal = ZERO
    holdings: list[Line] = field(default_factory=list)
    cash_balances: list[Line] = field(default_factory=list)
    unpriced: list[Line] = field(default_factory=list)
    connections: list[ConnectionTotal] = field(default_factory=list)

    @property
    def oldest_price_at(self) -> datetime | None:
        return min((line.point.at for line in self.holdings), default=None)


def portfolio_value(*, portfolio: Portfolio, now: datetime | None = None) -> Valuation:
    now = now or timezone.now()
    lines = _open_lines(portfolio)
    connections = {c["id"]: ConnectionTotal(**c) for c in
                   portfolio.connections.order_by("id").values("id", "label", "broker", "environment")}
    points = latest_by_source([line.asset_id for line in lines if line.asset_class != "fiat"], now=now)
    codes = ({portfolio.base_currency} | {line.symbol for line in lines if line.asset_class == "fiat"}
             | {p.quote for group in points.values() for p in group})
    book = book_load(asset_ids=(), currencies=codes, start=now.date(), end=now.date(), latest=True)
    pricer = Pricer(book, portfolio.base_currency)
    result = Valuation(portfolio.pk, portfolio.base_currency, now, connections=list(connections.values()))
    for line in lines:
        _price(line, pricer, points.get(line.asset_id, ()), connections[line.connection_id].broker)
        _count(result, connections[line.connection_id], line)
    for line in result.holdings + result.cash_balances:
        line.weight = line.value / result.total if result.total else None
    result.holdings.sort(key=lambda line: (-line.value, line.symbol))
    return result


def _open_lines(portfolio: Portfolio) -> list[Line]:
    rows = (BrokerPosition.objects.filter(portfolio=portfolio, is_open=True).exclude(quantity=0)
            .order_by("connection_id", "broker_symbol")
            .values_list("connection_id", "asset_id", "asset__symbol", "asset__asset_class", "quantity",
                         "asset__multiplier"))
    return [Line(*row) for row in rows]


def _price(line: Line, pricer: Pricer, points, broker: str) -> None:
    if line.asset_class == "fiat":
        line.rate = pricer.rate(line.symbol, None)
        if line.rate is None:
            line.reason = f"no rate from {line.symbol} to {pricer.base}"
        else:
            line.value = line.quantity * line.rate
        return
    priced = pricer.latest(points, broker)
    if priced is None:
        line.reason = (f"no rate into {pricer.base} for its quotes ({', '.join(sorted({p.quote for p in points}))})"
                       if points else "no price from any source")
        return
    unit, line.point = priced
    line.value = line.quantity * unit * line.multiplier


def _count(result: Valuation, connection: ConnectionTotal, line: Line) -> None:
    if line.value is None:
        result.unpriced.append(line)
        connection.unpriced += 1
    elif line.asset_class == "fiat":
        result.cash_balances.append(line)
        result.cash += line.value
        result.total += line.value
        connection.cash += line.value
        connection.total += line.value
    else:
        result.holdings.append(line)
        result.total += line.value
        connection.total += line.value
