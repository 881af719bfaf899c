"""Simulated Coinbase Advanced Trade v3 + v2 Coinbase App API (see sim.py)."""
from .sim import CoinbaseSim

__all__ = ["CoinbaseSim"]
