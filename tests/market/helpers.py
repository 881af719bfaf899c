"""Holdings for price-store tests: positions and transactions written straight into the
tables (the refresh reads them; it does not care how a sync put them there)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from backend.connections.models import BrokerConnection
from backend.portfolio.models import Asset
from backend.sync.models import BrokerPosition, BrokerTransaction


def asset(symbol: str, asset_class: str = "crypto") -> Asset:
    return Asset.objects.get_or_create(symbol=symbol, asset_class=asset_class)[0]


def hold(connection: BrokerConnection, a: Asset, quantity: str = "1", *, since: datetime | None = None) -> None:
    BrokerPosition.objects.create(connection=connection, portfolio=connection.portfolio, asset=a,
                                  broker_symbol=f"{a.symbol}:{a.asset_class}", quantity=Decimal(quantity))
    if since is not None:
        BrokerTransaction.objects.create(connection=connection, portfolio=connection.portfolio, asset=a,
                                         broker_id=f"t:{a.symbol}:{since.isoformat()}", type="trade",
                                         occurred_at=since, quantity=Decimal(quantity))
