"""Kraken Spot REST adapter: adapter.py (the four questions), client.py (signing, errors,
retries), paging.py (newest-first offset lists read oldest-first), mapping.py (records ->
DTOs), assets.py (asset ids and pairs -> canonical codes)."""
from .adapter import KrakenAdapter

__all__ = ["KrakenAdapter"]
