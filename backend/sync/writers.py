"""Upserts of adapter DTOs into rows. Idempotent: the same broker record seen twice is one row."""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q

from backend.brokers.dtos import AssetClass, AssetRef, Order, Position, Transaction
from backend.connections.models import BrokerConnection
from backend.core.fields import MONEY_PLACES
from backend.portfolio.services import assets_resolve

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


def transactions_upsert(connection: BrokerConnection, items: Sequence[Transaction], now: datetime) -> dict:
    by_id = {t.broker_id: t for t in items}          # a page that repeats a record keeps the last copy
    assets = assets_resolve(t.asset for t in by_id.values() if t.asset)
    rows = [BrokerTransaction(
        connection=connection, portfolio_id=connection.portfolio_id,
        asset=assets[(str(t.asset.asset_class), t.asset.symbol)] if t.asset else None,
        broker_id=t.broker_id, type=str(t.type), broker_type=t.broker_type[:48], status=t.status,
        occurred_at=t.occurred_at, broker_symbol=t.broker_symbol, quantity=t.quantity, price=t.price,
        amount=t.amount, fee=t.fee, currency=t.currency, side=t.side, order_id=t.order_id,
        description=t.description, raw=t.raw, updated_at=now) for t in by_id.values()]
    created, changed, earliest = _transaction_changes(connection, rows)
    BrokerTransaction.objects.bulk_create(rows, update_conflicts=True, batch_size=1000,
                                          unique_fields=["connection", "broker_id"], update_fields=TRANSACTION_FIELDS)
    return {"fetched": len(items), "created": created, "updated": len(rows) - created, "changed": changed,
            "earliest_changed": earliest}


def _transaction_changes(connection: BrokerConnection, rows: Sequence[BrokerTransaction]):
    """(created, changed, earliest occurred_at touched): new rows, stored rows whose history
    fields differ from the new copy, and the earliest time either of them (old or new) stood."""
    stored = {values[0]: values[1:] for values in BrokerTransaction.objects.filter(
        connection=connection, broker_id__in=[r.broker_id for r in rows]).values_list("broker_id", *HISTORY_FIELDS)}
    created = changed = 0
    earliest = None
    for row in rows:
        old = stored.get(row.broker_id)
        if old is None:
            created += 1
            times = (row.occurred_at,)
        elif old != tuple(getattr(row, f) for f in HISTORY_FIELDS):
            changed += 1
            times = (row.occurred_at, old[HISTORY_FIELDS.index("occurred_at")])
        else:
            continue
        first = min(times)
        earliest = first if earliest is None or first < earliest else earliest
    return created, changed, earliest


def orders_upsert(connection: BrokerConnection, items: Sequence[Order], now: datetime) -> dict:
    """Upsert orders whose broker record is new or changed (an open order is asked for again
    at every sync; while the broker's record stays the same, its row is left as it is)."""
    by_id = {o.broker_id: o for o in items}
    stored = dict(BrokerOrder.objects.filter(connection=connection, broker_id__in=list(by_id))
                  .values_list("broker_id", "raw"))
    changed = [o for o in by_id.values() if stored.get(o.broker_id) != _as_stored(o.raw)]
    created = sum(1 for o in changed if o.broker_id not in stored)
    assets = assets_resolve(o.asset for o in changed if o.asset)
    rows = [BrokerOrder(
        connection=connection, portfolio_id=connection.portfolio_id,
        asset=assets[(str(o.asset.asset_class), o.asset.symbol)] if o.asset else None,
        broker_id=o.broker_id, client_order_id=o.client_order_id, broker_symbol=o.broker_symbol, side=o.side,
        order_type=o.order_type, time_in_force=o.time_in_force, status=o.status, broker_status=o.broker_status,
        quantity=o.quantity, notional=o.notional, filled_quantity=o.filled_quantity,
        filled_avg_price=o.filled_avg_price, limit_price=o.limit_price, stop_price=o.stop_price,
        submitted_at=o.submitted_at, updated_at_broker=o.updated_at, filled_at=o.filled_at,
        canceled_at=o.canceled_at, raw=o.raw, updated_at=now) for o in changed]
    if rows:
        BrokerOrder.objects.bulk_create(rows, update_conflicts=True, batch_size=1000,
                                        unique_fields=["connection", "broker_id"], update_fields=ORDER_FIELDS)
    return {"fetched": len(items), "created": created, "updated": len(rows) - created}


def _as_stored(raw: dict) -> dict:
    """A raw record as its JSON column gives it back (Decimals stored as strings)."""
    return json.loads(json.dumps(raw, cls=DjangoJSONEncoder))


def open_order_ids(connection: BrokerConnection) -> list[str]:
    return list(BrokerOrder.objects.filter(connection=connection)
                .filter(Q(status__in=sorted(Order.OPEN_STATUSES)))
                .values_list("broker_id", flat=True))
