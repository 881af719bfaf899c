"""The fewest requests (and, where the broker weighs requests, the least cost) a full sync
of an account can make, given each API's page sizes. The benchmark divides by these.

Every simulator now reports its own minimum in the truth (`truth["minimum"]`, computed
from its raw records, with a docstring in the simulator saying what is counted); the
functions here are the fallback for a sandbox whose truth has none.
"""
from __future__ import annotations


def _pages(n: int, size: int) -> int:
    # The end is known only from a short page, so n records need n // size + 1 pages.
    return n // size + 1


def alpaca(truth: dict) -> dict:
    # positions 1 + account 1 (cash); activities: pages of 100; orders: windows of 500 (docs §1.3).
    # The same count as sandbox/brokers/alpaca/state.py minimum().
    requests = 2 + _pages(len(truth["transactions"]), 100) + _pages(len(truth["orders"]), 500)
    return {"requests": requests, "cost": float(requests)}


def ibkr(truth: dict, history_days: int = 300) -> dict:
    # One statement per window of 365 days: the newest costs SendRequest + one 1019 poll + the
    # statement (read by positions), then 1 each for transactions and orders by its reference
    # code; each older window 3 (transactions) + 1 (orders). The same count as the sandbox's truth.
    windows = -(-history_days // 365)
    requests = 3 + 1 + 1 + 4 * (windows - 1)
    return {"requests": requests, "cost": float(requests)}


MINIMUMS = {"alpaca": alpaca, "ibkr": ibkr}


def minimum_for(broker: str, truth: dict) -> dict:
    """A simulator that knows its raw records (Coinbase's v2 duplicates of fills, Binance's
    per-symbol pages, Kraken's ledger rows per trade) reports its own minimum in the truth."""
    if "minimum" in truth:
        return truth["minimum"]
    if broker not in MINIMUMS:
        raise KeyError(f"the {broker} sandbox reports no minimum in its truth and there is no fallback")
    return MINIMUMS[broker](truth)
