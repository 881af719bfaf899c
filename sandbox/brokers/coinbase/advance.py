"""Make time pass for one account: new fills, a reward, a deposit, a coin sold to zero,
new resting orders and a cancellation, all stamped at the simulator's clock."""
from __future__ import annotations

import random
from typing import Any

from .generator import SECOND, Gen, open_orders
from .state import FIAT, Book, split_product

DEFAULTS = {"fills": 2, "reward": True, "deposit": True, "close_position": True, "orders": 2, "cancel_orders": 1}
# Coins that are never a quote currency here, so their balance stays on the 1e-8 grid and
# one sell can take it to exactly zero (ETH is left alone: ETH2 shares its symbol).
_NOT_CLOSABLE = frozenset({"BTC", "ETH", "ETH2", "USDC"})


def _held(book: Book) -> list[str]:
    return [w.currency for w in book.wallet_list
            if w.currency not in FIAT and w.currency != "ETH2" and w.balance > 0]


def _snapshot(book: Book) -> tuple[int, int, dict[str, int]]:
    return len(book.fills), len(book.orders), {w.currency: len(w.txs) for w in book.wallet_list}


def _added(book: Book, before: tuple[int, int, dict[str, int]]) -> dict[str, list[str]]:
    fills0, orders0, txs0 = before
    fills = [f"fill:{f.entry_id}" for f in book.fills[fills0:]]
    v2 = [f"v2:{tx.id}" for w in book.wallet_list for tx in w.txs[txs0.get(w.currency, 0):]
          if tx.type != "advanced_trade_fill"]
    return {"transactions": fills + v2, "orders": [o.order_id for o in book.orders[orders0:]]}


def _close_position(gen: Gen, cancelled: list[str]) -> str | None:
    """Sell one coin to zero (its resting orders are cancelled first: they hold it)."""
    book = gen.book
    candidates = [c for c in gen.held if c not in _NOT_CLOSABLE and f"{c}-USD" in book.products]
    if not candidates:
        return None
    coin = candidates[-1]
    for o in list(book.open_orders.values()):
        if split_product(o.product)[0] == coin:
            book.close(o, "CANCELLED", gen.next_t())
            cancelled.append(o.order_id)
    gen.order(f"{coin}-USD", "SELL", sell_all=True, parts=1)
    gen.drop_held(coin)
    return coin


def _fills(gen: Gen, count: int) -> None:
    for i in range(count):
        products = [p for p in gen.tradable() if p.endswith("-USD")]
        if not products:
            return
        side = "BUY" if i % 2 == 0 else "SELL"
        if gen.order(gen.rng.choice(products), side, parts=1) is None:
            gen.order(gen.rng.choice(products), "BUY", parts=1)


def _cancel(gen: Gen, count: int, fresh: set[str]) -> list[str]:
    """Cancel resting orders, older ones first (a sync must notice those change)."""
    book = gen.book
    ordered = sorted(book.open_orders.values(), key=lambda o: (o.order_id in fresh, o.idx))
    cancelled = []
    for o in ordered[:count]:
        book.close(o, "CANCELLED", gen.next_t())
        cancelled.append(o.order_id)
    return cancelled


def advance(book: Book, now_us: int, changes: dict[str, Any]) -> dict[str, Any]:
    wanted = dict(DEFAULTS) if not changes else changes
    rng = random.Random(f"coinbase-advance:{book.seed}:{book.ns}:{len(book.fills)}:{len(book.orders)}")
    gen = Gen(book, rng, now_us, SECOND)
    gen.products = book.products
    gen.set_held(_held(book))
    before = _snapshot(book)
    if wanted.get("deposit"):
        gen.deposit()
    _fills(gen, int(wanted.get("fills", 0)))
    if wanted.get("reward", wanted.get("dividend")):
        gen.reward()
    cancelled: list[str] = []
    closed = _close_position(gen, cancelled) if wanted.get("close_position") else None
    fresh = {o.order_id for o in open_orders(gen, int(wanted.get("orders", 0)))}
    cancelled += _cancel(gen, int(wanted.get("cancel_orders", 0)), fresh)
    return {**_added(book, before), "canceled_orders": cancelled, "closed_position": closed,
            "open_orders": sorted(book.open_orders)}
