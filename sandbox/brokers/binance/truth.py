"""What an account holds, in brokersync's normalised terms (see README "How it works").

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

from bisect import bisect_left
from typing import Any

from . import api, handlers
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


def truth(account: Account, now_ms: int | None = None) -> dict[str, Any]:
    """`now_ms`: the server time, for the time windows of the minimum (default: the newest record)."""
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
        "minimum": minimum(account, account.last_ms if now_ms is None else now_ms),
    }


# -- the fewest requests a first sync can make ---------------------------------------------
TRADES_PAGE = ORDERS_PAGE = 1000          # myTrades / allOrders maximum `limit` (handlers.py)
WALLET_PAGE, DIVIDEND_PAGE = 1000, 500    # deposit / withdraw history (offset pages), assetDividend


def _weight(path: str) -> int:
    return api.ROUTES[path].weight({})


def _pages(n: int, size: int) -> int:
    """A list with no "more" flag: the end is a page shorter than `size` (empty at a multiple)."""
    return n // size + 1


def window_requests(times: list[int], t0: int, now: int, span: int, page: int, *, offset_paged: bool) -> int:
    """The fewest requests that read every record of a time-windowed list over [t0, now].

    `times`: the records' times, sorted (ms). A window is [start, end] with end - start <=
    `span`, both inclusive, as the simulator (and Binance) take startTime/endTime; windows
    must tile [t0, now], since a sync cannot know that a stretch holds nothing without
    asking. Offset-paged lists (deposits, withdrawals) read a window of r records in
    r // page + 1 requests (the last page short, or empty); assetDividend has no offset,
    only `total`, so a window may hold at most `page` records and costs 1.

    The windows are placed optimally (a client that knew the records would place them so):
    frontier[k] is the furthest point k requests can cover from t0, and the last window of
    a best plan starts at some frontier[j] (a window may always be shortened, and the
    furthest a window of given cost reaches never decreases when it starts later).
    """
    frontier = [t0]
    while frontier[-1] <= now:
        k = len(frontier)
        best = frontier[-1]
        for j in range(k):
            cost = k - j
            if not offset_paged and cost > 1:
                continue
            start = frontier[j]
            if start > now:
                continue
            end = min(start + span, now)
            first = bisect_left(times, start)
            room = cost * page - 1 if offset_paged else page     # records the window may hold
            if first + room < len(times):
                end = min(end, times[first + room] - 1)
            if end >= start:
                best = max(best, end + 1)
            elif not offset_paged:
                best = max(best, start + 1)   # > page records in one ms: no window reads them all
        frontier.append(best)
    return len(frontier) - 1


def minimum(account: Account, now_ms: int) -> dict[str, Any]:
    """The fewest requests, and the least /api request weight, a complete first sync of the
    account can make, knowing where every record is.

    Counted (weights from api.ROUTES):
      account         GET /api/v3/account once (20): balances, hence positions and cash.
      exchangeInfo    once (20): which symbols exist, and each one's base and quote.
      myTrades        per TRADING symbol with trades, fromId pages of 1,000: n // 1000 + 1
                      (20 each). Delisted symbols answer -1121; their trades are listed
                      under "unreachable" and not counted.
      allOrders       per TRADING symbol with orders, pages of 1,000: n // 1000 + 1 (20
                      each). It returns open orders too: no openOrders call is needed.
      deposits        /sapi capital/deposit/hisrec: 90-day windows tiling [first record,
                      now], offset pages of 1,000 (window_requests). /sapi weight is
                      counted apart from /api: cost 0 here.
      withdrawals     /sapi capital/withdraw/history: the same (its UID weight, 18,000 a
                      call against 180,000 a minute per account, is not /api weight).
      dividends       /sapi asset/assetDividend: 180-day windows of at most 500 records.
    "first record" is the account's oldest record of any kind: nothing is older, and
    from there on every window must be asked. Not counted: verifying the key, prices
    for positions (ticker), the server time, symbols with neither trades nor orders, and
    anything about stored open orders (a first sync has none). `now_ms` is the time the
    truth is read; a sync a moment later may need one more window if a window boundary
    passes in between.
    """
    books = [b for b in account.books.values() if b.info.trading]
    trade_pages = sum(_pages(len(b.trades), TRADES_PAGE) for b in books if b.trades)
    order_pages = sum(_pages(len(b.orders), ORDERS_PAGE) for b in books if b.orders)
    firsts = [index.times[0] for index in (account.deposits, account.withdrawals, account.dividends) if index.times]
    firsts += [b.trade_times[0] for b in account.books.values() if b.trade_times]
    firsts += [b.order_times[0] for b in account.books.values() if b.order_times]
    t0 = min(firsts + [now_ms])
    wallet = {
        "deposits": window_requests(account.deposits.times, t0, now_ms, handlers.DEPOSIT_WINDOW_MS, WALLET_PAGE,
                                    offset_paged=True),
        "withdrawals": window_requests(account.withdrawals.times, t0, now_ms, handlers.DEPOSIT_WINDOW_MS,
                                       WALLET_PAGE, offset_paged=True),
        "dividends": window_requests(account.dividends.times, t0, now_ms, handlers.DIVIDEND_WINDOW_MS, DIVIDEND_PAGE,
                                     offset_paged=False),
    }
    detail = {"account": 1, "exchange_info": 1, "my_trades": trade_pages, "all_orders": order_pages, **wallet}
    cost = (_weight("/api/v3/account") + _weight("/api/v3/exchangeInfo") + trade_pages * _weight("/api/v3/myTrades")
            + order_pages * _weight("/api/v3/allOrders"))
    return {"requests": sum(detail.values()), "cost": float(cost), "detail": detail,
            "symbols": {"with_trades": sum(1 for b in books if b.trades),
                        "with_orders": sum(1 for b in books if b.orders)}}
