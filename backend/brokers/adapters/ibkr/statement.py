"""A FlexQueryResponse read into rows: each record typed by ibflex, one record at a time.

ibflex (csingley/ibflex) knows every Flex element and attribute and converts IBKR's strings
to Decimal, date, datetime and enums. Its `parse()` takes the whole document and fails it
whole when one attribute holds a value it does not know (a new enum code, a currency outside
its list, an unexpected date format): IBKR adds such values over time. So the document is
walked with the standard library's ElementTree and each record goes through ibflex's
`parse_data_element` on its own. Only where ibflex rejects a record is the standard library
the fallback: that record's attributes are converted one by one with ibflex's converters,
and the ones it cannot read stay IBKR's text (mapping.py reads both), so one odd value
costs at most that value, never the statement.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from ibflex import Types, parser

from ...errors import PermanentError, TransientError

# Section container -> the record tags we read from it.
SECTIONS = {
    "OpenPositions": ("OpenPosition",),
    "CashReport": ("CashReportCurrency",),
    "FxPositions": ("FxLot",),
    "Trades": ("Trade", "Order"),
    "CashTransactions": ("CashTransaction",),
    "CorporateActions": ("CorporateAction",),
    "Transfers": ("Transfer",),
}


@dataclass
class Row:
    """One record: its values (typed where ibflex could, IBKR's text where not) and its raw
    attributes, kept on the stored row."""

    tag: str
    values: dict[str, Any]
    raw: dict[str, str]
    fallback: bool = False

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def text(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            return ""
        return str(value.value) if isinstance(value, Enum) else str(value)


@dataclass
class Statement:
    account_id: str
    from_date: date
    to_date: date
    currency: str = ""                     # the account's base currency (AccountInformation)
    date_opened: date | None = None
    sections: dict[str, list[Row]] = field(default_factory=dict)

    def rows(self, section: str, tag: str | None = None) -> list[Row]:
        return [r for r in self.sections.get(section, []) if tag is None or r.tag == tag]


def read_statement(root: ET.Element) -> Statement:
    """The one FlexStatement of a FlexQueryResponse (a query must cover one account)."""
    statements = root.findall("./FlexStatements/FlexStatement")
    if len(statements) != 1:
        raise PermanentError(f"ibkr: the Flex query returned {len(statements)} account statements; brokersync "
                             "needs an Activity Flex Query for exactly one account")
    element = statements[0]
    head = parse_row(ET.Element(element.tag, element.attrib))
    account_id, start, end = head.get("accountId"), head.get("fromDate"), head.get("toDate")
    if not account_id or not isinstance(start, date) or not isinstance(end, date):
        raise TransientError("ibkr: the statement has no account id or period")
    statement = Statement(account_id=str(account_id), from_date=start, to_date=end)
    info = element.find("AccountInformation")
    if info is not None:
        values = parse_row(info)
        statement.currency = values.text("currency")
        opened = values.get("dateOpened")
        statement.date_opened = opened if isinstance(opened, date) else None
    for section, tags in SECTIONS.items():
        container = element.find(section)
        if container is not None:
            statement.sections[section] = [parse_row(e) for e in container.iter() if e.tag in tags]
    return statement


def parse_row(element: ET.Element) -> Row:
    """ibflex types the attributes it models (the others, which it would warn about and drop,
    stay in `raw`, as IBKR wrote them)."""
    raw = dict(element.attrib)
    cls = getattr(Types, element.tag, None)
    if cls is None:
        return Row(element.tag, {k: v or None for k, v in raw.items()}, raw, fallback=True)
    known = ET.Element(element.tag, {k: v for k, v in raw.items() if k in cls.__annotations__})
    try:
        typed = parser.parse_data_element(known)
    except parser.FlexParserError:
        return Row(element.tag, _one_by_one(known, cls), raw, fallback=True)
    return Row(element.tag, {name: getattr(typed, name, None) for name in known.attrib}, raw)


def _one_by_one(element: ET.Element, cls: type) -> dict[str, Any]:
    """The fallback: every attribute ibflex can convert is converted, the others stay text."""
    values: dict[str, Any] = {}
    for name, text in element.attrib.items():
        try:
            values[name] = parser.parse_element_attr(cls, name, text)[1]
        except (parser.FlexParserError, KeyError):
            values[name] = text if text not in ("", "-", "--", "N/A") else None
    return values
