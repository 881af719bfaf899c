"""Accounts without a feed: import accounts (kind `csv`) and manual accounts (kind `manual`).

They are BrokerConnections with no keys, never scheduled, so every list, filter, reconcile
and portfolio figure treats their rows like any broker's. Their holdings are what their
history adds up to: `holdings_rebuild` writes them, as the positions step writes a broker's,
after every import or manual change, in the same transaction."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from backend.brokers.dtos import AssetClass, AssetRef, Position
from backend.connections.models import BrokerConnection
from backend.core.exceptions import ApplicationError
from backend.portfolio.models import Portfolio
from backend.sync import writers
from backend.sync.models import BrokerTransaction
from backend.sync.reconcile import NOT_COUNTED_STATUSES

CSV, MANUAL = "csv", "manual"
MAX_NAME_LENGTH = 100


def feedless_account(*, portfolio: Portfolio, kind: str, name: str, format_key: str = "") -> BrokerConnection:
    """The portfolio's account of this kind and name (and file format, for imports), created
    on first use. Its identity is (portfolio, format, name): two portfolios may both have a
    "Fidelity" import account."""
    name = " ".join(name.split())[:MAX_NAME_LENGTH]
    account_id = ":".join(part for part in (str(portfolio.pk), format_key, name) if part)
    connection, _ = BrokerConnection.objects.get_or_create(
        owner_id=portfolio.owner_id, broker=kind, environment="live", broker_account_id=account_id,
        defaults={"portfolio": portfolio, "label": name, "status": BrokerConnection.Status.ACTIVE,
                  "next_sync_at": None, "options": {"format": format_key} if format_key else {},
                  "sync_positions": False, "sync_transactions": False, "sync_orders": False})
    return connection


def feedless_account_chosen(*, portfolio: Portfolio, kind: str, connection_id: int,
                            field: str = "connection") -> BrokerConnection:
    """An existing account of this kind in this portfolio, named by id (400 if it is not one)."""
    connection = BrokerConnection.objects.filter(pk=connection_id, portfolio=portfolio, broker=kind).first()
    if connection is None:
        raise ApplicationError("Invalid input.", fields={field: [
            f"No {'import' if kind == CSV else 'manual'} account {connection_id} in this portfolio."]})
    return connection


def account_locked(connection: BrokerConnection) -> BrokerConnection:
    """Hold the account's row until the transaction ends: imports and manual changes to one
    account take turns, so each holdings rebuild sees every row the others wrote."""
    assert transaction.get_connection().in_atomic_block, "lock inside the transaction that writes"
    return BrokerConnection.objects.select_for_update().get(pk=connection.pk)


def holdings_rebuild(connection: BrokerConnection) -> dict:
    """Write the account's open positions from its transactions: per asset the sum of signed
    quantities, per currency the sum of cash amounts (`cash:<CCY>`). What nets to zero is
    closed. Summed in Python with Decimal (exact on every database)."""
    quantities: dict[int, Decimal] = defaultdict(Decimal)
    cash: dict[str, Decimal] = defaultdict(Decimal)
    rows = (BrokerTransaction.objects.filter(connection=connection).exclude(status__in=NOT_COUNTED_STATUSES)
            .values_list("asset_id", "quantity", "amount", "currency"))
    for asset_id, quantity, amount, currency in rows.iterator(chunk_size=5000):
        if asset_id is not None and quantity is not None:
            quantities[asset_id] += quantity
        if amount is not None:
            cash[currency] += amount
    positions = [_position(asset, quantities[asset.pk]) for asset in _assets(quantities)]
    balances = {code: value for code, value in cash.items() if value != 0}
    return writers.positions_replace(connection, [*positions, *writers.cash_positions(balances)], timezone.now())


def _assets(quantities: dict[int, Decimal]):
    from backend.portfolio.models import Asset

    return Asset.objects.filter(pk__in=[pk for pk, q in quantities.items() if q != 0]).order_by("pk")


def _position(asset, quantity: Decimal) -> Position:
    ref = AssetRef(symbol=asset.symbol, asset_class=AssetClass(asset.asset_class), exchange=asset.exchange,
                   currency=asset.currency, multiplier=asset.multiplier)
    # One holding per asset; the class is part of the symbol where a ticker could mean two things.
    symbol = asset.symbol if asset.asset_class == AssetClass.EQUITY else f"{asset.asset_class}:{asset.symbol}"
    return Position(asset=ref, broker_symbol=symbol, quantity=quantity)
