"""Reading one cell: money and quantities as exact Decimals, dates as each export writes
them, currency codes, and what kind of security a symbol names.

Exports write money for people: `$1,234.56`, `-$12.34`, `$-12.34`, `(12.34)` for a negative,
blank for nothing. Each is read exactly (never through float); anything else is an error
that names what it got."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import pycountry

from backend.brokers.dtos import AssetClass, AssetRef
from backend.core.fields import MONEY_DIGITS, MONEY_PLACES

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
MAX_INTEGER_DIGITS = MONEY_DIGITS - MONEY_PLACES      # what the decimal columns hold
# A day of slack: an export made late in the evening in the Americas is dated tomorrow in UTC.
FUTURE_SLACK = timedelta(days=1)
# Equity options are for 100 shares (OCC standard contract); exports never say otherwise.
OPTION_MULTIPLIER = Decimal(100)
# Fidelity: "-AAPL240216C150"; Schwab: "AAPL 02/16/2024 150.00 C".
_OPTION_SYMBOLS = (re.compile(r"^-[A-Z.]{1,6}\d{6}[CP][\d.]+$"),
                   re.compile(r"^[A-Z.]{1,6} \d{2}/\d{2}/\d{4} [\d.]+ [CP]$"))
_CUSIP = re.compile(r"^[0-9A-Z*@#]{8}\d$")


class CellError(ValueError):
    """What is wrong with one cell, in words for the person who wrote the file."""


def decimal_or_none(text: str) -> Decimal | None:
    text = (text or "").strip()
    if not text or text in ("--", "-"):
        return None
    negative = text.startswith("(") and text.endswith(")")
    cleaned = text.strip("()").replace("$", "").replace(",", "").replace(" ", "")
    if cleaned.startswith("-") and negative:
        raise CellError(f"not a number: {text!r}")
    if not _NUMBER.match(cleaned):
        raise CellError(f"not a number: {text!r}")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise CellError(f"not a number: {text!r}") from None
    value = -value if negative else value
    _check_size(value, text)
    return value


def _check_size(value: Decimal, text: str) -> None:
    sign, digits, exponent = value.as_tuple()
    places = max(0, -exponent)
    if places > MONEY_PLACES:
        raise CellError(f"more than {MONEY_PLACES} decimal places: {text!r}")
    if len(digits) - places > MAX_INTEGER_DIGITS:
        raise CellError(f"too large: {text!r}")


def date_from(text: str, formats: tuple[str, ...], today: date) -> date:
    text = (text or "").strip()
    if not text:
        raise CellError("a date is required")
    for fmt in formats:
        try:
            day = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if day > today + FUTURE_SLACK:
            raise CellError(f"{text} is in the future")
        return day
    shown = " or ".join(datetime(2024, 1, 31).strftime(f) for f in formats)
    raise CellError(f"not a date: {text!r} (expected a date like {shown})")


def currency_code(text: str) -> str:
    code = (text or "").strip().upper()
    if pycountry.currencies.get(alpha_3=code) is None:
        raise CellError(f"not an ISO 4217 currency code: {text!r}")
    return code


def security(symbol: str, asset_class: str = "", currency: str = "USD") -> AssetRef:
    """The asset a file's symbol names: an option (Fidelity's and Schwab's option symbols,
    100 shares a contract), a bond or CD by its CUSIP (class `other`), else a stock or fund."""
    symbol = symbol.strip().upper()
    if len(symbol) > 64:
        raise CellError(f"longer than 64 characters: {symbol[:20]!r}...")
    if asset_class:
        if asset_class not in AssetClass.__members__.values() or asset_class == AssetClass.FIAT:
            raise CellError(f"unknown asset class {asset_class!r} (equity, crypto, option or other)")
        kind = AssetClass(asset_class)
    elif any(p.match(symbol) for p in _OPTION_SYMBOLS):
        kind = AssetClass.OPTION
    elif _CUSIP.match(symbol) and any(c.isdigit() for c in symbol[:8]):
        kind = AssetClass.OTHER
    else:
        kind = AssetClass.EQUITY
    if kind == AssetClass.OPTION:
        symbol = symbol.lstrip("-")
    return AssetRef(symbol=symbol, asset_class=kind, currency=currency,
                    multiplier=OPTION_MULTIPLIER if kind == AssetClass.OPTION else Decimal(1))
