"""fetch_transactions: wallet history by time window, then trades symbol by symbol.

A sync is a "pass" kept in the cursor, so one that dies (or is told to wait by the rate
limiter) resumes where it stopped instead of starting over:

  1. GET /api/v3/account (20). If no balance changed since the last completed pass and
     no deposit/withdrawal is still pending, nothing can be new: stop (1 request).
  2. deposits, withdrawals (90-day windows, offset pages), dividends (180-day windows,
     halved while `total` says a window holds more than one page), from each stream's
     cursor time to now. Deposits not credited yet (status "pending") and unfinished
     withdrawals are read again by later syncs until they settle.
  3. myTrades from each symbol's `fromId` (last id + 1), for the candidate symbols of
     markets.py; a first pass walks only those that can explain a balance that does not
     add up yet (discovery.py), the rest are `skipped` with their reason. A delisted
     symbol answers -1121: recorded in `failed`, never claimed.
  4. The pass's starting balances become the baseline for the next comparison.

Every page carries `coverage` saying which windows and symbols it covered.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ...dtos import Page, SkippedRecord, Transaction
from ...errors import BadRecord, PermanentError, RateLimited, TransientError
from . import parse, weights
from .discovery import Walk
from .markets import Markets, balance_totals, changed_assets

if TYPE_CHECKING:
    from .adapter import BinanceAdapter

DAY_MS = 86_400_000
# name: (path, window, page size, UID weight or 0 for IP-weighted) -- wallet docs:
# 90 / 90 / 180 days; 1000 / 1000 / 500 rows.
STREAMS = {
    "deposits": ("/sapi/v1/capital/deposit/hisrec", 90 * DAY_MS, 1000, 0),
    "withdrawals": ("/sapi/v1/capital/withdraw/history", 90 * DAY_MS, 1000, weights.WITHDRAW_HISTORY_UID),
    "dividends": ("/sapi/v1/asset/assetDividend", 180 * DAY_MS, 500, 0),
}
STAGES = ("deposits", "withdrawals", "dividends", "symbols")
# Binance's data is asynchronous ("some delay in the response is normal"): each stream
# re-reads this much before its cursor and skips the ids it already gave ("recent").
OVERLAP_MS = 10 * 60_000
TRADES_PAGE = 1000                     # myTrades maximum limit
FLUSH_ITEMS = 2000                     # a checkpoint every ~2,000 records ...
FLUSH_SYMBOLS = 25                     # ... or every 25 symbols (most answer nothing)


def iso(ms: int) -> str:
    """Always to the millisecond, so watermarks also sort as strings."""
    return (parse.EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def ms_of(text: str) -> int:
    return parse.to_ms(datetime.fromisoformat(text))


class TransactionSync:
    def __init__(self, adapter: "BinanceAdapter", cursor: dict[str, Any] | None):
        self.a = adapter
        self.cur = json.loads(json.dumps(cursor or {}))
        start = adapter.server_ms() - adapter.history_days * DAY_MS
        self.cur.setdefault("v", 1)
        self.cur.setdefault("watermark", iso(start))
        self.cur.setdefault("streams", {})
        for name in STREAMS:
            self.cur["streams"].setdefault(name, {"since": start, "pending": {}, "recent": {}})
        for key in ("trades", "failed"):
            self.cur.setdefault(key, {})
        self.assets = set(self.cur.get("assets", []))
        adapter.trade_symbols.update(s for s, next_id in self.cur["trades"].items() if next_id)
        adapter.new_trade_symbols = set()                # "new" means: found by this sync
        self.newest = ms_of(self.cur["watermark"])
        self.items: list[Transaction] = []
        self.skipped: list[SkippedRecord] = []
        self.mark = adapter.requests_made
        self.walk: Walk | None = None            # a first pass's reconcile state (discovery.py)

    # -- the pass ---------------------------------------------------------------------------
    def run(self) -> Iterator[Page[Transaction]]:
        state = self.cur.get("pass") or self._start_pass()
        if state is None:
            self.a.trades_known = True
            yield self._page({"mode": "unchanged", "symbols_covered": [],
                              "reason": "no balance changed and nothing is pending since the last sync"})
            return
        if state["mode"] == "full" and not self.a.deep_scan:
            self.walk = Walk(state)
        for stage in STAGES[STAGES.index(state["stage"]):]:
            state["stage"] = stage
            yield from (self._symbols(state) if stage == "symbols" else self._stream(stage))
        self.cur["balances"] = state["baseline"]
        del self.cur["pass"]
        self.a.trades_known = True
        # The pipeline keeps the last value of each coverage key: the pass's totals go last.
        yield self._page({"mode": state["mode"], "complete": True, "candidates": state.get("candidates", 0),
                          "symbols_covered": sorted(state.get("covered", [])),
                          "symbols_known": sorted(self.cur["trades"]), "symbols_failed": sorted(self.cur["failed"]),
                          **self._skips(state)})

    def wallet_assets(self) -> tuple[set[str], bool]:
        """Every asset the wallet history moved (fetch_orders' first sync needs them and
        cannot see this stream's cursor); records are dropped. False when the withdraw
        history's UID budget (10 calls a minute) is spent, most likely by fetch_transactions
        a moment ago: the caller asks again on a later sync."""
        complete = True
        for name in STREAMS:
            try:
                for _ in self._stream(name):
                    pass
            except RateLimited:
                if name != "withdrawals":
                    raise
                complete = False
        return self.assets, complete

    def _start_pass(self) -> dict[str, Any] | None:
        totals, _ = balance_totals(self.a.account_body())
        baseline = self.cur.get("balances")
        dirty = None if baseline is None else changed_assets(baseline, totals)
        pending = any(self.cur["streams"][s]["pending"] for s in ("deposits", "withdrawals"))
        if baseline is not None and not dirty and not pending:
            return None
        self.assets |= set(totals)
        state = {"mode": "full" if baseline is None else "incremental", "baseline": totals,
                 "dirty": None if dirty is None else sorted(dirty), "stage": STAGES[0], "todo": None}
        self.cur["pass"] = state
        return state

    # -- wallet streams -------------------------------------------------------------------------
    def _stream(self, name: str) -> Iterator[Page[Transaction]]:
        path, window = STREAMS[name][:2]
        state = self.cur["streams"][name]
        since = state["since"]
        start, now = min([since - OVERLAP_MS, *state["pending"].values()]), self.a.server_ms()
        while start <= now:
            end = min(start + window - 1000, now)        # "less than 90 days" between the two
            for raw in self._window(name, path, start, end):
                self._take(name, raw, since, state)
            state["since"] = max(state["since"], end + 1)
            floor = state["since"] - OVERLAP_MS
            state["recent"] = {k: t for k, t in state["recent"].items() if t >= floor}
            yield self._page({"stream": name, "from": iso(start), "to": iso(end)})
            start = end + 1

    def _window(self, name: str, path: str, start: int, end: int) -> list[dict]:
        if name == "dividends":
            return self._dividends(path, start, end)
        rows, offset, (size, uid_weight) = [], 0, STREAMS[name][2:]
        while True:
            page = self.a.call(path, [("startTime", start), ("endTime", end), ("offset", offset), ("limit", size)],
                               cost=uid_weight, uid=bool(uid_weight))
            if not isinstance(page, list):
                raise TransientError(f"binance: {name} answer is not a list")
            rows += page
            if len(page) < size:
                return rows
            offset += size

    def _dividends(self, path: str, start: int, end: int) -> list[dict]:
        """No offset here: halve the window while `total` says rows were left out."""
        body = self.a.call(path, [("startTime", start), ("endTime", end), ("limit", STREAMS["dividends"][2])],
                           cost=weights.SAPI_IP)
        rows = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise TransientError("binance: assetDividend answer without rows")
        if int(body.get("total") or 0) <= len(rows):
            return rows
        if end <= start:
            self.skipped.append(SkippedRecord(reason="over 500 dividends in one millisecond; some not fetched",
                                              raw={"startTime": start, "total": body.get("total")}))
            return rows
        middle = (start + end) // 2
        return self._dividends(path, start, middle) + self._dividends(path, middle + 1, end)

    def _take(self, name: str, raw: Any, since: int, state: dict) -> None:
        pending, recent = state["pending"], state["recent"]
        try:
            if not isinstance(raw, dict):
                raise BadRecord("not an object")
            rid, when = self._identity(name, raw)
            if rid not in pending and (rid in recent or when < since - OVERLAP_MS):
                return                                   # given by an earlier sync
            if name == "deposits":
                legs, still_open = parse.deposit_legs(raw), parse.deposit_pending(raw)
            elif name == "withdrawals":
                legs, still_open = parse.withdrawal_legs(raw), parse.withdrawal_open(raw)
            else:
                legs, still_open = parse.dividend_legs(raw), False
        except BadRecord as exc:
            self.skipped.append(SkippedRecord(reason=f"{name}: {exc.message}", raw=raw if isinstance(raw, dict) else {}))
            return
        if still_open:
            pending[rid] = when
        else:
            pending.pop(rid, None)
        recent[rid] = when
        self._emit(legs, when, raw.get("coin") or raw.get("asset"))

    @staticmethod
    def _identity(name: str, raw: dict) -> tuple[str, int]:
        if name == "withdrawals":
            return parse.text(raw, "id"), parse.to_ms(parse.utc_text_time(raw, "applyTime"))
        key = "insertTime" if name == "deposits" else "divTime"
        return str(parse.integer(raw, "id") if name == "dividends" else parse.text(raw, "id")), parse.integer(raw, key)

    # -- trades ---------------------------------------------------------------------------------
    def _symbols(self, state: dict) -> Iterator[Page[Transaction]]:
        markets = self.a.markets()
        if state["todo"] is None:
            state["todo"] = self._candidates(state, markets)
            state["candidates"] = len(state["todo"])
        covered: list[str] = []
        failed: list[str] = []
        while state["todo"]:
            symbol = self._next_symbol(state, markets)
            if symbol is None:
                self.walk.skip_rest(state["todo"])
                break
            state["current"] = symbol
            outcome = None
            try:
                for outcome in self._symbol_trades(symbol, markets):
                    if len(self.items) >= FLUSH_ITEMS:
                        yield self._page({"symbols_covered": covered, "symbols_failed": failed,
                                          "symbol_partial": symbol})
                        covered, failed = [], []
            except (RateLimited, TransientError):
                # Told to wait (the IP's weight is shared): hand over what was walked since
                # the last page, so the retry does not spend the same weight again.
                if covered or failed or self.items:
                    yield self._page({"symbols_covered": covered, "symbols_failed": failed, "symbol_partial": symbol})
                raise
            state["todo"].remove(symbol)
            (failed if outcome == "failed" else covered).append(symbol)
            if outcome != "failed":
                state.setdefault("covered", []).append(symbol)
            if len(covered) + len(failed) >= FLUSH_SYMBOLS or len(self.items) >= FLUSH_ITEMS:
                yield self._page({"symbols_covered": covered, "symbols_failed": failed})
                covered, failed = [], []
        if covered or failed:
            yield self._page({"symbols_covered": covered, "symbols_failed": failed})

    def _next_symbol(self, state: dict, markets: Markets) -> str | None:
        """In order, or reconcile-guided on a first pass (None: every asset reconciles). A
        pair a checkpoint interrupted is finished first, whatever reconcile says now."""
        todo, current = state["todo"], state.get("current")
        if current in todo:
            return current
        return todo[0] if self.walk is None else self.walk.next_symbol(todo, markets)

    def _skips(self, state: dict) -> dict[str, Any]:
        """The coverage map's account of what a first pass did not walk, and why."""
        if self.walk is None:
            return {"deep": True} if self.a.deep_scan and state["mode"] == "full" else {}
        self.cur["skipped"] = {**self.cur.get("skipped", {}), **state["skipped"]}
        return {"symbols_skipped": dict(sorted(state["skipped"].items())),
                "assets_unreconciled": self.walk.unreconciled()}

    def _candidates(self, state: dict, markets: Markets) -> list[str]:
        if state["mode"] == "full":
            chosen = markets.full(self.assets, deep=self.a.deep_scan) | set(self.cur["trades"])
        else:
            chosen = markets.changed(set(state["dirty"]), deep=self.a.deep_scan)
        return sorted(s for s in chosen if not (s in self.cur["failed"] and not _trading(markets, s)))

    def _symbol_trades(self, symbol: str, markets: Markets) -> Iterator[str]:
        """Yields after every request: "more", then "covered" or "failed"."""
        market = markets.get(symbol)
        if market is None:
            self.cur["failed"][symbol] = {"reason": "not in exchangeInfo"}
            yield "failed"
            return
        from_id = self.cur["trades"].get(symbol, 0)
        while True:
            try:
                rows = self.a.call("/api/v3/myTrades", [("symbol", symbol), ("fromId", from_id),
                                                        ("limit", TRADES_PAGE)], cost=weights.MY_TRADES)
            except PermanentError as exc:
                if exc.code != -1121:
                    raise
                self.cur["failed"][symbol] = {"code": -1121, "reason": "Invalid symbol (delisted)"}
                yield "failed"
                return
            if not isinstance(rows, list):
                raise TransientError("binance: myTrades answer is not a list")
            next_id = self._take_trades(rows, market, from_id)
            self.cur["trades"][symbol] = next_id
            self.cur["failed"].pop(symbol, None)
            self.cur.get("skipped", {}).pop(symbol, None)
            if next_id > from_id:
                self.a.trade_symbols.add(symbol)
                self.a.new_trade_symbols.add(symbol)
            if len(rows) < TRADES_PAGE or next_id == from_id:
                yield "covered"
                return
            yield "more"
            from_id = next_id

    def _take_trades(self, rows: list, market, from_id: int) -> int:
        next_id = from_id
        for raw in rows:
            try:
                if not isinstance(raw, dict):
                    raise BadRecord("not an object")
                next_id = max(next_id, parse.integer(raw, "id") + 1)
                self._emit(parse.trade_legs(raw, market.base, market.quote), parse.integer(raw, "time"),
                           market.base, market.quote)
            except BadRecord as exc:
                self.skipped.append(SkippedRecord(reason=f"trade {market.symbol}: {exc.message}",
                                                  raw=raw if isinstance(raw, dict) else {}))
        return next_id

    # -- pages ----------------------------------------------------------------------------------
    def _emit(self, legs: list[Transaction], when: int, *assets: str | None) -> None:
        self.items.extend(legs)
        if self.walk is not None:
            self.walk.add(legs, assets)
        self.newest = max(self.newest, when)
        self.assets.update(a for a in assets if a)

    def _page(self, coverage: dict[str, Any]) -> Page[Transaction]:
        self.cur["watermark"] = iso(self.newest)
        self.cur["assets"] = sorted(self.assets)
        page = Page(items=sorted(self.items, key=lambda t: t.occurred_at), cursor=json.loads(json.dumps(self.cur)),
                    skipped=self.skipped, requests=self.a.requests_made - self.mark, coverage=coverage)
        self.items, self.skipped, self.mark = [], [], self.a.requests_made
        return page


def _trading(markets: Markets, symbol: str) -> bool:
    market = markets.get(symbol)
    return market is not None and market.trading
