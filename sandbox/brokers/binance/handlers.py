"""Endpoint handlers: parameters checked and paged as Binance does, records rendered in
Binance's field names and types (amounts as 8-dp strings, ids and times as numbers,
deposit ids as strings, withdrawal times as "YYYY-MM-DD HH:MM:SS" UTC strings).

Unconfirmed behaviour, chosen and kept consistent: a `limit` above the maximum is an
error (-1130) rather than silently cut; /sapi windows that are too long answer -1127;
deposit, withdrawal and dividend lists come newest first.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ...http import Response, SimError
from .state import Order, Trade
from ... import prices
from .universe import DAY_MS, UNIT, SymbolInfo, bar_units, fmt, price_units, universe

if TYPE_CHECKING:
    from .sim import BinanceSim
    from .state import Account

HOUR_MS = 3_600_000
TRADE_WINDOW_MS = 24 * HOUR_MS       # myTrades / allOrders: startTime..endTime at most 24 h
DEPOSIT_WINDOW_MS = 90 * DAY_MS      # capital deposit / withdraw history: 90 days
DIVIDEND_WINDOW_MS = 180 * DAY_MS    # assetDividend: 180 days


def _error(status: int, code: int, msg: str) -> SimError:
    return SimError(Response.json({"code": code, "msg": msg}, status))


# -- parameters ---------------------------------------------------------------------------
def _int(q: dict[str, str], name: str, default: int | None = None) -> int | None:
    value = q.get(name)
    if value in (None, ""):
        return default
    if not value.lstrip("-").isdigit():
        raise _error(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(value)


def _limit(q: dict[str, str], default: int, maximum: int) -> int:
    limit = _int(q, "limit", default)
    if not 1 <= limit <= maximum:
        raise _error(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return limit


def _symbol(q: dict[str, str], *, required: bool = True) -> SymbolInfo | None:
    name = q.get("symbol")
    if not name:
        if required:
            raise _error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    info = universe().get(name.upper())
    if info is None or not info.trading:           # delisted pairs answer like unknown ones
        raise _error(400, -1121, "Invalid symbol.")
    return info


def _window(q: dict[str, str], now: int, span: int, *, forward: bool = False) -> tuple[int, int]:
    """startTime/endTime with Binance's defaults (`forward`: a lone startTime means the next
    `span`, as myTrades does; otherwise it runs to now). Longer than `span` is -1127."""
    start, end = _int(q, "startTime"), _int(q, "endTime")
    if start is None and end is None:
        return now - span, now
    if start is None:
        start = end - span
    if end is None:
        end = start + span if forward else now
    if end - start > span:
        raise _error(400, -1127, f"More than {span // HOUR_MS} hours between startTime and endTime.")
    return start, end


# -- public -------------------------------------------------------------------------------
def ping(sim, account, q, now) -> dict:
    return {}


def server_time(sim, account, q, now) -> dict:
    return {"serverTime": now}


def exchange_info(sim: "BinanceSim", account, q, now) -> Response:
    names = None
    if q.get("symbol"):                        # delisted (BREAK) symbols are still described
        names = [q["symbol"].upper()]
        if universe().get(names[0]) is None:
            raise _error(400, -1121, "Invalid symbol.")
    elif q.get("symbols"):
        names = _symbol_list(q["symbols"])
    body = universe().exchange_info_body(now, sim.weights.limit, names)
    return Response(200, body, {"Content-Type": "application/json"})


def _symbol_list(raw: str) -> list[str]:
    try:
        names = [str(n).upper() for n in json.loads(raw)]
    except (ValueError, TypeError):
        raise _error(400, -1100, "Illegal characters found in parameter 'symbols'.")
    if any(universe().get(n) is None for n in names):
        raise _error(400, -1121, "Invalid symbol.")
    return names


def ticker_price(sim, account, q, now) -> Any:
    if q.get("symbol"):
        info = _symbol(q)
        return {"symbol": info.symbol, "price": fmt(price_units(info.base, info.quote, now))}
    names = _symbol_list(q["symbols"]) if q.get("symbols") else None
    infos = [universe().get(n) for n in names] if names else universe().symbols.values()
    return [{"symbol": i.symbol, "price": fmt(price_units(i.base, i.quote, now))} for i in infos if i.trading]


KLINE_INTERVALS = {"1d": DAY_MS}      # the one interval brokersync asks for (rest-api.md lists 1s..1M)
KLINES_DEFAULT, KLINES_MAX = 500, 1000


def klines(sim, account, q, now) -> Any:
    """Daily klines from the sandbox market: [openTime, open, high, low, close, volume,
    closeTime, quoteVolume, trades, takerBuyBase, takerBuyQuote, "0"], oldest first. Without
    startTime the newest `limit` (today's kline, still open, last)."""
    info = _symbol(q)
    interval = q.get("interval")
    if not interval:
        raise _error(400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
    if interval not in KLINE_INTERVALS:
        raise _error(400, -1120, "Invalid interval.")
    limit = _limit(q, KLINES_DEFAULT, KLINES_MAX)
    today = now // DAY_MS
    start, end = _int(q, "startTime"), _int(q, "endTime")
    last = min(today, end // DAY_MS) if end is not None else today
    first = max(-(-start // DAY_MS), 0) if start is not None else last - limit + 1
    days = range(first, min(last, first + limit - 1) + 1)
    return [_kline(info, day, now) for day in days]


def _kline(info: SymbolInfo, day: int, now: int) -> list:
    o, h, low, c = bar_units(info.base, info.quote, day)
    if day == now // DAY_MS:
        c = price_units(info.base, info.quote, now)        # the open kline closes at the last price
    volume = int(prices.volume(info.base, day) * UNIT)
    return [day * DAY_MS, fmt(o), fmt(h), fmt(low), fmt(c), fmt(volume), (day + 1) * DAY_MS - 1,
            fmt(volume * c // UNIT), 1000 + day % 500, fmt(volume // 2), fmt(volume * c // UNIT // 2), "0"]


# -- account ------------------------------------------------------------------------------
def account(sim, acct: "Account", q, now) -> dict:
    omit_zero = (q.get("omitZeroBalances") or "false").lower() == "true"
    assets = set(acct.totals)
    if not omit_zero:
        assets |= {"BTC", "ETH", "BNB", "USDT", "BUSD", "FDUSD"} | acct.moved_assets
        assets |= {b.info.base for b in acct.books.values()} | {b.info.quote for b in acct.books.values()}
    balances = []
    for asset in sorted(assets):
        locked = acct.locked.get(asset, 0)
        balances.append({"asset": asset, "free": fmt(acct.totals.get(asset, 0) - locked), "locked": fmt(locked)})
    can_trade = bool(acct.restrictions.get("enableSpotAndMarginTrading"))
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                            "seller": "0.00000000"},
        "canTrade": can_trade, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": acct.last_ms,
        "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": acct.uid,
    }


def api_restrictions(sim, acct: "Account", q, now) -> dict:
    return dict(acct.restrictions)


def my_trades(sim, acct: "Account", q, now) -> list[dict]:
    info = _symbol(q)
    limit = _limit(q, 500, 1000)
    order_id, from_id = _int(q, "orderId"), _int(q, "fromId")
    timed = q.get("startTime") or q.get("endTime")
    if timed and (from_id is not None or order_id is not None):
        raise _error(400, -1128, "Combination of optional parameters invalid.")
    book = acct.books.get(info.symbol)
    if book is None:
        return []
    dropped = sim.faults_of(acct.account_id).dropped      # record faults: "SYMBOL:id" left out
    wanted = limit + len(dropped)                          # before the page is cut, so it stays full
    if order_id is not None:
        order = book.by_order_id.get(order_id)
        found = [] if order is None else book.trades_between(order.time, order.update_time, 10 ** 9)
        trades = [t for t in found if t.order_id == order_id and t.id >= (from_id or 0)][:wanted]
    elif from_id is not None:
        trades = book.trades_from_id(from_id, wanted)
    elif timed:
        start, end = _window(q, now, TRADE_WINDOW_MS, forward=True)
        trades = book.trades_between(start, end, wanted)
    else:
        trades = book.recent_trades(wanted)
    if dropped:
        kept = [t for t in trades if f"{t.symbol}:{t.id}" not in dropped]
        recent = order_id is None and from_id is None and not timed
        trades = kept[-limit:] if recent else kept[:limit]
    return [render_trade(t) for t in trades]


def all_orders(sim, acct: "Account", q, now) -> list[dict]:
    info = _symbol(q)
    limit = _limit(q, 500, 1000)
    order_id = _int(q, "orderId")
    book = acct.books.get(info.symbol)
    if book is None:
        return []
    if q.get("startTime") or q.get("endTime"):
        start, end = _window(q, now, TRADE_WINDOW_MS, forward=True)
        orders = [o for o in book.orders_between(start, end, 10 ** 9) if o.order_id >= (order_id or 0)][:limit]
    elif order_id is not None:
        orders = book.orders_from_id(order_id, limit)
    else:
        orders = book.recent_orders(limit)
    return [render_order(o) for o in orders]


def open_orders(sim, acct: "Account", q, now) -> list[dict]:
    info = _symbol(q, required=False)
    orders = [o for o in acct.open_orders.values() if info is None or o.symbol == info.symbol]
    return [render_order(o) for o in sorted(orders, key=lambda o: (o.time, o.symbol, o.order_id))]


def query_order(sim, acct: "Account", q, now) -> dict:
    info = _symbol(q)
    order_id, client_id = _int(q, "orderId"), q.get("origClientOrderId")
    if order_id is None and not client_id:
        raise _error(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    book = acct.books.get(info.symbol)
    order = None
    if book is not None:
        order = (book.by_order_id.get(order_id) if order_id is not None
                 else next((o for o in book.orders if o.client_order_id == client_id), None))
    if order is None:
        raise _error(400, -2013, "Order does not exist.")
    return render_order(order)


# -- wallet (/sapi) ------------------------------------------------------------------------
def deposits(sim, acct: "Account", q, now) -> list[dict]:
    start, end = _window(q, now, DEPOSIT_WINDOW_MS)
    offset, limit = _int(q, "offset", 0), _limit(q, 1000, 1000)
    coin, status, tx_id = q.get("coin"), _int(q, "status"), q.get("txId")
    dropped = sim.faults_of(acct.account_id).dropped
    rows = [d for d in reversed(acct.deposits.between(start, end))
            if (not coin or d.coin == coin) and (status is None or d.status == status)
            and (not tx_id or d.tx_id == tx_id) and d.id not in dropped]
    return [render_deposit(d) for d in rows[offset: offset + limit]]


def withdrawals(sim, acct: "Account", q, now) -> list[dict]:
    start, end = _window(q, now, DEPOSIT_WINDOW_MS)
    offset, limit = _int(q, "offset", 0), _limit(q, 1000, 1000)
    coin, status = q.get("coin"), _int(q, "status")
    dropped = sim.faults_of(acct.account_id).dropped
    rows = [w for w in reversed(acct.withdrawals.between(start, end))
            if (not coin or w.coin == coin) and (status is None or w.status == status) and w.id not in dropped]
    return [render_withdrawal(w) for w in rows[offset: offset + limit]]


def dividends(sim, acct: "Account", q, now) -> dict:
    start, end = _window(q, now, DIVIDEND_WINDOW_MS)
    limit = _limit(q, 20, 500)
    asset = q.get("asset")
    rows = [d for d in reversed(acct.dividends.between(start, end)) if not asset or d.asset == asset]
    return {"rows": [render_dividend(d) for d in rows[:limit]], "total": len(rows)}


# -- rendering ----------------------------------------------------------------------------
def render_trade(t: Trade) -> dict:
    return {"symbol": t.symbol, "id": t.id, "orderId": t.order_id, "orderListId": -1, "price": fmt(t.price),
            "qty": fmt(t.qty), "quoteQty": fmt(t.quote_qty), "commission": fmt(t.commission),
            "commissionAsset": t.commission_asset, "time": t.time, "isBuyer": t.is_buyer, "isMaker": t.is_maker,
            "isBestMatch": True}


def render_order(o: Order) -> dict:
    return {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
            "price": fmt(o.price), "origQty": fmt(o.orig_qty), "executedQty": fmt(o.executed_qty),
            "cummulativeQuoteQty": fmt(o.cumm_quote), "status": o.status, "timeInForce": o.time_in_force,
            "type": o.type, "side": o.side, "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": o.time,
            "updateTime": o.update_time, "isWorking": True, "workingTime": o.time,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}


def plain(units: int) -> str:
    """Wallet amounts are printed without padding ('0.001')."""
    text = format(Decimal(units).scaleb(-8).normalize(), "f")
    return text


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render_deposit(d) -> dict:
    return {"id": d.id, "amount": plain(d.amount), "coin": d.coin, "network": d.network, "status": d.status,
            "address": d.address, "addressTag": "", "txId": d.tx_id, "insertTime": d.insert_time,
            "completeTime": d.complete_time, "transferType": 0, "confirmTimes": "12/12", "unlockConfirm": 0,
            "walletType": 0, "travelRuleStatus": 0}


def render_withdrawal(w) -> dict:
    row = {"id": w.id, "amount": fmt(w.amount), "transactionFee": plain(w.fee), "coin": w.coin, "status": w.status,
           "address": w.address, "txId": w.tx_id, "applyTime": utc_text(w.apply_time), "network": w.network,
           "transferType": 0, "info": "" if w.status == 6 else "The address is not valid.", "confirmNo": 12,
           "walletType": 0, "txKey": ""}
    if w.withdraw_order_id:
        row["withdrawOrderId"] = w.withdraw_order_id
    if w.status == 6:
        row["completeTime"] = utc_text(w.apply_time + 600_000)
    return row


def render_dividend(d) -> dict:
    return {"id": d.id, "amount": fmt(d.amount), "asset": d.asset, "divTime": d.div_time, "enInfo": d.en_info,
            "tranId": d.tran_id, "direction": d.direction}
