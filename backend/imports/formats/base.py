"""What every file layout shares: its columns (with the header names each export has used),
how to recognise its header row, and how one row becomes a `Draft` transaction.

A layout is data (`columns`, `date_formats`) plus one function `draft(cells)` that reads a
row through a `Cells` object; `Cells` records every bad cell instead of stopping at the first,
so a file's errors are all reported at once."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from backend.brokers.dtos import AssetRef, Transaction, TransactionType

from ..values import CellError, currency_code, date_from, decimal_or_none, security


@dataclass(frozen=True)
class Column:
    key: str                            # our name for it
    names: tuple[str, ...]              # header texts the exports have used, first the current one
    required: bool = True


@dataclass
class Draft:
    """One row, read: a Transaction without its key (keys need the whole file)."""

    line: int
    day: date
    type: TransactionType
    broker_type: str
    asset: AssetRef | None = None
    symbol: str = ""
    quantity: Decimal | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    fee: Decimal | None = None
    currency: str = "USD"
    side: str = ""
    description: str = ""
    own_id: str = ""                    # the file's id column, where it has one
    account: str = ""                   # the account number, in files that hold several
    raw: dict[str, str] = field(default_factory=dict)

    def content(self) -> tuple:
        """What makes two rows the same transaction: every value read, none of the layout."""
        return (self.day.isoformat(), str(self.type), self.broker_type, self.symbol,
                *(_plain(v) for v in (self.quantity, self.price, self.amount, self.fee)), self.currency,
                self.description, self.account)

    def transaction(self, key: str) -> Transaction:
        return Transaction(
            broker_id=key, type=self.type, broker_type=self.broker_type,
            occurred_at=datetime.combine(self.day, time.min, tzinfo=timezone.utc), asset=self.asset,
            broker_symbol=self.symbol, quantity=self.quantity, price=self.price, amount=self.amount, fee=self.fee,
            currency=self.currency, side=self.side, description=self.description[:2000],
            raw={"line": self.line, **self.raw})


def _plain(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


class Cells:
    """A row's cells by column key, read with every error kept (column header, message)."""

    def __init__(self, values: dict[str, str], headers: dict[str, str], today: date):
        self.values, self.headers, self.today = values, headers, today
        self.errors: list[tuple[str, str]] = []

    def text(self, key: str) -> str:
        return (self.values.get(key) or "").strip()

    def _guard(self, key: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except CellError as exc:
            self.errors.append((self.headers.get(key, key), str(exc)))
            return None

    def decimal(self, key: str, *, required: bool = False) -> Decimal | None:
        value = self._guard(key, lambda: decimal_or_none(self.text(key)))
        if value is None and required:
            self.fail(key, "a number is required")
        return value

    def day(self, key: str, formats: tuple[str, ...]) -> date | None:
        return self._guard(key, lambda: date_from(self.text(key), formats, self.today))

    def currency(self, key: str, default: str = "USD") -> str:
        return self._guard(key, lambda: currency_code(self.text(key) or default)) or default

    def security(self, key: str, *, required: bool = False, asset_class: str = "",
                 currency: str = "USD") -> AssetRef | None:
        symbol = self.text(key)
        if not symbol:
            if required:
                self.fail(key, "a symbol is required for this type")
            return None
        return self._guard(key, lambda: security(symbol, asset_class, currency))

    def fail(self, key: str, message: str) -> None:
        """One message per cell: the first thing wrong with it."""
        if not self._failed(key):
            self.errors.append((self.headers.get(key, key), message))

    def _failed(self, key: str) -> bool:
        return any(name == self.headers.get(key, key) for name, _ in self.errors)


@dataclass(frozen=True)
class Layout:
    """A file format: its columns, and how a row of it reads."""

    key: str
    name: str
    columns: tuple[Column, ...]
    draft: Callable[[Cells, int], Draft | None]     # None: a row that is not a transaction (a total line)
    description: str = ""

    def match(self, header: list[str]) -> tuple[dict[str, int], list[str], list[str]]:
        """(column key -> index, required columns missing, header cells this layout does not know)."""
        wanted = {name.casefold(): c.key for c in self.columns for name in c.names}
        found: dict[str, int] = {}
        unknown = []
        for index, cell in enumerate(header):
            name = cell.strip()
            if not name:
                continue                    # exports end rows with a comma: an empty last header
            key = wanted.get(name.casefold())
            if key is None:
                unknown.append(name)
            elif key not in found:
                found[key] = index
        missing = [c.names[0] for c in self.columns if c.required and c.key not in found]
        return found, missing, unknown

    def headers(self, header: list[str], found: dict[str, int]) -> dict[str, str]:
        return {key: header[index].strip() for key, index in found.items()}
