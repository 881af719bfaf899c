"""Re-pull windows, merged: what reconcile asks an adapter for again (RepullWindow), padded
by what the broker's own times need and joined where they overlap, so one stretch of
history is never asked for twice in one re-pull."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .dtos import RepullWindow


@dataclass(frozen=True)
class Span:
    start: datetime | None
    end: datetime | None
    assets: frozenset[str]
    kinds: frozenset[str]           # empty: every kind
    symbols: frozenset[str]         # empty: not narrowed to the broker's pairs

    def wants(self, *kinds: str) -> bool:
        return not self.kinds or any(k in self.kinds for k in kinds)


def merged(windows: Iterable[RepullWindow], *, before: timedelta = timedelta(0),
           after: timedelta = timedelta(0)) -> list[Span]:
    """Spans oldest first; None stays unbounded; overlapping spans join (their assets, kinds
    and symbols too: an empty set, "any", wins)."""
    spans = sorted((Span(w.start - before if w.start else None, w.end + after if w.end else None,
                         frozenset(w.assets), frozenset(w.kinds), frozenset(w.symbols)) for w in windows),
                   key=lambda s: (s.start is not None, s.start or datetime.min))
    out: list[Span] = []
    for span in spans:
        last = out[-1] if out else None
        if last is not None and (last.end is None or span.start is None or span.start <= last.end):
            end = None if last.end is None or span.end is None else max(last.end, span.end)
            kinds = frozenset() if not last.kinds or not span.kinds else last.kinds | span.kinds
            symbols = frozenset() if not last.symbols or not span.symbols else last.symbols | span.symbols
            out[-1] = Span(last.start, end, last.assets | span.assets, kinds, symbols)
        else:
            out.append(span)
    return out
