"""Small builders for engine tests: events and rows by hand, and an in-memory pricer."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from backend.ledger.engine import Event, Kind, Leg

D = Decimal
USD_ONLY = frozenset({"USD", "EUR"})


def at(y: int, m: int, d: int, hour: int = 15) -> datetime:
    return datetime(y, m, d, hour, tzinfo=timezone.utc)


class DictPricer:
    """Closes by (asset, day), or one price per asset for every day; USD is the base."""

    def __init__(self, prices: dict | None = None, fx: dict | None = None):
        self.prices = prices or {}
        self.rates = {"USD": D(1), **(fx or {})}

    def value(self, asset_id: int, quantity: Decimal, day: date | None) -> Decimal | None:
        price = self.prices.get((asset_id, day), self.prices.get(asset_id))
        return None if price is None else quantity * price

    def fx(self, currency: str, day: date | None) -> Decimal | None:
        return self.rates.get(currency)


def trade(key: str, when: datetime, asset: int, qty, usd, conn: int = 1) -> Event:
    """A buy (qty > 0, usd < 0 paid) or sell (qty < 0, usd > 0 received) for dollars."""
    return Event(Kind.TRADE, at=when, connection_id=conn, key=f"{conn}:{key}", legs=(Leg(asset, D(qty)),),
                 cash=(("USD", D(usd)),))


def move(kind: str, key: str, when: datetime, asset: int, qty, conn: int = 1, **extra) -> Event:
    return Event(kind, at=when, connection_id=conn, key=f"{conn}:{key}", legs=(Leg(asset, D(qty)),), **extra)
