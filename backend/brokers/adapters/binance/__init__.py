"""Binance Spot adapter (a package: record parsing, symbol choice and the two history
walks are each their own module)."""
from .adapter import BinanceAdapter

__all__ = ["BinanceAdapter"]
