"""Simulated Interactive Brokers Flex Web Service: ledger.py (accounts, events), records.py (Flex
records), generator.py (deterministic history, advance), render.py (XML), sim.py (HTTP)."""
from .sim import IbkrSim

__all__ = ["IbkrSim"]
