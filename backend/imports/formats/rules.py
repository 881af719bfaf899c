"""The rules every export layout shares once its own cells are read: which sign a quantity
takes, which rows move cash only, which are moves inside cash.

Exports disagree on signs (Fidelity and Vanguard sign a sale's quantity, Schwab does not),
so a trade's quantity takes its sign from the side, whatever the file wrote; a split or a
transfer keeps the sign the file gives it (shares added or removed); amounts are the signed
change of cash the file states (every export here writes them signed, net of fees)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from backend.brokers.dtos import AssetRef, TransactionType as T

from .base import Cells, Draft

CASH_ONLY = (T.DIVIDEND, T.INTEREST, T.FEE, T.DEPOSIT, T.WITHDRAWAL)
SECURITY_MOVES = (T.SPLIT, T.TRANSFER)


def action(table: dict[str, tuple[T, str]], text: str, *, prefix: bool = False) -> tuple[T, str]:
    """(type, side) for an action text: exact (case-insensitive), or by its longest known
    beginning where the export appends details to the action (Fidelity); unknown is OTHER."""
    key = " ".join(text.split()).casefold()
    if not prefix:
        return table.get(key, (T.OTHER, ""))
    best = max((k for k in table if key.startswith(k)), key=len, default=None)
    return table[best] if best else (T.OTHER, "")


def draft(cells: Cells, line: int, *, day: date | None, kind: T, side: str, broker_type: str,
          asset: AssetRef | None, quantity: Decimal | None, price: Decimal | None, amount: Decimal | None,
          fee: Decimal | None, currency: str, description: str, cash_funds: frozenset[str] = frozenset(),
          quantity_key: str = "quantity", amount_key: str = "amount", symbol_key: str = "symbol",
          own_id: str = "", account: str = "") -> Draft | None:
    quantity = None if quantity == 0 else quantity
    if kind in (T.DEPOSIT, T.WITHDRAWAL) and quantity is not None and asset is not None:
        kind = T.TRANSFER                       # shares, not cash, moved in or out
    if asset is not None and asset.symbol in cash_funds and kind == T.TRADE:
        # The core / settlement money-market fund is the account's cash: buying or selling it
        # moves cash to cash. Kept as a row (raw and all) that changes no holding.
        kind, side, quantity, amount = T.OTHER, "", None, None
        description = f"moved within cash ({asset.symbol}): {description}"
    if kind == T.TRADE:
        if asset is None:
            cells.fail(symbol_key, "a symbol is required for a trade")
        if quantity is None:
            cells.fail(quantity_key, "a trade needs a non-zero quantity")
        else:
            quantity = abs(quantity) if side == "buy" else -abs(quantity)
    elif kind in CASH_ONLY:
        quantity = None
        if amount is None:
            cells.fail(amount_key, "an amount is required for this action")
    elif kind in SECURITY_MOVES:
        if asset is None:
            cells.fail(symbol_key, "a symbol is required for a split or a transfer of shares")
        if quantity is None and kind == T.SPLIT:
            cells.fail(quantity_key, "a split needs the number of shares it added or removed")
    if cells.errors or day is None:
        return None
    return Draft(line=line, day=day, type=kind, broker_type=broker_type[:48], asset=asset,
                 symbol=asset.symbol if asset else "", quantity=quantity, price=price, amount=amount, fee=fee,
                 currency=currency, side=side if kind == T.TRADE else "", description=description,
                 own_id=own_id, account=account,
                 raw={cells.headers.get(k, k): v for k, v in cells.values.items() if v})


def fee_total(*values: Decimal | None) -> Decimal | None:
    present = [v for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None
