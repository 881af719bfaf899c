"""A lock across every worker process, held for a lease: a worker killed while holding it
cannot keep it past the lease. Callers that find it taken skip or retry; nothing waits."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("brokersync.locks")


@contextmanager
def lease_lock(name: str, lease_seconds: float) -> Iterator[bool]:
    """Yields whether `bs:lock:<name>` was acquired; releases it after, unless the lease ran out
    meanwhile (someone else may hold it then: theirs is left alone)."""
    from backend.brokers.registry import default_limiter

    lock = default_limiter().redis.lock(f"bs:lock:{name}", timeout=lease_seconds, blocking=False)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 - expired meanwhile
                log.warning("lock.expired name=%s", name)
