"""The deterministic history of a simulated Kraken account, and what advance() adds.

History ends at a fixed instant (HISTORY_END), not at creation time, so the same seed and
sizes give the same account byte for byte whenever it is created. `activities` counts
ledger rows (each becomes one synced transaction); `positions` counts coins with a
non-zero balance at the end, spot and staked shadows merged (DOT + DOT.S is one position).
Held coins are never sold, withdrawn or staked to zero; "closed positions" use a separate
pool of coins that are bought and later sold in full.
"""
from __future__ import annotations

import random
from itertools import accumulate

from .builder import Builder, quote_step
from .market import CROSS_PAIRS, FIATS, LOT_DECIMALS, SCALE, Coin, Market
from .state import T4, Account

HISTORY_END = 1_767_225_600             # 2026-01-01T00:00:00Z
HISTORY_SPAN = 2 * 365 * 86_400
CLOSED_POOL = 5                         # coins past the held ones, traded to zero
ROWS_PER_EVENT = 1.7                    # measured mix of 1- and 2-row events below
LOT = 10 ** (10 - LOT_DECIMALS)         # 1e-8 in 1e-10 units

# Random event mix: weights chosen so trades dominate, as on a real exchange account.
EVENTS = {"buy": 30, "sell": 20, "cross": 6, "eur": 3, "fiat_deposit": 5, "fiat_withdrawal": 3,
          "coin_deposit": 5, "coin_withdrawal": 4, "stake": 4, "reward": 8, "unstake": 2,
          "allocate": 2, "earn": 3, "close": 2, "canceled": 5, "expired": 1, "partial": 2}


class Timeline:
    """Event times: random steps of about `gap`. With an `end`, steps that would pass it shrink
    to under a second each, so a history with more events than its span planned for ends
    minutes after `end`, not months later (it could otherwise lie in the future, after the
    records that time passing adds), and never more than a couple of rows share a second
    (Kraken pages by whole seconds)."""

    def __init__(self, rng: random.Random, start: int, gap: int, end: int | None = None):
        self.rng, self.t4, self.gap, self.end = rng, start, max(2, gap), end

    def next(self) -> int:
        step = self.rng.randint(1, 2 * self.gap)
        if self.end is not None and self.t4 + step >= self.end:
            step = 1 + step % T4
        self.t4 += step
        return self.t4


class History:
    """Drives a Builder through a random but always-valid sequence of events."""

    def __init__(self, builder: Builder, clock: Timeline, held: list[Coin], pool: list[Coin]):
        self.b = builder
        self.clock = clock
        self.rng = builder.rng
        self.market = builder.market
        self.acquired: list[Coin] = []
        self.stakers: list[Coin] = []               # acquired coins with a .S / .F shadow
        self.earners: list[Coin] = []
        self.pending = list(held)
        self.pool = pool
        self.pool_turn = 0
        self.kinds = list(EVENTS)
        self.cum_weights = list(accumulate(EVENTS.values()))
        self.handlers = {
            "buy": self.ev_buy, "sell": self.ev_sell, "cross": self.ev_cross, "eur": self.ev_eur,
            "fiat_deposit": self.ev_fiat_deposit, "fiat_withdrawal": self.ev_fiat_withdrawal,
            "coin_deposit": self.ev_coin_deposit, "coin_withdrawal": self.ev_coin_withdrawal,
            "stake": self.ev_stake, "reward": self.ev_reward, "unstake": self.ev_unstake,
            "allocate": self.ev_allocate, "earn": self.ev_earn, "close": self.ev_close,
            "canceled": self.ev_canceled, "expired": self.ev_expired, "partial": self.ev_partial}

    # -- sizing helpers -----------------------------------------------------------------
    def _noisy_price(self, pair, t4: int) -> int:
        """The sandbox market's price at t (sandbox/prices.py): inside the day's OHLC bar."""
        return self.market.price_at(pair, t4 / T4)

    def _vol_for(self, usd: float, coin: Coin) -> int:
        return max(1, int(usd / float(coin.price) * 10 ** LOT_DECIMALS)) * LOT

    def _part(self, units: int, low: float, high: float) -> int:
        """A random share of a balance, in whole lots, leaving at least one lot behind."""
        lots = units // LOT
        take = int(lots * self.rng.uniform(low, high))
        return min(take, lots - 1) * LOT if lots >= 2 else 0

    def _fund(self, t4: int, asset: str, need: int) -> None:
        if self.b.balance(asset) < need:
            whole = (need - self.b.balance(asset)) // SCALE + 1000
            self.b.deposit(t4, asset, whole * SCALE)

    # -- events -------------------------------------------------------------------------
    def buy(self, t4: int, coin: Coin):
        pair = self.market.usd_pair(coin.code)
        vol = self._vol_for(self.rng.uniform(50, 3000), coin)
        price = self._noisy_price(pair, t4)
        cost, fee = self.b.trade_cost(pair, vol, price, False)
        self._fund(t4, pair.quote, cost + fee)
        ordertype = "market" if self.rng.random() < 0.25 else "limit"
        return self.b.trade(t4, pair, "buy", vol, price, ordertype=ordertype, maker=ordertype == "limit")

    def sell(self, t4: int, coin: Coin, vol: int | None = None):
        pair = self.market.usd_pair(coin.code)
        vol = vol if vol is not None else self._part(self.b.balance(coin.code), 0.05, 0.5)
        if vol <= 0:
            return None
        return self.b.trade(t4, pair, "sell", vol, self._noisy_price(pair, t4))

    def acquire(self, t4: int, tight: bool) -> None:
        coin = self.pending.pop(0)
        if tight:
            self.b.deposit(t4, coin.code, self._vol_for(self.rng.uniform(50, 3000), coin))
        else:
            self.buy(t4, coin)
        self.acquired.append(coin)
        if coin.stake:
            self.stakers.append(coin)
        if coin.earn:
            self.earners.append(coin)

    def random_event(self, t4: int) -> None:
        kind = self.rng.choices(self.kinds, cum_weights=self.cum_weights)[0]
        if not self.acquired and kind not in ("fiat_deposit", "close", "canceled", "expired"):
            kind = "fiat_deposit"
        self.handlers[kind](t4)

    def ev_buy(self, t4):
        self.buy(t4, self.rng.choice(self.acquired))

    def ev_sell(self, t4):
        self.ev_sell_coin(t4, self.rng.choice(self.acquired))

    def ev_sell_coin(self, t4, coin):
        if self.sell(t4, coin) is None:
            self.buy(t4, coin)

    def ev_cross(self, t4):
        pairs = [self.market.by_assets[bq] for bq in CROSS_PAIRS
                 if self.b.balance(bq[0]) and self.b.balance(bq[1]) and bq in self.market.by_assets]
        if not pairs:
            return self.ev_buy(t4)
        pair = self.rng.choice(pairs)
        price = self._noisy_price(pair, t4)
        if self.rng.random() < 0.5:
            vol = self._part(self.b.balance(pair.base), 0.05, 0.4)
            if vol:
                self.b.trade(t4, pair, "sell", vol, price)
            return
        budget = self._part(self.b.balance(pair.quote), 0.05, 0.3)
        vol = budget * 10 ** pair.pair_decimals // price // LOT * LOT
        cost, fee = self.b.trade_cost(pair, vol, price, False)
        if vol and cost + fee < self.b.balance(pair.quote):
            self.b.trade(t4, pair, "buy", vol, price)

    def ev_eur(self, t4):
        pair = self.market.pair_for("XXBT", "ZEUR")
        if pair is None or self.market.by_code["XXBT"] not in self.acquired:
            return self.ev_fiat_deposit(t4)
        vol = self._vol_for(self.rng.uniform(50, 1000), self.market.by_code["XXBT"])
        price = self._noisy_price(pair, t4)
        cost, fee = self.b.trade_cost(pair, vol, price, False)
        self._fund(t4, "ZEUR", cost + fee)
        self.b.trade(t4, pair, "buy", vol, price)

    def ev_fiat_deposit(self, t4):
        self.b.deposit(t4, "ZUSD" if self.rng.random() < 0.97 else "ZEUR", self.rng.randint(100, 20_000) * SCALE)

    def ev_fiat_withdrawal(self, t4):
        asset = "ZUSD"
        amount = self._part(self.b.balance(asset), 0.05, 0.3) // quote_step(asset) * quote_step(asset)
        fee = FIATS[asset].withdraw_fee
        if amount and amount + fee < self.b.balance(asset):
            self.b.withdrawal(t4, asset, amount, fee)

    def ev_coin_deposit(self, t4):
        coin = self.rng.choice(self.acquired)
        self.b.deposit(t4, coin.code, self._vol_for(self.rng.uniform(20, 2000), coin))

    def ev_coin_withdrawal(self, t4):
        coin = self.rng.choice(self.acquired)
        amount = self._part(self.b.balance(coin.code), 0.05, 0.3)
        fee = max(LOT, amount // 1000 // LOT * LOT)
        if amount and amount + fee < self.b.balance(coin.code):
            self.b.withdrawal(t4, coin.code, amount, fee)

    def ev_stake(self, t4):
        coins = self.stakers
        if coins:
            coin = self.rng.choice(coins)
            amount = self._part(self.b.balance(coin.code), 0.2, 0.6)
            if amount:
                self.b.stake(t4, coin.code, coin.stake, amount)

    def ev_unstake(self, t4):
        coins = [c for c in self.stakers if self.b.balance(c.stake) >= 2 * LOT]
        if coins:
            coin = self.rng.choice(coins)
            amount = self._part(self.b.balance(coin.stake), 0.1, 0.5)
            if amount:
                self.b.unstake(t4, coin.code, coin.stake, amount)

    def ev_reward(self, t4):
        coins = [c for c in self.stakers if self.b.balance(c.stake) > 0]
        if not coins:
            return self.ev_stake(t4)
        coin = self.rng.choice(coins)
        amount = max(1, int(self.b.balance(coin.stake) * self.rng.uniform(0.0005, 0.004)))
        self.b.reward(t4, coin.stake, amount, "staking")

    def ev_allocate(self, t4):
        coins = self.earners
        if coins:
            coin = coins[0]
            amount = self._part(self.b.balance(coin.code), 0.1, 0.5)
            if amount:
                self.b.allocate(t4, coin.code, coin.earn, amount)

    def ev_earn(self, t4):
        coins = [c for c in self.earners if self.b.balance(c.earn) > 0]
        if not coins:
            return self.ev_allocate(t4)
        coin = coins[0]
        amount = max(1, int(self.b.balance(coin.earn) * self.rng.uniform(0.0005, 0.003)))
        self.b.reward(t4, coin.earn, amount, "earn", "reward")

    def ev_close(self, t4):
        """A position opened and later sold to zero (a coin outside the held set)."""
        if not self.pool:
            return self.ev_fiat_deposit(t4)
        coin = self.pool[self.pool_turn % len(self.pool)]
        self.pool_turn += 1
        self.buy(t4, coin)
        self.sell(self.clock.next(), coin, vol=self.b.balance(coin.code))

    def ev_canceled(self, t4):
        coin = self.rng.choice(self.acquired) if self.acquired else self.market.by_code["XXBT"]
        self.b.unfilled_order(t4, self.market.usd_pair(coin.code), "canceled")

    def ev_expired(self, t4):
        coin = self.rng.choice(self.acquired) if self.acquired else self.market.by_code["XXBT"]
        self.b.unfilled_order(t4, self.market.usd_pair(coin.code), "expired")

    def open_orders(self, t4: int, n: int) -> list[str]:
        """Resting limit orders far from the market, so they stay open."""
        ids = []
        for _ in range(n):
            if not self.acquired:
                break
            coin = self.rng.choice(self.acquired)
            pair = self.market.usd_pair(coin.code)
            side = "buy" if self.rng.random() < 0.7 else "sell"
            price = max(1, pair.price_units // 2 if side == "buy" else pair.price_units * 2)
            vol = self._vol_for(self.rng.uniform(20, 500), coin)
            ids.append(self.b.new_order(t4 - self.rng.randint(1, 86400) * T4, pair, side, vol, price).txid)
        return ids

    def partial_fill(self, t4: int, coin: Coin, status: str | None):
        """An order filled to one third; then left open (status None) or canceled."""
        pair = self.market.usd_pair(coin.code)
        vol = self._vol_for(self.rng.uniform(100, 1000), coin)
        price = self._noisy_price(pair, t4)
        order = self.b.new_order(t4 - 3600 * T4, pair, "buy", 3 * vol, price)
        cost, fee = self.b.trade_cost(pair, vol, price, True)
        self._fund(t4, pair.quote, cost + fee)
        self.b.trade(t4, pair, "buy", vol, price, maker=True, order=order)
        if status:
            self.b.close_order(order, t4 + 1, status, "User requested")
        return order

    def ev_partial(self, t4):
        self.partial_fill(t4, self.rng.choice(self.acquired), "canceled")


def generate(account: Account, market: Market, *, positions: int, activities: int) -> History:
    rng = random.Random(f"kraken:{account.seed}:{positions}:{activities}")
    coins = market.ensure(len_needed(positions))
    held, pool = coins[:positions], coins[positions:positions + CLOSED_POOL]
    builder = Builder(account, market, rng)
    builder.bulk = []
    events = max(1, int(activities / ROWS_PER_EVENT))
    clock = Timeline(rng, (HISTORY_END - HISTORY_SPAN) * T4, HISTORY_SPAN * T4 // events, end=HISTORY_END * T4)
    history = History(builder, clock, held, pool)
    builder.deposit(clock.next(), "ZUSD", (20_000 + 500 * positions) * SCALE)
    while len(account.ledger) < activities or history.pending:
        t4 = clock.next()
        room = activities - len(account.ledger)
        left = len(history.pending)
        if left and (room <= 2 * left or rng.random() * max(1.0, room / ROWS_PER_EVENT) < left):
            history.acquire(t4, tight=room <= 2 * left)
        else:
            history.random_event(t4)
    history.open_orders(clock.next(), min(3 + positions // 100, 25))
    if history.acquired:
        history.partial_fill(clock.next(), history.acquired[0], None)
    builder.finish()
    account.held = [c.code for c in history.acquired]
    return history


def len_needed(positions: int) -> int:
    return positions + CLOSED_POOL


def advance(history: History, now_t4: int, changes: dict) -> dict:
    """Time passes: a deposit, fills, a reward, a position sold to zero, new and canceled orders."""
    b, account = history.b, history.b.a
    unknown = set(changes) - {"fills", "dividend", "reward", "deposit", "close_position", "orders",
                              "cancel_orders", "split"}
    if unknown:
        raise ValueError(f"unknown advance keys: {sorted(unknown)}")
    clock = Timeline(history.rng, max(now_t4, account.last_t4 + 1), 1)
    history.clock = clock
    rows_before, trades_before = len(account.ledger), len(account.trades)
    orders_before = set(account.orders)
    if changes.get("deposit", True):
        b.deposit(clock.next(), "ZUSD", 5_000 * SCALE)
    for i in range(int(changes.get("fills", 2))):
        if history.acquired:
            coin = history.acquired[i % len(history.acquired)]
            (history.buy if i % 2 == 0 else history.ev_sell_coin)(clock.next(), coin)
    if changes.get("reward", changes.get("dividend", True)):
        history.ev_reward(clock.next())
    closed = _close_one(history, clock) if changes.get("close_position", True) else None
    new_orders = [history.b.new_order(clock.next(), *_resting(history)).txid
                  for _ in range(int(changes.get("orders", 2))) if history.acquired]
    canceled = []
    for order in sorted(account.open_orders.values(), key=lambda o: o.opentm)[: int(changes.get("cancel_orders", 1))]:
        b.close_order(order, clock.next(), "canceled", "User requested")
        canceled.append(order.txid)
    account.held = [c.code for c in history.acquired]
    return {"ledger_ids": [r.id for r in account.ledger.items[rows_before:]],
            "trade_ids": [t.txid for t in account.trades.items[trades_before:]],
            "order_ids": sorted(set(account.orders) - orders_before),
            "new_open_order_ids": new_orders, "canceled_order_ids": canceled,
            "closed_position": closed}


def _resting(history: History) -> tuple:
    coin = history.rng.choice(history.acquired)
    pair = history.market.usd_pair(coin.code)
    return pair, "buy", history._vol_for(history.rng.uniform(20, 500), coin), max(1, pair.price_units // 2)


def _close_one(history: History, clock: Timeline) -> str | None:
    """Sell a held coin to zero: the last one that cannot be staked, since rewards leave
    sub-lot dust that a trade (whole lots, 8 decimals) could never sell."""
    b = history.b
    plain = [c for c in history.acquired if not c.stake and not c.earn]
    if len(history.acquired) < 2 or not plain:
        return None
    coin = plain[-1]
    history.sell(clock.next(), coin, vol=b.balance(coin.code))
    history.acquired.remove(coin)
    return coin.canonical
