"""The one HTTP session every adapter sends through.

It owns: the base URL (from configuration, so the sandbox can stand in), timeouts,
the shared rate limiter, learning from rate-limit headers, short in-place retries, and
the single table that turns transport failures and status codes into error kinds.
Adapters add a small `vendor_errors` hook for their own codes (Kraken's HTTP-200
errors, Binance's -1021...). Everything above reads only the error kind.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from .errors import AuthError, BrokerError, PermanentError, RateLimited, TransientError, scrub
from .ratelimit import RateLimiter

log = logging.getLogger("brokersync.http")

# Status -> error kind, for statuses an adapter's vendor table did not claim.
STATUS_KINDS: dict[int, type[BrokerError]] = {
    401: AuthError,
    403: AuthError,
    404: PermanentError,
    408: TransientError,
    409: TransientError,
    425: TransientError,
}

# (method, path, params, body, headers) -> (params, body, headers), called on every attempt so
# that nonces, timestamps and JWTs are fresh each time.
Signer = Callable[[str, str, Any, Any, dict], tuple[Any, Any, dict]]
VendorErrors = Callable[[requests.Response, Any], BrokerError | None]


@dataclass
class SessionPolicy:
    connect_timeout: float = 3.05
    read_timeout: float = 20.0
    transient_retries: int = 2          # in-place retries for 5xx / timeouts / bad bodies
    backoff_base: float = 0.25          # full jitter: sleep uniform(0, min(cap, base * 2**n))
    backoff_cap: float = 2.0
    max_inplace_wait: float = 10.0      # longer rate-limit waits (in all, per request) are raised to the task
    max_inplace_waiters: int = 4        # threads of one worker process asleep on one broker's budget
    min_429_wait: float = 1.0           # a Retry-After of 0 is never trusted (seen at Binance)


class _InPlaceWaiters:
    """How many threads of this process are asleep on each broker's budget."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}

    def enter(self, broker: str, most: int) -> bool:
        with self._lock:
            if self._count.get(broker, 0) >= most:
                return False
            self._count[broker] = self._count.get(broker, 0) + 1
            return True

    def leave(self, broker: str) -> None:
        with self._lock:
            self._count[broker] -= 1


_INPLACE = _InPlaceWaiters()


def json_loads(text: str | bytes) -> Any:
    """JSON with every non-integer number as Decimal: money never goes through float."""
    return json.loads(text, parse_float=Decimal)


class BrokerSession:
    def __init__(self, *, broker: str, base_url: str, scope: str, limiter: RateLimiter | None = None,
                 policy: SessionPolicy | None = None, vendor_errors: VendorErrors | None = None,
                 secrets: tuple[str, ...] = (), sleep: Callable[[float], None] = time.sleep,
                 http: requests.Session | None = None):
        self.broker = broker
        self.base_url = base_url.rstrip("/")
        self.scope = scope
        self.limiter = limiter
        self.policy = policy or SessionPolicy()
        self.vendor_errors = vendor_errors
        self.secrets = secrets
        self.sleep = sleep
        self.http = http or requests.Session()
        self.http.headers["User-Agent"] = "brokersync/1.0"
        self.requests_made = 0
        self.rate_limited = 0           # 429/418 answers received (benchmarks count them)
        self.rate_wait_seconds = 0.0

    # -- public ---------------------------------------------------------------------------
    def get_json(self, path: str, **kw) -> Any:
        return self.request_json("GET", path, **kw)

    def request_json(self, method: str, path: str, **kw) -> Any:
        """Send and parse the JSON body. A malformed body or a vendor error inside a
        200 (Kraken) is handled by the same retry loop as a bad status."""
        return self._with_retries(method, path, kw, parse=True)

    def request_decoded(self, method: str, path: str, decode: Callable[[bytes], Any], **kw) -> Any:
        """Like request_json for a body that is not JSON (IBKR's Flex Web Service answers XML):
        `decode` reads it, raising ValueError when it cannot, and vendor_errors sees what it
        returned, so an error inside a 200 is retried, waited on or raised like JSON's."""
        return self._with_retries(method, path, kw, parse=decode)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        return self._with_retries(method, path, kw, parse=False)

    def _with_retries(self, method: str, path: str, kw: dict, *, parse: bool | Callable[[bytes], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return self._attempt(method, path, parse=parse, **kw)
            except RateLimited as exc:
                if exc.local:
                    raise                       # our pacing already chose to give the thread back
                self.rate_wait_seconds += exc.retry_after
                if exc.retry_after > self.policy.max_inplace_wait or attempt >= self.policy.transient_retries + 3:
                    raise
                self.sleep(exc.retry_after)
            except TransientError as exc:
                if attempt >= self.policy.transient_retries:
                    raise
                delay = random.uniform(0, min(self.policy.backoff_cap, self.policy.backoff_base * 2 ** attempt))
                log.info("broker.retry_in_place broker=%s path=%s kind=%s delay=%.2f", self.broker, path, exc.kind, delay)
                self.sleep(delay)
            attempt += 1

    def _attempt(self, method: str, path: str, *, parse: bool | Callable[[bytes], Any], params: Any = None,
                 data: Any = None, headers: Mapping[str, str] | None = None, cost: float = 1,
                 sign: Signer | None = None, budget: tuple[str, str] | None = None) -> Any:
        broker, scope = budget or (self.broker, self.scope)
        self._acquire(cost, broker, scope)
        response = self._send(method, path, params, data, dict(headers or {}), sign)
        self._learn(response)
        self._raise_for_status(response, path, scope)
        if not parse:
            return response
        try:
            body = parse(response.content) if callable(parse) else json_loads(response.content)
        except ValueError:
            raise TransientError(f"{self.broker}: malformed body from {path}", status=response.status_code)
        error = self.vendor_errors(response, body) if self.vendor_errors else None
        if error is not None:
            if isinstance(error, RateLimited):
                self._note_rate_limited(error, scope)
            raise error
        return body

    # -- steps ----------------------------------------------------------------------------
    def _acquire(self, cost: float, broker: str, scope: str) -> None:
        """`broker`/`scope`: the budget this request spends (a session's own, or another one
        the broker counts apart, such as Kraken's public calls per IP)."""
        if self.limiter is None:
            return
        wait, waited = self.limiter.acquire(broker, scope, cost), 0.0
        while wait > 0:
            # Short waits are slept here, but never more than max_inplace_wait in all, and by
            # no more than max_inplace_waiters threads per broker: a spent budget must not
            # hold the threads every other broker's syncs need. Otherwise the task retries
            # when the budget is due, and the thread goes back to the pool meanwhile.
            if waited + wait > self.policy.max_inplace_wait or not _INPLACE.enter(broker, self._inplace_most(broker)):
                raise RateLimited(f"{self.broker}: shared rate budget spent", retry_after=wait, local=True,
                                  scope=scope)
            try:
                self.sleep(wait)
            finally:
                _INPLACE.leave(broker)
            waited += wait
            self.rate_wait_seconds += wait
            wait = self.limiter.acquire(broker, scope, cost)

    def _inplace_most(self, broker: str) -> int:
        """How many threads of this process may sleep on `broker`'s budget. A budget whose
        steps hold slots (Binance: max_active_steps) already caps how many threads spend it,
        so each slot holder may sleep a short wait: handing its thread back for half a second
        only cost a task execution that made no request."""
        rule = self.limiter.rule_for(broker)
        return max(self.policy.max_inplace_waiters, rule.max_active_steps if rule is not None else 0)

    def _send(self, method, path, params, data, headers, sign) -> requests.Response:
        if sign is not None:
            params, data, headers = sign(method, path, params, data, headers)
        self.requests_made += 1
        try:
            return self.http.request(method, self.base_url + path, params=params, data=data, headers=headers,
                                     timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                                     allow_redirects=False)
        except requests.Timeout:
            raise TransientError(f"{self.broker}: timeout on {path}")
        except requests.RequestException as exc:
            # The exception text can hold the URL with a signed query: keep only the types.
            raise TransientError(f"{self.broker}: {_error_types(exc)} on {path}")

    def _learn(self, response: requests.Response) -> None:
        """Feed rate-limit headers back to the shared limiter."""
        if self.limiter is None:
            return
        h = response.headers
        rule = self.limiter.rule_for(self.broker)
        if rule is None or rule.algorithm != "window":
            return
        try:
            if "X-MBX-USED-WEIGHT-1M" in h:
                now = time.time()
                resets_in = 60 - (now % 60)
                self.limiter.observe_used(self.broker, self.scope, used=float(h["X-MBX-USED-WEIGHT-1M"]),
                                          resets_in=resets_in)
            elif "X-Ratelimit-Remaining" in h and float(h.get("X-Ratelimit-Limit") or -1) == rule.limit:
                # Only a budget that is the one our rule models (Coinbase's hourly v2 budget
                # also sends these headers, and must not throttle its per-second v3 budget).
                used = rule.limit - float(h["X-Ratelimit-Remaining"])
                reset = float(h.get("X-Ratelimit-Reset") or 0)
                resets_in = max(0.0, reset - time.time()) if reset > 1e9 else reset
                self.limiter.observe_used(self.broker, self.scope, used=used, resets_in=resets_in)
        except (TypeError, ValueError):
            log.warning("broker.bad_ratelimit_headers broker=%s", self.broker)

    def _raise_for_status(self, response: requests.Response, path: str, scope: str) -> None:
        status = response.status_code
        if status < 400:
            if self.limiter is not None and self.rate_limited:
                self.limiter.strikes(scope, reset=True)
            return
        if self.vendor_errors is not None:
            body = _try_json(response)
            error = self.vendor_errors(response, body)
            if error is not None:
                if isinstance(error, RateLimited):
                    self._note_rate_limited(error, scope)
                raise error
        if status in (429, 418):
            error = RateLimited(f"{self.broker}: HTTP {status} on {path}", status=status,
                                retry_after=_retry_after(response), banned=status == 418)
            self._note_rate_limited(error, scope)
            raise error
        message = scrub(f"{self.broker}: HTTP {status} on {path}: {_reason(response)}", self.secrets)
        kind = STATUS_KINDS.get(status, TransientError if status >= 500 else PermanentError)
        raise kind(message, status=status)

    def _note_rate_limited(self, error: RateLimited, scope: str) -> None:
        """A 429 tightens the shared budget at once; a zero wait becomes our own backoff."""
        self.rate_limited += 1
        if self.limiter is None:
            error.retry_after = max(error.retry_after, self.policy.min_429_wait)
            return
        strikes = self.limiter.strikes(scope)
        own = min(300.0, self.policy.min_429_wait * 2 ** (strikes - 1))
        error.retry_after = max(error.retry_after, own) if error.retry_after < self.policy.min_429_wait else error.retry_after
        self.limiter.block(scope, error.retry_after)


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


def _try_json(response: requests.Response) -> Any:
    try:
        return json_loads(response.content)
    except ValueError:
        return None


def _reason(response: requests.Response) -> str:
    body = _try_json(response)
    if isinstance(body, dict):
        for key in ("message", "msg", "error_details", "error"):
            if body.get(key):
                return str(body[key])
    return (response.text or response.reason or "")[:200]


def _error_types(exc: BaseException) -> str:
    """ "ConnectionError(MaxRetryError, ConnectionResetError)": the type of the error and of
    what caused it (urllib3 wraps the socket's error twice), never their text."""
    causes, seen = [], {id(exc)}
    inner = getattr(exc.args[0], "reason", None) if exc.args else None
    current = inner if isinstance(inner, BaseException) else (exc.__cause__ or exc.__context__)
    if exc.args and isinstance(exc.args[0], BaseException):
        causes.append(type(exc.args[0]).__name__)
    while current is not None and id(current) not in seen and len(causes) < 4:
        seen.add(id(current))
        causes.append(type(current).__name__)
        nested = getattr(current, "reason", None)
        current = nested if isinstance(nested, BaseException) else (current.__cause__ or current.__context__)
    return f"{type(exc).__name__}({', '.join(dict.fromkeys(causes))})" if causes else type(exc).__name__
