"""From the database to the engine: transaction rows as `events.Row`, prices as a `Pricer`."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from datetime import timezone
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connection as db
from psycopg.types.datetime import TimestamptzLoader
from django.db.models import Case, F, JSONField, Q, When

from backend.brokers.symbols import FIAT
from backend.connections.models import BrokerConnection
from backend.market.rates import PriceBook
from backend.portfolio.models import Asset, Portfolio
from backend.sync.models import BrokerTransaction

from .events import NOT_COUNTED, SPINOFF_CODE, Row, fiat_as_cash
from .transfers import MOVEMENT_TYPES, tx_hash_of

UTC = timezone.utc
# In events.Row's field order: each row is built positionally from these.
_FIELDS = ("id", "connection_id", "connection__broker", "broker_id", "type", "broker_type", "occurred_at", "asset_id",
           "quantity", "price", "amount", "currency", "description", "status")


def _transactions(portfolio_id: int):
    # Filtering on the portfolio's connections lets PostgreSQL use the per-connection
    # (time) and (type) indexes: an incremental recompute reads a day, not the whole table.
    connections = list(BrokerConnection.objects.filter(portfolio_id=portfolio_id).values_list("id", flat=True))
    return (BrokerTransaction.objects.filter(connection_id__in=connections, portfolio_id=portfolio_id)
            .exclude(status__in=NOT_COUNTED).order_by())


def rows_for_portfolio(*, portfolio_id: int, since: datetime | None = None) -> list[Row]:
    queryset = _transactions(portfolio_id)
    if since is not None:
        return _rows(queryset.filter(occurred_at__gte=since), stream=False)
    return _rows(queryset)


def foreign_withdrawals(*, portfolio_id: int) -> list[Row]:
    """Shares or coins that left the owner's connections in their other portfolios: a deposit
    here may be their arrival (the lots travel between the two portfolios' ledgers)."""
    owner = Portfolio.objects.filter(pk=portfolio_id).values_list("owner_id", flat=True).first()
    queryset = (BrokerTransaction.objects.filter(connection__owner_id=owner, type__in=MOVEMENT_TYPES,
                                                 asset__isnull=False, quantity__lt=0)
                .exclude(portfolio_id=portfolio_id).exclude(status__in=NOT_COUNTED).order_by())
    # Most owners have one portfolio: one EXISTS, not the three reads of a row load.
    return _rows(queryset, stream=False) if queryset.exists() else []


class RowsSince(NamedTuple):
    rows: list[Row]           # every row from the instant on
    moves: list[Row]          # the coin and share movements before it
    fiat: frozenset[str]      # fiat_codes()


def rows_since(*, portfolio_id: int, since: datetime) -> RowsSince:
    """What a recompute from `since` reads: the rows from then on, and the movements before
    then (a new deposit may pair with an older withdrawal). The connections and the fiat
    assets are read once for both (an incremental recompute is a few dozen statements: each
    one counts)."""
    queryset = _transactions(portfolio_id)
    fiat = fiat_assets()
    rows = _rows(queryset.filter(occurred_at__gte=since), stream=False, fiat=fiat)
    moves = _rows(queryset.filter(type__in=MOVEMENT_TYPES, asset__isnull=False, quantity__isnull=False,
                                  occurred_at__lt=since), stream=False, fiat=fiat)
    return RowsSince(rows, moves, fiat_codes(fiat))


def _rows(queryset, *, stream: bool = True, fiat: dict[int, str] | None = None) -> list[Row]:
    """`stream` (a whole history): on SQLite, read in chunks. `fiat`: fiat_assets(), when
    the caller has read it."""
    # Only Kraken trades (their `refid` joins a trade's two legs), coin movements (hashes pair
    # transfers) and Alpaca dividends (a DIV / ROC sub-type is a return of capital) need the
    # raw record: reading it for every row would double the load. It comes in the same read,
    # null for the other rows (a second read by id was two more statements per recompute).
    needs_raw = (Q(connection__broker="kraken", type="trade") | Q(type__in=MOVEMENT_TYPES, asset__isnull=False)
                 | Q(connection__broker="alpaca", type="dividend")
                 | Q(connection__broker="ibkr", broker_type__startswith="CorporateAction"))
    values = queryset.annotate(needed_raw=Case(When(needs_raw, then=F("raw")), default=None,
                                               output_field=JSONField())).values_list(*_FIELDS, "needed_raw")
    fiat = fiat_assets() if fiat is None else fiat
    out = []
    append = out.append
    for *fields, raw in _fetch(values, stream):
        # Positional, in Row's field order (as _FIELDS): most rows have no raw to read.
        row = Row(*fields)
        if raw:
            _from_raw(row, json.loads(raw) if isinstance(raw, str) else raw)
        append(fiat_as_cash(row, fiat[row.asset_id]) if row.asset_id in fiat else row)
    for row in out:
        if row.broker_type == SPINOFF_CODE:
            row.parent_asset_id = spinoff_parent(row)
    return out


def _from_raw(row: Row, raw) -> None:
    """What the ledger reads of a raw record: Kraken's refid, Alpaca's activity sub-type, a
    movement's on-chain hash, IBKR's corporate action id."""
    if not isinstance(raw, dict):
        return
    row.refid = str(raw.get("refid") or "")
    row.sub_type = str(raw.get("activity_sub_type") or "")
    if row.type in MOVEMENT_TYPES:
        row.tx_hash = tx_hash_of(row.broker, raw)
    if row.broker == "ibkr":
        row.action_id = str(raw.get("actionID") or "")


_PARENT = re.compile(r"^\s*([A-Za-z0-9.\-]+)[\s(]")


def spinoff_parent(row: Row) -> int | None:
    """The parent of an IBKR spin-off, named first in the action's description ("XYZ(US...)
    SPINOFF 1 FOR 5 ..."): the asset of that symbol (a listing abroad carries ":<exchange>")
    this connection has a history in."""
    found = _PARENT.match(row.description or "")
    if not found:
        return None
    symbol = found.group(1)
    held = (BrokerTransaction.objects.filter(connection_id=row.connection_id)
            .filter(Q(asset__symbol=symbol) | Q(asset__symbol__startswith=f"{symbol}:"))
            .exclude(asset_id=row.asset_id).order_by("occurred_at", "id").values_list("asset_id", flat=True).first())
    return held


def _fetch(values, stream: bool):
    """The rows of a values_list. On PostgreSQL straight from psycopg, which already gives
    Decimal and aware UTC datetimes: Django's per-value converters cost more than the query
    on a whole history (benchmarks/ledger.py). psycopg's own timestamptz loader (in C) gives
    the same UTC datetimes as Django's (which re-sets the zone of each in Python): the
    session's time zone is UTC."""
    if db.vendor != "postgresql":
        return values.iterator(chunk_size=10_000) if stream else values
    try:
        sql, params = values.query.sql_with_params()
    except EmptyResultSet:                   # a portfolio without connections: no rows
        return []
    with db.cursor() as cursor:
        if cursor.connection.info.timezone == UTC:
            cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        return cursor.fetchall()


def fiat_assets() -> dict[int, str]:
    """Assets that are fiat currencies (IBKR's forex balances): cash in the ledger, not lots."""
    return dict(Asset.objects.filter(asset_class="fiat").values_list("id", "symbol"))


def fiat_codes(fiat: dict[int, str] | None = None) -> frozenset[str]:
    """Every fiat currency code; `fiat`: fiat_assets(), when the caller has read it."""
    return frozenset(FIAT) | frozenset((fiat_assets() if fiat is None else fiat).values())


class BookPricer:
    """The engine's `Pricer` over a PriceBook, in the portfolio's base currency. An option's
    price is per share: its value is quantity x price x multiplier. The prices are read when
    first asked for: a day of fills for cash in the base currency asks for none, and its
    recompute then spends no statement on them."""

    def __init__(self, base: str, read: Callable[[], tuple[PriceBook, dict[int, Decimal]]]):
        self.base = base
        self._read, self._read_once = read, None

    @classmethod
    def load(cls, *, asset_ids: Iterable[int], base: str, start: date | None = None,
             latest: bool = False, currencies: Iterable[str] = ()) -> "BookPricer":
        """Prices in the base currency only (and the `currencies` of cash to convert): the
        other quotes of each asset are never asked for."""
        ids, quotes = set(asset_ids), {base, *currencies}

        def read() -> tuple[PriceBook, dict[int, Decimal]]:
            multipliers = {pk: m for pk, m in Asset.objects.filter(id__in=ids).exclude(multiplier=1)
                           .values_list("id", "multiplier")}
            return PriceBook.load(asset_ids=ids, start=start, latest=latest, currencies=quotes), multipliers
        return cls(base, read)

    def _prices(self) -> tuple[PriceBook, dict[int, Decimal]]:
        if self._read_once is None:
            self._read_once = self._read()
        return self._read_once

    @property
    def book(self) -> PriceBook:
        return self._prices()[0]

    @property
    def multipliers(self) -> dict[int, Decimal]:
        return self._prices()[1]

    def value(self, asset_id: int, quantity: Decimal, day: date | None) -> Decimal | None:
        found = self.book.value(asset_id, quantity * self.multipliers.get(asset_id, 1), self.base, day)
        return None if found is None else found[0]

    def fx(self, currency: str, day: date | None) -> Decimal | None:
        return self.book.rate(currency, self.base, day)
