"""Turns planned actions into records: which symbol a trade hits, how big it is, which
holding a dividend, split or in-kind fee applies to. Shared by the generator and advance().

Rules that keep the history coherent: shorts are equities in whole shares and are never
split; crypto is long only; a random trade never closes a position (only `close` does),
so the set of open positions is exactly the planned one.
"""
from __future__ import annotations

import random
from collections import deque
from decimal import ROUND_DOWN, Decimal

from .activities import post_nta
from .desk import CENT, CRYPTO_QTY, FRACTION, Desk, between, crypto_qty, weighted
from .times import US
from .universe import AssetInfo, market_price, price_tick

SECOND = 1_000_000
UNFILLED_SHARE = 0.04        # orders that never executed, next to the filled ones
TIE_SHARE = 0.04             # orders sharing the previous order's submitted_at (bracket-style bursts)
UNFILLED_STATUSES = ("canceled", "expired", "rejected")
UNFILLED_CUMULATIVE = (6, 9, 10)


class Bag:
    """A list with O(1) add / remove / random choice."""

    def __init__(self):
        self.items: list[AssetInfo] = []
        self.where: dict[str, int] = {}

    def add(self, asset: AssetInfo) -> None:
        if asset.symbol not in self.where:
            self.where[asset.symbol] = len(self.items)
            self.items.append(asset)

    def remove(self, asset: AssetInfo) -> None:
        i = self.where.pop(asset.symbol, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.where[last.symbol] = i

    def choice(self, rng: random.Random) -> AssetInfo | None:
        return rng.choice(self.items) if self.items else None

    def __len__(self) -> int:
        return len(self.items)


class Player:
    def __init__(self, desk: Desk, rng: random.Random, universe: dict):
        self.desk, self.rng, self.universe = desk, rng, universe
        self.ledger = desk.ledger
        self.to_open: deque[AssetInfo] = deque()
        self.closing: deque[AssetInfo] = deque()
        self.closed_set = {a.symbol for a in universe["closed"]}
        self.longs, self.shorts, self.coins = Bag(), Bag(), Bag()
        self.px: dict[str, float] = {}

    # -- helpers ------------------------------------------------------------------------
    def queue_opens(self, assets: list[AssetInfo]) -> None:
        self.to_open.extend(assets)

    def price(self, asset: AssetInfo, t_us: int) -> Decimal:
        """The sandbox market's price at t (sandbox/prices.py), so every fill lies inside the
        day's bar that the market-data endpoints serve."""
        p = market_price(asset, t_us / US)
        self.px[asset.symbol] = p
        return price_tick(p)

    def bag_for(self, asset: AssetInfo) -> Bag:
        if asset.is_crypto:
            return self.coins
        return self.shorts if asset.symbol in self.universe["shorts"] else self.longs

    def any_held(self) -> AssetInfo | None:
        total = len(self.longs) + len(self.shorts) + len(self.coins)
        if not total:
            return None
        r = between(self.rng, 0, total)
        for bag in (self.longs, self.shorts, self.coins):
            if r < len(bag):
                return bag.items[r]
            r -= len(bag)
        return None

    def size(self, asset: AssetInfo, price: Decimal, short: bool = False) -> Decimal:
        """A fresh lot: whole shares, fractional shares (longs only) or a coin amount."""
        if asset.is_crypto:
            return crypto_qty(Decimal(between(self.rng, 50, 5_001)), price)
        if not short and self.rng.random() < 0.25:
            return between(self.rng, 500_000, 20_000_001) * FRACTION
        return Decimal(between(self.rng, 3, 101))

    # -- trades -------------------------------------------------------------------------
    def act(self, kind: str, arg, t_us: int, offset: int | None) -> int:
        if kind == "open" and self.to_open:
            return self.open(self.to_open.popleft(), t_us, offset)
        if kind == "close" and self.closing:
            return self.close(self.closing.popleft(), t_us, offset)
        fills, rest = (1, "open") if arg == "open-partial" else (arg if isinstance(arg, int) else 1, "")
        if self.to_open and not (len(self.longs) + len(self.shorts) + len(self.coins)):
            return self.open(self.to_open.popleft(), t_us, offset, fills)    # pulled forward: its slot is free later
        return self.random_trade(t_us, offset, fills, rest)

    def open(self, asset: AssetInfo, t_us: int, offset: int | None, fills: int = 1) -> int:
        price = self.price(asset, t_us)
        short = asset.symbol in self.universe["shorts"]
        order, t = self.desk.trade(asset, "sell" if short else "buy", self.size(asset, price, short), price, t_us,
                                   fills=fills, offset_us=offset)
        self.bag_for(asset).add(asset)
        if asset.symbol in self.closed_set:
            self.closing.append(asset)
        return t

    def close(self, asset: AssetInfo, t_us: int, offset: int | None) -> int:
        held = self.ledger.holdings[asset.symbol].qty
        order, t = self.desk.trade(asset, "sell" if held > 0 else "buy", abs(held), self.price(asset, t_us), t_us,
                                   offset_us=offset)
        self.bag_for(asset).remove(asset)
        return t

    def random_trade(self, t_us: int, offset: int | None, fills: int, rest: str) -> int:
        asset = self.any_held()
        if asset is None:                              # nothing to trade (0-position accounts): keep the count
            for k in range(fills):
                t_us = self.desk.nta("INT", t_us + k * 1000, Decimal("0.01")).t_us
            return t_us
        price = self.price(asset, t_us)
        side, qty = self.pick_trade(asset, price, fills)
        submitted = None
        if self.ledger.orders and self.rng.random() < TIE_SHARE:
            submitted = self.ledger.order_us[-1]
        if rest == "" and fills > 1 and self.rng.random() < 0.05:
            rest = "canceled"
        notional = None
        if asset.is_crypto and side == "buy" and self.rng.random() < 0.3:
            notional = (qty * price).quantize(CENT)
        order, t = self.desk.trade(asset, side, qty, price, t_us, fills=fills, offset_us=offset,
                                   submitted_us=submitted, rest=rest, notional=notional,
                                   order_type="limit" if self.rng.random() < 0.3 else "market")
        if self.rng.random() < UNFILLED_SHARE:
            t += SECOND
            self.unfilled(t)
        return t

    def pick_trade(self, asset: AssetInfo, price: Decimal, fills: int) -> tuple[str, Decimal]:
        """Add to the position or take part of it off, never all of it."""
        held = self.ledger.holdings[asset.symbol].qty
        short = held < 0
        if self.rng.random() < 0.5:
            part = abs(held) * Decimal(between(self.rng, 1000, 6_001)).scaleb(-4)
            if held == held.to_integral_value() or short:
                part = part.to_integral_value(rounding=ROUND_DOWN)
            else:
                part = part.quantize(CRYPTO_QTY if asset.is_crypto else FRACTION, rounding=ROUND_DOWN)
            unit = part.as_tuple().exponent
            units = int(part.scaleb(-unit)) if isinstance(unit, int) else 0
            if units >= fills and 0 < part < abs(held):
                return ("buy" if short else "sell"), part
        return ("sell" if short else "buy"), self.size(asset, price, short)

    def unfilled(self, t_us: int) -> None:
        asset = self.any_held() or self.universe["spare"][0]
        status = weighted(self.rng, UNFILLED_STATUSES, UNFILLED_CUMULATIVE)
        price = self.price(asset, t_us)
        qty = Decimal(between(self.rng, 1, 51)) if not asset.is_crypto else crypto_qty(Decimal(500), price)
        self.desk.unfilled_order(asset, self.rng.choice(("buy", "sell")), qty, price, t_us, status)

    def open_orders_at(self, t_us: int, count: int) -> list[str]:
        ids = []
        for k in range(count):
            asset = self.any_held() or self.universe["spare"][k % len(self.universe["spare"])]
            price = self.price(asset, t_us)
            qty = Decimal(between(self.rng, 1, 51)) if not asset.is_crypto else crypto_qty(Decimal(300), price)
            order = self.desk.unfilled_order(asset, self.rng.choice(("buy", "sell")), qty, price,
                                             t_us + k * 7 * SECOND, self.rng.choice(("new", "accepted")))
            ids.append(order.id)
        return ids

    # -- non-trade activities -------------------------------------------------------------
    def nta(self, kind: str, t_us: int, offset: int | None) -> int:
        return post_nta(self, kind, t_us, offset)
