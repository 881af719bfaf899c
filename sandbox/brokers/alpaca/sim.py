"""AlpacaSim: the BrokerSim for Alpaca Trading API v2 (paper and live, separate keys)."""
from __future__ import annotations

import itertools
import math
from typing import Any

from ...base import AccountNotFound, BrokerSim, SimClock
from ...http import Request, Response
from . import api, faulted, marketdata
from .state import DEFAULT_RATE_LIMIT, RATE_WINDOW, Account


class AlpacaSim(BrokerSim):
    name = "alpaca"
    environments = ("paper", "live")
    record_fault_kinds = frozenset({"drop", "double_split", "round"})

    def __init__(self, clock: SimClock):
        super().__init__(clock)
        self.accounts: dict[str, Account] = {}
        self.by_key: dict[tuple[str, str], Account] = {}     # (environment, key id) -> account
        self._numbers = itertools.count(1)
        self.data_windows: dict[str, tuple[float, int]] = {}      # key -> (window end, used)
        self.data_rate_limit = marketdata.DATA_RATE_LIMIT            # tests may lower it

    def create_account(self, environment: str, *, seed: int, positions: int, activities: int,
                       rate_limit_per_min: int = DEFAULT_RATE_LIMIT, **options: Any) -> dict[str, Any]:
        if options:
            raise TypeError(f"alpaca accounts take no options {sorted(options)}; known: rate_limit_per_min")
        if environment not in self.environments:
            raise ValueError(f"alpaca has no environment {environment!r}")
        if int(rate_limit_per_min) < 1:
            raise ValueError("rate_limit_per_min must be >= 1")
        with self.lock:
            number = next(self._numbers)
        account = Account(number=number, environment=environment, seed=int(seed), positions=int(positions),
                          activities=int(activities), rate_limit_per_min=int(rate_limit_per_min))
        with self.lock:
            self.accounts[account.account_id] = account
            self.by_key[(environment, account.api_key)] = account
        return {"account_id": account.account_id, "broker_account_id": account.broker_account_id,
                "environment": environment, "credentials": account.credentials()}

    def has_account(self, account_id: str) -> bool:
        return account_id in self.accounts

    def check_record_fault(self, account_id: str, fault) -> None:
        account = self.account(account_id)
        faulted.check(account.ledger, list(account.ledger.holdings.values()), fault)

    def account(self, account_id: str) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise AccountNotFound(account_id) from None

    def advance(self, account_id: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            return self.account(account_id).advance(self.clock.now(), **changes)

    def revoke(self, account_id: str) -> None:
        with self.lock:
            self.account(account_id).revoked = True

    def truth(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            return self.account(account_id).truth()

    def handle(self, environment: str, request: Request) -> Response:
        if environment == "data":
            return marketdata.handle(self, request)
        return api.handle(self, environment, request)

    def data_window(self, key: str) -> tuple[bool, dict[str, str]]:
        """The market-data API's own per-key window (apart from the trading API's):
        (allowed, X-Ratelimit-* headers). The caller holds the lock."""
        now = self.clock.now()
        end, used = self.data_windows.get(key, (0.0, 0))
        if now >= end:
            end, used = now + RATE_WINDOW, 0
        used += 1
        self.data_windows[key] = (end, used)
        return used <= self.data_rate_limit, {"X-Ratelimit-Limit": str(self.data_rate_limit),
                                              "X-Ratelimit-Remaining": str(max(0, self.data_rate_limit - used)),
                                              "X-Ratelimit-Reset": str(math.ceil(end))}

    def rate_limited_response(self, retry_after: float) -> Response:
        """Alpaca's 429: its JSON body and X-Ratelimit-* headers (no Retry-After is documented)."""
        reset = math.ceil(self.clock.now() + retry_after)
        return Response.json(api.RATE_LIMITED, 429, {"X-Ratelimit-Limit": str(DEFAULT_RATE_LIMIT),
                                                     "X-Ratelimit-Remaining": "0",
                                                     "X-Ratelimit-Reset": str(reset)})

    def server_error_response(self, status: int) -> Response:
        # Shape not confirmed (docs/brokers.md §7.5): the documented {code, message} with the
        # 8-digit code whose first three digits are the status.
        return Response.json({"code": status * 100_000 + 10_000, "message": "internal server error"}, status)
