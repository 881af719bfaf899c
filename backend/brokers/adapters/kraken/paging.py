"""Walking Kraken's newest-first `ofs` + `count` lists oldest-first, so each page can be a
checkpoint.

Ledgers, TradesHistory and ClosedOrders return 50 records, newest first, plus `count`,
the number of records between `start` (exclusive) and `end` (inclusive) (§4.3). To save
a cursor after every page, a sync must cover the oldest records first. So:

1. Ask once with start = the cursor's second. If `count` fits in that page, done.
2. Otherwise freeze the range: end = the newest id just seen (Kraken accepts an id as
   `end`), so records arriving meanwhile do not shift the offsets. Then read it from the
   old end: ofs = count - done - 50, count - done - 100, ... down to 0, and go back to 1
   for whatever arrived meanwhile (one request when nothing did).
3. Every answer must repeat the frozen `count`. If it changed (a record was inserted or
   removed inside the range), drop the frozen range and start again from what is
   covered: nothing is skipped, at worst a few records are read twice (rotki does the
   same check, never advancing past a changed count).

What is covered is `time` (the newest covered record) plus `edge`: the ids covered after
floor(time). The next walk starts at floor(time), exclusive, because Kraken takes
whole-second bounds, and drops `edge` ids: records that share the last second are
neither skipped nor repeated.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ...errors import AuthError, TransientError
from .client import KrakenClient

PAGE = 50                       # Kraken's page size for all three lists
MAX_RESTARTS = 3                # a range that keeps changing: give up, retry the run later


@dataclass(frozen=True)
class Source:
    method: str                 # Ledgers / ClosedOrders
    key: str                    # ledger / closed
    time_field: str             # time / closetm
    params: tuple[tuple[str, str], ...] = ()


Record = tuple[str, Any, Decimal | None]      # (id, record, time)
TRADES_SOURCE = Source("TradesHistory", "trades", "time")


def _time(record: Any, field: str) -> Decimal | None:
    try:
        return Decimal(str(record[field])) if isinstance(record, dict) else None
    except (KeyError, InvalidOperation, ValueError):
        return None


def empty_state() -> dict[str, Any]:
    return {"time": None, "edge": [], "range": None}


class OffsetWalk:
    def __init__(self, client: KrakenClient, source: Source, state: dict[str, Any] | None):
        self.client = client
        self.source = source
        self.state = {**empty_state(), **(state or {})}

    def pages(self) -> Iterator[tuple[list[Record], dict[str, Any]]]:
        """(new records oldest first, state covering them); the last state covers everything."""
        restarts, first = 0, None
        while True:
            frozen = self.state["range"]
            if frozen is None:
                start = self._start()
                count, items = self._fetch(start=start)
                if count <= len(items):
                    yield self._take(items[::-1]), self._snapshot()
                    return
                frozen = {"start": start, "end": items[0][0], "count": count, "done": 0}
                self.state["range"], first = frozen, items
            remaining = frozen["count"] - frozen["done"]
            ofs = max(0, remaining - PAGE)
            if ofs == 0 and first is not None:
                count, items = frozen["count"], first
            else:
                count, items = self._fetch(start=frozen["start"], end=frozen["end"], ofs=ofs)
            take = remaining - ofs
            if count != frozen["count"] or len(items) < take:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise TransientError(f"kraken: {self.source.method} kept changing while paging")
                self.state["range"], first = None, None
                continue
            frozen["done"] += take
            if frozen["done"] >= frozen["count"]:
                self.state["range"], first = None, None     # then one more look, for what came meanwhile
            yield self._take(items[:take][::-1]), self._snapshot()

    def _start(self) -> int | None:
        covered = self.state["time"]
        return math.floor(Decimal(covered)) if covered else None

    def _fetch(self, *, start: int | None, end: str | None = None, ofs: int = 0) -> tuple[int, list[Record]]:
        params: dict[str, Any] = dict(self.source.params)
        if start is not None:
            params["start"] = start
        if end is not None:
            params["end"] = end
        if ofs:
            params["ofs"] = ofs
        result = self.client.private(self.source.method, params)
        records = result.get(self.source.key)
        if records is None and "count" not in result:
            records = {}                # an account that never had any
        if not isinstance(records, dict):
            raise TransientError(f"kraken: {self.source.method} answer has no {self.source.key}")
        try:
            count = int(result.get("count", len(records)))
        except (TypeError, ValueError):
            raise TransientError(f"kraken: {self.source.method} answer has a bad count") from None
        return count, [(rid, rec, _time(rec, self.source.time_field)) for rid, rec in records.items()]

    def _take(self, chunk: list[Record]) -> list[Record]:
        """Drop what the cursor already covers; move the cursor past the rest."""
        edge = set(self.state["edge"])
        fresh = [r for r in chunk if r[0] not in edge]
        times = [t for _, _, t in chunk if t is not None]
        if not times:
            return fresh
        old = Decimal(self.state["time"]) if self.state["time"] else None
        newest = max(times) if old is None else max(old, max(times))
        second = math.floor(newest)
        if old is None or math.floor(old) != second:
            edge = set()
        edge.update(rid for rid, _, t in chunk if t is not None and t > second)
        self.state["time"] = str(newest)
        self.state["edge"] = sorted(edge)
        return fresh

    def _snapshot(self) -> dict[str, Any]:
        frozen = self.state["range"]
        return {"time": self.state["time"], "edge": list(self.state["edge"]),
                "range": dict(frozen) if frozen else None}


class TradeLookup:
    """Trades for the ledger's trade rows, joined by refid (= trade txid).

    The ledger already holds every balance change; TradesHistory only adds the price,
    side and order id. The transactions step reads it oldest first by the ledger's own
    frozen-range walk (`OffsetWalk`), from just before the first ledger row that wants a
    trade, and only as far as the ledger pages read so far need: ceil(trades / 50)
    requests for a whole history, the fewest Kraken's pages of 50 allow (reading by time
    windows around each ledger page brought about 20 trades a request). What the walk
    read ahead is kept for the next ledger pages. A trade the walk cannot give (it came
    after the walk froze its range) and the re-pull's sparse windows (`walk=False`) are
    read by time window, widened so one request brings ~40 trades.
    """

    TARGET = 40
    MAX_LOOKAHEAD = 30 * 86_400

    def __init__(self, client: KrakenClient, *, walk: bool = True):
        self.client = client
        self.cache: dict[str, dict] = {}
        self.span: tuple[int, int] | None = None
        self.lookahead = 0
        self.enabled = True
        self.denied = False
        self.walking = walk
        self._pages: Iterator[tuple[list[Record], dict[str, Any]]] | None = None
        self.walked: Decimal | None = None        # every trade up to this time is read (within the range)

    def find(self, wanted: dict[str, Decimal]) -> dict[str, dict]:
        """refid -> trade for the wanted refids (with their ledger times) that exist."""
        missing = {ref: t for ref, t in wanted.items() if ref not in self.cache and t is not None}
        if missing and self.enabled:
            # Trades older than every wanted row are done with (ledger pages come oldest first).
            oldest = min(t for t in wanted.values() if t is not None) - 1
            self.cache = {k: v for k, v in self.cache.items() if (_time(v, "time") or 0) >= oldest}
            if self.walking:
                self._walk(missing)
            later = {ref: t for ref, t in missing.items() if ref not in self.cache
                     and (self.walked is None or t > self.walked)}
            if later and self.enabled:
                lo, hi = math.floor(min(later.values())) - 1, math.ceil(max(later.values()))
                if not (self.span and self.span[0] <= lo and hi <= self.span[1]):
                    self._load(lo, hi)
        return {ref: self.cache[ref] for ref in wanted if ref in self.cache}

    def _walk(self, missing: dict[str, Decimal]) -> None:
        """Read pages until every missing trade is read or the walk is past their second."""
        if self._pages is None:
            start = math.floor(min(missing.values())) - 1
            self._pages = OffsetWalk(self.client, TRADES_SOURCE, {"time": str(start)}).pages()
        need = math.ceil(max(missing.values()))
        while any(ref not in self.cache for ref in missing) and (self.walked is None or self.walked < need):
            try:
                records, state = next(self._pages)
            except StopIteration:
                self.walking = False                   # the range is read: later trades by window
                return
            except AuthError as exc:
                self._refused(exc)
                return
            self.cache.update((rid, record) for rid, record, _ in records)
            if state["time"] is not None:
                self.walked = Decimal(state["time"])

    def _refused(self, exc: AuthError) -> None:
        if exc.code != "EGeneral:Permission denied":
            raise exc
        self.enabled, self.denied = False, True        # sync goes on without prices from trades

    def _load(self, lo: int, hi: int) -> None:
        end = hi + self.lookahead
        ofs = 0
        while True:
            try:
                result = self.client.private("TradesHistory", {"start": lo, "end": end, "ofs": ofs})
            except AuthError as exc:
                self._refused(exc)
                return
            trades = result.get("trades")
            if not isinstance(trades, dict):
                raise TransientError("kraken: TradesHistory answer has no trades")
            self.cache.update(trades)
            ofs += len(trades)
            if not trades or ofs >= int(result.get("count", 0)):
                break
        self.span = (lo, end)
        wanted_width = int((end - lo) * self.TARGET / max(ofs, 1))
        self.lookahead = max(0, min(self.MAX_LOOKAHEAD, wanted_width - (hi - lo)))
