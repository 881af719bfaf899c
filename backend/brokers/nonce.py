"""One nonce source per API key, shared by every worker process.

Kraken rejects a private call whose nonce is not greater than the last one it accepted
for that key (`EAPI:Invalid nonce`, docs/brokers.md §4.2). Two Celery workers that
each count their own nonces collide as soon as they sign with the same key, the classic
failure reported in rotki#2787 and ccxt#5110. So nonces come from Redis:

    next(key)  = max(last + 1, now in microseconds), atomically (one Lua script)

Unique and increasing at issue time is not quite enough: a worker can take nonce N, be
descheduled, and send it after another worker's N+1 has landed. `exclusive(key)` closes
that gap: a short Redis lock held from taking the nonce until the answer is back. It
costs no throughput, because Kraken's call counter (15 calls, -0.33/s) is per key anyway.

Redis keys are `<prefix>:<sha256(api key)[:32]>`: the API key itself is never stored.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import TransientError

log = logging.getLogger("brokersync.nonce")

_NEXT = """
local n = redis.call('INCR', KEYS[1])
local now = tonumber(ARGV[1])
if n < now then
  redis.call('SET', KEYS[1], ARGV[1])
  n = now
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return n
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A nonce may be forgotten after a day of silence: the next one is the clock again, which
# is larger than anything issued before (issued nonces never run ahead of the clock by
# more than the calls made in the same microsecond).
NONCE_TTL_SECONDS = 86_400
# Longer than one request with its in-place retries (connect 3 s + read 20 s, twice).
LOCK_TTL_SECONDS = 60.0
LOCK_WAIT_SECONDS = 30.0
LOCK_POLL_SECONDS = 0.005


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def _now_us(clock: Callable[[], float]) -> int:
    return int(clock() * 1_000_000)


class RedisNonceSource:
    def __init__(self, client, *, prefix: str = "bs:nonce:kraken", clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.redis = client
        self.prefix = prefix
        self.clock = clock
        self.sleep = sleep
        self._next = client.register_script(_NEXT)
        self._release = client.register_script(_RELEASE)

    def next(self, api_key: str) -> int:
        """A nonce greater than every nonce issued for this key before, by any process."""
        key = f"{self.prefix}:{key_digest(api_key)}"
        return int(self._next(keys=[key], args=[_now_us(self.clock), NONCE_TTL_SECONDS]))

    @contextmanager
    def exclusive(self, api_key: str) -> Iterator[None]:
        """Only one request in flight per key across all workers (see the module note)."""
        key = f"{self.prefix}:lock:{key_digest(api_key)}"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not self.redis.set(key, token, nx=True, px=int(LOCK_TTL_SECONDS * 1000)):
            if time.monotonic() > deadline:
                raise TransientError("kraken: another worker kept this key busy; try again later")
            self.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            self._release(keys=[key], args=[token])


class LocalNonceSource:
    """The same rules inside one process, for code running without Redis (scripts, some
    tests). Not safe across processes: production wiring uses RedisNonceSource."""

    def __init__(self, *, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._last: dict[str, int] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def next(self, api_key: str) -> int:
        digest = key_digest(api_key)
        with self._guard:
            nonce = max(self._last.get(digest, 0) + 1, _now_us(self.clock))
            self._last[digest] = nonce
            return nonce

    @contextmanager
    def exclusive(self, api_key: str) -> Iterator[None]:
        digest = key_digest(api_key)
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        if not lock.acquire(timeout=LOCK_WAIT_SECONDS):
            raise TransientError("kraken: this key stayed busy; try again later")
        try:
            yield
        finally:
            lock.release()


_LOCAL = LocalNonceSource()
_SHARED: dict[str, RedisNonceSource] = {}
_SHARED_GUARD = threading.Lock()


def default_nonce_source() -> RedisNonceSource | LocalNonceSource:
    """The Redis source at settings.REDIS_URL (one per process and URL). Without Django
    settings (a script, a unit test) the process-local source stands in."""
    try:
        from django.conf import settings
        url = settings.REDIS_URL
    except Exception:           # Django missing or not configured: ImportError / ImproperlyConfigured
        log.warning("nonce.local_source reason=no_django_settings")
        return _LOCAL
    with _SHARED_GUARD:
        if url not in _SHARED:
            import redis
            _SHARED[url] = RedisNonceSource(redis.Redis.from_url(url))
        return _SHARED[url]
