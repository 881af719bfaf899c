"""What a value history is rebuilt from: each connection's counted transactions as signed
changes of its holdings and of its cash.

One rule, used by the day-by-day walk (`Holdings.apply`) and by the aggregate that gives the
state before a day (`holdings_before`) alike:
- a transaction's `quantity` changes the holding of its asset, unless the asset is a currency;
- its `amount` changes the cash of its `currency` when that is fiat. An amount in a coin
  (Coinbase's USDC leg of a BTC-USDC fill) is not cash: the coin's own leg carries it;
- a currency asset moved by `quantity` is cash of that currency: alone (a Kraken ZEUR
  deposit), or beside an amount in another currency (IBKR's EUR.USD conversion: +EUR as
  quantity, -USD as amount). With an amount in its own currency, the amount carries it.
Canceled, failed, rejected and pending transactions do not count (as in reconcile).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal

from django.db.models import F, Q, Sum
from django.db.models.functions import TruncDate

from backend.brokers.symbols import FIAT
from backend.sync.models import BrokerTransaction
from backend.sync.reconcile import NOT_COUNTED_STATUSES

# External flows: money or assets entering or leaving an account. Trades, income, fees and
# interest happen inside it.
FLOW_TYPES = frozenset({"deposit", "withdrawal", "transfer"})
ZERO = Decimal(0)
FIAT_CLASS = "fiat"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


@dataclass(slots=True)
class Event:
    id: int
    connection_id: int
    day: date
    type: str
    asset_id: int | None
    holding: Decimal | None          # signed change of a non-currency holding
    cash: tuple[tuple[str, Decimal], ...]    # signed changes of cash: (currency, change)

    @property
    def is_flow(self) -> bool:
        return self.type in FLOW_TYPES


def event_of(row: tuple) -> Event | None:
    pk, connection_id, day, kind, asset_id, asset_class, symbol, quantity, amount, currency = row
    holding = quantity if asset_id is not None and asset_class != FIAT_CLASS and quantity else None
    cash = []
    if amount and currency in FIAT:
        cash.append((currency, amount))
    if asset_class == FIAT_CLASS and quantity and (amount is None or currency != symbol):
        cash.append((symbol, quantity))
    if holding is None and not cash:
        return None
    return Event(pk, connection_id, day, kind, asset_id, holding, tuple(cash))


def _counted(connection_ids: Iterable[int]):
    return (BrokerTransaction.objects.filter(connection_id__in=list(connection_ids))
            .exclude(status__in=NOT_COUNTED_STATUSES))


def events_from(*, connection_ids: Iterable[int], start: date | None) -> list[Event]:
    """Every counted change from `start` (None: from the first), oldest first."""
    rows = _counted(connection_ids).filter(Q(quantity__isnull=False) | Q(amount__isnull=False))
    if start is not None:
        rows = rows.filter(occurred_at__gte=day_start(start))
    # The UTC day comes from the database as a date: parsing 200,000 timestamps with time zones
    # in Python takes seconds.
    rows = rows.annotate(day=TruncDate("occurred_at", tzinfo=timezone.utc)).order_by("occurred_at", "id").values_list(
        "id", "connection_id", "day", "type", "asset_id", "asset__asset_class", "asset__symbol", "quantity",
        "amount", "currency")
    return [e for e in map(event_of, rows.iterator(chunk_size=20_000)) if e is not None]


def first_days(*, connection_ids: Iterable[int]) -> dict[int, date]:
    """The day of each connection's first counted transaction (one index lookup each)."""
    firsts = {}
    for connection_id in connection_ids:
        first = _counted([connection_id]).order_by("occurred_at").values_list("occurred_at", flat=True).first()
        if first is not None:
            firsts[connection_id] = first.date()
    return firsts


@dataclass
class Holdings:
    """One connection's holdings (asset id -> quantity) and cash (currency -> amount)."""

    assets: dict[int, Decimal] = field(default_factory=dict)
    cash: dict[str, Decimal] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        if event.holding is not None:
            _add(self.assets, event.asset_id, event.holding)
        for currency, change in event.cash:
            _add(self.cash, currency, change)

    def copy(self) -> "Holdings":
        return Holdings(dict(self.assets), dict(self.cash))

    def to_json(self) -> dict:
        return {"assets": {str(k): str(v) for k, v in self.assets.items()},
                "cash": {k: str(v) for k, v in self.cash.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "Holdings":
        return cls({int(k): Decimal(v) for k, v in data.get("assets", {}).items()},
                   {k: Decimal(v) for k, v in data.get("cash", {}).items()})


def _add(book: dict, key, change: Decimal) -> None:
    total = book.get(key, ZERO) + change
    if total:
        book[key] = total
    else:
        book.pop(key, None)          # sold to zero: no longer held, no longer valued


def holdings_before(*, connection_ids: Iterable[int], day: date) -> dict[int, Holdings]:
    """Each connection's holdings and cash at the start of `day`, summed by the database
    (exact on PostgreSQL's numeric) instead of walked from the first transaction."""
    ids = list(connection_ids)
    before = _counted(ids).filter(occurred_at__lt=day_start(day))
    state = {c: Holdings() for c in ids}
    assets = (before.filter(asset__isnull=False, quantity__isnull=False).exclude(asset__asset_class=FIAT_CLASS)
              .values("connection_id", "asset_id").annotate(total=Sum("quantity")))
    for r in assets:
        _add(state[r["connection_id"]].assets, r["asset_id"], r["total"])
    cash = (before.filter(amount__isnull=False, currency__in=sorted(FIAT))
            .values("connection_id", "currency").annotate(total=Sum("amount")))
    for r in cash:
        _add(state[r["connection_id"]].cash, r["currency"], r["total"])
    fiat_moves = (before.filter(asset__asset_class=FIAT_CLASS, quantity__isnull=False)
                  .filter(Q(amount__isnull=True) | ~Q(currency=F("asset__symbol")))
                  .values("connection_id", "asset__symbol").annotate(total=Sum("quantity")))
    for r in fiat_moves:
        _add(state[r["connection_id"]].cash, r["asset__symbol"], r["total"])
    return state
