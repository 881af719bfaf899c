"""Which market-data sources exist here and how each is opened for a refresh.

Public sources need nothing. Alpaca's data API needs a key: the operator's market-data key
(MARKETDATA_ALPACA_KEY_ID / MARKETDATA_ALPACA_SECRET_KEY) when set, else the key of a
connected Alpaca account (paper or live keys both read market data). The key is decrypted
here, inside the task that uses it, and never logged or passed around."""
from __future__ import annotations

from django.conf import settings

from backend.brokers.dtos import Credentials
from backend.brokers.marketdata.base import MarketDataSource
from backend.brokers.marketdata.registry import build_source, source_class, source_keys

__all__ = ["alpaca_credentials", "available_sources", "source_class", "source_keys", "source_open", "source_order"]
from backend.connections.models import BrokerConnection

# The order sources are tried in after the brokers an asset is held at (the most pairs first).
FALLBACK_ORDER = ("coinbase", "kraken", "binance", "alpaca")


def alpaca_credentials() -> Credentials | None:
    key, secret = settings.MARKETDATA_ALPACA_KEY_ID, settings.MARKETDATA_ALPACA_SECRET_KEY
    if key and secret:
        return Credentials(api_key=key, api_secret=secret)
    connection = (BrokerConnection.objects.filter(broker="alpaca", status__in=(BrokerConnection.Status.PENDING, BrokerConnection.Status.ACTIVE))
                  .order_by("id").first())
    return connection.credentials() if connection is not None else None


def source_open(key: str) -> MarketDataSource | None:
    """The source, or None when it needs a key and none is configured or connected."""
    if source_class(key).needs_key:
        credentials = alpaca_credentials()
        return build_source(key, credentials=credentials) if credentials else None
    return build_source(key)


def available_sources() -> set[str]:
    """Sources a refresh can open now (Alpaca's only with a key)."""
    return {k for k in source_keys() if not source_class(k).needs_key or alpaca_credentials() is not None}


def source_order(held_at: list[str]) -> list[str]:
    """The pricing rule's order: the brokers the asset is held at first, then the others."""
    known = set(source_keys())
    first = [b for b in held_at if b in known]
    return first + [s for s in FALLBACK_ORDER if s in known and s not in first]
