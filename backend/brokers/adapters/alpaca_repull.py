"""Alpaca's re-pull: account activities in a window, as the transactions step reads them.

GET /v2/account/activities with `after` and `until` (exclusive bounds; they cannot be
combined with `date`), `direction=asc`, 100 a page, paged by `page_token` = the last id
(docs/brokers.md "Re-pull windows"). Activities cannot be filtered by symbol, so a window
brings every activity in it (and `amount` rows for cash come along).

A window that can only miss some kinds (a missing fill of a short-filled order) asks for
those activity types only (`activity_types`, a comma list).

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
# TransactionType -> the activity types that make it (adapters/alpaca.py ACTIVITY_TYPES read backwards).
ACTIVITY_TYPES_OF = {
    "trade": ("FILL",), "fee": ("FEE", "CFEE", "DIVFEE", "PTC"), "split": ("SPLIT", "SSP"),
    "transfer": ("ACATC", "ACATS", "JNL", "JNLC", "JNLS"), "deposit": ("CSD", "TRANS"), "withdrawal": ("CSW", "TRANS"),
}


def repull(adapter: "AlpacaAdapter", windows: Sequence[RepullWindow]) -> Iterator[Page[Transaction]]:
    from .alpaca import ACTIVITY_PAGE_SIZE, _rfc3339, parse_activity

    for span in merged(windows, before=BEFORE, after=AFTER):
        token = None
        types = sorted({t for kind in span.kinds for t in ACTIVITY_TYPES_OF.get(kind, ())})
        while True:
            params: dict[str, Any] = {"direction": "asc", "page_size": ACTIVITY_PAGE_SIZE}
            if span.start is not None:
                params["after"] = _rfc3339(span.start)
            if span.end is not None:
                params["until"] = _rfc3339(span.end)
            if span.kinds and types:
                params["activity_types"] = ",".join(types)
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
