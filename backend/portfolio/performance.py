"""Reads on the stored value history: a range of it per day, week or month with its
cumulative time-weighted return, and the returns over a range (TWR, XIRR, gain, flows).

A range [from, to] starts from the value at the end of the day before `from` (0 before the
history begins, so "since inception" counts the first deposit as a flow) and ends with the
value at the end of `to`; the flows of every day in it count (at the end of their day,
backend/portfolio/returns.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from .models import Asset, DailyValue, HistoryState, Portfolio
from .returns import DayValue, Xirr, twr_path, xirr, xirr_cashflows

ZERO = Decimal(0)
INTERVALS = ("day", "week", "month")


@dataclass
class HistoryPoint:
    day: date                        # the last day of its interval in the range
    value: Decimal
    cash: Decimal
    flows: Decimal
    twr: Decimal                     # cumulative from the start of the range
    complete: bool
    unpriced: list[str] = field(default_factory=list)


@dataclass
class Returns:
    currency: str
    connection_id: int | None
    start: date | None
    end: date | None
    start_value: Decimal
    end_value: Decimal
    inflows: Decimal
    outflows: Decimal
    twr: Decimal | None
    xirr: Xirr
    days: int
    unpriced_days: int

    @property
    def flows(self) -> Decimal:
        return self.inflows + self.outflows

    @property
    def gain(self) -> Decimal:
        """What the range earned: the change of value that flows do not explain."""
        return self.end_value - self.start_value - self.flows


@dataclass
class HistoryInfo:
    through: date | None             # the last day stored
    rebuilding: bool                 # a recompute is pending or running


def history_info(*, portfolio: Portfolio) -> HistoryInfo:
    state = HistoryState.objects.filter(portfolio=portfolio).first()
    if state is None:
        return HistoryInfo(None, False)
    return HistoryInfo(state.through, state.dirty_since is not None)


def _rows(portfolio: Portfolio, connection_id: int | None, start: date | None, end: date | None):
    """(value at the end of the day before the range, the rows of the range)."""
    rows = DailyValue.objects.filter(portfolio=portfolio, connection_id=connection_id).order_by("day")
    if end is not None:
        rows = rows.filter(day__lte=end)
    previous = ZERO
    if start is not None:
        before = rows.filter(day=start - timedelta(days=1)).values_list("value", flat=True).first()
        previous = before if before is not None else ZERO
        rows = rows.filter(day__gte=start)
    return previous, list(rows.only("day", "value", "cash", "flow", "unpriced"))


def history_points(*, portfolio: Portfolio, connection_id: int | None = None, start: date | None = None,
                   end: date | None = None, interval: str = "day") -> list[HistoryPoint]:
    previous, rows = _rows(portfolio, connection_id, start, end)
    path = twr_path([DayValue(r.day, r.value, r.flow) for r in rows], previous)
    names = _unpriced_names({u for r in rows for u in r.unpriced})
    points: list[HistoryPoint] = []
    last_key = None
    for row, cumulative in zip(rows, path):
        key = _bucket(row.day, interval)
        unpriced = [names[u] for u in row.unpriced]
        if points and key == last_key:
            point = points[-1]
            point.day, point.value, point.cash, point.twr = row.day, row.value, row.cash, cumulative
            point.flows += row.flow
            point.complete = point.complete and not unpriced
            point.unpriced = sorted(set(point.unpriced) | set(unpriced))
        else:
            points.append(HistoryPoint(row.day, row.value, row.cash, row.flow, cumulative, not unpriced, unpriced))
        last_key = key
    return points


def returns_get(*, portfolio: Portfolio, connection_id: int | None = None, start: date | None = None,
                end: date | None = None) -> Returns:
    previous, rows = _rows(portfolio, connection_id, start, end)
    days = [DayValue(r.day, r.value, r.flow) for r in rows]
    if not days:
        return Returns(portfolio.base_currency, connection_id, start, end, previous, previous, ZERO, ZERO, None,
                       xirr([]), 0, 0)
    return Returns(
        currency=portfolio.base_currency, connection_id=connection_id, start=rows[0].day, end=rows[-1].day, start_value=previous, end_value=rows[-1].value,
        inflows=sum((r.flow for r in rows if r.flow > 0), ZERO), outflows=sum((r.flow for r in rows if r.flow < 0), ZERO),
        twr=twr_path(days, previous)[-1], xirr=xirr(xirr_cashflows(days, previous)), days=len(rows),
        unpriced_days=sum(1 for r in rows if r.unpriced))


def _bucket(day: date, interval: str):
    if interval == "week":
        return day.isocalendar()[:2]
    if interval == "month":
        return day.year, day.month
    return day


def _unpriced_names(values: set) -> dict:
    """Asset ids -> symbols; currency codes (cash without a rate) stay as they are."""
    ids = [v for v in values if isinstance(v, int)]
    symbols = dict(Asset.objects.filter(id__in=ids).values_list("id", "symbol"))
    return {v: symbols.get(v, str(v)) if isinstance(v, int) else f"cash:{v}" for v in values}
