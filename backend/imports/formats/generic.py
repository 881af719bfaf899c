"""Our own template, for any broker without a layout here (docs/imports.md shows it).

    date,type,symbol,quantity,price,fees,amount,currency,description,id,asset_class

Numbers are plain and positive: the type sets the sign (a sale lowers the holding and
raises cash). The one exception is a split's quantity: the shares it added, negative for a
reverse split. `amount` of a buy or sell may be left blank: quantity x price plus fees (buy)
or minus fees (sell). `id`, when given, is the row's key: a later file with the same id
updates that row instead of adding one."""
from __future__ import annotations

from decimal import Decimal

from backend.brokers.dtos import TransactionType as T

from . import rules
from .base import Cells, Column, Draft, Layout

DATE_FORMATS = ("%Y-%m-%d",)
MAX_ID_LENGTH = 120                      # the row key is "id:" + this, in a 128-character column

COLUMNS = (
    Column("date", ("date",)),
    Column("type", ("type",)),
    Column("symbol", ("symbol",)),
    Column("quantity", ("quantity",)),
    Column("price", ("price",)),
    Column("fees", ("fees",), required=False),
    Column("amount", ("amount",)),
    Column("currency", ("currency",)),
    Column("description", ("description",), required=False),
    Column("id", ("id",), required=False),
    Column("asset_class", ("asset_class",), required=False),
)

# type -> (transaction type, side, sign of the cash amount)
TYPES: dict[str, tuple[T, str, int]] = {
    "buy": (T.TRADE, "buy", -1), "sell": (T.TRADE, "sell", 1),
    "dividend": (T.DIVIDEND, "", 1), "interest": (T.INTEREST, "", 1),
    "fee": (T.FEE, "", -1), "tax": (T.FEE, "", -1),
    "deposit": (T.DEPOSIT, "", 1), "withdrawal": (T.WITHDRAWAL, "", -1),
    "split": (T.SPLIT, "", 0), "transfer_in": (T.TRANSFER, "", 1), "transfer_out": (T.TRANSFER, "", -1),
}


def generic_draft(cells: Cells, line: int) -> Draft | None:
    name = cells.text("type").casefold()
    if name not in TYPES:
        cells.fail("type", f"unknown type {cells.text('type')!r}; one of: {', '.join(TYPES)}")
        return None
    kind, side, sign = TYPES[name]
    quantity, price = _positive(cells, "quantity", allow_negative=kind == T.SPLIT), _positive(cells, "price")
    fees, amount = _positive(cells, "fees"), _positive(cells, "amount")
    if kind == T.TRADE and amount is None and quantity is not None and price is not None:
        amount = quantity * price + (fees or 0) * -sign
    if kind in (T.DEPOSIT, T.WITHDRAWAL) and cells.text("symbol"):
        cells.fail("symbol", "a deposit or withdrawal moves cash: use transfer_in or transfer_out for shares")
    if kind == T.TRANSFER and quantity is not None:
        quantity = quantity * sign
    own_id = cells.text("id")
    if len(own_id) > MAX_ID_LENGTH:
        cells.fail("id", f"longer than {MAX_ID_LENGTH} characters")
    currency = cells.currency("currency")
    return rules.draft(
        cells, line, day=cells.day("date", DATE_FORMATS), kind=kind, side=side, broker_type=name,
        asset=cells.security("symbol", asset_class=cells.text("asset_class").casefold(), currency=currency),
        quantity=quantity, price=price, amount=None if amount is None else amount * sign, fee=fees,
        currency=currency, description=cells.text("description"), own_id=own_id)


def _positive(cells: Cells, key: str, *, allow_negative: bool = False) -> Decimal | None:
    value = cells.decimal(key)
    if value is not None and value < 0 and not allow_negative:
        cells.fail(key, "give a positive number: the type sets the sign")
        return None
    return value


GENERIC = Layout(key="generic", name="Generic template", columns=COLUMNS, draft=generic_draft,
                 description="brokersync's own template: date, type, symbol, quantity, price, fees, amount, "
                             "currency, description, id, asset_class.")
