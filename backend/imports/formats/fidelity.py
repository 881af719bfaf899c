"""Fidelity: Accounts & Trade > Activity & Orders > History > Download (History_for_Account_*.csv,
or Accounts_History.csv for all accounts). docs/imports.md lists the sources of every fact here.

The file starts with blank rows, ends with a disclaimer and "Date downloaded ...", and its
header has changed over the years ("Price ($)" became "Price", "Security Description"
became "Description"; the all-accounts download adds Account and Account Number; newer
ones add Cash Balance and the Exchange columns): every known name is accepted. Each Action
is the action followed by the security and the account type, e.g.
"YOU BOUGHT APPLE INC (AAPL) (Cash)": its beginning says what it is."""
from __future__ import annotations

from backend.brokers.dtos import TransactionType as T

from . import rules
from .base import Cells, Column, Draft, Layout

DATE_FORMATS = ("%m/%d/%Y",)
# The core position (the account's cash, held in a money-market fund): trading it moves cash to cash.
CORE_FUNDS = frozenset({"SPAXX", "FDRXX", "FZFXX", "SPRXX", "FZDXX", "FCASH", "CORE"})

COLUMNS = (
    Column("date", ("Run Date",)),
    Column("account", ("Account",), required=False),
    Column("account_number", ("Account Number",), required=False),
    Column("action", ("Action",)),
    Column("symbol", ("Symbol",)),
    Column("description", ("Description", "Security Description")),
    Column("security_type", ("Type", "Security Type")),
    Column("exchange_quantity", ("Exchange Quantity",), required=False),
    Column("exchange_currency", ("Exchange Currency",), required=False),
    Column("currency", ("Currency",), required=False),
    Column("quantity", ("Quantity",)),
    Column("price", ("Price ($)", "Price")),
    Column("exchange_rate", ("Exchange Rate",), required=False),
    Column("commission", ("Commission ($)", "Commission")),
    Column("fees", ("Fees ($)", "Fees")),
    Column("accrued_interest", ("Accrued Interest ($)", "Accrued Interest")),
    Column("amount", ("Amount ($)", "Amount")),
    Column("cash_balance", ("Cash Balance ($)", "Cash Balance"), required=False),
    Column("settlement", ("Settlement Date",)),
)

ACTIONS: dict[str, tuple[T, str]] = {
    "you bought": (T.TRADE, "buy"), "you sold": (T.TRADE, "sell"), "reinvestment": (T.TRADE, "buy"),
    "dividend received": (T.DIVIDEND, ""), "long-term cap gain": (T.DIVIDEND, ""),
    "short-term cap gain": (T.DIVIDEND, ""), "return of capital": (T.DIVIDEND, ""),
    "interest earned": (T.INTEREST, ""), "muni exempt int": (T.INTEREST, ""),
    "foreign tax paid": (T.FEE, ""), "adj foreign tax": (T.FEE, ""), "fee charged": (T.FEE, ""),
    "advisor fee": (T.FEE, ""), "margin interest": (T.FEE, ""),
    "electronic funds transfer received": (T.DEPOSIT, ""), "direct deposit": (T.DEPOSIT, ""),
    "check received": (T.DEPOSIT, ""), "wire transfer from": (T.DEPOSIT, ""), "transferred from": (T.DEPOSIT, ""),
    "cash contribution": (T.DEPOSIT, ""), "partic contr": (T.DEPOSIT, ""), "rollover cash": (T.DEPOSIT, ""),
    "electronic funds transfer paid": (T.WITHDRAWAL, ""), "transferred to": (T.WITHDRAWAL, ""),
    "wire transfer to": (T.WITHDRAWAL, ""), "direct debit": (T.WITHDRAWAL, ""), "check paid": (T.WITHDRAWAL, ""),
    "bill payment": (T.WITHDRAWAL, ""), "debit card": (T.WITHDRAWAL, ""),
    # A stock split arrives as a DISTRIBUTION of the new shares; a reverse split as shares removed.
    "distribution": (T.SPLIT, ""), "reverse split": (T.SPLIT, ""),
    "transfer of assets": (T.TRANSFER, ""), "journaled": (T.TRANSFER, ""),
}


def fidelity_draft(cells: Cells, line: int) -> Draft | None:
    action = " ".join(cells.text("action").split())
    kind, side = rules.action(ACTIONS, action, prefix=True)
    quantity, amount = cells.decimal("quantity"), cells.decimal("amount")
    if kind == T.TRANSFER and not quantity:          # a journal of cash only
        kind = T.DEPOSIT if (amount or 0) >= 0 else T.WITHDRAWAL
    currency = cells.currency("currency") if cells.text("currency") else "USD"
    cells.values["symbol"] = cells.text("symbol").rstrip("*")      # the core fund is written SPAXX**
    return rules.draft(
        cells, line, day=cells.day("date", DATE_FORMATS), kind=kind, side=side, broker_type=action,
        asset=cells.security("symbol", currency=currency), quantity=quantity, price=cells.decimal("price"),
        amount=amount, fee=rules.fee_total(cells.decimal("commission"), cells.decimal("fees")), currency=currency,
        description=cells.text("description"), cash_funds=CORE_FUNDS,
        account=cells.text("account_number") or cells.text("account"))


FIDELITY = Layout(key="fidelity", name="Fidelity", columns=COLUMNS, draft=fidelity_draft,
                  description="Fidelity account history (Activity & Orders > Download), one account or all.")
