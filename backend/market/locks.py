"""One refresh per source at a time: a Redis lock with a lease, so a worker killed mid-run
cannot hold it past the lease, and a refresh that finds it taken is skipped, not queued."""
from __future__ import annotations

from django.conf import settings

from backend.core.locks import lease_lock


def source_lock(kind: str, source: str):
    return lease_lock(f"market:{kind}:{source}", settings.MARKET_REFRESH_LEASE_SECONDS)
