"""Reconcile: does what the broker holds equal what its history adds up to?

For every asset, the quantity of the open positions the broker reports is compared with
the sum of the signed quantities of every stored, non-canceled transaction (fills,
splits, transfers, in-kind fees, rewards). Every difference is recorded on the run;
a later issue builds the full ledger on top of this.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import connection as db

from backend.connections.models import BrokerConnection

from .models import BrokerPosition, BrokerTransaction

SQLITE_RELATIVE_PRECISION = Decimal("1e-13")   # 15 significant digits, with room for summing
NOT_COUNTED_STATUSES = ("canceled", "cancelled", "failed", "rejected", "pending")


def quantity_differences(connection: BrokerConnection) -> list[dict]:
    # Cash (fiat holdings) is compared apart: its history is every trade's cash leg too.
    held = _sum_by_asset(BrokerPosition.objects.filter(connection=connection, is_open=True)
                         .exclude(asset__asset_class="fiat"))
    computed = _sum_by_asset(BrokerTransaction.objects.filter(connection=connection, asset__isnull=False,
                                                               quantity__isnull=False)
                             .exclude(status__in=NOT_COUNTED_STATUSES)
                             .exclude(asset__asset_class="fiat"))
    differences = []
    for key in sorted(set(held) | set(computed)):
        broker_qty, ledger_qty = held.get(key, Decimal(0)), computed.get(key, Decimal(0))
        if not _same(broker_qty, ledger_qty):
            asset_class, symbol = key
            differences.append({"asset": symbol, "asset_class": asset_class, "broker_quantity": _fmt(broker_qty),
                                "computed_quantity": _fmt(ledger_qty), "difference": _fmt(broker_qty - ledger_qty)})
    return differences


def _sum_by_asset(queryset) -> dict[tuple[str, str], Decimal]:
    """Summed in Python with Decimal: SQL SUM on SQLite goes through float."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for asset_class, symbol, quantity in queryset.values_list("asset__asset_class", "asset__symbol",
                                                              "quantity").iterator(chunk_size=5000):
        totals[(asset_class, symbol)] += quantity
    return dict(totals)


def _same(a: Decimal, b: Decimal) -> bool:
    """Exact on PostgreSQL. Django keeps only 15 significant digits of a decimal on SQLite
    (the zero-setup local database), so there a difference below that precision is noise."""
    if db.vendor != "sqlite":
        return a == b
    return abs(a - b) <= max(abs(a), abs(b)) * SQLITE_RELATIVE_PRECISION


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")
