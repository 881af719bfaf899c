"""Binance's request-weight limits, counted the way Binance counts them.

/api: weight per client IP across every account and key, in fixed 1-minute windows
(6,000 by default, from exchangeInfo's REQUEST_WEIGHT rule). Over the limit: 429
with Retry-After until the window ends. A client that keeps sending while told to wait
is banned: 418 "IP banned until <ms>", 2 minutes the first time and doubling each time
up to 3 days (rest-api.md "IP Limits": "scale in duration ... from 2 minutes to 3 days").

/sapi: counted apart from /api, per endpoint: IP-weighted endpoints have 12,000 a
minute each, UID-weighted ones (withdraw history: 18,000 a call) 180,000 a minute per
account (dev.binance.vision "request limit on the API endpoints").

`limit`, `ban_seconds` and the /sapi limits are plain attributes so tests can shrink them.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

WINDOW_MS = 60_000
MAX_BAN_MS = 3 * 86_400_000


@dataclass
class Verdict:
    used: int
    status: int = 200                  # 200, 429 or 418
    retry_after: int = 0               # seconds
    banned_until: int = 0              # ms, for 418


@dataclass
class _Window:
    minute: int = -1
    used: int = 0
    warned_until: int = 0              # a 429 was sent; sending before this gets a ban
    banned_until: int = 0
    bans: int = 0


class WeightLimiter:
    """REQUEST_WEIGHT per IP for /api."""

    def __init__(self, limit: int = 6000, ban_seconds: float = 120.0):
        self.limit = limit
        self.ban_seconds = ban_seconds
        self._ips: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self.spent = 0                  # weight granted since start, every IP (benchmarks read it)

    def reset(self) -> None:
        with self._lock:
            self._ips.clear()

    def used(self, ip: str, now_ms: int) -> int:
        with self._lock:
            w = self._ips.get(ip)
            return w.used if w and w.minute == now_ms // WINDOW_MS else 0

    def charge(self, ip: str, weight: int, now_ms: int) -> Verdict:
        with self._lock:
            w = self._ips.setdefault(ip, _Window())
            if w.banned_until > now_ms:
                return Verdict(w.used, 418, _seconds(w.banned_until - now_ms), w.banned_until)
            minute = now_ms // WINDOW_MS
            if w.minute != minute:
                w.minute, w.used = minute, 0
            if w.used + weight <= self.limit:
                w.used += weight
                self.spent += weight
                return Verdict(w.used)
            if w.warned_until > now_ms:
                return self._ban(w, now_ms)
            w.warned_until = (minute + 1) * WINDOW_MS
            return Verdict(w.used, 429, _seconds(w.warned_until - now_ms))

    def _ban(self, w: _Window, now_ms: int) -> Verdict:
        length = min(MAX_BAN_MS, int(self.ban_seconds * 1000 * 2 ** w.bans))
        w.bans += 1
        w.banned_until = now_ms + length
        w.warned_until = 0
        return Verdict(w.used, 418, _seconds(length), w.banned_until)


class SapiLimiter:
    """Per-endpoint /sapi weight: by IP, or by account UID for UID-weighted endpoints."""

    def __init__(self, ip_limit: int = 12_000, uid_limit: int = 180_000):
        self.ip_limit = ip_limit
        self.uid_limit = uid_limit
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def charge(self, scope: str, endpoint: str, weight: int, now_ms: int, *, uid: bool) -> Verdict:
        limit = self.uid_limit if uid else self.ip_limit
        with self._lock:
            w = self._windows.setdefault((scope, endpoint), _Window())
            minute = now_ms // WINDOW_MS
            if w.minute != minute:
                w.minute, w.used = minute, 0
            if w.used + weight > limit:
                return Verdict(w.used, 429, _seconds((minute + 1) * WINDOW_MS - now_ms))
            w.used += weight
            return Verdict(w.used)


def _seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))
