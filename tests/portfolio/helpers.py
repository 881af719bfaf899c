"""Rows for valuation tests, put in the stores directly: assets, prices (fixture data for the
price store, as a refresh would write them), transactions and positions as a sync writes them."""
from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from backend.market.models import Price
from backend.market.rates import day_start
from backend.portfolio.models import Asset
from backend.sync.models import BrokerPosition, BrokerTransaction

D = Decimal
_IDS = itertools.count(1)


def asset(symbol: str, asset_class: str = "equity", multiplier: str = "1") -> Asset:
    return Asset.objects.get_or_create(symbol=symbol, asset_class=asset_class,
                                       defaults={"multiplier": D(multiplier)})[0]


def close(a: Asset, quote: str, day: date, price, source: str = "alpaca") -> None:
    Price.objects.create(asset=a, quote=quote, interval="1d", at=day_start(day), price=D(str(price)), source=source)


def closes(a: Asset, quote: str, start: date, end: date, price, source: str = "alpaca") -> None:
    """A close every day from start to end; `price` is a number or a function of the day."""
    rows, day = [], start
    while day <= end:
        value = price(day) if callable(price) else price
        rows.append(Price(asset=a, quote=quote, interval="1d", at=day_start(day), price=D(str(value)), source=source))
        day += timedelta(days=1)
    Price.objects.bulk_create(rows)


def latest(a: Asset, quote: str, price, source: str, at: datetime) -> None:
    Price.objects.create(asset=a, quote=quote, interval="latest", at=at, price=D(str(price)), source=source)


def tx(connection, day: date, kind: str, *, asset: Asset | None = None, quantity=None, amount=None,
       currency: str = "USD", hour: int = 12, status: str = "executed", **extra) -> BrokerTransaction:
    return BrokerTransaction.objects.create(
        connection=connection, portfolio_id=connection.portfolio_id, asset=asset, broker_id=f"t{next(_IDS)}",
        type=kind, status=status, occurred_at=datetime.combine(day, time(hour), tzinfo=timezone.utc),
        quantity=None if quantity is None else D(str(quantity)), amount=None if amount is None else D(str(amount)),
        currency=currency, **extra)


def position(connection, a: Asset, quantity) -> BrokerPosition:
    symbol = f"cash:{a.symbol}" if a.asset_class == "fiat" else a.symbol
    return BrokerPosition.objects.create(connection=connection, portfolio_id=connection.portfolio_id, asset=a,
                                         broker_symbol=symbol, quantity=D(str(quantity)))
