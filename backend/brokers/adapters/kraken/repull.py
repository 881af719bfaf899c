"""Kraken's re-pull: the Ledger of the assets asked for, between two times.

Ledgers takes `asset` (a comma list of Kraken asset ids, shadow balances such as DOT.S
included), `start` (exclusive) and `end` (inclusive) in unix seconds, and pages newest
first by `ofs`, 50 a page, with the total in `count` (docs/brokers.md "Re-pull windows").
Bounds are whole seconds, so a window is widened by a second on each side. Trade rows are
joined with TradesHistory as the transactions step joins them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ...dtos import Page, RepullWindow, Transaction
from ...errors import TransientError
from ...windows import merged
from .paging import PAGE, TradeLookup, _time

if TYPE_CHECKING:
    from .adapter import KrakenAdapter

PAD = timedelta(seconds=1)


def repull(adapter: "KrakenAdapter", windows: Sequence[RepullWindow]) -> Iterator[Page[Transaction]]:
    from .adapter import _Books

    books = _Books(adapter.client)
    book = books.get()
    trades = TradeLookup(adapter.client, walk=False)       # sparse windows: a walk would read them all
    mark = adapter.session.requests_made
    for span in merged(windows, before=PAD, after=PAD):
        codes = sorted(code for code in book.assets if book.canonical(code) in span.assets)
        if not codes:
            continue
        params: dict[str, Any] = {"asset": ",".join(codes)}
        if span.start is not None:
            params["start"] = math.floor(span.start.timestamp())
        if span.end is not None:
            params["end"] = math.ceil(span.end.timestamp())
        for records in _pages(adapter, params):
            book = books.get(codes={str(r.get("asset", "")) for _, r, _ in records if isinstance(r, dict)})
            items, skipped = adapter._transactions(records, book, trades)
            spent, mark = adapter.session.requests_made - mark, adapter.session.requests_made
            yield Page(items=items, cursor={}, skipped=skipped, requests=spent)


def _pages(adapter: "KrakenAdapter", params: dict[str, Any]) -> Iterator[list]:
    """Ledger rows page by page; the range is frozen at the newest row first seen, so rows
    arriving meanwhile do not shift the offsets."""
    ofs = 0
    while True:
        result = adapter.client.private("Ledgers", {**params, "ofs": ofs} if ofs else params)
        rows = result.get("ledger")
        if rows is None and "count" not in result:
            rows = {}
        if not isinstance(rows, dict):
            raise TransientError("kraken: Ledgers answer has no ledger")
        if not ofs and rows and "end" not in params:
            params = {**params, "end": next(iter(rows))}
        yield [(rid, row, _time(row, "time")) for rid, row in rows.items()]
        ofs += len(rows)
        if not rows or len(rows) < PAGE or ofs >= int(result.get("count", ofs)):
            return
