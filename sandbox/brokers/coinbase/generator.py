"""Deterministic account history: the same seed and size give the same account, byte for byte.

History runs over two fixed years ending 2025-01-01 (fixed, not "now", so that two runs
are identical; `advance()` later adds events at the simulator's clock, which is after).
Every held coin is acquired first and never sold below half of what is available, so
exactly `positions` coins end non-zero; one extra coin is bought and later sold to zero.
Rows counted towards `activities` are fills plus v2 rows that are not fill duplicates.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal

from backend.brokers.symbols import FIAT as CANONICAL_FIAT, canonical_code

from . import market
from .market import CORE_COINS, CROSS_PRODUCTS
from .state import CENT, Book, Order, quantize_down, split_product

HISTORY_END = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()) * 1_000_000
HISTORY_SPAN = 2 * 365 * 86_400 * 1_000_000
SECOND = 1_000_000

STAKEABLE = frozenset({"ETH", "SOL", "ADA", "DOT", "ATOM", "ALGO"})
NO_USD_PRODUCT = frozenset({"USDC"})     # USDC converts 1:1 with USD; there is no USDC-USD book
_CONSONANTS, _VOWELS = "BCDFGHJKLMNPRSTVWZ", "AEIOU"


def invent_codes(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    codes = []
    while len(codes) < count:
        length = rng.choice((3, 4, 4, 5))
        code = "".join(rng.choice(_CONSONANTS if i % 2 == 0 else _VOWELS) for i in range(length))
        if code in taken or code in CANONICAL_FIAT or canonical_code(code) != code:
            continue
        taken.add(code)
        codes.append(code)
    return codes


def pick_coins(rng: random.Random, positions: int, extra: int) -> list[tuple[str, Decimal]]:
    """`positions` coins to hold, then `extra` coins (with a USD book) to trade to zero."""
    core = [(code, Decimal(price)) for code, price in CORE_COINS]
    held, spare = core[:positions], [c for c in core[positions:] if c[0] not in NO_USD_PRODUCT]
    taken = {code for code, _ in CORE_COINS}
    invented = [(code, market.invented_price(code))
                for code in invent_codes(rng, max(0, positions - len(held)) + extra, taken)]
    held += invented[:positions - len(held)]
    spare += invented[len(invented) - extra:] if extra else []
    return held + spare[:extra]


class Gen:
    """Random but always feasible events on a Book (balances never go negative)."""

    def __init__(self, book: Book, rng: random.Random, t: int, step: int):
        self.book, self.rng, self.t, self.step = book, rng, t, step
        self.rows = 0
        self.held: list[str] = []           # coins that may be traded, sent, rewarded
        self.stakeable: list[str] = []
        self.products: list[str] = []
        self._tradable: list[str] | None = None

    def set_held(self, coins: list[str]) -> None:
        self.held = list(coins)
        self.stakeable = [c for c in self.held if c in STAKEABLE]
        self._tradable = None

    def add_held(self, coin: str) -> None:
        self.held.append(coin)
        if coin in STAKEABLE:
            self.stakeable.append(coin)
        self._tradable = None

    def drop_held(self, coin: str) -> None:
        self.set_held([c for c in self.held if c != coin])

    # -- time and prices --------------------------------------------------------------------
    def next_t(self) -> int:
        self.t = self.book.tick(self.t + self.step // 2 + self.rng.randrange(max(1, self.step)))
        return self.t


    def tradable(self) -> list[str]:
        """Products whose two currencies are both held (cached: it is asked on every event)."""
        if self._tradable is None:
            held = set(self.held) | {"USD"}
            self._tradable = [p for p in self.products if set(split_product(p)) <= held]
        return self._tradable

    # -- events -------------------------------------------------------------------------------
    def deposit(self, minimum: Decimal = Decimal(0)) -> None:
        amount = max(Decimal(self.rng.randint(10_000, 500_000)) / 100, minimum.quantize(CENT) + 100)
        self.book.deposit(self.next_t(), amount)
        self.rows += 1

    def withdraw(self) -> bool:
        avail = self.book.available("USD")
        if avail < 200:
            return False
        self.book.withdraw(self.next_t(), (avail * self.rng.randint(5, 30) / 100).quantize(CENT))
        self.rows += 1
        return True

    def order(self, product: str, side: str, usd: Decimal | None = None, *, sell_all: bool = False,
              status: str = "FILLED", parts: int | None = None) -> Order | None:
        """One order and its 1-3 fills (or none, for a cancelled/expired order)."""
        base, quote = split_product(product)
        price = self.book.product_price(product)          # sizing only: the fill's price is set at its time
        if sell_all:
            size = self.book.wallets[base].balance
        elif side == "SELL":
            size = quantize_down(self.book.available(base) * self.rng.randint(5, 50) / 100)
        else:
            usd = usd if usd is not None else Decimal(self.rng.randint(20, 2000))
            size = quantize_down(usd / self.book.prices[base])
            cost = size * price * Decimal("1.01")
            if quote == "USD" and self.book.available("USD") < cost:
                self.deposit(cost)
            elif quote != "USD" and self.book.available(quote) * Decimal("0.5") < cost:
                return None
        if size <= 0:
            return None
        return self._execute(product, side, size, price, status, parts)

    def _execute(self, product: str, side: str, size: Decimal, price: Decimal, status: str,
                 parts: int | None) -> Order:
        t = self.next_t()
        price, affordable = self._at_market(product, side, size, t)
        if affordable <= 0:
            status = "CANCELLED"                  # the market moved past what the balance covers
        else:
            size = affordable
        roll = self.rng.random()
        slip = Decimal("1.01") if side == "BUY" else Decimal("0.99")
        limit = None if roll < 0.5 else (price * slip).quantize(self.book.product_quantum(product))
        if status != "FILLED":
            o = self.book.place(t, product, side, size, limit=limit or price,
                                tif="GOOD_UNTIL_DATE_TIME" if status == "EXPIRED" else "GOOD_UNTIL_CANCELLED",
                                end_t=t + 3600 * SECOND if status == "EXPIRED" else None)
            self.book.close(o, status, t + self.rng.randint(60, 7200) * SECOND)
            return o
        partial_cancel = limit is not None and roll > 0.97
        o = self.book.place(t, product, side, size * 2 if partial_cancel else size, limit=limit)
        parts = parts or self.rng.choice((1, 1, 1, 1, 1, 1, 2, 2, 3))
        first = quantize_down(size / parts)
        sizes = [first] * (parts - 1) + [size - first * (parts - 1)] if first > 0 else [size]
        for i, part in enumerate(sizes):
            self.book.fill(o, t + (i + 1) * SECOND, part, price)
            self.rows += 1
        if partial_cancel:
            self.book.close(o, "CANCELLED", t + (len(sizes) + 30) * SECOND)
        self.t = self.book.tick(t + (len(sizes) + 31) * SECOND)
        return o

    def _at_market(self, product: str, side: str, size: Decimal, t: int) -> tuple[Decimal, Decimal]:
        """The fill's price is the market's at its own time (so it lies inside that day's
        candle); a buy the quote balance no longer covers at that price is made smaller."""
        base, quote = split_product(product)
        price = market.price(product, t)
        if quote in ("USD", "USDC"):
            self.book.set_price(base, price)
        else:
            for coin in (base, quote):
                self.book.mark(coin, t)
        if side == "BUY":
            affordable = quantize_down(self.book.available(quote) / (price * Decimal("1.01")))
            size = min(size, max(affordable, Decimal(0)))
        return price, size

    def fill_event(self) -> bool:
        products = self.tradable()
        if not products:
            return False
        product = self.rng.choice(products)
        side = "SELL" if self.rng.random() < 0.45 else "BUY"
        return self.order(product, side) is not None

    def dead_order(self) -> bool:
        products = self.tradable()
        if not products:
            return False
        status = "CANCELLED" if self.rng.random() < 0.7 else "EXPIRED"
        self.order(self.rng.choice(products), "BUY", Decimal(self.rng.randint(20, 500)), status=status)
        return True

    def coin_amount(self, coin: str, low: int, high: int) -> Decimal:
        return quantize_down(Decimal(self.rng.randint(low, high)) / self.book.prices[coin])

    def send(self) -> bool:
        if not self.held:
            return False
        coin = self.rng.choice(self.held)
        amount = quantize_down(self.book.available(coin) * self.rng.randint(5, 30) / 100)
        fee = max(Decimal("0.00000001"), quantize_down(amount / 500))
        if amount <= fee:
            return False
        status = "canceled" if self.rng.random() < 0.1 else "completed"
        self.book.send(self.next_t(), coin, amount, fee, status)
        self.rows += 1
        return True

    def receive(self, coin: str | None = None) -> bool:
        coin = coin or (self.rng.choice(self.held) if self.held else None)
        if coin is None:
            return False
        amount = self.coin_amount(coin, 50, 3000)
        if amount <= 0:
            return False
        self.book.receive(self.next_t(), coin, amount)
        self.rows += 1
        return True

    def reward(self) -> bool:
        stakeable = self.stakeable or self.held
        if not stakeable:
            return False
        coin = self.rng.choice(stakeable)
        amount = self.coin_amount(coin, 1, 40)
        if amount <= 0:
            return False
        kind = "earn_payout" if self.rng.random() < 0.75 else "incentives_rewards_payout"
        self.book.reward(self.next_t(), coin, amount, kind)
        self.rows += 1
        return True

    def convert(self) -> bool:
        if not self.held:
            return False
        source = "USD" if self.rng.random() < 0.3 or len(self.held) < 2 else self.rng.choice(self.held)
        target = self.rng.choice(self.held)
        avail = self.book.available(source)
        amount = (avail * self.rng.randint(5, 30) / 100).quantize(CENT) if source == "USD" \
            else quantize_down(avail * self.rng.randint(5, 30) / 100)
        received = quantize_down(amount * self.book.prices[source] / self.book.prices[target] * Decimal("0.99"))
        if amount <= 0 or received <= 0 or source == target:
            return False
        self.book.convert(self.next_t(), source, amount, target, received)
        self.rows += 2
        return True

    def stake(self) -> bool:
        if "ETH" not in self.held:
            return False
        amount = quantize_down(self.book.available("ETH") * self.rng.randint(5, 30) / 100)
        if amount <= 0:
            return False
        self.book.stake(self.next_t(), amount)
        self.rows += 2
        return True

    def acquire(self, coin: str) -> None:
        if coin in NO_USD_PRODUCT or f"{coin}-USD" not in self.products:
            self.receive(coin)
        else:
            self.order(f"{coin}-USD", "BUY", Decimal(self.rng.randint(200, 3000)))
        self.add_held(coin)

    # weights: a realistic mix, fills dominate (cumulative thresholds)
    EVENTS = ((0.55, "fill_event"), (0.62, "deposit_event"), (0.65, "withdraw"), (0.70, "send"),
              (0.76, "receive"), (0.90, "reward"), (0.94, "convert"), (0.96, "stake"), (1.0, "dead_order"))

    def deposit_event(self) -> bool:
        self.deposit()
        return True

    def random_event(self) -> None:
        roll = self.rng.random()
        name = next(n for threshold, n in self.EVENTS if roll < threshold)
        if not getattr(self, name)():
            self.deposit()


def generate(book: Book, rng: random.Random, positions: int, activities: int) -> None:
    closed_extra = 1 if activities >= positions + 12 else 0
    coins = pick_coins(rng, positions, closed_extra)
    for code, price in coins:
        book.set_price(code, price)
    codes = [c for c, _ in coins]
    products = [f"{c}-USD" for c in codes if c not in NO_USD_PRODUCT]
    products += [p for p in CROSS_PRODUCTS if set(split_product(p)) <= set(codes[:positions])]
    target = max(activities, positions + 1)
    gen = Gen(book, rng, HISTORY_END - HISTORY_SPAN, max(SECOND, HISTORY_SPAN // (target + 16)))
    gen.products = products
    book.products = products
    gen.deposit(Decimal(5000))
    for coin in codes[:positions]:
        gen.acquire(coin)
    closed = codes[positions] if closed_extra else None
    if closed:
        gen.order(f"{closed}-USD", "BUY", Decimal(500))
    while gen.rows < target:
        if closed and gen.rows >= target // 2:
            gen.order(f"{closed}-USD", "SELL", sell_all=True)
            closed = None
            continue
        gen.random_event()
    open_orders(gen, 2 + positions // 200)
    book.last_history_t = gen.t


def open_orders(gen: Gen, count: int) -> list[Order]:
    """Resting limit orders: sells above the market, buys below it; they hold funds."""
    placed = []
    for _ in range(count):
        products = [p for p in gen.tradable() if p.endswith("-USD")]
        if not products:
            break
        product = gen.rng.choice(products)
        base = split_product(product)[0]
        price = gen.book.product_price(product)
        if gen.rng.random() < 0.5 and gen.book.available(base) > 0:
            size = quantize_down(gen.book.available(base) * gen.rng.randint(5, 40) / 100)
            side, limit = "SELL", price * Decimal("1.2")
        else:
            size = quantize_down(gen.book.available("USD") * gen.rng.randint(5, 30) / 100 / price)
            side, limit = "BUY", price * Decimal("0.8")
        if size <= 0:
            continue
        limit = limit.quantize(gen.book.product_quantum(product))
        placed.append(gen.book.place(gen.next_t(), product, side, size, limit=limit))
    return placed
