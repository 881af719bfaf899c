"""The simulated Flex Web Service (endpoint "ibkr", environment "live").

    GET /AccountManagement/FlexWebService/SendRequest?t=TOKEN&q=QUERY_ID&v=3&fd=yyyymmdd&td=yyyymmdd
    GET /AccountManagement/FlexWebService/GetStatement?t=TOKEN&q=REFERENCE_CODE&v=3

Every answer is HTTP 200 with XML. Enforced as IBKR does: a User-Agent, v=3, the token (1015
invalid or replaced, 1012 expired), the query id (1014), one request per second and ten per
minute per token (1018), a range of at most 365 days (1020; our choice of code, the guide names
none) within the four previous calendar years (1003). A statement is generated when asked for
(it shows the account as it was then) and GetStatement answers 1019 for its first
`generation_polls` polls. A reference code belongs to its token; an unknown one is 1017.
"""
from __future__ import annotations

import hashlib
import random
from collections import deque
from datetime import date, datetime, timedelta
from typing import Any

from sandbox.base import AccountNotFound, BrokerSim, SimClock
from sandbox.http import Request, Response

from . import render
from .generator import advance, generate
from .ledger import EASTERN, Account

SERVICE = "/AccountManagement/FlexWebService"
MAX_DAYS = 365
HISTORY_YEARS = 4
PER_SECOND, PER_MINUTE = 1, 10
MESSAGES = {
    "1003": "Statement is not available.",
    "1012": "Token has expired.",
    "1014": "Query is invalid.",
    "1015": "Token is invalid.",
    "1017": "Reference code is invalid.",
    "1018": "Too many requests have been made from this token. Please try again shortly.",
    "1019": "Statement generation in progress. Please try again shortly.",
    "1020": "Invalid request or unable to validate request.",
}
XML = {"Content-Type": "text/xml;charset=UTF-8"}


class _Reference:
    def __init__(self, account: Account, start: date, end: date, at: float, polls: int):
        self.account, self.start, self.end, self.at, self.polls = account, start, end, at, polls
        self.body: bytes | None = None


class IbkrSim(BrokerSim):
    name = "ibkr"
    environments = ("live",)

    def __init__(self, clock: SimClock):
        super().__init__(clock)
        self.accounts: dict[str, Account] = {}
        self.by_token: dict[str, Account] = {}
        self.rngs: dict[str, random.Random] = {}
        self.references: dict[str, _Reference] = {}
        self.requests: dict[str, deque[float]] = {}        # token -> times of accepted requests
        self.next_reference = 0
        self.unthrottled: set[str] = set()

    # -- accounts ---------------------------------------------------------------------------
    def create_account(self, environment: str, *, seed: int, positions: int, activities: int,
                       history_days: int = 300, generation_polls: int = 1, token_ttl_seconds: float | None = None,
                       throttle: bool = True, **options: Any) -> dict[str, Any]:
        """Options: history_days (how far back the account opened; past 365 a first sync reads
        several windows), generation_polls (GetStatement 1019 answers per statement),
        token_ttl_seconds (the token expires: 1012) and throttle (False: no 1018, for benchmarks
        that measure us rather than IBKR's budget)."""
        if options:
            raise ValueError(f"unknown ibkr options {sorted(options)}; have history_days, generation_polls, "
                             "token_ttl_seconds, throttle")
        with self.lock:
            n = len(self.accounts) + 1
            now = self.clock.now()
            today = datetime.fromtimestamp(now, EASTERN).date()
            account = Account(f"ibkr:{n}", f"U{7_000_000 + seed * 97 + n:07d}", _token(seed, n),
                              str(800_000 + seed * 31 + n), today - timedelta(days=int(history_days)), now,
                              token_expires_at=now + float(token_ttl_seconds) if token_ttl_seconds else None,
                              generation_polls=int(generation_polls))
            account.next_id = 400_000_000 + n * 10_000_000
            rng = random.Random(f"ibkr:{seed}")
            generate(account, rng, positions=positions, activities=activities, history_days=int(history_days))
            self.accounts[account.account_id] = account
            self.by_token[account.token] = account
            if not throttle:
                self.unthrottled.add(account.token)
            self.rngs[account.account_id] = rng
        return {"account_id": account.account_id, "broker_account_id": account.broker_account_id,
                "environment": environment,
                "credentials": {"api_secret": account.token, "api_key": account.query_id}}

    def account(self, account_id: str) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise AccountNotFound(account_id) from None

    def advance(self, account_id: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            return advance(self.account(account_id), self.rngs[account_id], self.clock.now(), changes)

    def revoke(self, account_id: str) -> None:
        """The owner generated a new token: the old one is invalid from now on (1015)."""
        with self.lock:
            self.account(account_id).revoked = True

    def truth(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            a = self.account(account_id)
            events = [e for e in a.events if e.at <= self.clock.now()]
            return {"broker_account_id": a.broker_account_id,
                    "positions": [{"symbol": k, "quantity": str(q)} for k, q in sorted(a.holdings.items()) if q],
                    "cash": {c: str(v) for c, v in sorted(a.cash.items()) if v},
                    "transactions": [e.truth for e in events if e.truth],
                    "orders": [{"broker_id": e.attrs["ibOrderID"], "status": "filled"} for e in events
                               if e.kind == "order"],
                    "minimum": minimum(a)}

    # -- HTTP -------------------------------------------------------------------------------
    def handle(self, environment: str, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path not in (f"{SERVICE}/SendRequest", f"{SERVICE}/GetStatement"):
            return Response(404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html"})
        with self.lock:
            if not request.header("user-agent") or request.arg("v") != "3":
                return self._fail("1020")
            account = self.by_token.get(request.arg("t") or "")
            if account is None or account.revoked:
                return self._fail("1015")
            now = self.clock.now()
            if account.token_expires_at is not None and now >= account.token_expires_at:
                return self._fail("1012")
            if not self._admit(account.token, now):
                return self._fail("1018")
            if path.endswith("SendRequest"):
                return self._send_request(account, request, now)
            return self._get_statement(account, request)

    def _send_request(self, account: Account, request: Request, now: float) -> Response:
        if request.arg("q") != account.query_id:
            return self._fail("1014")
        today = datetime.fromtimestamp(now, EASTERN).date()
        window = _window(request.arg("fd"), request.arg("td"), today)
        if window is None:
            return self._fail("1020")
        start, end = window
        if start < date(today.year - HISTORY_YEARS, 1, 1):
            return self._fail("1003")
        self.next_reference += 1
        code = str(int(hashlib.sha256(f"{account.token}:{self.next_reference}".encode()).hexdigest()[:9], 16))
        self.references[code] = _Reference(account, start, end, now, account.generation_polls)
        url = f"http://{request.host or 'ndcdyn.interactivebrokers.com'}{SERVICE}/GetStatement"
        return Response(200, render.envelope("Success", now, ReferenceCode=code, Url=url), XML)

    def _get_statement(self, account: Account, request: Request) -> Response:
        reference = self.references.get(request.arg("q") or "")
        if reference is None or reference.account is not account:
            return self._fail("1017")
        if reference.polls > 0:
            reference.polls -= 1
            return Response(200, render.envelope("Warn", self.clock.now(), ErrorCode="1019",
                                                 ErrorMessage=MESSAGES["1019"]), XML)
        if reference.body is None:
            reference.body = render.statement(account, reference.start, reference.end, reference.at)
        return Response(200, reference.body, XML)

    def _admit(self, token: str, now: float) -> bool:
        """One request a second and ten a minute per token (Flex error table, code 1018)."""
        if token in self.unthrottled:
            return True
        times = self.requests.setdefault(token, deque())
        while times and times[0] <= now - 60:
            times.popleft()
        if len(times) >= PER_MINUTE or (times and now - times[-1] < 1.0 / PER_SECOND):
            return False
        times.append(now)
        return True

    def reset_limits(self) -> None:
        with self.lock:
            self.requests.clear()

    def _fail(self, code: str) -> Response:
        return Response(200, render.envelope("Fail", self.clock.now(), ErrorCode=code,
                                             ErrorMessage=MESSAGES[code]), XML)

    def rate_limited_response(self, retry_after: float) -> Response:
        # IBKR says "too many requests" inside a 200, with no wait attached.
        return self._fail("1018")

    def server_error_response(self, status: int) -> Response:
        return Response(status, f"<html><head><title>{status} Service Unavailable</title></head><body>"
                                f"<h1>{status}</h1></body></html>".encode(), {"Content-Type": "text/html"})


def minimum(account: Account) -> dict[str, Any]:
    """The fewest requests a first sync makes: the newest 365-day window's statement
    (SendRequest, one 1019 poll, the statement) read by positions, then by transactions and
    orders by its reference code (1 each); each older window 3 + 1 for orders."""
    days = (datetime.fromtimestamp(account.created_at, EASTERN).date() - account.opened).days + 1
    windows = -(-days // MAX_DAYS)
    requests = 3 + 1 + 1 + 4 * (windows - 1) + (account.generation_polls - 1) * windows
    return {"requests": requests, "cost": float(requests)}


def _token(seed: int, n: int) -> str:
    """IBKR's Flex tokens are long strings of digits."""
    return str(int(hashlib.sha256(f"ibkr-token:{seed}:{n}".encode()).hexdigest(), 16))[:24]


def _window(fd: str | None, td: str | None, today: date) -> tuple[date, date] | None:
    """fd/td (yyyymmdd, both or neither, at most 365 days); neither: the query's own period,
    here the last business day's week."""
    if not fd and not td:
        return today - timedelta(days=6), today
    try:
        start, end = (datetime.strptime(v or "", "%Y%m%d").date() for v in (fd, td))
    except ValueError:
        return None
    if start > end or (end - start).days >= MAX_DAYS:
        return None
    return start, min(end, today)

