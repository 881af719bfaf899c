"""The adapter interface: one small class per broker answers four narrow questions.

An adapter never touches the database and never decides when to save. It gets a
cursor and yields `Page`s: records plus the cursor that covers them. The pipeline
(backend/sync/pipeline.py) owns step order, saving, and cursor monotonicity.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from .dtos import (AccountInfo, CredentialField, Credentials, Order, Page, PositionSnapshot, RepullWindow,
                   Transaction)
from .http import BrokerSession


class BrokerAdapter(ABC):
    key: ClassVar[str]                          # "alpaca"; also the queue suffix: sync.alpaca
    display_name: ClassVar[str]
    environments: ClassVar[tuple[str, ...]] = ("live",)
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    capabilities: ClassVar[frozenset[str]] = frozenset({"positions", "transactions", "orders"})
    # Documentation for GET /brokers/ and the README table.
    rate_limit_note: ClassVar[str] = ""
    # Whether fetch_orders sees working orders (open now, later filled or cancelled). IBKR's
    # Activity statements list executed orders only: nothing of theirs is ever open.
    reports_working_orders: ClassVar[bool] = True

    def __init__(self, *, credentials: Credentials, environment: str, session: BrokerSession):
        if environment not in self.environments:
            raise ValueError(f"{self.key} has no environment {environment!r}")
        self.credentials = credentials
        self.environment = environment
        self.session = session
        # What one step leaves for a later step of the same task execution (the pipeline
        # gives every adapter of one execution the same dict): a listing that both need,
        # read once. Never relied on: a step run in another execution reads its own.
        self.handoff: dict[str, Any] = {}

    # -- the four questions -------------------------------------------------------------
    @abstractmethod
    def verify_credentials(self) -> AccountInfo:
        """Check the keys against the broker; return the broker's stable account id.

        Raises AuthError with the broker's reason when the keys are wrong."""

    @abstractmethod
    def fetch_positions(self) -> PositionSnapshot:
        """Every position the broker reports now (all of them: absent means closed)."""

    @abstractmethod
    def fetch_transactions(self, cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        """Every activity after `cursor` (None: full history), oldest first, page by page.

        Unknown activity types are returned as TransactionType.OTHER with their raw
        record, never dropped. The last page's cursor covers everything seen."""

    @abstractmethod
    def fetch_orders(self, cursor: dict[str, Any] | None,
                     open_order_ids: Sequence[str] = ()) -> Iterator[Page[Order]]:
        """Orders submitted after `cursor`, plus the current state of `open_order_ids`
        (orders we stored as open last time, which may since have filled or been
        cancelled)."""

    def repull_transactions(self, windows: Sequence[RepullWindow],
                            cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]] | None:
        """Optional: the transactions in `windows` again, asked for once by reconcile before it
        records a break (backend/reconcile). `cursor` is the transactions stream's stored cursor
        (what it covers: Binance's symbols with trades, Coinbase's wallets). The pages'
        cursors are ignored: a re-pull never moves the stream's cursor. Spends the same
        session (and so the same shared budgets) as a sync. Default: None, the broker has no
        way to ask for a window, and reconcile reports what it found without a re-pull."""
        return None

    def prime(self, cursors: dict[str, dict[str, Any]]) -> None:
        """The stored cursor of every stream, given before a step runs. The pipeline builds
        a fresh adapter per step (steps may run in different processes); an adapter whose
        streams depend on each other reads here what an earlier step learnt (Binance:
        orders are fetched for the pairs the trades step found). Default: nothing."""

    # -- helpers shared by every adapter ------------------------------------------------
    @classmethod
    def adapter_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments from a connection's switches (BrokerConnection.options).
        Default: the adapter reads none."""
        return {}

    @classmethod
    def rate_scope(cls, credentials: Credentials, environment: str) -> str:
        """The key our shared limiter counts under. Default: per API key, which is
        what Alpaca (per account = per key), Kraken and Coinbase count. Binance
        overrides it: its weight is counted per egress IP across all users."""
        digest = hashlib.sha256(credentials.api_key.encode()).hexdigest()[:16]
        return f"{cls.key}:{environment}:key:{digest}"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "key": cls.key,
            "name": cls.display_name,
            "environments": list(cls.environments),
            "capabilities": sorted(cls.capabilities),
            "credential_fields": [
                {"name": f.name, "label": f.label, "secret": f.secret, "help_text": f.help_text,
                 "multiline": f.multiline}
                for f in cls.credential_fields
            ],
            "rate_limit": cls.rate_limit_note,
        }


def egress_ip() -> str:
    """The IP our requests leave from, as this worker names it (BROKER_EGRESS_IP, bound as
    the source address; else BINANCE_EGRESS_IP): the scope of budgets a broker counts per
    IP (egress.py)."""
    from .egress import egress_ip as current

    return current()
