"""Fixtures for ledger tests that use the database: a portfolio with two connections and a
way to store transactions the way a sync stores them."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from backend.brokers.dtos import Credentials
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Asset, Portfolio
from backend.sync.models import BrokerTransaction


class Book:
    """Stores BrokerTransaction rows for one portfolio, the way the sync writers do."""

    def __init__(self, portfolio: Portfolio):
        self.portfolio = portfolio
        self.connections: dict[str, BrokerConnection] = {}
        self.assets: dict[str, Asset] = {}

    def connection(self, broker: str) -> BrokerConnection:
        if broker not in self.connections:
            conn = BrokerConnection(owner=self.portfolio.owner, portfolio=self.portfolio, broker=broker,
                                    broker_account_id=f"acct-{broker}", status="active")
            conn.set_credentials(Credentials(api_key="k", api_secret="s"))
            conn.save()
            self.connections[broker] = conn
        return self.connections[broker]

    def asset(self, symbol: str, asset_class: str = "equity") -> Asset:
        if symbol not in self.assets:
            self.assets[symbol], _ = Asset.objects.get_or_create(symbol=symbol, asset_class=asset_class)
        return self.assets[symbol]

    def tx(self, broker: str, broker_id: str, kind: str, when: datetime, symbol: str | None = None,
           quantity=None, amount=None, asset_class: str = "equity", **fields) -> BrokerTransaction:
        conn = self.connection(broker)
        return BrokerTransaction.objects.create(
            connection=conn, portfolio=self.portfolio, broker_id=broker_id, type=kind, occurred_at=when,
            asset=self.asset(symbol, asset_class) if symbol else None, broker_symbol=symbol or "",
            quantity=None if quantity is None else Decimal(str(quantity)),
            amount=None if amount is None else Decimal(str(amount)), **fields)


@pytest.fixture
def book(user):
    return Book(Portfolio.objects.create(owner=user, name="ledger"))
