"""What an account holds, in brokersync's normalised terms (see docs/helper-brief.md).

Transactions are split into legs, one per asset a record moves, with exactly the
broker_ids the adapter produces:
    trade:{SYMBOL}:{id}         the base asset, +qty on a buy (cash `amount` only for a fiat quote)
    trade:{SYMBOL}:{id}:quote   the quote asset, -quoteQty on a buy (omitted for a fiat quote)
    trade:{SYMBOL}:{id}:fee     the commission asset, -commission (omitted when zero)
    deposit:{id}                transfer in;   withdraw:{id} transfer out, withdraw:{id}:fee its fee
    dividend:{id}               reward (airdrops, distributions, earn payouts)
so the sum of legs per asset equals its balance. Trades on delisted pairs are listed
apart under "unreachable": Binance no longer serves them (myTrades answers -1121).
"""
from __future__ import annotations

from typing import Any

from .state import Account, Trade
from .universe import SymbolInfo, fmt

FIAT = frozenset({"USD", "EUR", "GBP", "TRY", "BRL", "JPY", "AUD", "CAD", "CHF"})
ORDER_STATUS = {"NEW": "open", "PENDING_NEW": "open", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
                "CANCELED": "canceled", "PENDING_CANCEL": "open", "REJECTED": "rejected", "EXPIRED": "expired",
                "EXPIRED_IN_MATCH": "expired"}


def _leg(broker_id: str, kind: str, asset: str, units: int, status: str = "executed") -> dict[str, Any]:
    if asset in FIAT:
        return {"broker_id": broker_id, "type": kind, "symbol": "", "quantity": None, "amount": fmt(units),
                "status": status}
    return {"broker_id": broker_id, "type": kind, "symbol": asset, "quantity": fmt(units), "amount": None,
            "status": status}


def trade_legs(trade: Trade, info: SymbolInfo) -> list[dict[str, Any]]:
    sign = 1 if trade.is_buyer else -1
    key = f"trade:{info.symbol}:{trade.id}"
    base = _leg(key, "trade", info.base, sign * trade.qty)
    legs = [base]
    if info.quote in FIAT:
        base["amount"] = fmt(-sign * trade.quote_qty)
    else:
        legs.append(_leg(key + ":quote", "trade", info.quote, -sign * trade.quote_qty))
    if trade.commission:
        legs.append(_leg(key + ":fee", "fee", trade.commission_asset, -trade.commission))
    return legs


def truth(account: Account) -> dict[str, Any]:
    transactions: list[dict] = []
    unreachable: list[dict] = []
    orders: list[dict] = []
    for book in account.books.values():
        target = transactions if book.info.trading else unreachable
        for trade in book.trades:
            target.extend(trade_legs(trade, book.info))
        if book.info.trading:
            orders.extend({"broker_id": f"{o.symbol}:{o.order_id}", "status": ORDER_STATUS[o.status]}
                          for o in book.orders)
    for d in account.deposits.items:
        status = "executed" if d.credited else "pending" if d.pending else "canceled"
        transactions.append(_leg(f"deposit:{d.id}", "deposit" if d.coin in FIAT else "transfer", d.coin,
                                 d.amount, status))
    for w in account.withdrawals.items:
        status = "executed" if w.debited else "canceled"
        transactions.append(_leg(f"withdraw:{w.id}", "withdrawal" if w.coin in FIAT else "transfer", w.coin,
                                 -w.amount, status))
        if w.fee:
            transactions.append(_leg(f"withdraw:{w.id}:fee", "fee", w.coin, -w.fee, status))
    for d in account.dividends.items:
        transactions.append(_leg(f"dividend:{d.id}", "reward", d.asset, d.direction * d.amount))
    return {
        "broker_account_id": str(account.uid),
        "positions": [{"symbol": a, "quantity": fmt(u)} for a, u in sorted(account.totals.items())
                      if u and a not in FIAT],
        "cash": {a: fmt(u) for a, u in sorted(account.totals.items()) if a in FIAT},
        "transactions": transactions,
        "orders": orders,
        "unreachable": {"symbols": sorted(s for s, b in account.books.items() if not b.info.trading),
                        "transactions": unreachable},
    }
