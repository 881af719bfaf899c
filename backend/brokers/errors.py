"""The few kinds of broker failure. Everything above the adapters reads only the kind.

    AuthError        the key is wrong, revoked or lacks permission: halt, do not retry
    RateLimited      the broker (or our shared budget) says wait `retry_after` seconds
    TransientError   network trouble, 5xx, timeouts, malformed bodies: retry with backoff
    PermanentError   the request itself is wrong and will stay wrong: fail the run
    BadRecord        one record cannot be understood: skip it, log it, go on

Messages never contain secrets: `scrub()` removes them before an error is built from
anything the broker echoed back.
"""
from __future__ import annotations

from collections.abc import Iterable


class BrokerError(Exception):
    kind = "broker_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "status": self.status, "code": self.code}


class AuthError(BrokerError):
    kind = "auth"

    def __init__(self, message: str, *, revoked: bool = False, **kw):
        super().__init__(message, **kw)
        self.revoked = revoked


class RateLimited(BrokerError):
    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float, banned: bool = False, local: bool = False,
                 scope: str = "", **kw):
        super().__init__(message, **kw)
        self.retry_after = max(0.0, float(retry_after))
        self.banned = banned
        # local: our own pacing said wait (the shared budget is spent, or enough threads are
        # already waiting on it), not the broker. Such a wait always ends: it never fails a run.
        self.local = local
        self.scope = scope              # local: the budget scope that said wait

    def as_dict(self) -> dict:
        return {**super().as_dict(), "retry_after": self.retry_after, "banned": self.banned, "local": self.local}


class TransientError(BrokerError):
    kind = "transient"
    retryable = True


class PermanentError(BrokerError):
    kind = "permanent"


class BadRecord(BrokerError):
    kind = "bad_record"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (and its first 12 characters, in case it was cut) with ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
            if len(secret) > 12:
                text = text.replace(secret[:12], "***")
    return text[:500]
