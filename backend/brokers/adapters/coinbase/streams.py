"""Cursor bookkeeping for Coinbase's two paging styles.

v3 fills and orders come newest first only, filtered by a time (`start_sequence_timestamp`,
`start_date`) and paged with an opaque `cursor`. `NewestFirstWalk` reads such a listing
down to the previous high-water mark and checkpoints after every page: until the walk
reaches the bottom its state keeps the old `since` plus the page cursor, so a sync that
dies resumes the same walk; only a finished walk moves `since` up to the newest record.
Records exactly at `since` are re-sent by an inclusive filter, so their ids are kept in
`seen` and dropped (works whether the server's bound is inclusive or exclusive).

v2 wallets are read oldest first with `order=asc&starting_after=<last id>` per wallet.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from .parse import format_time, parse_time

# fetch(since, page_cursor) -> (records, next_page_cursor or "" when done)
Fetch = Callable[[str | None, str | None], tuple[list[dict], str]]


class NewestFirstWalk:
    def __init__(self, state: dict | None, *, time_key: str, id_key: str):
        state = dict(state or {})
        self.since: str | None = state.get("since")
        self.seen: list[str] = list(state.get("seen") or [])
        run = state.get("run") or {}
        self.page: str | None = run.get("page")
        self.top: str | None = run.get("top")
        self.top_ids: list[str] = list(run.get("top_ids") or [])
        self.time_key, self.id_key = time_key, id_key
        self.done = False

    def state(self) -> dict[str, Any]:
        run = None if self.done else {"page": self.page, "top": self.top, "top_ids": list(self.top_ids)}
        return {"since": self.since, "seen": list(self.seen), "run": run}

    def pages(self, fetch: Fetch) -> Iterator[list[dict]]:
        """Raw records not seen before, page by page; state() is valid after each page."""
        since_at = parse_time(self.since) if self.since else None
        seen = set(self.seen)
        while True:
            records, next_page = fetch(self.since, self.page)
            fresh = []
            for raw in records:
                at, ident = self._time_and_id(raw)
                if at is not None and since_at is not None and (at < since_at or (at == since_at and ident in seen)):
                    continue
                fresh.append(raw)
                self._note_top(at, ident)
            self.page = next_page or None
            if not next_page:
                self._finish(since_at)
            yield fresh
            if self.done:
                return

    def _time_and_id(self, raw: dict) -> tuple[datetime | None, str]:
        try:
            return parse_time(raw.get(self.time_key)), str(raw.get(self.id_key))
        except Exception:               # an unparsable record is the parser's to report
            return None, str(raw.get(self.id_key))

    def _note_top(self, at: datetime | None, ident: str) -> None:
        if at is None:
            return
        top = parse_time(self.top) if self.top else None
        if top is None or at > top:
            self.top, self.top_ids = format_time(at), [ident]
        elif at == top:
            self.top_ids.append(ident)

    def _finish(self, since_at: datetime | None) -> None:
        self.done = True
        if self.top is None:
            return
        top = parse_time(self.top)
        if since_at is not None and top == since_at:
            self.seen = sorted(set(self.seen) | set(self.top_ids))
        elif since_at is None or top > since_at:
            self.since, self.seen = self.top, sorted(set(self.top_ids))


def newest(*times: str | None) -> str | None:
    """The latest of some ISO times (None ignored)."""
    parsed = [parse_time(t) for t in times if t]
    return format_time(max(parsed)) if parsed else None
