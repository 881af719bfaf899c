"""Alpaca Trading API v2 simulator (paper + live). See state.py for accounts and truth,
generator.py for the deterministic history, api.py for the HTTP surface."""
from .sim import AlpacaSim

__all__ = ["AlpacaSim"]
