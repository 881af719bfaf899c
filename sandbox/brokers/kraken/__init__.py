"""Simulated Kraken Spot REST API: market.py (public data), state.py (records),
builder.py + generator.py (deterministic history, advance), api.py (HTTP), sim.py."""
from .sim import KrakenSim

__all__ = ["KrakenSim"]
