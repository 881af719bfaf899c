"""What every broker simulator provides. State lives in the simulator, HTTP in server.py."""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from .http import Request, Response


class SimClock:
    """Wall time plus an offset the control API can push forward ("make time pass")."""

    def __init__(self):
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class AccountNotFound(KeyError):
    pass


class BrokerSim(ABC):
    name: str                                  # "alpaca"
    environments: tuple[str, ...] = ("live",)

    def __init__(self, clock: SimClock):
        self.clock = clock
        self.lock = threading.RLock()          # handlers run on many threads

    @abstractmethod
    def create_account(self, environment: str, *, seed: int, positions: int, activities: int,
                       **options: Any) -> dict[str, Any]:
        """Make a deterministic account. Returns {"account_id": <sandbox id>,
        "broker_account_id": ..., "environment": ..., "credentials": {field: value}}."""

    @abstractmethod
    def advance(self, account_id: str, **changes: Any) -> dict[str, Any]:
        """Make time pass for one account: new fills, a dividend, a split, a closed
        position, new and cancelled orders. Returns what was added."""

    @abstractmethod
    def revoke(self, account_id: str) -> None:
        """Revoke the account's key: every later call with it fails as the broker does."""

    @abstractmethod
    def truth(self, account_id: str) -> dict[str, Any]:
        """Everything the account holds, for tests to compare rows against."""

    @abstractmethod
    def handle(self, environment: str, request: Request) -> Response:
        """Answer one HTTP request exactly as the real API would."""

    @abstractmethod
    def rate_limited_response(self, retry_after: float) -> Response:
        """The broker's own 429 (used by fault injection's 429 bursts)."""

    def server_error_response(self, status: int) -> Response:
        return Response.json({"code": status * 100000, "message": "internal server error"}, status)
