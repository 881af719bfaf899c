"""Binance's re-pull: myTrades per symbol by time, and the wallet history of the coins asked for.

- myTrades takes `startTime`/`endTime` at most 24 hours apart (and not with `fromId`;
  rest-api.md "Account trade list"): a window of up to a week is asked day by day, a longer
  or open one is walked by id from the first trade (1,000 a page), which costs less.
  The symbols are the window's own (a short-filled order's pair), else those the
  transactions stream has walked (its cursor's `trades`) whose base or quote is an asset
  asked for; exchangeInfo (cached) tells base and quote.
- Deposits, withdrawals (coin filter, 90-day windows) and dividends (asset filter, 180-day
  windows) as the transactions step reads them; withdrawals spend the account's UID budget.
Binance's data is asynchronous ("some delay in the response is normal"): windows are
widened by the stream's own overlap (transactions.OVERLAP_MS).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ...dtos import Page, RepullWindow, SkippedRecord, Transaction
from ...errors import BadRecord, PermanentError, TransientError
from ...windows import merged
from . import parse, weights
from .transactions import DAY_MS, OVERLAP_MS, STREAMS, TRADES_PAGE

if TYPE_CHECKING:
    from .adapter import BinanceAdapter

PAD = timedelta(milliseconds=OVERLAP_MS)
# Wallet stream -> the TransactionTypes its rows become (parse.py); a window of other kinds skips it.
WALLET_KINDS = {"deposits": ("deposit", "transfer"), "withdrawals": ("withdrawal", "transfer"),
                "dividends": ("reward",)}
MAX_DAILY_WINDOWS = 7               # past a week of 24-hour windows, walking by id costs fewer requests
TRADE_WINDOW_MS = DAY_MS - 1        # "can't be longer than 24 hours"


class Repull:
    def __init__(self, adapter: "BinanceAdapter", cursor: dict[str, Any] | None):
        self.a = adapter
        self.walked = sorted((cursor or {}).get("trades") or {})
        self.mark = adapter.requests_made

    def run(self, windows: Sequence[RepullWindow]) -> Iterator[Page[Transaction]]:
        for span in merged(windows, before=PAD, after=PAD):
            now = self.a.server_ms()
            lo = parse.to_ms(span.start) if span.start else None
            hi = min(parse.to_ms(span.end), now) if span.end else now
            if span.wants("trade", "fee"):
                for symbol in self._symbols(span):
                    yield self._page(*self._trades(symbol, lo, hi))
            for name, kinds in WALLET_KINDS.items():
                if span.wants(*kinds):
                    for coin in sorted(span.assets):
                        yield self._page(*self._wallet(name, coin, lo, hi))

    def _symbols(self, span) -> list[str]:
        """The pairs the window names (a short-filled order's), else every walked pair with an
        asset asked for as its base or quote."""
        markets = self.a.markets()
        if span.symbols:
            return sorted(s for s in span.symbols if (m := markets.get(s)) is not None and m.trading)
        return [s for s in self.walked if (m := markets.get(s)) is not None and m.trading
                and (m.base in span.assets or m.quote in span.assets)]

    # -- trades -----------------------------------------------------------------------------------
    def _trades(self, symbol: str, lo: int | None, hi: int) -> tuple[list[Transaction], list[SkippedRecord]]:
        market = self.a.markets().get(symbol)
        rows: list[dict] = []
        if lo is not None and hi - lo <= MAX_DAILY_WINDOWS * DAY_MS:
            start = lo
            while start <= hi:
                end = min(start + TRADE_WINDOW_MS, hi)
                rows += self._call_trades(symbol, [("startTime", start), ("endTime", end), ("limit", TRADES_PAGE)])
                start = end + 1
        else:
            from_id = 0
            while True:
                page = self._call_trades(symbol, [("fromId", from_id), ("limit", TRADES_PAGE)])
                rows += page
                if len(page) < TRADES_PAGE:
                    break
                from_id = max(parse.integer(r, "id") for r in page) + 1
        return _parsed(rows, lambda raw: parse.trade_legs(raw, market.base, market.quote), f"trade {symbol}")

    def _call_trades(self, symbol: str, params: list[tuple[str, Any]]) -> list[dict]:
        try:
            rows = self.a.call("/api/v3/myTrades", [("symbol", symbol), *params], cost=weights.MY_TRADES)
        except PermanentError as exc:
            if exc.code == -1121:            # delisted since the stream walked it
                return []
            raise
        if not isinstance(rows, list):
            raise TransientError("binance: myTrades answer is not a list")
        return [r for r in rows if isinstance(r, dict)]

    # -- wallet -----------------------------------------------------------------------------------
    def _wallet(self, name: str, coin: str, lo: int | None, hi: int) -> tuple[list[Transaction], list[SkippedRecord]]:
        path, window, size, uid_weight = STREAMS[name]
        start = lo if lo is not None else self.a.server_ms() - self.a.history_days * DAY_MS
        key = "asset" if name == "dividends" else "coin"
        rows: list[dict] = []
        while start <= hi:
            end = min(start + window - 1000, hi)
            offset = 0
            while True:
                params = [(key, coin), ("startTime", start), ("endTime", end), ("limit", size)]
                body = self.a.call(path, params + ([("offset", offset)] if name != "dividends" else []),
                                   cost=uid_weight or weights.SAPI_IP, uid=bool(uid_weight))
                page = body.get("rows") if isinstance(body, dict) else body
                if not isinstance(page, list):
                    raise TransientError(f"binance: {name} answer is not a list")
                rows += [r for r in page if isinstance(r, dict)]
                if name == "dividends" or len(page) < size:
                    break
                offset += size
            start = end + 1
        legs = {"deposits": parse.deposit_legs, "withdrawals": parse.withdrawal_legs, "dividends": parse.dividend_legs}
        return _parsed(rows, legs[name], name)

    def _page(self, items: list[Transaction], skipped: list[SkippedRecord]) -> Page[Transaction]:
        spent, self.mark = self.a.requests_made - self.mark, self.a.requests_made
        return Page(items=items, cursor={}, skipped=skipped, requests=spent)


def _parsed(rows: list[dict], legs, what: str) -> tuple[list[Transaction], list[SkippedRecord]]:
    items, skipped = [], []
    for raw in rows:
        try:
            items += legs(raw)
        except BadRecord as exc:
            skipped.append(SkippedRecord(reason=f"{what}: {exc.message}", raw=raw))
    return items, skipped

