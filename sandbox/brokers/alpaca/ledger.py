"""One account's books: activities and orders kept sorted with the indexes that let a
page be served by bisect (never by scanning the history), plus holdings and cash that
every posted record moves.

Activities are kept in id order; ids start with the New York time stamp and times only
grow, so the list is also in time order and `act_us` can be bisected for after/until.
Orders are kept in submitted_at order (appended; ties keep arrival order).
"""
from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice

from .records import ZERO, Fill, Holding, Nta, Order
from .universe import AssetInfo


class Ledger:
    def __init__(self, cash: Decimal = ZERO):
        self.acts: list[Fill | Nta] = []
        self.act_ids: list[str] = []
        self.act_us: list[int] = []
        self.by_kind: dict[str, list[int]] = {}
        self.orders: list[Order] = []
        self.order_us: list[int] = []
        self.order_index: dict[str, int] = {}
        self.open_orders: list[int] = []                 # sorted positions in self.orders
        self.orders_by_symbol: dict[str, list[int]] = {}
        self.holdings: dict[str, Holding] = {}           # AssetInfo.symbol -> Holding
        self.prices: dict[str, Decimal] = {}             # last trade price per symbol
        self.cash = cash

    # -- posting ------------------------------------------------------------------------
    def _append_activity(self, record: Fill | Nta) -> None:
        if self.act_ids and record.id <= self.act_ids[-1]:
            raise ValueError(f"activity ids must grow: {record.id} after {self.act_ids[-1]}")
        position = len(self.acts)
        self.acts.append(record)
        self.act_ids.append(record.id)
        self.act_us.append(record.t_us)
        self.by_kind.setdefault(record.kind, []).append(position)

    def holding(self, asset: AssetInfo) -> Holding:
        h = self.holdings.get(asset.symbol)
        if h is None:
            h = self.holdings[asset.symbol] = Holding(asset, self.prices.get(asset.symbol, ZERO))
        return h

    def _settle(self, h: Holding) -> None:
        if h.qty == 0:
            del self.holdings[h.asset.symbol]

    def post_fill(self, fill: Fill) -> None:
        self._append_activity(fill)
        h = self.holding(fill.asset)
        signed = fill.signed_qty
        new_qty = h.qty + signed
        if h.qty == 0 or (h.qty > 0) != (new_qty > 0):
            h.avg = fill.price                                  # opened, or flipped side
        elif abs(new_qty) > abs(h.qty):
            h.avg = ((h.avg * abs(h.qty) + fill.price * fill.qty) / abs(new_qty)).quantize(Decimal("0.0001"))
        h.qty = new_qty
        h.lastday = h.price or fill.price        # the previous trade stands in for yesterday's close
        h.price = fill.price
        self.prices[fill.asset.symbol] = fill.price
        self.cash -= signed * fill.price
        self._settle(h)

    def post_nta(self, nta: Nta) -> None:
        """Cash moves by net_amount; `holding_qty` (ACATS, CFEE, ...) moves the holding."""
        self._append_activity(nta)
        if nta.status == "canceled":
            return
        self.cash += nta.net
        if nta.holding_qty:
            h = self.holding(nta.asset)
            h.qty += nta.holding_qty
            self._settle(h)

    def post_split(self, remove: Nta, add: Nta, ratio: Decimal) -> None:
        """A split is two SPLIT rows (old shares out, new shares in); price and average scale."""
        self._append_activity(remove)
        self._append_activity(add)
        h = self.holdings[remove.asset.symbol]
        h.qty += remove.holding_qty + add.holding_qty
        h.avg = (h.avg / ratio).quantize(Decimal("0.0001"))
        h.price = h.lastday = (h.price / ratio).quantize(Decimal("0.01"))
        self.prices[h.asset.symbol] = h.price

    def add_order(self, order: Order) -> None:
        if self.order_us and order.submitted_us < self.order_us[-1]:
            raise ValueError("orders must be added in submitted_at order")
        position = len(self.orders)
        self.orders.append(order)
        self.order_us.append(order.submitted_us)
        self.order_index[order.id] = position
        self.orders_by_symbol.setdefault(order.asset.symbol, []).append(position)
        if order.is_open:
            self.open_orders.append(position)

    def set_order_status(self, order: Order, status: str) -> None:
        was_open = order.is_open
        order.status = status
        position = self.order_index[order.id]
        if was_open and not order.is_open:
            self.open_orders.pop(bisect_left(self.open_orders, position))
        elif order.is_open and not was_open:
            insort(self.open_orders, position)

    # -- reading ------------------------------------------------------------------------
    def activity_page(self, *, kinds: set[str] | None, after_ns: int | None, until_ns: int | None,
                      token: str | None, ascending: bool, size: int | None) -> list[Fill | Nta]:
        lo, hi = _time_range(self.act_us, after_ns, until_ns)
        if token:
            if ascending:
                lo = max(lo, bisect_right(self.act_ids, token))
            else:
                hi = min(hi, bisect_left(self.act_ids, token))
        if hi <= lo:
            return []
        size = size or (hi - lo)
        if kinds is None:
            picked = range(lo, min(hi, lo + size)) if ascending else range(hi - 1, max(lo, hi - size) - 1, -1)
        else:
            streams = [_slice(self.by_kind.get(k, []), lo, hi, ascending) for k in kinds]
            picked = islice(heapq.merge(*streams, reverse=not ascending), size)
        return [self.acts[i] for i in picked]

    def order_page(self, *, status: str, after_ns: int | None, until_ns: int | None, ascending: bool,
                   limit: int, symbols: set[str] | None) -> list[Order]:
        lo, hi = _time_range(self.order_us, after_ns, until_ns)
        if hi <= lo:
            return []
        if status == "open":
            streams = [_slice(self.open_orders, lo, hi, ascending)]
        elif symbols is not None:
            streams = [_slice(self.orders_by_symbol.get(s, []), lo, hi, ascending) for s in symbols]
        else:
            streams = [iter(range(lo, hi) if ascending else range(hi - 1, lo - 1, -1))]
        merged: Iterable[int] = heapq.merge(*streams, reverse=not ascending) if len(streams) > 1 else streams[0]
        out = []
        for i in merged:
            order = self.orders[i]
            if symbols is not None and order.asset.symbol not in symbols:
                continue
            if status == "closed" and order.is_open:       # open orders are few: skipping them is cheap
                continue
            out.append(order)
            if len(out) >= limit:
                break
        return out

    def order(self, order_id: str) -> Order | None:
        position = self.order_index.get(order_id)
        return None if position is None else self.orders[position]


def _time_range(times: list[int], after_ns: int | None, until_ns: int | None) -> tuple[int, int]:
    """[lo, hi) of the records strictly after `after` and strictly before `until`."""
    lo = 0 if after_ns is None else bisect_right(times, after_ns // 1000)
    hi = len(times) if until_ns is None else bisect_left(times, -(-until_ns // 1000))
    return lo, hi


def _slice(positions: list[int], lo: int, hi: int, ascending: bool) -> Iterator[int]:
    """The entries of a sorted position list that fall in [lo, hi), lazily, in order."""
    a, b = bisect_left(positions, lo), bisect_left(positions, hi)
    return (positions[i] for i in (range(a, b) if ascending else range(b - 1, a - 1, -1)))
