"""Broker key -> simulator class. Adding a broker's simulator is one line here."""
from __future__ import annotations

from importlib import import_module

from ..base import BrokerSim

# Dotted paths, resolved on first use, so one broker's import error names that broker.
_SIMULATORS = {
    "alpaca": "sandbox.brokers.alpaca.AlpacaSim",
    "coinbase": "sandbox.brokers.coinbase.CoinbaseSim",
    "binance": "sandbox.brokers.binance.BinanceSim",
    "kraken": "sandbox.brokers.kraken.KrakenSim",
    "ibkr": "sandbox.brokers.ibkr.IbkrSim",
}


def _load(path: str) -> type[BrokerSim]:
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)


BROKEN: dict[str, str] = {}


def load_simulators(only: list[str] | None = None) -> dict[str, type[BrokerSim]]:
    sims = {}
    for key, path in _SIMULATORS.items():
        if only and key not in only:
            continue
        try:
            sims[key] = _load(path)
        except (ImportError, AttributeError) as exc:
            # One broker's broken simulator must not take the others down with it;
            # tests/sandbox/test_registry.py fails loudly when any is missing.
            BROKEN[key] = f"{type(exc).__name__}: {exc}"
    return sims


SIMULATORS = load_simulators()
