"""What adapters return: frozen dataclasses, Decimal money, the broker's raw record kept.

Adapters never touch the database; the sync pipeline turns these into rows. Every
quantity is signed the way it changes the holding (a buy is positive, a sell negative,
a short position negative) so that reconcile can add them up without knowing the broker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, TypeVar


class AssetClass(StrEnum):
    EQUITY = "equity"
    CRYPTO = "crypto"
    FIAT = "fiat"
    OPTION = "option"
    OTHER = "other"


class TransactionType(StrEnum):
    TRADE = "trade"
    DIVIDEND = "dividend"
    FEE = "fee"
    INTEREST = "interest"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    SPLIT = "split"
    TRANSFER = "transfer"      # securities or coins moved in/out (ACATS, on-chain send/receive)
    REWARD = "reward"          # staking rewards, airdrops, earn payouts
    OTHER = "other"            # kept with its raw record, never dropped


class Stream(StrEnum):
    POSITIONS = "positions"
    TRANSACTIONS = "transactions"
    ORDERS = "orders"


@dataclass(frozen=True)
class Credentials:
    """A connection's secrets. repr never shows them (they end up in tracebacks otherwise)."""

    api_key: str = ""
    api_secret: str = ""
    access_token: str = ""
    refresh_token: str = ""

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        """Non-empty secret values, so error text can be scrubbed of them."""
        return tuple(s for s in (self.api_key, self.api_secret, self.access_token, self.refresh_token) if s)


@dataclass(frozen=True)
class CredentialField:
    name: str                  # one of Credentials' field names
    label: str
    secret: bool = True
    help_text: str = ""
    multiline: bool = False    # a PEM key: line breaks belong in it (every other credential is one line)


@dataclass(frozen=True)
class AssetRef:
    """One canonical asset, whatever the broker calls it (XBT, XXBT and BTC are all BTC)."""

    symbol: str
    asset_class: AssetClass
    exchange: str = ""
    currency: str = "USD"
    multiplier: Decimal = Decimal(1)    # units of the underlying per unit held (options: 100)


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    currency: str = "USD"
    warnings: tuple[str, ...] = ()      # e.g. "this key can trade; a sync needs read-only keys"
    # What the key may do beyond reading (an operator may refuse such keys: REFUSE_KEYS_THAT_CAN_TRADE).
    can_trade: bool = False
    can_withdraw: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Position:
    asset: AssetRef
    broker_symbol: str
    quantity: Decimal                   # signed: a short is negative
    avg_entry_price: Decimal | None = None
    cost_basis: Decimal | None = None
    market_value: Decimal | None = None
    current_price: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Transaction:
    broker_id: str                      # unique within one connection
    type: TransactionType
    broker_type: str                    # the broker's own type code (FILL, DIV, ledger type...)
    occurred_at: datetime               # timezone-aware, UTC
    asset: AssetRef | None = None
    broker_symbol: str = ""
    quantity: Decimal | None = None     # signed change of the asset holding
    price: Decimal | None = None
    amount: Decimal | None = None       # signed change of cash, in `currency`
    fee: Decimal | None = None
    currency: str = "USD"
    side: str = ""                      # "buy" / "sell" for trades
    order_id: str = ""
    status: str = "executed"            # executed / correct / canceled (canceled rows do not count)
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Order:
    broker_id: str
    asset: AssetRef | None
    broker_symbol: str
    side: str
    order_type: str
    status: str                         # normalised: open / filled / partially_filled / canceled / expired / rejected / other
    broker_status: str
    submitted_at: datetime
    client_order_id: str = ""
    time_in_force: str = ""
    quantity: Decimal | None = None
    notional: Decimal | None = None
    filled_quantity: Decimal = Decimal("0")
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    OPEN_STATUSES = frozenset({"open", "partially_filled"})

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


@dataclass(frozen=True)
class SkippedRecord:
    """A record the adapter could not parse: logged on the run, the sync goes on."""

    reason: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One checkpoint of a stream: its records and the cursor that covers them.

    The pipeline saves `items` and `cursor` in one transaction, so a sync that dies
    after this page resumes from here. `cursor` must be JSON-serialisable and must
    carry a `watermark` (ISO-8601 UTC time of the newest record covered so far): the
    pipeline refuses to move a stored cursor's watermark backwards.
    """

    items: list[T]
    cursor: dict[str, Any]
    skipped: list[SkippedRecord] = field(default_factory=list)
    requests: int = 0                   # HTTP requests this page cost (for benchmarks and run stats)
    coverage: dict[str, Any] = field(default_factory=dict)   # e.g. Binance: which symbols this covered


@dataclass(frozen=True)
class RepullWindow:
    """A stretch of history reconcile asks for again before it reports a break: the records
    of `assets` (canonical symbols; fiat codes for cash) that occurred between `start` and
    `end` (None: from the first record / up to now), of the TransactionType values in
    `kinds` (empty: every kind; a window located by a short-filled order can only miss
    trades and their fees) and, where known, on the broker's own `symbols` (that order's
    pair, as the broker spells it). Each adapter turns it into the narrowest requests its
    API allows; it may return more than asked, never less."""

    start: datetime | None
    end: datetime | None
    assets: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PositionSnapshot:
    positions: list[Position]
    cash: dict[str, Decimal] = field(default_factory=dict)   # currency -> balance, where the broker says
    skipped: list[SkippedRecord] = field(default_factory=list)
    requests: int = 0
