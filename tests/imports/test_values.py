"""Reading cells exactly: money as the exports write it, dates, currency codes, symbols."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from backend.brokers.dtos import AssetClass
from backend.imports.values import CellError, currency_code, date_from, decimal_or_none, security

TODAY = date(2024, 7, 1)


@pytest.mark.parametrize("text, value", [
    ("$1,234.56", Decimal("1234.56")), ("-$12.34", Decimal("-12.34")), ("$-12.34", Decimal("-12.34")),
    ("(12.34)", Decimal("-12.34")), ("($1,000.00)", Decimal("-1000.00")), ("+5", Decimal("5")),
    (".5", Decimal("0.5")), ("0.000000000000000001", Decimal("1E-18")), ("", None), ("  ", None), ("--", None),
])
def test_money_as_exports_write_it(text, value):
    assert decimal_or_none(text) == value


@pytest.mark.parametrize("text, reason", [
    ("12,3x", "not a number"), ("1e5", "not a number"), ("NaN", "not a number"), ("(-5)", "not a number"),
    ("1.0000000000000000001", "decimal places"), ("1" * 21, "too large"),
])
def test_anything_else_is_an_error_naming_what_it_got(text, reason):
    with pytest.raises(CellError, match=reason):
        decimal_or_none(text)


# Any amount a column can hold, written the ways exports write it, reads back exactly.
amounts = st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=6, allow_nan=False,
                      allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(amounts)
def test_written_like_an_export_reads_back_exactly(value):
    plain = f"{abs(value):,.6f}"
    assert decimal_or_none(f"-${plain}" if value < 0 else f"${plain}") == value
    assert decimal_or_none(f"({plain})" if value < 0 else plain) == value
    assert decimal_or_none(str(value)) == value


def test_dates_in_each_exports_form_and_never_in_the_future():
    assert date_from("01/31/2024", ("%m/%d/%Y",), TODAY) == date(2024, 1, 31)
    assert date_from("2024-01-31", ("%m/%d/%Y", "%Y-%m-%d"), TODAY) == date(2024, 1, 31)
    assert date_from("07/02/2024", ("%m/%d/%Y",), TODAY) == date(2024, 7, 2)     # a day of slack for time zones
    with pytest.raises(CellError, match="in the future"):
        date_from("07/03/2024", ("%m/%d/%Y",), TODAY)
    with pytest.raises(CellError, match=r"expected a date like 01/31/2024"):
        date_from("2024-01-31", ("%m/%d/%Y",), TODAY)
    with pytest.raises(CellError, match="required"):
        date_from("", ("%m/%d/%Y",), TODAY)


def test_currency_codes_are_iso_4217():
    assert currency_code(" eur ") == "EUR"
    with pytest.raises(CellError, match="ISO 4217"):
        currency_code("XYZ")
    with pytest.raises(CellError, match="ISO 4217"):
        currency_code("BTC")


def test_what_a_symbol_names():
    option = security("-AAPL240216C150")
    assert (option.symbol, option.asset_class, option.multiplier) == ("AAPL240216C150", AssetClass.OPTION, 100)
    assert security("AAPL 02/16/2024 150.00 C").asset_class == AssetClass.OPTION
    assert security("96255NBE8").asset_class == AssetClass.OTHER                  # a bond's CUSIP
    assert security("brk.b").symbol == "BRK.B" and security("BRK.B").asset_class == AssetClass.EQUITY
    assert security("BTC", "crypto").asset_class == AssetClass.CRYPTO
    with pytest.raises(CellError, match="asset class"):
        security("USD", "fiat")
