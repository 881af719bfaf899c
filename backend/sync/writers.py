"""Upserts of adapter DTOs into rows. Idempotent: the same broker record seen twice is one row."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection as db
from django.db.models import Q

from backend.brokers.dtos import AssetClass, AssetRef, Order, Position, Transaction
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Asset
from backend.core.fields import MONEY_PLACES
from backend.portfolio.services import assets_resolve

from . import staging
from .models import BrokerOrder, BrokerPosition, BrokerTransaction

POSITION_FIELDS = ["portfolio", "asset", "quantity", "avg_entry_price", "cost_basis", "market_value",
                   "current_price", "is_open", "closed_at", "raw", "updated_at"]
TRANSACTION_FIELDS = ["portfolio", "asset", "type", "broker_type", "status", "occurred_at", "broker_symbol",
                      "quantity", "price", "amount", "fee", "currency", "side", "order_id", "description", "raw",
                      "updated_at"]
ORDER_FIELDS = ["portfolio", "asset", "client_order_id", "broker_symbol", "side", "order_type", "time_in_force",
                "status", "broker_status", "quantity", "notional", "filled_quantity", "filled_avg_price",
                "limit_price", "stop_price", "submitted_at", "updated_at_broker", "filled_at", "canceled_at", "raw",
                "updated_at"]


# What a transaction contributes to history, lots and value: a stored row whose values here
# differ from the broker's new copy has changed, and everything computed from it after its
# (old or new) time must be recomputed.
HISTORY_FIELDS = ("asset_id", "type", "status", "occurred_at", "quantity", "price", "amount", "fee", "currency",
                  "side")
CASH_PREFIX = "cash:"

# The PostgreSQL path's rows, in the order the *_rows functions build them.
TRANSACTIONS = staging.Target(
    table=BrokerTransaction._meta.db_table,
    columns=("broker_id", "asset_id", "type", "broker_type", "status", "occurred_at", "broker_symbol", "quantity",
             "price", "amount", "fee", "currency", "side", "order_id", "description", "raw"),
    history=HISTORY_FIELDS, time_column="occurred_at")
ORDERS = staging.Target(
    table=BrokerOrder._meta.db_table,
    columns=("broker_id", "asset_id", "client_order_id", "broker_symbol", "side", "order_type", "time_in_force",
             "status", "broker_status", "quantity", "notional", "filled_quantity", "filled_avg_price", "limit_price",
             "stop_price", "submitted_at", "updated_at_broker", "filled_at", "canceled_at", "raw"))
# How the model's JSONField encodes `raw` (Decimals as strings), without the spaces.
RAW_ENCODER = DjangoJSONEncoder(separators=(",", ":"))


def cash_positions(cash: dict) -> list[Position]:
    """Cash balances as holdings of fiat assets: `cash:USD` beside the securities, so cash is
    stored, listed, valued and reconciled like any other holding (a ticker may be `USD`)."""
    return [Position(asset=AssetRef(symbol=code, asset_class=AssetClass.FIAT, currency=code),
                     broker_symbol=f"{CASH_PREFIX}{code}", quantity=balance, raw={"currency": code, "cash": str(balance)})
            for code, balance in sorted(cash.items())]


def positions_replace(connection: BrokerConnection, positions: Sequence[Position], now: datetime) -> dict:
    """Upsert every reported position that differs from its stored row; close every stored
    one the broker no longer reports, whatever its quantity (a position the broker does not
    list is not held). A sync that finds the account as it was writes nothing.

    Counts: fetched, created, updated (rows written), closed, and moved: positions whose
    quantity is new, changed or closed (what reconcile compares; a price alone is not)."""
    reported = {p.broker_symbol: p for p in positions}          # a repeated symbol keeps the last copy
    stored = {row[0]: row[1:] for row in BrokerPosition.objects.filter(connection=connection).values_list(
        "broker_symbol", "asset__asset_class", "asset__symbol", "portfolio_id", *POSITION_COMPARED)}
    changed = {symbol: p for symbol, p in reported.items()
               if stored.get(symbol) != _position_values(connection, p)}
    created = sum(1 for symbol in changed if symbol not in stored)
    moved = sum(1 for symbol, p in changed.items() if _quantity_moved(stored.get(symbol), p))
    if changed:
        assets = assets_resolve(p.asset for p in changed.values())
        rows = [BrokerPosition(
            connection=connection, portfolio_id=connection.portfolio_id,
            asset=assets[(str(p.asset.asset_class), p.asset.symbol)], broker_symbol=p.broker_symbol,
            quantity=p.quantity, avg_entry_price=p.avg_entry_price, cost_basis=p.cost_basis,
            market_value=p.market_value, current_price=p.current_price, is_open=True, closed_at=None,
            raw=p.raw, updated_at=now) for p in changed.values()]
        BrokerPosition.objects.bulk_create(rows, update_conflicts=True, batch_size=1000,
                                           unique_fields=["connection", "broker_symbol"],
                                           update_fields=POSITION_FIELDS)
    gone = [symbol for symbol, values in stored.items() if symbol not in reported and values[-1]]
    closed = (BrokerPosition.objects.filter(connection=connection, is_open=True, broker_symbol__in=gone)
              .update(is_open=False, closed_at=now, quantity=0, market_value=0, updated_at=now)) if gone else 0
    return {"fetched": len(reported), "created": created, "updated": len(changed) - created, "closed": closed,
            "moved": moved + closed}


# What a stored position is compared on, in this order (is_open last), to tell whether the
# broker's copy changed: the values as the database holds them (18 decimal places, raw as JSON).
POSITION_COMPARED = ("quantity", "avg_entry_price", "cost_basis", "market_value", "current_price", "raw", "is_open")
_PLACES = Decimal(1).scaleb(-MONEY_PLACES)


def _places(value: Decimal | None) -> Decimal | None:
    # PostgreSQL rounds numeric half away from zero, as ROUND_HALF_UP does
    return None if value is None else Decimal(value).quantize(_PLACES, rounding=ROUND_HALF_UP)


def _quantity_moved(values: tuple | None, p: Position) -> bool:
    """New, reopened, or held in another quantity (values[3]: after asset class, symbol, portfolio)."""
    return values is None or not values[-1] or values[3] != _places(p.quantity)


def _position_values(connection: BrokerConnection, p: Position) -> tuple:
    return (str(p.asset.asset_class), p.asset.symbol, connection.portfolio_id,
            *(_places(v) for v in (p.quantity, p.avg_entry_price, p.cost_basis, p.market_value, p.current_price)),
            _as_stored(p.raw), True)


def transactions_upsert(connection: BrokerConnection, items: Sequence[Transaction], now: datetime, *,
                        portable: bool = False) -> dict:
    """Store a page of transactions. Counts: `created`; `updated` (already stored, whether or
    not anything differed); `rewritten` (stored rows that differed, the only ones written);
    `changed` (differed in a history field) and `earliest_changed` (the earliest time such a
    row, or a created one, stood). `portable` takes the ORM path every database has (the
    default off PostgreSQL)."""
    by_id = {t.broker_id: t for t in items}          # a page that repeats a record keeps the last copy
    assets = asset_ids(t.asset for t in by_id.values() if t.asset)
    if portable or db.vendor != "postgresql":
        written = _transactions_portable(connection, by_id.values(), assets, now)
    else:
        written = staging.upsert(TRANSACTIONS, connection_id=connection.pk, portfolio_id=connection.portfolio_id,
                                 now=now, rows=_transaction_rows(by_id.values(), assets))
    return {"fetched": len(items), "created": written.created, "updated": len(by_id) - written.created,
            "rewritten": written.rewritten, "changed": written.changed,
            "earliest_changed": written.earliest_changed}


def asset_ids(refs: Iterable[AssetRef]) -> dict[tuple[str, str], int]:
    """(asset_class, symbol) -> asset id for a page's refs: ids read as plain values (a page
    names hundreds of assets; a model instance each cost more than the rest of the lookup),
    the missing ones created by assets_resolve."""
    wanted = {_asset_key(r): r for r in refs}
    if not wanted:
        return {}
    found = {(asset_class, symbol): pk for asset_class, symbol, pk in Asset.objects.filter(
        symbol__in={symbol for _, symbol in wanted}).values_list("asset_class", "symbol", "pk")
        if (asset_class, symbol) in wanted}
    missing = [ref for key, ref in wanted.items() if key not in found]
    if missing:
        found.update({key: asset.pk for key, asset in assets_resolve(missing).items()})
    return found


def _asset_key(ref: AssetRef) -> tuple[str, str]:
    return str(ref.asset_class), ref.symbol


def _transaction_rows(items: Iterable[Transaction], assets: dict) -> Iterator[tuple]:
    """Rows in TRANSACTIONS.columns order, straight from the DTOs; `raw` as JSON text, encoded
    once the way the model's field encodes it (Decimals as strings)."""
    encode = RAW_ENCODER.encode
    for t in items:
        yield (t.broker_id, assets[_asset_key(t.asset)] if t.asset else None, str(t.type), t.broker_type[:48],
               t.status, t.occurred_at, t.broker_symbol, t.quantity, t.price, t.amount, t.fee, t.currency, t.side,
               t.order_id, t.description, encode(t.raw))


def _transactions_portable(connection: BrokerConnection, items: Iterable[Transaction], assets: dict,
                           now: datetime) -> staging.Written:
    rows = [BrokerTransaction(
        connection=connection, portfolio_id=connection.portfolio_id,
        asset_id=assets[_asset_key(t.asset)] if t.asset else None,
        broker_id=t.broker_id, type=str(t.type), broker_type=t.broker_type[:48], status=t.status,
        occurred_at=t.occurred_at, broker_symbol=t.broker_symbol, quantity=t.quantity, price=t.price,
        amount=t.amount, fee=t.fee, currency=t.currency, side=t.side, order_id=t.order_id,
        description=t.description, raw=t.raw, updated_at=now) for t in items]
    stored = _stored(BrokerTransaction, connection, rows, TRANSACTION_FIELDS)
    created, changed, earliest = _transaction_changes(stored, rows)
    written = _write_differing(BrokerTransaction, stored, rows, TRANSACTION_FIELDS)
    return staging.Written(created=created, rewritten=written - created, changed=changed, earliest_changed=earliest)


def _stored(model, connection: BrokerConnection, rows, fields: list[str]) -> dict[str, dict]:
    """broker_id -> the stored values of `fields` (foreign keys by id), for the page's ids."""
    columns = [model._meta.get_field(f).attname for f in fields if f != "updated_at"]
    return {values["broker_id"]: values for values in model.objects.filter(
        connection=connection, broker_id__in=[r.broker_id for r in rows]).values("broker_id", *columns)}


def _write_differing(model, stored: dict[str, dict], rows, fields: list[str]) -> int:
    """bulk_create the rows that are new or differ from their stored copy; how many."""
    columns = [model._meta.get_field(f).attname for f in fields if f != "updated_at"]
    differing = [r for r in rows if r.broker_id not in stored or _differs(stored[r.broker_id], r, columns)]
    model.objects.bulk_create(differing, update_conflicts=True, batch_size=1000,
                              unique_fields=["connection", "broker_id"], update_fields=fields)
    return len(differing)


def _differs(old: dict, row, columns: list[str]) -> bool:
    for column in columns:
        new = getattr(row, column)
        if column == "raw":
            # Compare what would be stored: JSON text read back (Decimals become strings).
            new = _as_stored(new)
        if old[column] != new:
            return True
    return False


def _transaction_changes(stored: dict[str, dict], rows: Sequence[BrokerTransaction]):
    """(created, changed, earliest occurred_at touched): new rows, stored rows whose history
    fields differ from the new copy, and the earliest time either of them (old or new) stood."""
    created = changed = 0
    earliest = None
    for row in rows:
        old = stored.get(row.broker_id)
        if old is None:
            created += 1
            times = (row.occurred_at,)
        elif any(old[f] != getattr(row, f) for f in HISTORY_FIELDS):
            changed += 1
            times = (row.occurred_at, old["occurred_at"])
        else:
            continue
        first = min(times)
        earliest = first if earliest is None or first < earliest else earliest
    return created, changed, earliest


def orders_upsert(connection: BrokerConnection, items: Sequence[Order], now: datetime, *,
                  portable: bool = False) -> dict:
    """Store a page of orders: `created`, `updated` and `rewritten` as for transactions.
    Orders whose broker record is as stored are left out before anything is written: every
    sync asks for the open orders again, and they mostly come back as they were."""
    by_id = {o.broker_id: o for o in items}
    stored = dict(BrokerOrder.objects.filter(connection=connection, broker_id__in=list(by_id))
                  .values_list("broker_id", "raw"))
    moved = [o for o in by_id.values() if o.broker_id not in stored or stored[o.broker_id] != _as_stored(o.raw)]
    if not moved:
        return {"fetched": len(items), "created": 0, "updated": len(by_id), "rewritten": 0}
    assets = asset_ids(o.asset for o in moved if o.asset)
    if portable or db.vendor != "postgresql":
        written = _orders_portable(connection, moved, assets, now)
    else:
        written = staging.upsert(ORDERS, connection_id=connection.pk, portfolio_id=connection.portfolio_id,
                                 now=now, rows=_order_rows(moved, assets))
    return {"fetched": len(items), "created": written.created, "updated": len(by_id) - written.created,
            "rewritten": written.rewritten}


def _order_rows(items: Iterable[Order], assets: dict) -> Iterator[tuple]:
    encode = RAW_ENCODER.encode
    for o in items:
        yield (o.broker_id, assets[_asset_key(o.asset)] if o.asset else None, o.client_order_id, o.broker_symbol,
               o.side, o.order_type, o.time_in_force, o.status, o.broker_status, o.quantity, o.notional,
               o.filled_quantity, o.filled_avg_price, o.limit_price, o.stop_price, o.submitted_at, o.updated_at,
               o.filled_at, o.canceled_at, encode(o.raw))


def _orders_portable(connection: BrokerConnection, items: Iterable[Order], assets: dict,
                     now: datetime) -> staging.Written:
    rows = [BrokerOrder(
        connection=connection, portfolio_id=connection.portfolio_id,
        asset_id=assets[_asset_key(o.asset)] if o.asset else None,
        broker_id=o.broker_id, client_order_id=o.client_order_id, broker_symbol=o.broker_symbol, side=o.side,
        order_type=o.order_type, time_in_force=o.time_in_force, status=o.status, broker_status=o.broker_status,
        quantity=o.quantity, notional=o.notional, filled_quantity=o.filled_quantity,
        filled_avg_price=o.filled_avg_price, limit_price=o.limit_price, stop_price=o.stop_price,
        submitted_at=o.submitted_at, updated_at_broker=o.updated_at, filled_at=o.filled_at,
        canceled_at=o.canceled_at, raw=o.raw, updated_at=now) for o in items]
    stored = _stored(BrokerOrder, connection, rows, ORDER_FIELDS)
    created = sum(1 for r in rows if r.broker_id not in stored)
    written = _write_differing(BrokerOrder, stored, rows, ORDER_FIELDS)
    return staging.Written(created=created, rewritten=written - created, changed=0, earliest_changed=None)


def _as_stored(raw: dict) -> dict:
    """A raw record as its JSON column gives it back (Decimals stored as strings)."""
    return json.loads(RAW_ENCODER.encode(raw))


def open_order_ids(connection: BrokerConnection) -> list[str]:
    return list(BrokerOrder.objects.filter(connection=connection)
                .filter(Q(status__in=sorted(Order.OPEN_STATUSES)))
                .values_list("broker_id", flat=True))
