"""What every broker simulator provides. State lives in the simulator, HTTP in server.py."""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any, ClassVar

from .http import Request, Response
from .record_faults import NO_FAULTS, AccountFaults, RecordFault


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
    record_fault_kinds: ClassVar[frozenset[str]] = frozenset()    # record_faults.KINDS this broker serves

    def __init__(self, clock: SimClock):
        self.clock = clock
        self.lock = threading.RLock()          # handlers run on many threads
        self.record_faults: dict[str, AccountFaults] = {}

    def has_account(self, account_id: str) -> bool:
        """Whether this simulator holds the account (for record faults; a simulator that
        serves none need not say)."""
        return False

    # -- record faults (record_faults.py); the caller holds self.lock -----------------------
    def faults_of(self, account_id: str) -> AccountFaults:
        return self.record_faults.get(account_id, NO_FAULTS)

    def add_record_fault(self, account_id: str, spec: dict[str, Any]) -> RecordFault:
        if not self.has_account(account_id):
            raise AccountNotFound(account_id)
        faults = self.record_faults.setdefault(account_id, AccountFaults())
        fault = faults.add(spec, self.record_fault_kinds)
        try:
            self.check_record_fault(account_id, fault)
        except ValueError:
            faults.faults.pop(fault.id)
            raise
        return fault

    def check_record_fault(self, account_id: str, fault: RecordFault) -> None:
        """Refuse (ValueError) a fault whose record or symbol the account does not have."""

    # -- money moving between two sandbox accounts (POST /control/transfers) -------------------
    def send_out(self, account_id: str, asset: str, amount: Decimal, fee: Decimal) -> dict[str, Any]:
        """A withdrawal of `amount` + `fee` of `asset` to an address outside; {"record", "at"}."""
        raise ValueError(f"{self.name} accounts cannot send transfers in the sandbox")

    def receive_in(self, account_id: str, asset: str, amount: Decimal) -> dict[str, Any]:
        """A deposit of `amount` of `asset` arriving now; {"record", "at"}."""
        raise ValueError(f"{self.name} accounts cannot receive transfers in the sandbox")

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
