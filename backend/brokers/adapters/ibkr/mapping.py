"""Flex rows -> DTOs. Quantities are signed as the holding changed and `amount` is the signed
cash change in the row's own currency (dtos.py), so reconcile adds IBKR up like any broker.

Facts relied on (docs/brokers.md, "Interactive Brokers"; samples from ibflex's tests):
- Trade `quantity` is signed (a sell is negative; a cancellation "BUY (Ca.)" undoes a buy with
  the opposite sign); `netCash` = proceeds + commission + taxes, in the trade's `currency`;
  `ibCommission` is negative and in `ibCommissionCurrency`. A forex trade (assetCategory CASH,
  symbol "EUR.USD") buys `quantity` of the first currency and pays `netCash` of the second.
- OpenPosition `position` is signed (side Short is negative). OpenPositions and CashReport may
  carry summary and lot rows: only SUMMARY positions and per-currency cash are read.
- CashTransaction `amount` is signed; `type` is the kind (Dividends, Withholding Tax, ...).
- CorporateAction `quantity` is the change it made to that security; `proceeds` the cash.
- Transfer `quantity` is positive with `direction` IN or OUT.
Times carry no zone in Flex: they are US Eastern, IBKR's statement time.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from ...dtos import AssetClass, AssetRef, Order, Position, Transaction, TransactionType
from .statement import Row

EASTERN = ZoneInfo("America/New_York")
ASSET_CLASSES = {"STK": AssetClass.EQUITY, "OPT": AssetClass.OPTION, "FOP": AssetClass.OPTION,
                 "WAR": AssetClass.OPTION, "FSFOP": AssetClass.OPTION, "FSOPT": AssetClass.OPTION,
                 "CASH": AssetClass.FIAT, "CRYPTO": AssetClass.CRYPTO}
HOME_CURRENCY = "USD"            # listings in other currencies get their exchange in the symbol
CASH_TYPES = {
    "Dividends": TransactionType.DIVIDEND, "Payment In Lieu Of Dividends": TransactionType.DIVIDEND,
    # Tax withheld from a dividend reduces that income (Alpaca's DIVNRA is a dividend row too).
    "Withholding Tax": TransactionType.DIVIDEND,
    "Broker Interest Paid": TransactionType.INTEREST, "Broker Interest Received": TransactionType.INTEREST,
    "Bond Interest Paid": TransactionType.INTEREST, "Bond Interest Received": TransactionType.INTEREST,
    "Other Fees": TransactionType.FEE, "Commission Adjustments": TransactionType.FEE,
    "Advisor Fees": TransactionType.FEE,
}
DEPOSITS = ("Deposits & Withdrawals", "Deposits/Withdrawals")
# Corporate action codes (ibflex enums.Reorg) whose rows re-count the same holding: forward and
# reverse splits, a split issue, a contract split, a stock dividend. Mergers, spin-offs,
# tenders and the rest are kept as OTHER with the quantity each row moved.
SPLIT_CODES = frozenset({"FS", "RS", "FI", "CS", "SD"})
ORDER_TYPES = {"LMT": "limit", "MKT": "market", "STP": "stop", "STPLMT": "stop_limit", "MOC": "market_on_close",
               "LOC": "limit_on_close", "TRAIL": "trailing_stop", "TRAILLMT": "trailing_stop_limit"}


class Unparseable(ValueError):
    pass


# -- values --------------------------------------------------------------------------------
def dec(row: Row, name: str) -> Decimal | None:
    value = row.get(name)
    if value is None or isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        raise Unparseable(f"{name}={str(value)[:40]!r} is not a number") from None


def when(row: Row, *names: str) -> datetime:
    """The first of `names` that holds a time or a date, as UTC (Flex times are US Eastern)."""
    for name in names:
        value = row.get(name)
        if isinstance(value, datetime):
            return value.replace(tzinfo=EASTERN).astimezone(timezone.utc)
        if isinstance(value, date):
            return datetime.combine(value, time(0), EASTERN).astimezone(timezone.utc)
    raise Unparseable(f"no readable {' or '.join(names)}")


def trade_time(row: Row) -> datetime:
    """`dateTime`, or the older pair `tradeDate` + `tradeTime`."""
    day, clock = row.get("tradeDate"), row.get("tradeTime")
    if not isinstance(row.get("dateTime"), datetime) and isinstance(day, date) and isinstance(clock, time):
        return datetime.combine(day, clock, EASTERN).astimezone(timezone.utc)
    return when(row, "dateTime", "tradeDate")


def _id(row: Row, *names: str) -> str:
    for name in names:
        text = row.text(name)
        if text and text not in ("0", "N/A"):
            return text
    return ""


def content_id(row: Row) -> str:
    """A stable id for a record IBKR gave none: the same record in two statements is one row."""
    body = "|".join(f"{k}={v}" for k, v in sorted(row.raw.items()) if k not in ("reportDate", "fxRateToBase"))
    return hashlib.sha256(body.encode()).hexdigest()[:24]


# -- instruments ---------------------------------------------------------------------------
def symbol_of(row: Row) -> str:
    """Our canonical symbol: AAPL; an option as its OCC code without the padding
    (AAPL240119C00190000, as Alpaca writes it); a bond by its ISIN/CUSIP; a listing in another
    currency with its exchange (SAP:IBIS), so it never merges with a US listing of the same ticker."""
    category, symbol = row.text("assetCategory"), row.text("symbol").strip()
    if category == "CASH":
        return symbol.split(".")[0]
    if category in ("OPT", "FOP", "FSOPT", "FSFOP"):
        symbol = symbol.replace(" ", "")
    elif category == "BOND":
        symbol = row.text("isin") or row.text("cusip") or row.text("securityID") or symbol
    if not symbol:
        raise Unparseable("no symbol")
    currency, exchange = row.text("currency"), row.text("listingExchange")
    if currency and currency != HOME_CURRENCY and exchange and category not in ("CRYPTO",):
        symbol = f"{symbol}:{exchange}"
    return symbol


def asset_of(row: Row) -> AssetRef:
    category = row.text("assetCategory")
    asset_class = ASSET_CLASSES.get(category, AssetClass.OTHER)
    symbol = symbol_of(row)
    if asset_class is AssetClass.FIAT:
        return AssetRef(symbol=symbol, asset_class=asset_class, currency=symbol)
    multiplier = dec(row, "multiplier") or Decimal(1)
    return AssetRef(symbol=symbol, asset_class=asset_class, exchange=row.text("listingExchange"),
                    currency=row.text("currency") or HOME_CURRENCY, multiplier=multiplier)


# -- positions and cash --------------------------------------------------------------------
def position(row: Row) -> Position | None:
    """An OpenPosition SUMMARY row (lot rows repeat it); None for a lot."""
    if row.text("levelOfDetail") not in ("", "SUMMARY"):
        return None
    quantity = dec(row, "position")
    if quantity is None:
        raise Unparseable("no position")
    if row.text("side") == "Short" and quantity > 0:
        quantity = -quantity
    asset = asset_of(row)
    return Position(asset=asset, broker_symbol=asset.symbol, quantity=quantity,
                    avg_entry_price=dec(row, "costBasisPrice"), cost_basis=dec(row, "costBasisMoney"),
                    market_value=dec(row, "positionValue"), current_price=dec(row, "markPrice"), raw=row.raw)


def cash_balance(row: Row) -> tuple[str, Decimal] | None:
    """(currency, ending cash) of a CashReport row; None for the base-currency summary."""
    currency = row.text("currency")
    if not currency or currency == "BASE_SUMMARY" or row.text("levelOfDetail") == "BaseCurrency":
        return None
    ending = dec(row, "endingCash")
    return (currency, ending) if ending is not None else None


# -- transactions --------------------------------------------------------------------------
def trade(row: Row) -> Transaction:
    trade_id = _id(row, "tradeID", "transactionID")
    quantity = dec(row, "quantity")
    if not trade_id or quantity is None:
        raise Unparseable("trade without tradeID or quantity")
    currency = row.text("currency") or HOME_CURRENCY
    commission = dec(row, "ibCommission")
    same_currency = row.text("ibCommissionCurrency") in ("", currency)
    side = row.text("buySell").split(" ")[0].lower()
    return Transaction(
        broker_id=f"trade:{trade_id}", type=TransactionType.TRADE, broker_type=row.text("transactionType") or "Trade",
        occurred_at=trade_time(row), asset=asset_of(row), broker_symbol=row.text("symbol"),
        quantity=quantity, price=dec(row, "tradePrice"), amount=dec(row, "netCash"),
        fee=abs(commission) if commission is not None and same_currency else None, currency=currency,
        side=side if side in ("buy", "sell") else "", order_id=_id(row, "ibOrderID"),
        description=row.text("description"), raw=row.raw)


def cash_transaction(row: Row) -> Transaction:
    kind, amount = row.text("type"), dec(row, "amount")
    if amount is None:
        raise Unparseable("cash transaction without amount")
    if kind in DEPOSITS:
        kind_type = TransactionType.DEPOSIT if amount >= 0 else TransactionType.WITHDRAWAL
    else:
        kind_type = CASH_TYPES.get(kind, TransactionType.OTHER)
    has_security = bool(row.text("symbol")) and row.text("assetCategory") not in ("", "CASH")
    return Transaction(
        broker_id=f"cash:{_id(row, 'transactionID') or content_id(row)}", type=kind_type, broker_type=kind or "Cash",
        occurred_at=when(row, "dateTime", "settleDate", "reportDate"),
        asset=asset_of(row) if has_security else None, broker_symbol=row.text("symbol"), amount=amount,
        currency=row.text("currency") or HOME_CURRENCY, description=row.text("description"), raw=row.raw)


def corporate_action(row: Row) -> Transaction:
    code, quantity = row.text("type"), dec(row, "quantity")
    key = _id(row, "transactionID") or f"{_id(row, 'actionID') or content_id(row)}:{row.text('conid')}"
    proceeds = dec(row, "proceeds")
    return Transaction(
        broker_id=f"ca:{key}", type=TransactionType.SPLIT if code in SPLIT_CODES else TransactionType.OTHER,
        broker_type=f"CorporateAction:{code}" if code else "CorporateAction",
        occurred_at=when(row, "dateTime", "reportDate"), asset=asset_of(row), broker_symbol=row.text("symbol"),
        quantity=quantity if quantity else None, amount=proceeds if proceeds else None,
        currency=row.text("currency") or HOME_CURRENCY,
        description=row.text("actionDescription") or row.text("description"), raw=row.raw)


def transfer(row: Row) -> Transaction:
    """Securities moved in or out (ACATS, internal, FOP); cash moved is a deposit or withdrawal."""
    quantity, direction = dec(row, "quantity"), row.text("direction")
    sign = Decimal(-1) if direction == "OUT" else Decimal(1)
    key = f"transfer:{_id(row, 'transactionID') or content_id(row)}"
    common = {"broker_id": key, "broker_type": row.text("type") or "Transfer",
              "occurred_at": when(row, "dateTime", "date", "reportDate"), "broker_symbol": row.text("symbol"),
              "currency": row.text("currency") or HOME_CURRENCY, "description": row.text("description"),
              "raw": row.raw}
    if row.text("assetCategory") == "CASH":
        cash = dec(row, "cashTransfer") or quantity
        if cash is None:
            raise Unparseable("cash transfer without amount")
        amount = sign * abs(cash)
        kind = TransactionType.DEPOSIT if amount >= 0 else TransactionType.WITHDRAWAL
        return Transaction(type=kind, amount=amount, **common)
    if quantity is None:
        raise Unparseable("transfer without quantity")
    return Transaction(type=TransactionType.TRANSFER, asset=asset_of(row), quantity=sign * abs(quantity), **common)


# -- orders --------------------------------------------------------------------------------
def order(row: Row) -> Order:
    """An executed order (a Trades row at ORDER level). The Activity statement lists only
    orders that filled: working and cancelled orders are not in it."""
    order_id, quantity = _id(row, "ibOrderID", "orderID"), dec(row, "quantity")
    if not order_id or quantity is None:
        raise Unparseable("order without ibOrderID or quantity")
    filled_at = trade_time(row)
    submitted = row.get("orderTime")
    order_type = row.text("orderType")
    return Order(
        broker_id=order_id, asset=asset_of(row), broker_symbol=row.text("symbol"),
        side=row.text("buySell").split(" ")[0].lower(), order_type=ORDER_TYPES.get(order_type, order_type.lower()),
        status="filled", broker_status="Executed",
        submitted_at=when(row, "orderTime") if isinstance(submitted, (datetime, date)) else filled_at,
        quantity=abs(quantity), filled_quantity=abs(quantity), filled_avg_price=dec(row, "tradePrice"),
        filled_at=filled_at, raw=row.raw)


