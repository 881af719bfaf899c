"""Charles Schwab: Accounts > Transaction History > Export (CSV). docs/imports.md lists the
sources of every fact here.

Older exports start with a title row ("Transactions  for account ... as of ...") and end with
a "Transactions Total" row; newer ones have neither. A row posted after the day it took effect
is dated "04/17/2023 as of 04/15/2023": the "as of" day is when it happened. Quantities are
unsigned (a sale's too); amounts are signed and net of "Fees & Comm"."""
from __future__ import annotations

from backend.brokers.dtos import TransactionType as T

from . import rules
from .base import Cells, Column, Draft, Layout

DATE_FORMATS = ("%m/%d/%Y",)
AS_OF = " as of "
BY_SIGN = "by sign"          # the action moves cash in or out: the amount's sign says which

COLUMNS = (
    Column("date", ("Date",)),
    Column("action", ("Action",)),
    Column("symbol", ("Symbol",)),
    Column("description", ("Description",)),
    Column("quantity", ("Quantity",)),
    Column("price", ("Price",)),
    Column("fees", ("Fees & Comm", "Fees & Commissions")),
    Column("amount", ("Amount",)),
)

ACTIONS: dict[str, tuple[T, str]] = {
    **{a: (T.TRADE, "buy") for a in ("buy", "reinvest shares", "buy to open", "buy to close")},
    **{a: (T.TRADE, "sell") for a in ("sell", "sell short", "sell to open", "sell to close")},
    **{a: (T.DIVIDEND, "") for a in (
        "qualified dividend", "cash dividend", "non-qualified div", "special qual div", "special dividend",
        "qual div reinvest", "reinvest dividend", "pr yr div reinvest", "pr yr cash div", "pr yr non-qual div",
        "long term cap gain", "short term cap gain", "long term cap gain reinvest",
        "short term cap gain reinvest", "div adjustment", "return of capital")},
    **{a: (T.INTEREST, "") for a in ("credit interest", "bank interest", "bond interest")},
    **{a: (T.FEE, "") for a in ("margin interest", "adr mgmt fee", "service fee", "foreign tax paid",
                                "nra tax adj", "nra withholding", "wire fee")},
    **{a: (T.DEPOSIT, "") for a in ("moneylink deposit", "wire funds received", "wire received", "funds received",
                                    "misc credits")},
    **{a: (T.WITHDRAWAL, "") for a in ("wire sent",)},
    **{a: (T.DEPOSIT, BY_SIGN) for a in ("moneylink transfer", "journal", "misc cash entry", "bank transfer",
                                         "wire funds")},
    **{a: (T.SPLIT, "") for a in ("stock split", "reverse split")},
    **{a: (T.TRANSFER, "") for a in ("security transfer", "journaled shares", "internal transfer")},
}


def schwab_draft(cells: Cells, line: int) -> Draft | None:
    if cells.text("date").casefold().startswith("transactions total"):
        return None                                  # the old exports' closing sum
    posted, _, effective = cells.text("date").partition(AS_OF)
    cells.values["date"] = effective or posted
    action = " ".join(cells.text("action").split())
    kind, side = rules.action(ACTIONS, action)
    amount = cells.decimal("amount")
    if side == BY_SIGN:
        kind, side = (T.DEPOSIT if (amount or 0) >= 0 else T.WITHDRAWAL), ""
    return rules.draft(
        cells, line, day=cells.day("date", DATE_FORMATS), kind=kind, side=side, broker_type=action,
        asset=cells.security("symbol"), quantity=cells.decimal("quantity"), price=cells.decimal("price"),
        amount=amount, fee=cells.decimal("fees"), currency="USD", description=cells.text("description"))


SCHWAB = Layout(key="schwab", name="Charles Schwab", columns=COLUMNS, draft=schwab_draft,
                description="Charles Schwab transaction history export (CSV), with or without its title and total rows.")
