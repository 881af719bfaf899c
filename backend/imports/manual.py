"""Manual transactions: typed by hand into a manual account (a connection of kind `manual`).

Each is one BrokerTransaction written through the same upsert the sync uses. What the user
typed is kept in `raw["input"]`, so a change (PATCH) is the old input plus the new fields,
validated again as a whole.

An opening holding ("I hold 10 AAPL bought at 150 on 2020-01-02") is type `holding`: a
transfer in of the shares, at that date, with the unit cost as `price` and the lot's basis
in `raw["cost_basis"]`. It moves no cash (it was bought elsewhere, before), and for value and
returns it is what it was: assets arriving from outside.

A split is a ratio (`split_to` for `split_from`); its quantity, the shares it adds or
removes, is what the account held just before it times (to - from) / from, recomputed after
every change to the account's history."""
from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from backend.brokers.dtos import AssetClass, Transaction, TransactionType as T
from backend.core.exceptions import ApplicationError
from backend.core.fields import MONEY_PLACES
from backend.portfolio.models import Portfolio
from backend.sync import writers
from backend.sync.models import BrokerTransaction
from backend.sync.reconcile import NOT_COUNTED_STATUSES
from backend.sync.signals import history_changed

from . import accounts
from .values import CellError, security

DEFAULT_ACCOUNT = "Manual"
QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
# type -> (transaction type, fields it needs, fields it may have)
TYPES: dict[str, tuple[T, tuple[str, ...], tuple[str, ...]]] = {
    "buy": (T.TRADE, ("symbol", "quantity", "price"), ("fee",)),
    "sell": (T.TRADE, ("symbol", "quantity", "price"), ("fee",)),
    "holding": (T.TRANSFER, ("symbol", "quantity"), ("price",)),
    "dividend": (T.DIVIDEND, ("symbol", "amount"), ("fee",)),
    "interest": (T.INTEREST, ("amount",), ("symbol",)),
    "fee": (T.FEE, ("amount",), ("symbol",)),
    "deposit": (T.DEPOSIT, ("amount",), ()),
    "withdrawal": (T.WITHDRAWAL, ("amount",), ()),
    "split": (T.SPLIT, ("symbol", "split_to", "split_from"), ()),
}
VALUE_FIELDS = ("symbol", "quantity", "price", "fee", "amount", "split_to", "split_from")
ALWAYS = ("type", "occurred_at", "currency", "asset_class", "description")


def manual_transaction_create(*, portfolio: Portfolio, data: dict[str, Any], account_name: str = "",
                              connection_id: int | None = None) -> BrokerTransaction:
    values = _validated(data)
    with transaction.atomic():
        if connection_id is not None:
            connection = accounts.feedless_account_chosen(portfolio=portfolio, kind=accounts.MANUAL,
                                                          connection_id=connection_id)
        else:
            connection = accounts.feedless_account(portfolio=portfolio, kind=accounts.MANUAL,
                                                   name=account_name or DEFAULT_ACCOUNT)
        connection = accounts.account_locked(connection)
        key = f"manual:{uuid.uuid4().hex}"
        writers.transactions_upsert(connection, [_transaction(key, values)], timezone.now())
        _after_change(connection, values["occurred_at"])
    return BrokerTransaction.objects.select_related("asset", "connection").get(connection=connection, broker_id=key)


def manual_input(*, row: BrokerTransaction) -> dict[str, Any]:
    """What was typed for a manual transaction (a change starts from it); a 400 for any other row."""
    _editable(row)
    return dict(row.raw.get("input", {}))


def manual_transaction_update(*, row: BrokerTransaction, data: dict[str, Any]) -> BrokerTransaction:
    """Replace a manual transaction's values with `data`: the whole input, its stored one
    with the changes applied (manual_input), validated."""
    _editable(row)
    values = _validated(data)
    with transaction.atomic():
        connection = accounts.account_locked(row.connection)
        writers.transactions_upsert(connection, [_transaction(row.broker_id, values)], timezone.now())
        _after_change(connection, min(row.occurred_at, values["occurred_at"]))
    return BrokerTransaction.objects.select_related("asset", "connection").get(pk=row.pk)


def manual_transaction_delete(*, row: BrokerTransaction) -> None:
    _editable(row)
    with transaction.atomic():
        connection = accounts.account_locked(row.connection)
        row.delete()
        _after_change(connection, row.occurred_at)


def _editable(row: BrokerTransaction) -> None:
    if row.connection.broker != accounts.MANUAL:
        source = "a file import" if row.connection.broker == accounts.CSV else f"{row.connection.broker} sync"
        raise ApplicationError(
            f"Transaction {row.pk} came from {source} (connection {row.connection_id}): only manual transactions "
            "can be changed here. It changes when its source does.", fields={"id": ["Not a manual transaction."]})


def _after_change(connection, since: datetime) -> None:
    _refresh_splits(connection)
    accounts.holdings_rebuild(connection)
    transaction.on_commit(lambda: history_changed.send(
        sender=BrokerTransaction, connection_id=connection.pk, portfolio_id=connection.portfolio_id, since=since,
        reason="manual"))


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    """The input as one whole, checked for its type: what it needs, what it may not have."""
    kind = data.get("type")
    if kind not in TYPES:
        raise ApplicationError("Invalid input.", fields={"type": [f"One of: {', '.join(TYPES)}."]})
    _, needed, allowed = TYPES[kind]
    errors: dict[str, list[str]] = {}
    for name in VALUE_FIELDS:
        given = data.get(name) not in (None, "")
        if name in needed and not given:
            errors[name] = [f"Required for a {kind}."]
        elif given and name not in needed + allowed:
            errors[name] = [f"Not used by a {kind}."]
    values = {name: data.get(name) for name in (*ALWAYS, *VALUE_FIELDS) if data.get(name) not in (None, "")}
    values.setdefault("currency", "USD")
    values.setdefault("asset_class", AssetClass.EQUITY.value)
    if values.get("symbol") and "symbol" not in errors:
        try:
            security(values["symbol"], values["asset_class"], values["currency"])
        except CellError as exc:
            errors["symbol" if "class" not in str(exc) else "asset_class"] = [str(exc).capitalize() + "."]
    if kind == "split" and not errors and values["split_to"] == values["split_from"]:
        errors["split_to"] = ["A split changes the number of shares: split_to and split_from differ."]
    if errors:
        raise ApplicationError("Invalid input.", fields=errors)
    return values


def _transaction(key: str, values: dict[str, Any]) -> Transaction:
    kind = values["type"]
    asset = security(values["symbol"], values["asset_class"], values["currency"]) if values.get("symbol") else None
    quantity, price, fee = values.get("quantity"), values.get("price"), values.get("fee")
    amount, raw = values.get("amount"), {"input": _stored(values)}
    if kind in ("buy", "sell"):
        notional = quantity * price
        amount = -(notional + (fee or 0)) if kind == "buy" else notional - (fee or 0)
        quantity = quantity if kind == "buy" else -quantity
    elif kind == "holding" and price is not None:
        raw["cost_basis"] = _plain(quantity * price)
    elif kind in ("fee", "withdrawal"):
        amount = -amount
    elif kind == "split":
        quantity = Decimal(0)                     # set by _refresh_splits from what was held
    return Transaction(broker_id=key, type=TYPES[kind][0], broker_type=kind, occurred_at=values["occurred_at"],
                       asset=asset, broker_symbol=asset.symbol if asset else "", quantity=quantity, price=price,
                       amount=amount, fee=fee, currency=values["currency"],
                       side=kind if kind in ("buy", "sell") else "", description=values.get("description", ""),
                       raw=raw)


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else _plain(v) if isinstance(v, Decimal) else v)
            for k, v in values.items()}


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _refresh_splits(connection) -> None:
    """Each split's quantity from the holding just before it, oldest split first (an earlier
    split changes what a later one multiplies)."""
    splits = list(BrokerTransaction.objects.filter(connection=connection, type=T.SPLIT, broker_type="split")
                  .order_by("occurred_at", "id"))
    if not splits:
        return
    rows = (BrokerTransaction.objects.filter(connection=connection, quantity__isnull=False)
            .exclude(status__in=NOT_COUNTED_STATUSES).exclude(type=T.SPLIT)
            .values_list("asset_id", "occurred_at", "quantity"))
    history = defaultdict(list)
    for asset_id, at, quantity in rows:
        history[asset_id].append((at, quantity))
    done: dict[int, list] = defaultdict(list)
    for split in splits:
        held = sum((q for at, q in [*history[split.asset_id], *done[split.asset_id]] if at < split.occurred_at),
                   Decimal(0))
        ratio_to, ratio_from = int(split.raw["input"]["split_to"]), int(split.raw["input"]["split_from"])
        change = (held * (ratio_to - ratio_from) / ratio_from).quantize(QUANTUM, rounding=ROUND_DOWN)
        if split.quantity != change:
            BrokerTransaction.objects.filter(pk=split.pk).update(quantity=change, updated_at=timezone.now())
        done[split.asset_id].append((split.occurred_at, change))
