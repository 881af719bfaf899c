"""Flex records as IBKR writes them (attribute names and signs from IBKR's Activity Flex
reference and ibflex's published samples), each with the changes it makes and the row
brokersync must store for it."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .ledger import BASE, Account, Event, Instrument, flex_time, fmt

CENT = Decimal("0.01")
FX_TO_BASE = {"USD": Decimal(1), "EUR": Decimal("1.0841"), "GBP": Decimal("1.2719")}
# IBKR Pro fixed pricing: USD 0.005 a share (minimum 1.00), 0.65 a contract; a flat 2.00 here
# for forex (IBKR's is a basis-point rate with a minimum of 2 USD).
PER_SHARE, MIN_STOCK, PER_CONTRACT, FOREX = Decimal("0.005"), Decimal("1.00"), Decimal("0.65"), Decimal("2.00")
CASH_TRUTH = {"Dividends": "dividend", "Payment In Lieu Of Dividends": "dividend", "Withholding Tax": "dividend",
              "Broker Interest Received": "interest", "Broker Interest Paid": "interest",
              "Bond Interest Received": "interest", "Other Fees": "fee"}
SPLITS = frozenset({"FS", "RS", "FI", "CS", "SD"})


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _common(account: Account, at: float) -> dict[str, str]:
    return {"accountId": account.broker_account_id, "acctAlias": "", "model": ""}


def _dates(at: float, stamp: str = "") -> dict[str, str]:
    stamp = stamp or flex_time(at)
    return {"reportDate": stamp[:8], "dateTime": stamp}


def commission(inst: Instrument, quantity: Decimal) -> Decimal:
    if inst.category == "OPT":
        return money(abs(quantity) * PER_CONTRACT)
    if inst.category == "CASH":
        return FOREX
    if inst.category == "BOND":
        return Decimal("5.00")
    return max(MIN_STOCK, money(abs(quantity) * PER_SHARE))


def trade(account: Account, inst: Instrument, at: float, quantity: Decimal, price: Decimal, order_id: str,
          order_type: str = "LMT") -> Event:
    """One execution. proceeds = -quantity x price x multiplier; netCash = proceeds + commission."""
    proceeds = money(-quantity * price * inst.multiplier)
    fee = -commission(inst, quantity)
    net = proceeds + fee
    trade_id = account.new_id()
    stamp = flex_time(at)
    attrs = {**_common(account, at), **inst.attrs(), "fxRateToBase": fmt(FX_TO_BASE.get(inst.currency, Decimal(1))),
             "tradeID": trade_id, "transactionID": account.new_id(), **_dates(at, stamp),
             "tradeDate": stamp[:8], "tradeTime": stamp[9:], "settleDateTarget": stamp[:8],
             "transactionType": "ExchTrade",
             "exchange": inst.exchange or "IDEALFX", "quantity": fmt(quantity), "tradePrice": fmt(price),
             "tradeMoney": fmt(-proceeds), "proceeds": fmt(proceeds), "taxes": "0", "ibCommission": fmt(fee),
             "ibCommissionCurrency": inst.currency, "netCash": fmt(net), "buySell": "BUY" if quantity > 0 else "SELL",
             "ibOrderID": order_id, "orderType": order_type, "levelOfDetail": "EXECUTION",
             "openCloseIndicator": "O" if quantity > 0 else "C"}
    if inst.category == "CASH":
        bought = inst.symbol.split(".")[0]
        return Event(at, "trade", attrs, None, ((bought, quantity), (inst.currency, net)),
                     _truth(f"trade:{trade_id}", "trade", inst.key, quantity, net))
    return Event(at, "trade", attrs, (inst.key, quantity), ((inst.currency, net),),
                 _truth(f"trade:{trade_id}", "trade", inst.key, quantity, net))


def order(account: Account, inst: Instrument, executions: list[Event], order_id: str, submitted: float) -> Event:
    """The ORDER-level row of the Trades section: the executions of one order, summed."""
    first, last = executions[0].attrs, executions[-1].attrs
    quantity = sum(Decimal(e.attrs["quantity"]) for e in executions)
    proceeds = sum(Decimal(e.attrs["proceeds"]) for e in executions)
    fee = sum(Decimal(e.attrs["ibCommission"]) for e in executions)
    price = (-proceeds / (quantity * inst.multiplier)).quantize(Decimal("0.000001"))
    dropped = ("tradeID", "transactionID", "levelOfDetail", "tradeTime")     # execution-only attributes
    attrs = {**{k: v for k, v in last.items() if k not in dropped},
             "quantity": fmt(quantity), "tradePrice": fmt(price), "proceeds": fmt(proceeds),
             "tradeMoney": fmt(-proceeds), "ibCommission": fmt(fee), "netCash": fmt(proceeds + fee),
             "orderTime": flex_time(submitted), "tradeDate": first["tradeDate"], "levelOfDetail": "ORDER"}
    return Event(executions[-1].at, "order", attrs)


def cash(account: Account, at: float, kind: str, amount: Decimal, currency: str = BASE,
         inst: Instrument | None = None, description: str = "", action_id: str = "") -> Event:
    transaction_id = account.new_id()
    security = inst.attrs() if inst is not None else {"currency": currency, "assetCategory": "", "symbol": ""}
    attrs = {**_common(account, at), **security, "currency": currency,
             "fxRateToBase": fmt(FX_TO_BASE.get(currency, Decimal(1))), **_dates(at),
             "settleDate": flex_time(at)[:8], "amount": fmt(amount),
             "type": kind, "transactionID": transaction_id, "actionID": action_id, "levelOfDetail": "DETAIL",
             "description": description or kind}
    if kind == "Deposits & Withdrawals":
        truth_type = "deposit" if amount >= 0 else "withdrawal"
    else:
        truth_type = CASH_TRUTH.get(kind, "other")
    return Event(at, "cash", attrs, None, ((currency, amount),),
                 _truth(f"cash:{transaction_id}", truth_type, inst.key if inst else "", None, amount))


def corporate_action(account: Account, inst: Instrument, at: float, code: str, quantity: Decimal,
                     action_id: str, description: str, proceeds: Decimal = Decimal(0)) -> Event:
    """One row of a corporate action: the change it made to one security, and any cash."""
    transaction_id = account.new_id()
    attrs = {**_common(account, at), **inst.attrs(), "fxRateToBase": fmt(FX_TO_BASE.get(inst.currency, Decimal(1))),
             **_dates(at), "actionID": action_id, "actionDescription": description, "description": description,
             "amount": fmt(-proceeds), "proceeds": fmt(proceeds), "value": "0", "quantity": fmt(quantity),
             "type": code, "transactionID": transaction_id, "levelOfDetail": "DETAIL"}
    return Event(at, "ca", attrs, (inst.key, quantity) if quantity else None,
                 ((inst.currency, proceeds),) if proceeds else (),
                 _truth(f"ca:{transaction_id}", "split" if code in SPLITS else "other", inst.key,
                        quantity or None, proceeds or None))


def security_transfer(account: Account, inst: Instrument, at: float, kind: str, quantity: Decimal,
                      counterparty: str) -> Event:
    """ACATS or internal: `quantity` signed (IBKR writes it positive with direction IN/OUT)."""
    transaction_id = account.new_id()
    day = flex_time(at)[:8]
    attrs = {**_common(account, at), **inst.attrs(), "fxRateToBase": fmt(FX_TO_BASE.get(inst.currency, Decimal(1))),
             "date": day, **_dates(at), "type": kind, "direction": "IN" if quantity > 0 else "OUT",
             "company": "--", "account": counterparty, "quantity": fmt(abs(quantity)), "transferPrice": "0",
             "positionAmount": "0", "cashTransfer": "0", "transactionID": transaction_id, "levelOfDetail": "DETAIL"}
    return Event(at, "transfer", attrs, (inst.key, quantity), (),
                 _truth(f"transfer:{transaction_id}", "transfer", inst.key, quantity, None))


def cash_transfer(account: Account, at: float, currency: str, amount: Decimal, counterparty: str) -> Event:
    transaction_id = account.new_id()
    day = flex_time(at)[:8]
    attrs = {**_common(account, at), "currency": currency, "fxRateToBase": fmt(FX_TO_BASE.get(currency, Decimal(1))),
             "assetCategory": "CASH", "symbol": "--", "description": f"Transfer {currency}", "date": day,
             **_dates(at), "type": "INTERNAL", "direction": "IN" if amount > 0 else "OUT", "company": "--",
             "account": counterparty, "quantity": "0", "cashTransfer": fmt(abs(amount)),
             "transactionID": transaction_id, "levelOfDetail": "DETAIL"}
    return Event(at, "transfer", attrs, None, ((currency, amount),),
                 _truth(f"transfer:{transaction_id}", "deposit" if amount > 0 else "withdrawal", "", None, amount))


def _truth(broker_id: str, kind: str, symbol: str, quantity: Decimal | None, amount: Decimal | None) -> dict:
    return {"broker_id": broker_id, "type": kind, "symbol": symbol,
            "quantity": fmt(quantity) if quantity is not None else None,
            "amount": fmt(amount) if amount is not None else None, "status": "executed"}
