"""fetch_orders: allOrders per symbol from the cursor's orderId, then the open ones.

  1. GET /api/v3/account (20): balances say which pairs can have new fills (both assets
     changed, as for trades), and `locked` says whether any order is open at all.
  2. allOrders (20) from each such symbol's next orderId. The first sync asks the pairs
     fetch_transactions found trades on when it ran first on this adapter, else every
     candidate pair of markets.py (which needs the wallet history: ~25 /sapi calls).
  3. Open orders: none asked for when nothing is locked; otherwise openOrders, per
     symbol (6 each) when few symbols can hold the locked assets, else all at once (80).
     Orders stored as open that are open no more are read one by one (order, 4).

Orders placed and cancelled between two syncs without a fill are seen only when their
pair's balances move (then allOrders reads them): nothing else lists them.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...dtos import Order, Page, SkippedRecord
from ...errors import BadRecord, PermanentError, RateLimited, TransientError
from . import parse, weights
from .markets import Markets, balance_totals, changed_assets
from .transactions import DAY_MS, FLUSH_ITEMS, FLUSH_SYMBOLS, TransactionSync, iso, ms_of

if TYPE_CHECKING:
    from .adapter import BinanceAdapter

ORDERS_PAGE = 1000                     # allOrders maximum limit
OPEN_ONE, OPEN_ALL = weights.OPEN_ORDERS_ONE, weights.OPEN_ORDERS_ALL


class OrderSync:
    def __init__(self, adapter: "BinanceAdapter", cursor: dict[str, Any] | None, open_order_ids: Sequence[str]):
        self.a = adapter
        self.open_ids = list(open_order_ids)
        self.cur = json.loads(json.dumps(cursor or {}))
        self.cur.setdefault("v", 1)
        self.cur.setdefault("watermark", iso(adapter.server_ms() - adapter.history_days * DAY_MS))
        for key in ("orders", "bases", "failed"):
            self.cur.setdefault(key, {})
        self.newest = ms_of(self.cur["watermark"])
        self.items: list[Order] = []
        self.skipped: list[SkippedRecord] = []
        self.seen: set[str] = set()
        self.mark = adapter.requests_made

    def run(self) -> Iterator[Page[Order]]:
        fresh = "pass" not in self.cur
        state = self.cur.get("pass") or self._start_pass()
        covered: list[str] = []
        try:
            while state["todo"]:
                symbol = state["todo"][0]
                walked = self._symbol_orders(symbol)
                fresh = False
                if walked:
                    covered.append(symbol)
                    state.setdefault("covered", []).append(symbol)
                state["todo"].pop(0)
                if len(covered) >= FLUSH_SYMBOLS or len(self.items) >= FLUSH_ITEMS:
                    yield self._page({"symbols_covered": covered})
                    covered = []
            opened = self._open_orders(set(state["locked"]))
            refreshed = self._refresh(opened)
        except (RateLimited, TransientError):
            # Told to wait (the IP's weight is shared): what was read since the last page is
            # kept (as trades), and so is a pass just started, so the retry spends neither
            # again (20 a pair, 20 the account read). A step retried on a spent budget used to
            # repeat them every time, and small accounts never got past their open orders.
            if covered or self.items or fresh:
                yield self._page({"symbols_covered": covered})
            raise
        self.cur["balances"] = state["baseline"]
        if self.a.trades_snapshot is not None:
            self.cur["trades_seen"] = self.a.trades_snapshot   # what prime() compares against next time
        del self.cur["pass"]
        # The pipeline keeps the last value of each coverage key: the pass's totals go last.
        yield self._page({"mode": state["mode"], "complete": True, "candidates": state["candidates"],
                          "symbols_covered": sorted(state.get("covered", [])), "symbols_known": sorted(self.cur["orders"]),
                          "symbols_failed": sorted(self.cur["failed"]), "open_orders": len(opened),
                          "refreshed": refreshed})

    def _start_pass(self) -> dict[str, Any]:
        totals, locked = balance_totals(self.a.account_body())
        baseline = self.cur.get("balances")
        if baseline is None and self.a.trades_known:
            # Orders with fills are on pairs with trades; the rest (never filled) are not
            # worth 20 weight a pair. Open ones are read below anyway.
            todo = set(self.cur["orders"]) | self.a.trade_symbols
        elif baseline is None:
            todo = self._discover(totals) | set(self.cur["orders"])
        else:
            dirty = changed_assets(baseline, totals)
            todo = set(self.a.new_trade_symbols)
            if dirty:
                todo |= self.a.markets().changed(dirty, deep=self.a.deep_scan)
            if self.cur.get("rediscover"):
                todo |= self._discover(totals) - set(self.cur["orders"])
        todo = {s for s in todo if s not in self.cur["failed"]}
        state = {"mode": "full" if baseline is None else "incremental", "baseline": totals,
                 "locked": sorted(locked), "todo": sorted(todo), "candidates": len(todo)}
        self.cur["pass"] = state
        return state

    def _discover(self, totals: dict[str, str]) -> set[str]:
        """A fresh adapter (the pipeline builds one per step) finds the candidate pairs the
        way fetch_transactions does: from balances and the wallet history."""
        assets, complete = TransactionSync(self.a, None).wallet_assets()
        if complete:
            self.cur.pop("rediscover", None)
        else:
            self.cur["rediscover"] = True
        return self.a.markets().full(assets | set(totals), deep=self.a.deep_scan)

    # -- allOrders ------------------------------------------------------------------------------
    def _symbol_orders(self, symbol: str) -> bool:
        base = self._base(symbol)
        next_id = self.cur["orders"].get(symbol, 0)
        while True:
            try:
                rows = self.a.call("/api/v3/allOrders", [("symbol", symbol), ("orderId", next_id),
                                                         ("limit", ORDERS_PAGE)], cost=weights.ALL_ORDERS)
            except PermanentError as exc:
                if exc.code != -1121:
                    raise
                self.cur["failed"][symbol] = {"code": -1121, "reason": "Invalid symbol (delisted)"}
                return False
            if not isinstance(rows, list):
                raise TransientError("binance: allOrders answer is not a list")
            start = next_id
            for raw in rows:
                order_id = self._take(raw, base)
                next_id = max(next_id, (order_id or 0) + 1)
            self.cur["orders"][symbol] = next_id
            if len(rows) < ORDERS_PAGE or next_id == start:
                return True

    def _base(self, symbol: str) -> str | None:
        if symbol not in self.cur["bases"]:
            market = self.a.markets().get(symbol)
            if market is None:
                return None
            self.cur["bases"][symbol] = market.base
        return self.cur["bases"][symbol]

    def _take(self, raw: Any, base: str | None) -> int | None:
        try:
            if not isinstance(raw, dict):
                raise BadRecord("not an object")
            order = parse.order(raw, base)
        except BadRecord as exc:
            self.skipped.append(SkippedRecord(reason=f"order: {exc.message}", raw=raw if isinstance(raw, dict) else {}))
            return None
        if order.broker_id not in self.seen:
            self.seen.add(order.broker_id)
            self.items.append(order)
        self.newest = max(self.newest, parse.to_ms(order.submitted_at))
        return int(raw["orderId"])

    # -- open orders ------------------------------------------------------------------------------
    def _open_orders(self, locked: set[str]) -> set[str]:
        """Broker ids of the orders open now (none can be open when nothing is locked)."""
        if not locked:
            return set()
        rows = []
        for symbol in self._open_order_symbols(locked):
            params = [("symbol", symbol)] if symbol else []
            page = self.a.call("/api/v3/openOrders", params, cost=OPEN_ONE if symbol else OPEN_ALL)
            if not isinstance(page, list):
                raise TransientError("binance: openOrders answer is not a list")
            rows += page
        opened = set()
        for raw in rows:
            symbol = raw.get("symbol") if isinstance(raw, dict) else None
            if self._take(raw, self._base(symbol) if isinstance(symbol, str) else None) is not None:
                opened.add(f"{symbol}:{raw['orderId']}")
        return opened

    def _open_order_symbols(self, locked: set[str]) -> list[str | None]:
        """Per symbol when a few pairs can hold the locked coins (only sells lock a base
        asset); all at once (None) when a quote asset is locked or markets are unknown."""
        markets: Markets | None = self.a.cached_markets()
        if markets is None or markets.quoted_in(locked):
            return [None]
        symbols = markets.based_in(locked)
        return symbols if len(symbols) * OPEN_ONE < OPEN_ALL else [None]

    def _refresh(self, opened: set[str]) -> int:
        """Orders stored as open that are not open now: read each one (4 weight)."""
        count = 0
        for broker_id in self.open_ids:
            if broker_id in opened or broker_id in self.seen:
                continue
            symbol, _, order_id = broker_id.rpartition(":")
            try:
                raw = self.a.call("/api/v3/order", [("symbol", symbol), ("orderId", order_id)], cost=weights.ORDER)
            except PermanentError as exc:          # -2013 no such order, -1121 delisted
                self.skipped.append(SkippedRecord(reason=f"order {broker_id}: {exc.message}",
                                                  raw={"broker_id": broker_id}))
                continue
            self._take(raw, self._base(symbol))
            count += 1
        return count

    def _page(self, coverage: dict[str, Any]) -> Page[Order]:
        self.cur["watermark"] = iso(self.newest)
        page = Page(items=self.items, cursor=json.loads(json.dumps(self.cur)), skipped=self.skipped,
                    requests=self.a.requests_made - self.mark, coverage=coverage)
        self.items, self.skipped, self.mark = [], [], self.a.requests_made
        return page
