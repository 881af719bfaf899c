"""The fewest requests (and, where the broker weighs requests, the least cost) a full sync
of an account can make, given each API's page sizes. The benchmark divides by these."""
from __future__ import annotations

import math


def _pages(n: int, size: int) -> int:
    # The end is known only from a short page, so n records need n // size + 1 pages.
    return n // size + 1


def alpaca(truth: dict) -> dict:
    # positions: 1 call; activities: pages of 100; orders: windows of 500 (docs §1.3)
    requests = 1 + _pages(len(truth["transactions"]), 100) + _pages(len(truth["orders"]), 500)
    return {"requests": requests}


MINIMUMS = {"alpaca": alpaca}


def minimum_for(broker: str, truth: dict) -> dict:
    """A simulator that knows its raw records (Coinbase's v2 duplicates of fills, Binance's
    per-symbol pages, Kraken's ledger rows per trade) reports its own minimum in the truth."""
    if "minimum" in truth:
        return truth["minimum"]
    return MINIMUMS[broker](truth)
