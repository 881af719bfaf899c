"""The deterministic history of a new account.

Shape (oldest first): USDT funding and a BNB deposit for fees; one deposit of every coin
that will be closed later (so a sync can find it: nothing else lists what a user traded);
the BUSD episode on a pair that is delisted now (ETHBUSD, zero-fee, bought and sold back,
BUSD deposited and withdrawn: it nets to zero on every asset because Binance no longer
serves its trades); a first buy of every held coin; then random orders (1-3 fills,
some cancelled or expired), deposits, withdrawals and dividends; then the closed coins
are sold or withdrawn to zero and a few orders are left open.

`positions` is the number of non-zero coin balances at the end; `activities` the number
of API records (fills, deposits, withdrawals, dividends). Times run over the 600 days
before the start of the creation day, so one seed gives the same bytes all day.
"""
from __future__ import annotations

import random

from .maker import Maker, to_units
from .state import Account
from .universe import DAY_MS, REAL_COINS, UNIT, SymbolInfo, invented_coins, universe, usd_price

HISTORY_DAYS = 600
CORE = ("USDT", "BTC", "BNB", "ETH")
QUOTES = ("USDT", "BTC", "ETH", "BNB")
# Share of random events by kind (the rest are orders); Binance users mostly trade.
P_DEPOSIT, P_WITHDRAWAL, P_DIVIDEND = 0.035, 0.02, 0.06


def coin_order() -> list[str]:
    """Which coins an account holds first: the core, real coins, then invented ones."""
    return list(CORE) + [c for c in REAL_COINS if c not in CORE] + list(invented_coins())


class HistoryGenerator:
    def __init__(self, account: Account, rng: random.Random, end_ms: int):
        self.account = account
        self.rng = rng
        self.maker = Maker(account, rng)
        self.universe = universe()
        self.end = end_ms
        self.start = end_ms - HISTORY_DAYS * DAY_MS
        self.records = 0

    def run(self, positions: int, activities: int) -> None:
        order = coin_order()
        held = order[:positions]
        extra = max(1, positions // 20)
        closed = [c for c in CORE if c not in held] + [c for c in order[positions:] if c not in CORE][:extra]
        self.held, self.closed = held, closed
        self.active = self.active_symbols(set(held) | set(closed))
        fixed = 2 + len(closed) + 4 + max(0, len(held) - 1) + len(closed)
        budget = max(0, activities - fixed)
        span = self.end - self.start
        self._funding(self.start, budget + len(held))
        self._busd_episode(self.start + span // 50)
        self._first_buys(held, self.start + span // 25, self.start + span // 5)
        self._random_events(budget, self.start + span // 5, self.end - span // 30)
        self._closes(closed, self.end - span // 30, self.end - span // 100)
        self._open_orders(held, self.end - span // 100, self.end)

    # -- phases ---------------------------------------------------------------------------
    def _times(self, n: int, lo: int, hi: int) -> list[int]:
        return sorted(self.rng.randrange(lo, max(lo + 1, hi)) for _ in range(n))

    def _funding(self, t: int, trades: int) -> None:
        self.maker.deposit("USDT", to_units(2000.0 * trades + 100_000), t)
        if "BNB" in self.held or "BNB" in self.closed:
            self.maker.deposit("BNB", to_units(25 + self.rng.random() * 50), t + 60_000)
        for i, coin in enumerate(c for c in self.closed if c != "USDT"):
            usd = 200 + self.rng.random() * 2000
            self.maker.deposit(coin, to_units(usd / usd_price(coin, t)), t + 120_000 + i * 1000)
        self.records += 2 + len(self.closed)

    def _busd_episode(self, t: int) -> None:
        """Trades on ETHBUSD, now status BREAK: myTrades answers -1121 for it."""
        info = self.universe.get("ETHBUSD")
        self.maker.deposit("BUSD", 1000 * UNIT, t)
        qty = to_units(400 / usd_price("ETH", t))
        buy, _ = self.maker.order(info, "BUY", qty, t + 3_600_000, fee_rate=0)
        self.maker.order(info, "SELL", qty, t + 7_200_000, fee_rate=0, price=buy.price)
        self.maker.withdrawal("BUSD", 999 * UNIT, 1 * UNIT, t + 10_800_000)
        self.records += 4

    def _first_buys(self, held: list[str], lo: int, hi: int) -> None:
        coins = [c for c in held if c != "USDT"]
        for coin, t in zip(coins, self._times(len(coins), lo, hi)):
            info = self.universe.find(coin, "USDT")
            qty = self.maker.buy_qty(info, t, 300 + self.rng.random() * 1500)
            self.maker.order(info, "BUY", qty, t, bnb_fee=self.rng.random() < 0.3)
            self.records += 1

    def _random_events(self, budget: int, lo: int, hi: int) -> None:
        times = iter(self._times(budget, lo, hi))
        goal = self.records + budget
        for t in times:
            if self.records >= goal:
                break
            roll = self.rng.random()
            if roll < P_DEPOSIT:
                self.random_deposit(t)
            elif roll < P_DEPOSIT + P_WITHDRAWAL:
                self.random_withdrawal(t)
            elif roll < P_DEPOSIT + P_WITHDRAWAL + P_DIVIDEND:
                self.random_dividend(t)
            else:
                self.random_order(t, max_fills=min(3, goal - self.records))

    def _closes(self, closed: list[str], lo: int, hi: int) -> None:
        """Closed coins go to exactly zero: sold on their USDT pair, or withdrawn."""
        ordered = [c for c in closed if c != "USDT"] + [c for c in closed if c == "USDT"]
        for i, (coin, t) in enumerate(zip(ordered, self._times(len(ordered), lo, hi))):
            self.close_coin(coin, t, sell=i % 2 == 0 and coin != "USDT")
            self.records += 1

    def _open_orders(self, held: list[str], lo: int, hi: int) -> None:
        coins = [c for c in held if c != "USDT" and self.universe.find(c, "USDT")]
        count = min(12, max(2, len(held) // 150)) if coins else 0
        for i, t in enumerate(self._times(count, lo, hi)):
            self.open_order(self.universe.find(self.rng.choice(coins), "USDT"), t, partial=i == 0)

    # -- single events (advance() uses them too) ---------------------------------------------
    def random_order(self, t: int, max_fills: int = 3, info: SymbolInfo | None = None, side: str = "") -> list:
        info = info or self.rng.choice(self.active)
        a = self.account
        side = side or ("BUY" if self.rng.random() < 0.55 or a.free(info.base) <= 100 else "SELL")
        qty = (self.maker.buy_qty(info, t, 20 + self.rng.random() * 1500) if side == "BUY"
               else int(a.free(info.base) * (0.1 + 0.4 * self.rng.random())))
        if qty <= 100:
            return []
        fills = min(max_fills, self.rng.choice((1, 1, 1, 1, 1, 1, 1, 2, 2, 3)))
        roll = self.rng.random()
        status, share = ("FILLED", 1.0)
        if roll < 0.04:
            status, share = "CANCELED", 0.0
        elif roll < 0.06:
            status, share = "CANCELED", 0.5
        elif roll < 0.07:
            status, share = "EXPIRED", 0.7
        order_type = "MARKET" if status == "FILLED" and self.rng.random() < 0.4 else "LIMIT"
        _, trades = self.maker.order(info, side, qty, t, fills=fills, status=status, order_type=order_type,
                                     filled_share=share, bnb_fee="BNB" in a.totals and self.rng.random() < 0.35)
        self.records += len(trades)
        return trades

    def random_deposit(self, t: int):
        coin = self.rng.choice(self.held) if self.held else "USDT"
        usd = 50 + self.rng.random() * 3000
        self.records += 1
        return self.maker.deposit(coin, to_units(usd / usd_price(coin, t)), t, status=1 if self.rng.random() < 0.9 else 6)

    def random_withdrawal(self, t: int):
        coin = self.rng.choice(self.held) if self.held else "USDT"
        free = self.account.free(coin)
        fee = self.maker.withdrawal_fee(coin, t)
        amount = int(free * (0.05 + 0.2 * self.rng.random()))
        if amount <= fee * 2:
            return None
        self.records += 1
        return self.maker.withdrawal(coin, amount, fee, t, status=6 if self.rng.random() < 0.95 else 3)

    def random_dividend(self, t: int):
        coin = self.rng.choice(self.held) if self.held else "BNB"
        usd = 0.5 + self.rng.random() * 50
        self.records += 1
        return self.maker.dividend(coin, max(1, to_units(usd / usd_price(coin, t))), t)

    def close_coin(self, coin: str, t: int, *, sell: bool) -> str:
        a = self.account
        for key, order in list(a.open_orders.items()):
            if coin in (self.universe.get(order.symbol).base, self.universe.get(order.symbol).quote):
                a.cancel_order(order, t)
        total = a.totals.get(coin, 0)
        info = self.universe.find(coin, "USDT")
        if total <= 0:
            return 
        if sell and info and total > 0:
            _, trades = self.maker.order(info, "SELL", total, t + 1, order_type="MARKET")
            return f"trade:{info.symbol}:{trades[0].id}"
        fee = min(self.maker.withdrawal_fee(coin, t), total // 10)
        return "withdraw:" + self.maker.withdrawal(coin, total - fee, fee, t + 1).id

    def open_order(self, info: SymbolInfo, t: int, *, partial: bool = False):
        a = self.account
        if partial or self.rng.random() < 0.5:
            qty = self.maker.buy_qty(info, t, 50 + self.rng.random() * 500)
            side = "BUY"
        else:
            qty, side = a.free(info.base) // 10, "SELL"
        if qty <= 100:
            return None
        # Resting limit orders sit a little away from the market.
        order, trades = self.maker.order(info, side, qty, t, status="PARTIALLY_FILLED" if partial else "NEW",
                                         filled_share=0.5 if partial else 0.0,
                                         price_factor=0.97 if side == "BUY" else 1.03)
        self.records += len(trades)
        return order

    def active_symbols(self, coins: set[str]) -> list[SymbolInfo]:
        """Trading pairs between the account's coins; the big pairs several times over."""
        pairs = []
        for coin in sorted(coins):                  # sets iterate in hash order: sort for determinism
            for info in self.universe.pairs_of(coin):
                if info.base == coin and info.trading and info.quote in coins and info.quote in QUOTES:
                    pairs.append(info)
        weights = {"BTCUSDT": 8, "ETHUSDT": 6, "BNBUSDT": 4, "ETHBTC": 3}
        return [p for p in pairs for _ in range(weights.get(p.symbol, 1))] or [self.universe.get("BTCUSDT")]
