"""The lot engine: pure Python (no Django), deterministic, Decimal throughout."""
from .book import METHODS
from .ledger import Ledger, term_of
from .state import asset_states, combined, parked_pieces, replace_assets, restore, snapshot, split
from .types import Disposal, Event, Income, Kind, Leg, Lot, LotLink, PickRefused, Pricer

__all__ = ["METHODS", "Ledger", "term_of", "asset_states", "combined", "parked_pieces", "replace_assets",
           "restore", "snapshot", "split", "Disposal", "Event", "Income",
           "Kind", "Leg", "Lot", "LotLink", "PickRefused", "Pricer"]
