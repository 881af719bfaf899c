"""One refresh per source at a time: a Redis lock with a lease, so a worker killed mid-run
cannot hold it past the lease, and a refresh that finds it taken is skipped, not queued."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from django.conf import settings

log = logging.getLogger("brokersync.market")


@contextmanager
def source_lock(kind: str, source: str):
    from backend.brokers.registry import default_limiter

    lock = default_limiter().redis.lock(f"bs:lock:market:{kind}:{source}", timeout=settings.MARKET_REFRESH_LEASE_SECONDS,
                                        blocking=False)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except Exception:      # the lease ran out meanwhile: another refresh may hold it now
                log.warning("market.lock_expired kind=%s source=%s", kind, source)
