"""Market-data source key -> class, spelled out like the adapter registry, and the one
place a source is wired to its base URL, the shared limiter and its budget's scope."""
from __future__ import annotations

from importlib import import_module

from ..dtos import Credentials
from ..http import BrokerSession
from ..ratelimit import RateLimiter
from .base import MarketDataSource

SOURCES: dict[str, str] = {
    "alpaca": "backend.brokers.marketdata.alpaca.AlpacaSource",
    "binance": "backend.brokers.marketdata.binance.BinanceSource",
    "coinbase": "backend.brokers.marketdata.coinbase.CoinbaseSource",
    "kraken": "backend.brokers.marketdata.kraken.KrakenSource",
}
# The base URL each source reads (settings.BROKER_BASE_URLS[broker][environment]).
ENDPOINTS = {"alpaca": ("alpaca", "data"), "binance": ("binance", "live"), "coinbase": ("coinbase", "live"),
             "kraken": ("kraken", "live")}


def source_class(key: str) -> type[MarketDataSource]:
    module, _, name = SOURCES[key].rpartition(".")
    return getattr(import_module(module), name)


def source_keys() -> list[str]:
    return sorted(SOURCES)


def build_source(key: str, *, credentials: Credentials | None = None, limiter: RateLimiter | None = None,
                 base_url: str | None = None) -> MarketDataSource:
    """A source with the same session, limiter and policy as a sync. `credentials` only for
    a source that `needs_key` (Alpaca's data API)."""
    from django.conf import settings

    from ..egress import broker_http
    from ..registry import default_limiter, session_policy

    cls = source_class(key)
    broker, environment = ENDPOINTS[key]
    if cls.needs_key and credentials is None:
        raise ValueError(f"the {key} market-data source needs a key")
    session = BrokerSession(
        broker=cls.rate_rule,
        base_url=base_url or settings.BROKER_BASE_URLS[broker][environment],
        scope=cls.rate_scope(credentials.api_key if credentials else ""),
        limiter=limiter if limiter is not None else default_limiter(),
        policy=session_policy(),
        vendor_errors=_vendor_errors(key),
        secrets=credentials.secrets() if credentials else (),
        http=broker_http(),
    )
    return cls(session=session, credentials=credentials) if cls.needs_key else cls(session=session)


def _vendor_errors(key: str):
    """Each broker's own error table, shared with its sync adapter."""
    from ..registry import get_adapter_class

    if key == "kraken":
        from ..adapters.kraken.client import vendor_errors

        return vendor_errors
    return getattr(get_adapter_class(key), "vendor_errors", None)
