"""Both sides of the comparison, per connection: what the broker reports and what the stored
history adds up to, per asset and per currency of cash.

Broker side: the open positions (cash is stored as fiat holdings, `cash:<CCY>`).
History side: every counted transaction (not canceled, failed, rejected or pending):
- an asset's quantity is the sum of the signed `quantity` of its rows (fills, splits,
  transfers, in-kind fees, rewards): the ledger's open quantity equals it by construction;
- a currency's cash is the sum of `amount` over rows in that currency. Every adapter records
  `amount` as the net change of cash, its fee already in it (a Coinbase fill's commission,
  a Kraken row's fee, a Binance fee leg in fiat), so `fee` is not added again. Only cash
  currencies count: an `amount` in a coin (Coinbase's ETH-BTC fill) is that coin's change,
  which its own `quantity` row carries.
Summed in Python with Decimal: SQL SUM on SQLite goes through float.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import connection as db

from backend.brokers.symbols import FIAT
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Asset
from backend.sync.models import BrokerPosition, BrokerTransaction

from .rules import Difference

NOT_COUNTED_STATUSES = ("canceled", "cancelled", "failed", "rejected", "pending")
SQLITE_RELATIVE_PRECISION = Decimal("1e-13")   # 15 significant digits, with room for summing
CHUNK = 5000


def counted_transactions(connection: BrokerConnection):
    return BrokerTransaction.objects.filter(connection=connection).exclude(status__in=NOT_COUNTED_STATUSES)


def differences_for(connection: BrokerConnection) -> list[Difference]:
    """Every asset and currency whose two sides differ, sorted by key."""
    broker_assets, broker_cash = _broker_side(connection)
    history_assets, history_cash = _history_side(connection, cash_codes=FIAT | set(broker_cash))
    assets = {a.pk: a for a in Asset.objects.filter(pk__in=set(broker_assets) | set(history_assets))}
    found = []
    for asset_id, asset in assets.items():
        broker, history = broker_assets.get(asset_id, Decimal(0)), history_assets.get(asset_id, Decimal(0))
        if not _same(broker, history):
            found.append(Difference(f"asset:{asset_id}", asset_id, asset.symbol, asset.asset_class, broker, history))
    for code in set(broker_cash) | set(history_cash):
        broker, history = broker_cash.get(code, Decimal(0)), history_cash.get(code, Decimal(0))
        if not _same(broker, history):
            found.append(Difference(f"cash:{code}", None, code, "fiat", broker, history))
    return sorted(found, key=lambda d: d.key)


def _broker_side(connection: BrokerConnection) -> tuple[dict[int, Decimal], dict[str, Decimal]]:
    assets: dict[int, Decimal] = defaultdict(Decimal)
    cash: dict[str, Decimal] = defaultdict(Decimal)
    rows = (BrokerPosition.objects.filter(connection=connection, is_open=True)
            .values_list("asset_id", "asset__asset_class", "asset__symbol", "quantity"))
    for asset_id, asset_class, symbol, quantity in rows.iterator(chunk_size=CHUNK):
        if asset_class == "fiat":
            cash[symbol] += quantity
        else:
            assets[asset_id] += quantity
    return dict(assets), dict(cash)


def _history_side(connection: BrokerConnection, *, cash_codes: set[str]) -> tuple[dict[int, Decimal], dict[str, Decimal]]:
    assets: dict[int, Decimal] = defaultdict(Decimal)
    cash: dict[str, Decimal] = defaultdict(Decimal)
    rows = counted_transactions(connection).values_list("asset_id", "asset__asset_class", "asset__symbol",
                                                        "quantity", "amount", "currency")
    for asset_id, asset_class, symbol, quantity, amount, currency in rows.iterator(chunk_size=CHUNK):
        if asset_id is not None and quantity is not None:
            if asset_class == "fiat":
                cash[symbol] += quantity          # a fiat asset's quantity is cash
            else:
                assets[asset_id] += quantity
        if amount is not None and currency in cash_codes:
            cash[currency] += amount
    return dict(assets), dict(cash)


def _same(a: Decimal, b: Decimal) -> bool:
    """Exact on PostgreSQL. Django keeps only 15 significant digits of a decimal on SQLite
    (the zero-setup local database), so there a difference below that precision is noise."""
    if db.vendor != "sqlite":
        return a == b
    return abs(a - b) <= max(abs(a), abs(b)) * SQLITE_RELATIVE_PRECISION
