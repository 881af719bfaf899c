"""One simulated Binance account: its records, balances and indexed lookups.

Records are kept sorted as they are made (ids and times only grow), with parallel key
lists so every API page is a bisect plus a slice, never a scan. Amounts are integers in
1e-8 units (see universe.py). Every change of a balance goes through `Account.credit`,
called only by the record-making methods below, so balances always equal the sum of
the history: the invariant truth() promises.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from .universe import SymbolInfo, stable_hash

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(slots=True)
class Trade:
    symbol: str
    id: int
    order_id: int
    price: int
    qty: int
    quote_qty: int
    commission: int
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


@dataclass(slots=True)
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    side: str                           # BUY / SELL
    type: str                           # LIMIT / MARKET
    price: int
    orig_qty: int
    executed_qty: int
    cumm_quote: int
    status: str
    time_in_force: str
    time: int
    update_time: int
    locked_asset: str = ""              # what an open order holds back, released on cancel
    locked: int = 0


@dataclass(slots=True)
class Deposit:
    id: str
    coin: str
    amount: int
    network: str
    status: int                         # 1 success, 6 credited but cannot withdraw, 0 pending
    address: str
    tx_id: str
    insert_time: int
    complete_time: int

    @property
    def credited(self) -> bool:
        return self.status in (1, 6)

    @property
    def pending(self) -> bool:
        return self.status in (0, 8)


@dataclass(slots=True)
class Withdrawal:
    id: str
    coin: str
    amount: int
    fee: int
    status: int                         # 6 completed, 3 rejected (refunded)
    address: str
    tx_id: str
    apply_time: int
    network: str
    withdraw_order_id: str = ""

    @property
    def debited(self) -> bool:
        return self.status not in (1, 3, 5)     # cancelled / rejected / failure give the coins back


@dataclass(slots=True)
class Dividend:
    id: int
    asset: str
    amount: int
    div_time: int
    en_info: str
    tran_id: int
    direction: int = 1


class TimeIndex:
    """Records sorted by a time key, appended in time order."""

    def __init__(self, key: str):
        self.key = key
        self.items: list[Any] = []
        self.times: list[int] = []

    def add(self, item: Any) -> None:
        t = getattr(item, self.key)
        if self.times and t < self.times[-1]:
            i = bisect_right(self.times, t)
            self.items.insert(i, item)
            self.times.insert(i, t)
        else:
            self.items.append(item)
            self.times.append(t)

    def between(self, start: int, end: int) -> list[Any]:
        return self.items[bisect_left(self.times, start): bisect_right(self.times, end)]


class SymbolBook:
    """One symbol's trades and orders, sorted by id (which grows with time)."""

    def __init__(self, info: SymbolInfo, first_trade_id: int, first_order_id: int):
        self.info = info
        self.trades: list[Trade] = []
        self.trade_ids: list[int] = []
        self.trade_times: list[int] = []
        self.orders: list[Order] = []
        self.order_ids: list[int] = []
        self.order_times: list[int] = []
        self.by_order_id: dict[int, Order] = {}
        self.next_trade_id = first_trade_id
        self.next_order_id = first_order_id

    def add_trade(self, trade: Trade) -> None:
        self.trades.append(trade)
        self.trade_ids.append(trade.id)
        self.trade_times.append(trade.time)

    def add_order(self, order: Order) -> None:
        self.orders.append(order)
        self.order_ids.append(order.order_id)
        self.order_times.append(order.time)
        self.by_order_id[order.order_id] = order

    # -- paging, as the API pages -------------------------------------------------------
    def trades_from_id(self, from_id: int, limit: int) -> list[Trade]:
        i = bisect_left(self.trade_ids, from_id)
        return self.trades[i: i + limit]

    def trades_between(self, start: int, end: int, limit: int) -> list[Trade]:
        i = bisect_left(self.trade_times, start)
        j = bisect_right(self.trade_times, end)
        return self.trades[i: min(j, i + limit)]

    def recent_trades(self, limit: int) -> list[Trade]:
        return self.trades[-limit:] if limit else []

    def orders_from_id(self, from_id: int, limit: int) -> list[Order]:
        i = bisect_left(self.order_ids, from_id)
        return self.orders[i: i + limit]

    def orders_between(self, start: int, end: int, limit: int) -> list[Order]:
        i = bisect_left(self.order_times, start)
        j = bisect_right(self.order_times, end)
        return self.orders[i: min(j, i + limit)]

    def recent_orders(self, limit: int) -> list[Order]:
        return self.orders[-limit:] if limit else []


@dataclass
class Account:
    account_id: str
    uid: int
    api_key: str
    api_secret: str
    environment: str
    seed: int
    created_ms: int
    restrictions: dict[str, Any]
    revoked: bool = False
    books: dict[str, SymbolBook] = field(default_factory=dict)
    deposits: TimeIndex = field(default_factory=lambda: TimeIndex("insert_time"))
    withdrawals: TimeIndex = field(default_factory=lambda: TimeIndex("apply_time"))
    dividends: TimeIndex = field(default_factory=lambda: TimeIndex("div_time"))
    totals: dict[str, int] = field(default_factory=dict)       # free + locked
    locked: dict[str, int] = field(default_factory=dict)
    open_orders: dict[tuple[str, int], Order] = field(default_factory=dict)
    moved_assets: set[str] = field(default_factory=set)        # deposited, withdrawn or paid out
    last_ms: int = 0                                            # newest record time

    # -- balances -----------------------------------------------------------------------
    def credit(self, asset: str, units: int) -> None:
        total = self.totals.get(asset, 0) + units
        if total:
            self.totals[asset] = total
        else:
            self.totals.pop(asset, None)

    def free(self, asset: str) -> int:
        return self.totals.get(asset, 0) - self.locked.get(asset, 0)

    def lock(self, asset: str, units: int) -> None:
        self.locked[asset] = self.locked.get(asset, 0) + units
        if not self.locked[asset]:
            del self.locked[asset]

    def touch(self, t: int) -> None:
        self.last_ms = max(self.last_ms, t)

    # -- records: the only places balances change ----------------------------------------
    def book(self, info: SymbolInfo) -> SymbolBook:
        book = self.books.get(info.symbol)
        if book is None:
            h = stable_hash(info.symbol)        # per-symbol id ranges, as a real market has
            book = SymbolBook(info, 1_000_000 + h % 90_000_000, 10_000_000 + (h >> 4) % 900_000_000)
            self.books[info.symbol] = book
        return book

    def add_trade(self, trade: Trade, info: SymbolInfo) -> None:
        sign = 1 if trade.is_buyer else -1
        self.credit(info.base, sign * trade.qty)
        self.credit(info.quote, -sign * trade.quote_qty)
        if trade.commission:
            self.credit(trade.commission_asset, -trade.commission)
        self.book(info).add_trade(trade)
        self.touch(trade.time)

    def add_deposit(self, deposit: Deposit) -> None:
        if deposit.credited:
            self.credit(deposit.coin, deposit.amount)
        self.moved_assets.add(deposit.coin)
        self.deposits.add(deposit)
        self.touch(deposit.insert_time)

    def settle_deposit(self, deposit: Deposit, t: int) -> None:
        """A pending deposit (status 0) is credited: its record changes, its time does not."""
        if not deposit.credited:
            deposit.status, deposit.complete_time = 1, t
            self.credit(deposit.coin, deposit.amount)
            self.touch(t)

    def add_withdrawal(self, withdrawal: Withdrawal) -> None:
        if withdrawal.debited:
            self.credit(withdrawal.coin, -(withdrawal.amount + withdrawal.fee))
        self.moved_assets.add(withdrawal.coin)
        self.withdrawals.add(withdrawal)
        self.touch(withdrawal.apply_time)

    def add_dividend(self, dividend: Dividend) -> None:
        self.credit(dividend.asset, dividend.direction * dividend.amount)
        self.moved_assets.add(dividend.asset)
        self.dividends.add(dividend)
        self.touch(dividend.div_time)

    def open_order(self, order: Order, info: SymbolInfo) -> None:
        self.book(info).add_order(order)
        if order.status in OPEN_STATUSES:
            self.open_orders[(order.symbol, order.order_id)] = order
            if order.locked:
                self.lock(order.locked_asset, order.locked)
        self.touch(order.time)

    def cancel_order(self, order: Order, t: int) -> None:
        self.open_orders.pop((order.symbol, order.order_id), None)
        if order.locked:
            self.lock(order.locked_asset, -order.locked)
            order.locked = 0
        order.status = "CANCELED"
        order.update_time = t
        self.touch(t)
