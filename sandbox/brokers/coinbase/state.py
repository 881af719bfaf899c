"""One simulated Coinbase account in memory, and the few operations that change it.

Everything that moves a balance goes through `Book`'s methods, so the v2 transaction list
of every currency wallet always sums to its balance, and every v3 fill has its two
`advanced_trade_fill` twins in the v2 lists (as on Coinbase, where the v2 "Coinbase App"
history shows Advanced Trade fills too). The history generator and `advance()` both use
these methods. Times are integer microseconds since the epoch; money is Decimal.
"""
from __future__ import annotations

import hashlib
from bisect import bisect_left
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from ...record_faults import AccountFaults
from . import market
from .keys import KeyPair

FIAT = frozenset({"USD"})
CENT = Decimal("0.01")
SATOSHI = Decimal("0.00000001")
FEE_RATE = Decimal("0.006")             # Advanced Trade taker fee of the lowest tier (0.60 %)
OPEN = "OPEN"


def iso_us(t: int) -> str:
    """RFC3339 with microseconds, as v3 sends fill and order times."""
    return datetime.fromtimestamp(t / 1_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_s(t: int) -> str:
    """Second precision, as v2 sends created_at / updated_at."""
    return datetime.fromtimestamp(t // 1_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_product(product: str) -> tuple[str, str]:
    base, _, quote = product.partition("-")
    return base, quote


class Fill:
    __slots__ = ("seq", "entry_id", "trade_id", "order", "product", "side", "price", "size", "commission", "t")

    def quote_change(self) -> Decimal:
        """Signed change of the quote currency, commission included."""
        notional = self.size * self.price
        return (-notional if self.side == "BUY" else notional) - self.commission


class Order:
    __slots__ = ("idx", "order_id", "client_order_id", "product", "side", "kind", "tif", "status",
                 "created", "base_size", "limit_price", "fills", "done_t", "end_t", "filled")

    def filled_size(self) -> Decimal:
        return self.filled

    def filled_value(self) -> Decimal:
        return sum((f.size * f.price for f in self.fills), Decimal(0))

    def total_fees(self) -> Decimal:
        return sum((f.commission for f in self.fills), Decimal(0))

    def remaining(self) -> Decimal:
        return self.base_size - self.filled_size()


class V2Tx:
    __slots__ = ("id", "wallet", "type", "status", "amount", "native", "t", "fee", "ref", "peer")


class Wallet:
    """One currency account: a v3 `uuid` and a v2 `id` (the mapping between them is not
    documented, so they differ here and the adapter must not rely on one)."""

    __slots__ = ("idx", "currency", "uuid", "v2_id", "created", "updated", "balance", "txs", "pos")

    def __init__(self, idx: int, currency: str, uuid: str, v2_id: str, t: int):
        self.idx, self.currency, self.uuid, self.v2_id = idx, currency, uuid, v2_id
        self.created = self.updated = t
        self.balance = Decimal(0)
        self.txs: list[V2Tx] = []
        self.pos: dict[str, int] = {}


class Book:
    """The account's whole state plus the operations that change it."""

    def __init__(self, *, account_id: str, seed: int, key: KeyPair, ns: str, options: dict):
        self.account_id = account_id
        self.seed = seed
        self.key = key
        self.revoked = False
        self.can_view = bool(options.get("can_view", True))
        self.can_trade = bool(options.get("can_trade", False))
        self.can_transfer = bool(options.get("can_transfer", False))
        self.ns = ns
        self._counter = 0
        self._prefix = {kind: f"{ns[:8]}-{ns[8:12]}-4{ns[12:15]}-{kind}{ns[15:18]}-" for kind in "0123456789ab"}
        self.portfolio_uuid = self.new_id("0")
        self.user_id = self.new_id("1")
        self.wallets: dict[str, Wallet] = {}
        self.by_uuid: dict[str, Wallet] = {}
        self.by_v2: dict[str, Wallet] = {}
        self.wallet_list: list[Wallet] = []
        self.fills: list[Fill] = []
        self.fill_times: list[int] = []
        self.product_fills: dict[str, list[int]] = {}     # product -> fill seqs, ascending
        self.fill_by_trade: dict[str, int] = {}
        self.orders: list[Order] = []
        self.order_times: list[int] = []
        self.orders_by_id: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}
        self.prices: dict[str, Decimal] = {"USD": Decimal(1), "USDC": Decimal(1)}
        self.price_quantum: dict[str, Decimal] = {}
        self.last_t = 0
        self.last_history_t = 0
        self.products: list[str] = []
        self.windows: dict[str, tuple[int, int]] = {}     # rate-limit bucket -> (window start, count)
        self.faults = AccountFaults()                     # record faults (sandbox/record_faults.py)

    # -- ids, wallets, prices --------------------------------------------------------------
    def new_id(self, kind: str) -> str:
        """UUID-shaped, unique within the account, deterministic from the seed and order."""
        return self.new_ids(kind)[0]

    def new_ids(self, *kinds: str) -> list[str]:
        """Several ids from one counter value (a fill's entry, trade and v2 twin ids)."""
        self._counter += 1
        tail = f"{self._counter:012x}"
        return [self._prefix[k] + tail for k in kinds]

    def wallet(self, currency: str, t: int) -> Wallet:
        w = self.wallets.get(currency)
        if w is None:
            w = Wallet(len(self.wallet_list), currency, self.new_id("2"), self.new_id("3"), t)
            self.wallets[currency] = w
            self.by_uuid[w.uuid] = w
            self.by_v2[w.v2_id] = w
            self.wallet_list.append(w)
        return w

    def set_price(self, currency: str, price: Decimal) -> None:
        q = self.price_quantum.setdefault(currency, CENT if price >= 10 else Decimal("0.000001"))
        self.prices[currency] = max(price.quantize(q, ROUND_HALF_UP), q * 10)

    def mark(self, currency: str, t: int) -> None:
        """Set a coin's USD price to the sandbox market's at t (fiat and USDC stay at 1)."""
        if currency in self.price_quantum and currency not in FIAT and currency != "USDC":
            self.set_price(currency, market.price(f"{currency}-USD", t))

    def product_price(self, product: str) -> Decimal:
        base, quote = split_product(product)
        if quote in FIAT or quote == "USDC":
            return self.prices[base]
        return (self.prices[base] / self.prices[quote]).quantize(SATOSHI, ROUND_HALF_UP)

    def product_quantum(self, product: str) -> Decimal:
        base, quote = split_product(product)
        return self.price_quantum.get(base, CENT) if quote in FIAT or quote == "USDC" else SATOSHI

    def native(self, currency: str, amount: Decimal) -> Decimal:
        return (amount * self.prices.get(currency, Decimal(0))).quantize(CENT, ROUND_HALF_UP)

    def tick(self, t: int) -> int:
        """Times strictly increase, so every list stays sorted without re-sorting."""
        self.last_t = max(t, self.last_t + 1000)
        return self.last_t

    # -- v2 ledger ---------------------------------------------------------------------------
    def v2(self, currency: str, kind: str, amount: Decimal, t: int, *, status: str = "completed",
           fee: Decimal | None = None, ref=None, peer: str | None = None, tx_id: str | None = None) -> V2Tx:
        w = self.wallets.get(currency) or self.wallet(currency, t)
        tx = V2Tx()
        tx.id, tx.wallet, tx.type, tx.status, tx.amount, tx.t = tx_id or self.new_id("4"), w, kind, status, amount, t
        tx.native = amount if currency in FIAT else self.native(currency, amount)
        tx.fee, tx.ref, tx.peer = fee, ref, peer
        w.pos[tx.id] = len(w.txs)
        w.txs.append(tx)
        if status == "completed":
            w.balance += amount
            w.updated = t
        return tx

    def deposit(self, t: int, amount: Decimal) -> V2Tx:
        return self.v2("USD", "fiat_deposit", amount, t)

    def withdraw(self, t: int, amount: Decimal) -> V2Tx:
        return self.v2("USD", "fiat_withdrawal", -amount, t)

    def send(self, t: int, currency: str, amount: Decimal, fee: Decimal, status: str = "completed") -> V2Tx:
        return self.v2(currency, "send", -(amount + fee), t, status=status, fee=fee)

    def receive(self, t: int, currency: str, amount: Decimal) -> V2Tx:
        return self.v2(currency, "receive", amount, t)

    def reward(self, t: int, currency: str, amount: Decimal, kind: str = "earn_payout") -> V2Tx:
        return self.v2(currency, kind, amount, t)

    def convert(self, t: int, source: str, amount: Decimal, target: str, received: Decimal) -> list[V2Tx]:
        """A Coinbase "Convert": one `trade` row on each wallet, sharing a trade id."""
        trade_id = self.new_id("5")
        return [self.v2(source, "trade", -amount, t, peer=trade_id),
                self.v2(target, "trade", received, t, peer=trade_id)]

    def stake(self, t: int, amount: Decimal) -> list[V2Tx]:
        """ETH staked into the ETH2 wallet: `staking_transfer` out of one, into the other."""
        transfer_id = self.new_id("5")
        return [self.v2("ETH", "staking_transfer", -amount, t, peer=transfer_id),
                self.v2("ETH2", "staking_transfer", amount, t, peer=transfer_id)]

    # -- orders and fills -------------------------------------------------------------------
    def place(self, t: int, product: str, side: str, size: Decimal, *, limit: Decimal | None = None,
              tif: str = "GOOD_UNTIL_CANCELLED", end_t: int | None = None) -> Order:
        o = Order()
        o.idx = len(self.orders)
        o.order_id, o.client_order_id = self.new_ids("6", "7")
        o.product, o.side, o.base_size, o.limit_price = product, side, size, limit
        o.kind = "LIMIT" if limit is not None else "MARKET"
        o.tif = tif if limit is not None else "IMMEDIATE_OR_CANCEL"
        o.status, o.created, o.fills, o.done_t, o.end_t, o.filled = OPEN, t, [], None, end_t, Decimal(0)
        self.orders.append(o)
        self.order_times.append(t)
        self.orders_by_id[o.order_id] = o
        self.open_orders[o.order_id] = o
        return o

    def fill(self, order: Order, t: int, size: Decimal, price: Decimal) -> Fill:
        base, quote = split_product(order.product)
        f = Fill()
        f.entry_id, f.trade_id, base_twin, quote_twin = self.new_ids("8", "9", "a", "b")
        f.seq, f.order = len(self.fills), order
        f.product, f.side, f.price, f.size, f.t = order.product, order.side, price, size, t
        quantum = CENT if quote in FIAT or quote == "USDC" else SATOSHI
        f.commission = (size * price * FEE_RATE).quantize(quantum, ROUND_HALF_UP)
        self.fills.append(f)
        self.fill_times.append(t)
        self.product_fills.setdefault(f.product, []).append(f.seq)
        self.fill_by_trade[f.trade_id] = f.seq
        order.fills.append(f)
        order.filled += size
        self.v2(base, "advanced_trade_fill", size if f.side == "BUY" else -size, t, ref=f, tx_id=base_twin)
        self.v2(quote, "advanced_trade_fill", f.quote_change(), t, ref=f, tx_id=quote_twin)
        if order.filled >= order.base_size:
            self.close(order, "FILLED", t)
        return f

    def close(self, order: Order, status: str, t: int) -> None:
        order.status, order.done_t = status, t
        self.open_orders.pop(order.order_id, None)

    def holds(self) -> dict[str, Decimal]:
        """Funds locked by open orders: the base for sells, the quote for buys."""
        held: dict[str, Decimal] = {}
        for o in self.open_orders.values():
            base, quote = split_product(o.product)
            if o.side == "SELL":
                held[base] = held.get(base, Decimal(0)) + o.remaining()
            else:
                held[quote] = held.get(quote, Decimal(0)) + o.remaining() * (o.limit_price or 0)
        return held

    def available(self, currency: str) -> Decimal:
        w = self.wallets.get(currency)
        return (w.balance if w else Decimal(0)) - self.holds().get(currency, Decimal(0))

    # -- lookups for the API ----------------------------------------------------------------
    def fills_between(self, start: int | None, end: int | None) -> tuple[int, int]:
        lo = bisect_left(self.fill_times, start) if start is not None else 0
        hi = bisect_left(self.fill_times, end) if end is not None else len(self.fill_times)
        return lo, hi

    def orders_between(self, start: int | None, end: int | None) -> tuple[int, int]:
        lo = bisect_left(self.order_times, start) if start is not None else 0
        hi = bisect_left(self.order_times, end) if end is not None else len(self.order_times)
        return lo, hi


def namespace(seed: int, positions: int, activities: int) -> str:
    return hashlib.sha256(f"coinbase-account:{seed}:{positions}:{activities}".encode()).hexdigest()


def quantize_down(value: Decimal, quantum: Decimal = SATOSHI) -> Decimal:
    return value.quantize(quantum, ROUND_DOWN)
