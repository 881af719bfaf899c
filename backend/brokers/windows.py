"""Re-pull windows, merged: what reconcile asks an adapter for again (RepullWindow), padded
by what the broker's own times need and joined where they overlap, so one stretch of
history is never asked for twice in one re-pull."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .dtos import RepullWindow

Span = tuple[datetime | None, datetime | None, frozenset[str]]


def merged(windows: Iterable[RepullWindow], *, before: timedelta = timedelta(0),
           after: timedelta = timedelta(0)) -> list[Span]:
    """(start, end, assets) spans, oldest first; None stays unbounded; overlapping spans join
    (their assets too)."""
    spans = sorted(((w.start - before if w.start else None, w.end + after if w.end else None, frozenset(w.assets))
                    for w in windows), key=lambda s: (s[0] is not None, s[0] or datetime.min))
    out: list[Span] = []
    for start, end, assets in spans:
        if out and _overlaps(out[-1], start):
            last_start, last_end, last_assets = out[-1]
            joined_end = None if last_end is None or end is None else max(last_end, end)
            out[-1] = (last_start, joined_end, last_assets | assets)
        else:
            out.append((start, end, assets))
    return out


def _overlaps(span: Span, start: datetime | None) -> bool:
    end = span[1]
    return end is None or start is None or start <= end
