"""The reconcile step's rules live in backend/reconcile (typed breaks, targeted re-pull).

What counts toward a holding is kept here too, for the modules that read history the way
reconcile does (imports rebuild a feedless account's holdings from it)."""
from backend.reconcile.totals import NOT_COUNTED_STATUSES

__all__ = ["NOT_COUNTED_STATUSES"]
