"""Alpaca's re-pull: account activities in a window, as the transactions step reads them.

GET /v2/account/activities with `after` and `until` (exclusive bounds; they cannot be
combined with `date`), `direction=asc`, 100 a page, paged by `page_token` = the last id
(docs/brokers.md "Re-pull windows"). Activities cannot be filtered by symbol, so a window
brings every activity in it (and `amount` rows for cash come along).

Non-trade activities carry a New York calendar `date`, stored at UTC midnight, and Alpaca
files them during that New York day, up to ~29 hours later; fills carry their execution
time. So the window asks from a day before its start to two days after its end.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..dtos import Page, RepullWindow, SkippedRecord, Transaction
from ..windows import merged

if TYPE_CHECKING:
    from .alpaca import AlpacaAdapter

BEFORE, AFTER = timedelta(days=1), timedelta(days=2)


def repull(adapter: "AlpacaAdapter", windows: Sequence[RepullWindow]) -> Iterator[Page[Transaction]]:
    from .alpaca import ACTIVITY_PAGE_SIZE, _rfc3339, parse_activity

    for start, end, _ in merged(windows, before=BEFORE, after=AFTER):
        token = None
        while True:
            params: dict[str, Any] = {"direction": "asc", "page_size": ACTIVITY_PAGE_SIZE}
            if start is not None:
                params["after"] = _rfc3339(start)
            if end is not None:
                params["until"] = _rfc3339(end)
            if token:
                params["page_token"] = token
            body = adapter._get_list("/v2/account/activities", params)
            parsed = [parse_activity(raw) for raw in body]
            yield Page(items=[r for r in parsed if isinstance(r, Transaction)], cursor={},
                       skipped=[r for r in parsed if isinstance(r, SkippedRecord)], requests=1)
            last = body[-1].get("id") if body and isinstance(body[-1], dict) else None
            if len(body) < ACTIVITY_PAGE_SIZE or not last or last == token:
                break
            token = last
