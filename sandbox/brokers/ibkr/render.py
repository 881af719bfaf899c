"""The Flex Web Service's XML: the FlexStatementResponse envelope and the FlexQueryResponse
statement (an Activity Flex Query with every section brokersync reads), in IBKR's default
date formats (yyyyMMdd and yyyyMMdd;HHmmss)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

from .ledger import BASE, EASTERN, Account, flex_date, flex_time, fmt
from .records import FX_TO_BASE

SECTION_OF = {"trade": "Trades", "order": "Trades", "cash": "CashTransactions", "ca": "CorporateActions",
              "transfer": "Transfers"}
TAG_OF = {"trade": "Trade", "order": "Order", "cash": "CashTransaction", "ca": "CorporateAction",
          "transfer": "Transfer"}
SECTIONS = ("Trades", "CashTransactions", "CorporateActions", "Transfers")


def element(tag: str, attrs: dict[str, str]) -> str:
    return f"<{tag} " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items()) + " />"


def envelope(status: str, now: float, **fields: str) -> bytes:
    """<FlexStatementResponse timestamp="28 August, 2012 10:37 AM EDT"> as in IBKR's guide."""
    stamp = datetime.fromtimestamp(now, EASTERN)
    timestamp = stamp.strftime("%d %B, %Y %I:%M %p ") + (stamp.tzname() or "EST")
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return (f'<FlexStatementResponse timestamp="{timestamp}">\n<Status>{status}</Status>\n{body}\n'
            f"</FlexStatementResponse>").encode()


def statement(account: Account, start: date, end: date, cutoff: float, query_name: str = "brokersync") -> bytes:
    """The account's activity from `start` to `end`, as it stood at `cutoff` (when the
    statement was asked for): positions and cash as of `end`."""
    sections: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for event in account.events:
        if event.at > cutoff:
            break
        if start <= event.day <= end:
            sections[SECTION_OF[event.kind]].append(element(TAG_OF[event.kind], event.attrs))
    holdings, cash = account.state_at(end, cutoff)
    head = {"accountId": account.broker_account_id, "fromDate": flex_date(start), "toDate": flex_date(end),
            "period": "", "whenGenerated": flex_time(cutoff)}
    parts = [f'<FlexQueryResponse queryName={quoteattr(query_name)} type="AF">', '<FlexStatements count="1">',
             element("FlexStatement", head).replace(" />", ">"), _account_information(account),
             _wrap("CashReport", _cash_report(account, cash, start, end)),
             _wrap("OpenPositions", _positions(account, holdings, end)),
             _wrap("FxPositions", _fx_lots(account, cash, end), inner="FxLots")]
    parts += [_wrap(name, sections[name]) for name in SECTIONS]
    parts += ["</FlexStatement>", "</FlexStatements>", "</FlexQueryResponse>"]
    return ("\n".join(parts) + "\n").encode()


def _wrap(name: str, rows: list[str], inner: str = "") -> str:
    if not rows:
        return f"<{name} />"
    body = "\n".join(rows)
    return f"<{name}>\n<{inner}>\n{body}\n</{inner}>\n</{name}>" if inner else f"<{name}>\n{body}\n</{name}>"


def _account_information(account: Account) -> str:
    return element("AccountInformation", {
        "accountId": account.broker_account_id, "acctAlias": "", "currency": BASE, "name": "Sandbox Investor",
        "accountType": "Individual", "customerType": "Individual", "dateOpened": flex_date(account.opened),
        "dateFunded": flex_date(account.opened), "dateClosed": "", "ibEntity": "IBLLC-US"})


def _cash_report(account: Account, cash: dict[str, Decimal], start: date, end: date) -> list[str]:
    rows, total = [], Decimal(0)
    for currency in sorted(cash):
        total += cash[currency] * FX_TO_BASE.get(currency, Decimal(1))
        rows.append(element("CashReportCurrency", {
            "accountId": account.broker_account_id, "currency": currency, "fromDate": flex_date(start),
            "toDate": flex_date(end), "endingCash": fmt(cash[currency]), "endingSettledCash": fmt(cash[currency]),
            "levelOfDetail": "Currency"}))
    summary = element("CashReportCurrency", {
        "accountId": account.broker_account_id, "currency": "BASE_SUMMARY", "fromDate": flex_date(start),
        "toDate": flex_date(end), "endingCash": fmt(total.quantize(Decimal("0.000001"))),
        "levelOfDetail": "BaseCurrency"})
    return [summary, *rows]


def _positions(account: Account, holdings: dict[str, Decimal], end: date) -> list[str]:
    rows = []
    for key in sorted(holdings):
        quantity = holdings[key]
        inst = account.instruments.get(key)
        if not quantity or inst is None:
            continue
        price = account.prices.get(key, Decimal(100))
        value = (quantity * price * inst.multiplier).quantize(Decimal("0.01"))
        rows.append(element("OpenPosition", {
            "accountId": account.broker_account_id, **inst.attrs(),
            "fxRateToBase": fmt(FX_TO_BASE.get(inst.currency, Decimal(1))), "reportDate": flex_date(end),
            "position": fmt(quantity), "markPrice": fmt(price), "positionValue": fmt(value),
            "side": "Long" if quantity > 0 else "Short", "levelOfDetail": "SUMMARY"}))
    return rows


def _fx_lots(account: Account, cash: dict[str, Decimal], end: date) -> list[str]:
    return [element("FxLot", {
        "accountId": account.broker_account_id, "assetCategory": "CASH", "reportDate": flex_date(end),
        "functionalCurrency": BASE, "fxCurrency": currency, "quantity": fmt(cash[currency]),
        "closePrice": fmt(FX_TO_BASE[currency]), "levelOfDetail": "LOT"})
        for currency in sorted(cash) if currency != BASE and currency in FX_TO_BASE]

