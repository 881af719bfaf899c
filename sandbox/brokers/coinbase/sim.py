"""CoinbaseSim: accounts, keys, auth, rate limits, and the BrokerSim interface.

Rate limits [docs/brokers.md §2.5]: private v3 endpoints 30 requests per second per key,
counted here in fixed 1-second windows; v2 endpoints 10,000 per hour per key, fixed hourly
windows. Every authenticated answer carries x-ratelimit-limit / -remaining / -reset, where
reset is the number of seconds (decimal) until the current window ends. Coinbase does not
document the unit; seconds-until-reset was chosen because the simulator's clock can be
pushed forward, which would make an epoch value meaningless to a wall-clock client.
An account created with `rate_limits="none"` is never refused (benchmarks that measure
brokersync rather than Coinbase's budget); its answers still carry the headers.
"""
from __future__ import annotations

import gc
import random
import time
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sandbox.base import AccountNotFound, BrokerSim, SimClock
from sandbox.http import Request, Response, SimError

from . import api, market, marketdata
from .advance import advance as advance_book
from .generator import generate
from .keys import Unauthorized, derive_key, key_name_of, verify
from .state import Book, iso_us, namespace
from .truth import truth as truth_of

UNAUTHORIZED_BODY = "Unauthorized"          # plain text [CB-ISS ccxt#26300]
V3_RATE_BODY = {"error": "RESOURCE_EXHAUSTED", "error_details": "Too many requests", "message": "Too many requests"}
V2_RATE_BODY = {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
RATE_LIMIT_MODES = ("real", "none")
UNLIMITED = 1_000_000_000                   # the budget an account with rate_limits="none" announces


class CoinbaseSim(BrokerSim):
    name = "coinbase"
    environments = ("live",)
    record_fault_kinds = frozenset({"drop"})

    def __init__(self, clock: SimClock):
        super().__init__(clock)
        self.books: dict[str, Book] = {}
        self.keys: dict[str, Book] = {}
        self._serials: dict[int, int] = {}
        # bucket -> (requests, window seconds); tests may lower these
        self.limits: dict[str, tuple[int, float]] = {"v3": (30, 1.0), "v2": (10_000, 3600.0)}
        self.unlimited: set[str] = set()     # account ids created with rate_limits="none"
        self.wall = time.time                # rate windows run on wall time (tests may freeze it)
        self.public_windows: dict[str, tuple[int, int]] = {}   # client ip -> (window index, used)
        self.listed: set[str] = set()        # products the accounts' coins trade in

    # -- accounts ---------------------------------------------------------------------------
    def create_account(self, environment: str, *, seed: int, positions: int, activities: int,
                       rate_limits: str = "real", **options: Any) -> dict[str, Any]:
        """Options: can_view (default true), can_trade, can_transfer (the key's permissions,
        default view-only) and rate_limits: "real" (default: the v3 30/s and v2 10,000/h
        windows of `self.limits`) or "none" (this account's requests are never refused, for
        benchmarks that measure brokersync, not Coinbase's budget; the x-ratelimit-*
        headers then announce a budget of 1,000,000,000)."""
        if rate_limits not in RATE_LIMIT_MODES:
            raise ValueError(f"rate_limits must be one of {list(RATE_LIMIT_MODES)}, not {rate_limits!r}")
        serial = self._serials.get(seed, 0)
        self._serials[seed] = serial + 1
        account_id = f"coinbase:{len(self.books) + 1}"
        key = derive_key(seed, serial)
        ns = namespace(seed, positions, activities) if serial == 0 else namespace(seed * 1000 + serial, positions,
                                                                                  activities)
        book = Book(account_id=account_id, seed=seed, key=key, ns=ns, options=options)
        with _gc_paused():
            generate(book, random.Random(f"coinbase:{seed}:{positions}:{activities}"), positions, activities)
        self.books[account_id] = book
        self.listed.update(book.products)
        self.record_faults[account_id] = book.faults
        self.keys[key.name] = book
        if rate_limits == "none":
            self.unlimited.add(account_id)
        return {"account_id": account_id, "broker_account_id": book.portfolio_uuid, "environment": environment,
                "credentials": {"api_key": key.name, "api_secret": key.private_pem}}

    def has_account(self, account_id: str) -> bool:
        return account_id in self.books

    def check_record_fault(self, account_id: str, fault) -> None:
        book = self.book(account_id)
        if not any(f.entry_id == fault.record for f in book.fills) and \
                not any(fault.record in w.pos for w in book.wallet_list):
            raise ValueError(f"no fill entry or v2 transaction {fault.record!r}")

    def send_out(self, account_id: str, asset: str, amount: Decimal, fee: Decimal) -> dict[str, Any]:
        book = self.book(account_id)
        if book.available(asset) < amount + fee:
            raise ValueError(f"{account_id} holds less than {amount + fee} {asset}")
        tx = book.send(book.tick(int(self.clock.now() * 1_000_000)), asset, amount, fee)
        return {"record": tx.id, "at": iso_us(tx.t)}

    def receive_in(self, account_id: str, asset: str, amount: Decimal) -> dict[str, Any]:
        book = self.book(account_id)
        tx = book.receive(book.tick(int(self.clock.now() * 1_000_000)), asset, amount)
        return {"record": tx.id, "at": iso_us(tx.t)}

    def book(self, account_id: str) -> Book:
        try:
            return self.books[account_id]
        except KeyError:
            raise AccountNotFound(account_id) from None

    def advance(self, account_id: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            return advance_book(self.book(account_id), int(self.clock.now() * 1_000_000), changes)

    def revoke(self, account_id: str) -> None:
        with self.lock:
            self.book(account_id).revoked = True

    def truth(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            return truth_of(self.book(account_id))

    # -- HTTP -------------------------------------------------------------------------------
    def handle(self, environment: str, request: Request) -> Response:
        if marketdata.is_public(request.path):
            return self._public(request)
        try:
            book = self._authenticate(request)
        except Unauthorized:
            return Response.text(UNAUTHORIZED_BODY, 401)
        bucket = "v2" if request.path.startswith("/v2/") else "v3"
        with self.lock:
            headers = self._count(book, bucket)
            if headers is None:
                return self._rate_limited(bucket)
            try:
                response = self._scope(book, bucket, request) or (
                    marketdata.route(self, request) if marketdata.is_market(request.path) else api.route(book, request))
            except SimError as exc:
                response = exc.response
        response.headers.update(headers)
        return response

    def _public(self, request: Request) -> Response:
        """The public market/ endpoints: no key, a per-IP window."""
        with self.lock:
            index = int(self.wall() // marketdata.PUBLIC_PERIOD)
            start, used = self.public_windows.get(request.client_ip, (index, 0))
            used = used if start == index else 0
            self.public_windows[request.client_ip] = (index, used + 1)
            try:
                if used >= marketdata.PUBLIC_LIMIT:
                    raise marketdata.public_rate_exceeded()
                return marketdata.route(self, request)
            except SimError as exc:
                return exc.response

    def catalogue(self) -> list[str]:
        """Every product listed: the market's own plus those any account's coins trade in."""
        return market.catalogue(self.listed)

    def _authenticate(self, request: Request) -> Book:
        authorization = request.header("authorization")
        book = self.keys.get(key_name_of(authorization))
        if book is None or book.revoked or not request.host:
            raise Unauthorized("unknown or revoked key")
        verify(authorization, book.key.public_key, key_name=book.key.name, method=request.method,
               host=request.host, path=request.path, now=time.time())
        return book

    @staticmethod
    def _scope(book: Book, bucket: str, request: Request) -> Response | None:
        """A key without the view scope can read its own permissions and nothing else."""
        if book.can_view or request.path.endswith("/key_permissions"):
            return None
        if bucket == "v2":
            return Response.json({"errors": [{"id": "invalid_scope", "message": "Invalid scope"}]}, 403)
        return Response.json({"error": "PERMISSION_DENIED", "error_details": "Missing required scopes",
                              "message": "Missing required scopes"}, 403)

    def _window(self, bucket: str) -> tuple[int, float, int, float]:
        limit, period = self.limits[bucket]
        now = self.wall()
        index = int(now // period)
        return limit, period, index, (index + 1) * period - now

    def _count(self, book: Book, bucket: str) -> dict[str, str] | None:
        """Count one request in the key's fixed window; None when the window is full."""
        limit, _, index, resets_in = self._window(bucket)
        if book.account_id in self.unlimited:
            limit = UNLIMITED
        start, used = book.windows.get(bucket, (index, 0))
        used = used if start == index else 0
        if used >= limit:
            return None
        book.windows[bucket] = (index, used + 1)
        return _headers(limit, limit - used - 1, resets_in)

    def _rate_limited(self, bucket: str) -> Response:
        limit, _, _, resets_in = self._window(bucket)
        return Response.json(V2_RATE_BODY if bucket == "v2" else V3_RATE_BODY, 429, _headers(limit, 0, resets_in))

    def rate_limited_response(self, retry_after: float) -> Response:
        limit, _ = self.limits["v3"]
        return Response.json(V3_RATE_BODY, 429, _headers(limit, 0, retry_after))

    def server_error_response(self, status: int) -> Response:
        # Body not documented; the v3 error shape with a gRPC-style code is assumed.
        code = "UNAVAILABLE" if status == 503 else "INTERNAL"
        return Response.json({"error": code, "error_details": "internal server error",
                              "message": "internal server error"}, status)


@contextmanager
def _gc_paused():
    """Generation allocates ~10^6 long-lived objects; cyclic GC passes over them would
    more than double the time (measured: 4.9 s -> 2.4 s for 200,000 activities)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _headers(limit: int, remaining: int, resets_in: float) -> dict[str, str]:
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": f"{max(0.0, resets_in):.3f}"}
