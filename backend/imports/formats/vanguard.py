"""Vanguard: My Accounts > Transaction history > Download > "A spreadsheet-compatible CSV file"
(OfxDownload.csv). docs/imports.md lists the sources of every fact here.

The file is two tables one after the other: the holdings now (Account Number, Investment
Name, Symbol, Shares, Share Price, Total Value), a blank row, then the transactions, which
are what we read. Rows end with a comma. Shares are signed (a sale is negative), Net Amount
is the signed change of cash. Older files say "Commission Fees", newer "Commissions and Fees"."""
from __future__ import annotations

from backend.brokers.dtos import TransactionType as T

from . import rules
from .base import Cells, Column, Draft, Layout

DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d")
# The settlement fund is the brokerage account's cash.
SETTLEMENT_FUNDS = frozenset({"VMFXX", "VMRXX", "VUSXX"})

COLUMNS = (
    Column("account", ("Account Number",)),
    Column("date", ("Trade Date",)),
    Column("settlement", ("Settlement Date",)),
    Column("action", ("Transaction Type",)),
    Column("action_description", ("Transaction Description",)),
    Column("description", ("Investment Name",)),
    Column("symbol", ("Symbol",)),
    Column("quantity", ("Shares",)),
    Column("price", ("Share Price",)),
    Column("principal", ("Principal Amount",)),
    Column("fees", ("Commissions and Fees", "Commission Fees")),
    Column("amount", ("Net Amount",)),
    Column("accrued_interest", ("Accrued Interest",)),
    Column("account_type", ("Account Type",)),
)

ACTIONS: dict[str, tuple[T, str]] = {
    "buy": (T.TRADE, "buy"), "sell": (T.TRADE, "sell"), "reinvestment": (T.TRADE, "buy"),
    "reinvestment (lt gain)": (T.TRADE, "buy"), "reinvestment (st gain)": (T.TRADE, "buy"),
    "dividend": (T.DIVIDEND, ""), "capital gain (lt)": (T.DIVIDEND, ""), "capital gain (st)": (T.DIVIDEND, ""),
    "interest": (T.INTEREST, ""), "fee": (T.FEE, ""),
    "funds received": (T.DEPOSIT, ""), "rollover (incoming)": (T.DEPOSIT, ""),
    "transfer (incoming)": (T.DEPOSIT, ""), "contribution": (T.DEPOSIT, ""),
    "withdrawal": (T.WITHDRAWAL, ""), "transfer (outgoing)": (T.WITHDRAWAL, ""), "disbursement": (T.WITHDRAWAL, ""),
    "stock split": (T.SPLIT, ""),
}
# Moves between the settlement fund and the account's cash: cash to cash.
SWEEPS = frozenset({"sweep in", "sweep out"})


def vanguard_draft(cells: Cells, line: int) -> Draft | None:
    action = " ".join(cells.text("action").split())
    kind, side = rules.action(ACTIONS, action)
    has_symbol = bool(cells.text("symbol"))
    if kind == T.DIVIDEND and action.casefold() == "dividend" and not has_symbol:
        kind = T.INTEREST                            # a dividend with no fund is interest on cash
    if action.casefold() == "reinvestment" and not has_symbol:
        kind, side = T.DIVIDEND, ""                  # the settlement fund's dividend, kept as cash
    quantity, amount = cells.decimal("quantity"), cells.decimal("amount")
    if action.casefold() in SWEEPS:
        quantity = amount = None
    return rules.draft(
        cells, line, day=cells.day("date", DATE_FORMATS), kind=kind, side=side, broker_type=action,
        asset=cells.security("symbol"), quantity=quantity, price=cells.decimal("price"), amount=amount,
        fee=cells.decimal("fees"), currency="USD",
        description=" - ".join(t for t in (cells.text("action_description"), cells.text("description")) if t),
        cash_funds=SETTLEMENT_FUNDS, account=cells.text("account"))


VANGUARD = Layout(key="vanguard", name="Vanguard", columns=COLUMNS, draft=vanguard_draft,
                  description="Vanguard transaction history download (OfxDownload.csv), its transactions table.")
