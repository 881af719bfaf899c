"""Factories for connections, runs and synced rows (users come from tests/factories.py), and
accounts on the broker sandbox for the tests that reach a broker."""
from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import factory

from backend.connections.models import BrokerConnection, mask_secret
from backend.portfolio.models import Asset, Portfolio
from backend.sync.models import BrokerOrder, BrokerPosition, BrokerTransaction, SyncRun
from tests.factories import UserFactory, sandbox_account

T0 = datetime(2024, 1, 1, tzinfo=dt_timezone.utc)

# The sandbox derives an account's keys from its seed, and the shared limiter counts per key
# in the Redis db 15 that parallel test sessions share: seeds of this process's own keep
# another session's 429 (a block on the key) away from our keys.
_SEEDS = itertools.count(os.getpid() * 1_000_000)


def new_sandbox_account(sandbox, broker: str = "alpaca", environment: str | None = None, **options) -> dict:
    """A fresh account on the sandbox (real HTTP): Alpaca paper unless told otherwise.
    `options` go to the simulator, e.g. can_trade=True for Coinbase or Binance."""
    environment = environment or ("paper" if broker == "alpaca" else "live")
    return sandbox_account(sandbox, broker=broker, environment=environment, seed=next(_SEEDS), positions=3,
                           activities=20, **options)


class PortfolioFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Portfolio

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Portfolio {n}")


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BrokerConnection

    owner = factory.SubFactory(UserFactory)
    portfolio = factory.SubFactory(PortfolioFactory, owner=factory.SelfAttribute("..owner"))
    broker = "alpaca"
    environment = "paper"
    broker_account_id = factory.Sequence(lambda n: f"ACC{n}")
    label = factory.Sequence(lambda n: f"Connection {n}")
    status = BrokerConnection.Status.ACTIVE

    # Keys as stored; no broker ever sees them (a test that reaches the broker connects a
    # sandbox account instead, or replaces these with the account's keys).
    api_key = factory.Sequence(lambda n: f"PKSTORED{n:06d}K7QX2")
    api_secret = factory.LazyAttribute(lambda c: f"secret-{c.api_key}")
    key_hint = factory.LazyAttribute(lambda c: mask_secret(c.api_key))


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    connection = factory.SubFactory(ConnectionFactory)
    state = SyncRun.State.SUCCEEDED
    trigger = "schedule"


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset
        django_get_or_create = ("asset_class", "symbol")

    symbol = factory.Sequence(lambda n: f"SYM{n}")
    asset_class = Asset.AssetClass.EQUITY


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BrokerPosition

    connection = factory.SubFactory(ConnectionFactory)
    portfolio = factory.SelfAttribute("connection.portfolio")
    asset = factory.SubFactory(AssetFactory)
    broker_symbol = factory.SelfAttribute("asset.symbol")
    quantity = Decimal("10")
    avg_entry_price = Decimal("100.25")
    market_value = Decimal("1100.5")
    current_price = Decimal("110.05")


class TransactionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BrokerTransaction

    connection = factory.SubFactory(ConnectionFactory)
    portfolio = factory.SelfAttribute("connection.portfolio")
    asset = factory.SubFactory(AssetFactory)
    broker_id = factory.Sequence(lambda n: f"tx-{n}")
    type = "trade"
    broker_type = "FILL"
    side = "buy"
    occurred_at = factory.Sequence(lambda n: T0 + timedelta(days=n))
    broker_symbol = factory.LazyAttribute(lambda t: t.asset.symbol if t.asset else "")
    quantity = Decimal("1.5")
    price = Decimal("0.000000000000000001")
    amount = Decimal("-150.75")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BrokerOrder

    connection = factory.SubFactory(ConnectionFactory)
    portfolio = factory.SelfAttribute("connection.portfolio")
    asset = factory.SubFactory(AssetFactory)
    broker_id = factory.Sequence(lambda n: f"order-{n}")
    broker_symbol = factory.SelfAttribute("asset.symbol")
    side = "buy"
    order_type = "limit"
    status = "filled"
    broker_status = "filled"
    quantity = Decimal("2")
    filled_quantity = Decimal("2")
    limit_price = Decimal("99.5")
    submitted_at = factory.Sequence(lambda n: T0 + timedelta(hours=n))
