"""Interactive Brokers (Flex Web Service v3): adapter.py (the four questions, date windows),
flex.py (the two calls, error table, pacing, polling), statement.py (Flex XML -> rows, typed by
ibflex), mapping.py (rows -> DTOs)."""
from .adapter import IbkrAdapter

__all__ = ["IbkrAdapter"]
