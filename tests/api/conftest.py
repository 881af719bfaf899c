"""API test fixtures: accounts on the broker
sandbox, which every test that checks keys reaches over real HTTP."""
from __future__ import annotations

import pytest

from backend.brokers import registry

from .factories import new_sandbox_account


@pytest.fixture
def broker_account(sandbox, redis_client):
    """Make a sandbox account: broker_account() is Alpaca paper; broker_account("coinbase",
    can_trade=True) a Coinbase key that can trade. Our limiter keys in Redis start cleared."""
    def make(broker: str = "alpaca", environment: str | None = None, **options) -> dict:
        return new_sandbox_account(sandbox, broker, environment, **options)

    return make


@pytest.fixture
def account(broker_account) -> dict:
    """An Alpaca paper account on the sandbox."""
    return broker_account()


@pytest.fixture
def unloadable_adapter(monkeypatch, tmp_path):
    """Register broker "ghost" with an adapter that cannot load, the ways a missing or
    half-written adapter fails: unloadable_adapter("missing module" | "import error" |
    "missing class"). Nothing stands in for a broker: there is no ghost adapter at all."""
    (tmp_path / "half_written_adapter.py").write_text(
        "from backend.brokers.base import BrokerAdapter, NotWrittenYet  # noqa\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    paths = {"missing module": "backend.brokers.adapters.ghost.GhostAdapter",
             "import error": "half_written_adapter.GhostAdapter",
             "missing class": "backend.brokers.adapters.alpaca.GhostAdapter"}

    def register(failure: str = "missing module") -> None:
        monkeypatch.setitem(registry.ADAPTERS, "ghost", paths[failure])
        registry.get_adapter_class.cache_clear()

    yield register
    registry.get_adapter_class.cache_clear()
