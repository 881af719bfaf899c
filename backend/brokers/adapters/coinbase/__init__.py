"""Coinbase adapter (Advanced Trade v3 + v2 Coinbase App), split by concern:
auth (JWT per request), parse (records -> DTOs), streams/wallets (cursors), adapter."""
from .adapter import CoinbaseAdapter

__all__ = ["CoinbaseAdapter"]
