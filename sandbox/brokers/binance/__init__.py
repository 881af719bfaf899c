"""Binance Spot (REST /api/v3 + the /sapi wallet endpoints) simulator."""
from .sim import BinanceSim

__all__ = ["BinanceSim"]
