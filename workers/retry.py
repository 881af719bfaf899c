"""One table decides what a broker error means for a sync step.

    AuthError        halt: the connection is marked expired/revoked, its schedule stops
    RateLimited      retry after the broker's wait (never less than our own floor), with a
                     larger allowance than failures: waiting is not failing
    TransientError   retry with capped exponential backoff and full jitter
    database down    retry like a transient error (the step's transaction rolled back)
    Redis down       the same (the shared rate limiter or a lock lost its server mid-step)
    PermanentError   fail the run
    anything else    fail the run (a bug: it is logged with its traceback)

Retries count only while a step makes no progress: a step that committed a page since
its last retry starts counting again, so a long rate-limited backfill is never failed
for being long.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import psycopg
import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError

from backend.brokers.errors import AuthError, BrokerError, PermanentError, RateLimited, TransientError

BACKOFF_BASE_SECONDS = 2.0


@dataclass(frozen=True)
class Decision:
    action: str            # "retry" | "halt" | "fail"
    countdown: float = 0.0


# The database went away mid-step (restart, failover): the step rolled back; retry it.
# psycopg's own classes too: a COPY (backend/sync/staging.py) talks to psycopg below Django's
# wrapper, so a server that went away mid-COPY raises psycopg.OperationalError as it is.
DATABASE_TRANSIENT = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# Redis went away mid-step (restart, failover): the limiter's or the lock's call failed; retry it.
REDIS_TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def decide(error: Exception, attempt: int) -> Decision:
    if isinstance(error, AuthError):
        return Decision("halt")
    if isinstance(error, RateLimited):
        # The broker asked us to wait, it did not fail: a longer (still finite) allowance.
        if attempt >= settings.SYNC_STEP_MAX_RATE_LIMITED_RETRIES:
            return Decision("fail")
        return Decision("retry", countdown(error, attempt))
    if isinstance(error, (TransientError,) + DATABASE_TRANSIENT + REDIS_TRANSIENT):
        if attempt >= settings.SYNC_STEP_MAX_RETRIES:
            return Decision("fail")
        return Decision("retry", countdown(error, attempt))
    if isinstance(error, (PermanentError, BrokerError)):
        return Decision("fail")
    return Decision("fail")


def countdown(error: Exception, attempt: int) -> float:
    cap = settings.SYNC_RETRY_BACKOFF_CAP
    jitter = random.uniform(0, min(cap, BACKOFF_BASE_SECONDS * 2 ** attempt))
    if isinstance(error, RateLimited):
        # The broker's wait is honoured exactly; a little jitter spreads the workers that
        # all hit the same shared budget, so they do not wake up together.
        return error.retry_after + random.uniform(0, min(2.0, 0.1 * (attempt + 1)))
    return jitter
