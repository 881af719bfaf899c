"""Query parsing and the two paging styles: v3 `cursor` (+ `has_next`), v2 `starting_after`.

Pages never scan the whole history: records are kept sorted by time, ranges come from
bisect and every cursor is a position (v3: the index of the last record returned; v2: the
id of the last record, looked up in a dict)."""
from __future__ import annotations

import heapq
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sandbox.http import Request, Response, SimError

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")
V2_DEFAULT_LIMIT, V2_MAX_LIMIT = 25, 100          # [CB-PG coinbase-app pagination]


def v3_error(status: int, code: str, details: str) -> SimError:
    return SimError(Response.json({"error": code, "error_details": details, "message": details}, status))


def v2_error(status: int, code: str, message: str) -> SimError:
    return SimError(Response.json({"errors": [{"id": code, "message": message}]}, status))


def int_arg(request: Request, name: str, default: int, maximum: int, *, v2: bool = False) -> int:
    raw = request.arg(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise (v2_error(400, "validation_error", f"invalid {name}") if v2
               else v3_error(400, "INVALID_ARGUMENT", f"invalid value for {name}")) from None
    return max(1, min(value, maximum))          # over the maximum: clamped, as the docs' "max" reads


def time_arg(request: Request, name: str) -> int | None:
    """RFC3339 (up to nanoseconds) -> integer microseconds."""
    raw = request.arg(name)
    if raw in (None, ""):
        return None
    m = _RFC3339.match(raw)
    if not m:
        raise v3_error(400, "INVALID_ARGUMENT", f"{name} must be an RFC3339 timestamp")
    offset = "+00:00" if m[4] in "Zz" else m[4]
    try:
        dt = datetime.fromisoformat(f"{m[1]}T{m[2]}{offset}")
    except ValueError:
        raise v3_error(400, "INVALID_ARGUMENT", f"{name} must be an RFC3339 timestamp") from None
    return int(dt.timestamp()) * 1_000_000 + int((m[3] or "0")[:6].ljust(6, "0"))


def cursor_arg(request: Request) -> int | None:
    raw = request.arg("cursor")
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise v3_error(400, "INVALID_ARGUMENT", "invalid cursor")
    return int(raw)


def newest_first(lo: int, hi: int, *, chosen: Iterable[int] | None = None,
                 lists: Sequence[list[int]] | None = None) -> Iterator[int]:
    """Indices in [lo, hi), newest first: all of them, an explicit set, or the union of
    per-key ascending index lists (a product's fills)."""
    if chosen is not None:
        yield from (i for i in sorted(set(chosen), reverse=True) if lo <= i < hi)
    elif lists is not None:
        slices = [reversed(xs[bisect_left(xs, lo):bisect_left(xs, hi)]) for xs in lists]
        yield from heapq.merge(*slices, reverse=True)
    else:
        yield from range(hi - 1, lo - 1, -1)


def take(indices: Iterator[int], keep: Callable[[int], bool], limit: int) -> tuple[list[int], bool]:
    """Up to `limit` kept indices, and whether another one follows."""
    page = []
    for i in indices:
        if keep(i):
            if len(page) == limit:
                return page, True
            page.append(i)
    return page, False


def v2_page(items: Sequence[Any], position: Callable[[str], int | None], request: Request, base_uri: str,
            render: Callable[[Any], dict], ident: Callable[[Any], str] = lambda x: x.id) -> dict[str, Any]:
    """Coinbase App pagination: `order` (desc default), `starting_after`, `ending_before`."""
    limit = int_arg(request, "limit", V2_DEFAULT_LIMIT, V2_MAX_LIMIT, v2=True)
    order = request.arg("order") or "desc"
    if order not in ("asc", "desc"):
        raise v2_error(400, "validation_error", "order must be asc or desc")
    n = len(items)
    at = (lambda k: k) if order == "asc" else (lambda k: n - 1 - k)     # view position <-> index
    after, before = request.arg("starting_after"), request.arg("ending_before")
    start, end = 0, n
    for name, ref in (("starting_after", after), ("ending_before", before)):
        if ref:
            pos = position(ref)
            if pos is None:
                raise v2_error(400, "validation_error", f"invalid {name}")
            if name == "starting_after":
                start = at(pos) + 1
            else:
                end = at(pos)
    ks = range(max(start, end - limit), end) if before and not after else range(start, min(end, start + limit))
    page = [items[at(k)] for k in ks]
    more = ks.stop < end
    earlier = bool(page) and ks.start > 0
    first, last = (ident(page[0]), ident(page[-1])) if page else (None, None)
    return {
        "pagination": {
            "ending_before": before, "starting_after": after,
            "previous_ending_before": first if earlier else None,
            "next_starting_after": last if more else None, "limit": limit, "order": order,
            "previous_uri": f"{base_uri}?ending_before={first}&limit={limit}&order={order}" if earlier else None,
            "next_uri": f"{base_uri}?limit={limit}&order={order}&starting_after={last}" if more else None,
        },
        "data": [render(x) for x in page],
    }
