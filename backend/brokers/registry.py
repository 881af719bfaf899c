"""Broker key -> adapter class, spelled out. Adding a broker is one line here."""
from __future__ import annotations

from functools import lru_cache

from importlib import import_module

from .base import BrokerAdapter
from .dtos import Credentials
from .egress import broker_http
from .http import BrokerSession, SessionPolicy
from .ratelimit import RateLimiter, RateRule

# Dotted paths so that importing the registry does not import every vendor module.
ADAPTERS: dict[str, str] = {
    "alpaca": "backend.brokers.adapters.alpaca.AlpacaAdapter",
    "coinbase": "backend.brokers.adapters.coinbase.CoinbaseAdapter",
    "binance": "backend.brokers.adapters.binance.BinanceAdapter",
    "kraken": "backend.brokers.adapters.kraken.KrakenAdapter",
    "ibkr": "backend.brokers.adapters.ibkr.IbkrAdapter",
}


class UnknownBroker(KeyError):
    pass


@lru_cache(maxsize=None)
def get_adapter_class(key: str) -> type[BrokerAdapter]:
    try:
        module, _, name = ADAPTERS[key].rpartition(".")
    except KeyError:
        raise UnknownBroker(key) from None
    return getattr(import_module(module), name)


def broker_keys() -> list[str]:
    """Brokers whose adapter loads. One that does not (its module missing, or half-written:
    an import inside it fails, or the class is not defined yet) is left out rather than
    breaking the list. get_adapter_class itself still raises: tests/sandbox/test_registry.py
    calls it for every broker and fails loudly."""
    keys = []
    for key in sorted(ADAPTERS):
        try:
            get_adapter_class(key)
        except (ImportError, AttributeError):       # ImportError includes ModuleNotFoundError
            continue
        keys.append(key)
    return keys


@lru_cache(maxsize=1)
def default_limiter() -> RateLimiter:
    import redis
    from django.conf import settings

    rules = {k: RateRule.from_setting(v) for k, v in settings.BROKER_RATE_LIMITS.items()}
    return RateLimiter(redis.Redis.from_url(settings.REDIS_URL), rules)


def session_policy() -> SessionPolicy:
    from django.conf import settings

    return SessionPolicy(**settings.BROKER_SESSION_POLICY)


def build_adapter(key: str, *, environment: str, credentials: Credentials,
                  limiter: RateLimiter | None = None, base_url: str | None = None,
                  options: dict | None = None) -> BrokerAdapter:
    """An adapter wired to its configured base URL and the shared limiter. `options`: the
    connection's switches (BrokerConnection.options), read by the adapter class."""
    from django.conf import settings

    cls = get_adapter_class(key)
    session = BrokerSession(
        broker=key,
        base_url=base_url or settings.BROKER_BASE_URLS[key][environment],
        scope=cls.rate_scope(credentials, environment),
        limiter=limiter if limiter is not None else default_limiter(),
        policy=session_policy(),
        vendor_errors=getattr(cls, "vendor_errors", None),
        secrets=credentials.secrets(),
        http=broker_http(),
    )
    return cls(credentials=credentials, environment=environment, session=session,
               **cls.adapter_options(options or {}))
