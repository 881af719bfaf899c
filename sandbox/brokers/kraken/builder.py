"""Primitive account events that keep the books straight.

Every balance change goes through `_post`, which writes one ledger row whose
`balance` = previous + amount - fee (the arithmetic §7.12 could not confirm; we pick the
obvious one and keep it). So for every asset, balance == the sum of (amount - fee) over
its rows: the invariant reconcile checks.
A spot trade writes one row per asset sharing the trade txid as refid, with the fee on
the quote-currency row (§4.4 "fee in quote currency").
"""
from __future__ import annotations

import random

from .market import FIATS, LOT_DECIMALS, SCALE_DECIMALS, Market, Pair
from .state import T4, Account, IdMaker, LedgerRow, Order, Trade

TAKER_FEE_BPS = 26                      # Kraken's starting taker fee, 0.26%
MAKER_FEE_BPS = 16
FIRST_TRADE_ID = 40_000_000


def quote_step(asset: str) -> int:
    """Smallest amount of an asset a trade moves: 4 decimals for fiat, 8 for coins."""
    return 10 ** (SCALE_DECIMALS - (4 if asset in FIATS else LOT_DECIMALS))


def round_to(units: int, step: int) -> int:
    return (units + step // 2) // step * step


class Builder:
    def __init__(self, account: Account, market: Market, rng: random.Random):
        self.a = account
        self.market = market
        self.rng = rng
        seed = account.seed
        self.ledger_ids = IdMaker(seed, "ledger", "L")
        self.trade_ids = IdMaker(seed, "trade", "T")
        self.order_ids = IdMaker(seed, "order", "O")
        self.ref_ids = IdMaker(seed, "ref", "Q")
        self.next_trade_id = FIRST_TRADE_ID + seed % 1000 * 10_000
        # While generating history, orders closed out of opentm order are sorted once at the
        # end (finish) instead of inserted one by one.
        self.bulk: list[Order] | None = None

    # -- the ledger -----------------------------------------------------------------------
    def _post(self, refid: str, t4: int, type_: str, subtype: str, asset: str, amount: int, fee: int = 0) -> LedgerRow:
        a = self.a
        balance = a.balances.get(asset, 0) + amount - fee
        assert balance >= 0, (asset, balance)
        a.balances[asset] = balance
        row = LedgerRow(self.ledger_ids.next(), refid, t4, type_, subtype, asset, amount, fee, balance)
        position = len(a.ledger)
        a.ledger.add(row, t4)
        a.ledger_by_id[row.id] = position
        a.note_ledger_append(position, row)
        return row

    def balance(self, asset: str) -> int:
        return self.a.balances.get(asset, 0)

    # -- funding --------------------------------------------------------------------------
    def deposit(self, t4: int, asset: str, amount: int) -> list[LedgerRow]:
        return [self._post(self.ref_ids.next(), t4, "deposit", "", asset, amount)]

    def withdrawal(self, t4: int, asset: str, amount: int, fee: int) -> list[LedgerRow]:
        return [self._post(self.ref_ids.next(), t4, "withdrawal", "", asset, -amount, fee)]

    # -- staking / earn (spot <-> shadow balances) ------------------------------------------
    def move(self, t4: int, src: str, dst: str, amount: int, type_: str, subtypes: tuple[str, str]) -> list[LedgerRow]:
        ref = self.ref_ids.next()
        return [self._post(ref, t4, type_, subtypes[0], src, -amount), self._post(ref, t4, type_, subtypes[1], dst, amount)]

    def stake(self, t4: int, coin: str, shadow: str, amount: int) -> list[LedgerRow]:
        return self.move(t4, coin, shadow, amount, "transfer", ("spottostaking", "stakingfromspot"))

    def unstake(self, t4: int, coin: str, shadow: str, amount: int) -> list[LedgerRow]:
        return self.move(t4, shadow, coin, amount, "transfer", ("stakingtospot", "spotfromstaking"))

    def allocate(self, t4: int, coin: str, shadow: str, amount: int) -> list[LedgerRow]:
        return self.move(t4, coin, shadow, amount, "earn", ("allocation", "allocation"))

    def reward(self, t4: int, shadow: str, amount: int, type_: str, subtype: str = "") -> list[LedgerRow]:
        return [self._post(self.ref_ids.next(), t4, type_, subtype, shadow, amount)]

    # -- trading --------------------------------------------------------------------------
    def trade_cost(self, pair: Pair, vol: int, price: int, maker: bool) -> tuple[int, int]:
        step = quote_step(pair.quote)
        cost = round_to(vol * price // 10 ** pair.pair_decimals, step)
        fee = round_to(cost * (MAKER_FEE_BPS if maker else TAKER_FEE_BPS) // 10_000, step)
        return cost, fee

    def trade(self, t4: int, pair: Pair, side: str, vol: int, price: int, *, ordertype: str = "limit",
              maker: bool = False, order: Order | None = None) -> tuple[Trade, list[LedgerRow]]:
        cost, fee = self.trade_cost(pair, vol, price, maker)
        if order is None:
            order = self.new_order(t4 - self.rng.randint(1, 3600 * T4), pair, side, vol,
                                   price if ordertype == "limit" else 0, ordertype)
        txid = self.trade_ids.next()
        trade = Trade(txid, order.txid, pair, t4, side, ordertype, price, cost, fee, vol, self.next_trade_id, maker)
        self.next_trade_id += self.rng.randint(1, 50)
        sign = 1 if side == "buy" else -1
        if side == "buy":
            rows = [self._post(txid, t4, "trade", "", pair.quote, -cost, fee),
                    self._post(txid, t4, "trade", "", pair.base, vol)]
        else:
            rows = [self._post(txid, t4, "trade", "", pair.base, -vol),
                    self._post(txid, t4, "trade", "", pair.quote, cost, fee)]
        trade.ledger_ids = [r.id for r in rows]
        self.a.trades.add(trade, t4)
        self.a.trades_by_id[txid] = trade
        self._fill(order, trade, sign)
        return trade, rows

    def _fill(self, order: Order, trade: Trade, sign: int) -> None:
        order.vol_exec += trade.vol
        order.cost += trade.cost
        order.fee += trade.fee
        order.trades.append(trade.txid)
        if order.vol_exec >= order.vol:
            self.close_order(order, trade.t4, "closed")

    def new_order(self, opentm: int, pair: Pair, side: str, vol: int, price: int, ordertype: str = "limit",
                  price2: int = 0) -> Order:
        order = Order(self.order_ids.next(), pair, side, ordertype, price, price2, vol, opentm)
        self.a.orders[order.txid] = order
        self.a.open_orders[order.txid] = order
        return order

    def close_order(self, order: Order, t4: int, status: str, reason: str | None = None) -> None:
        order.status = status
        order.closetm = t4
        order.reason = reason
        if status == "expired":
            order.expiretm = t4
        self.a.open_orders.pop(order.txid, None)
        self.a.closed.add(order, t4)
        if self.bulk is not None:
            self.bulk.append(order)
        else:
            self.a.closed_by_open.add(order, order.opentm)

    def finish(self) -> None:
        if self.bulk:
            self.bulk.sort(key=lambda o: o.opentm)
            for order in self.bulk:
                self.a.closed_by_open.add(order, order.opentm)
        self.bulk = None

    def unfilled_order(self, t4: int, pair: Pair, status: str) -> Order:
        """An order that never filled: canceled by the user, or expired."""
        side = self.rng.choice(("buy", "sell"))
        offset = 0.8 if side == "buy" else 1.2
        price = max(1, int(pair.price_units * offset))
        vol = max(1, int(self.rng.uniform(20, 500) * 10 ** pair.pair_decimals / price * 10 ** LOT_DECIMALS)) * 100
        ordertype = "stop-loss-limit" if self.rng.random() < 0.1 else "limit"
        price2 = price if ordertype != "limit" else 0
        order = self.new_order(t4 - self.rng.randint(60, 7 * 86400) * T4, pair, side, vol, price, ordertype, price2)
        self.close_order(order, t4, status, "User requested" if status == "canceled" else None)
        return order
