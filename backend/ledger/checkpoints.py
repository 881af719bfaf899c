"""Per-asset checkpoints: each asset's engine state at the start of every calendar month
(UTC) of the history, saved by every recompute that passes the month start."""
from __future__ import annotations

from datetime import datetime, timezone

from django.db import connection as db
from django.db import transaction

from backend.core.pgcopy import copy_rows

from .models import LedgerCheckpoint


def month_starts(first: datetime | None, last: datetime | None) -> list[datetime]:
    """Month starts after `first` up to and including `last` (UTC)."""
    if first is None or last is None:
        return []
    first, last = first.astimezone(timezone.utc), last.astimezone(timezone.utc)
    year, month = first.year, first.month
    out = []
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        instant = datetime(year, month, 1, tzinfo=timezone.utc)
        if instant > last:
            return out
        out.append(instant)


def save(*, portfolio_id: int, captured: dict[datetime, dict[int, dict]], assets: set[int] | None = None,
         after: datetime | None = None) -> None:
    """Replace the checkpoints after `after` (all of them when None) of `assets` (every asset
    when None) with what a recompute captured."""
    gone = LedgerCheckpoint.objects.filter(portfolio_id=portfolio_id)
    if after is not None:
        gone = gone.filter(at__gt=after)
    if assets is not None:
        gone = gone.filter(asset_id__in=assets)
    gone.delete()
    marked = set(LedgerCheckpoint.objects.filter(portfolio_id=portfolio_id, asset_id=None, at__in=list(captured))
                 .values_list("at", flat=True))
    rows = [LedgerCheckpoint(portfolio_id=portfolio_id, asset_id=None, at=at, state={})
            for at in sorted(captured) if at not in marked]
    rows += [LedgerCheckpoint(portfolio_id=portfolio_id, asset_id=asset, at=at, state=state)
             for at, states in sorted(captured.items()) for asset, state in sorted(states.items())
             if assets is None or asset in assets]
    if db.vendor != "postgresql":
        with transaction.atomic():
            LedgerCheckpoint.objects.bulk_create(rows, batch_size=500)
        return
    # COPY: a whole history's checkpoints are ~1,000 JSON documents of open lots, and
    # bulk_create's adaptation of them cost a second of the ~8 s full recompute.
    with db.cursor() as cursor:
        copy_rows(cursor, LedgerCheckpoint._meta.db_table, ("portfolio_id", "asset_id", "at", "state"),
                  ((row.portfolio_id, row.asset_id, row.at, row.state) for row in rows))


def before(*, portfolio_id: int, moment: datetime) -> datetime | None:
    """The latest checkpoint instant at or before `moment`."""
    return (LedgerCheckpoint.objects.filter(portfolio_id=portfolio_id, asset_id=None, at__lte=moment)
            .order_by("-at").values_list("at", flat=True).first())


def states(*, portfolio_id: int, at: datetime, assets: set[int]) -> list[dict]:
    return [state for _, state in sorted(LedgerCheckpoint.objects.filter(
        portfolio_id=portfolio_id, at=at, asset_id__in=assets).values_list("asset_id", "state"))]
