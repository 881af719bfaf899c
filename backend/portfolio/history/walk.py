"""The day-by-day walk: apply each day's transactions, value what is held at that day's
close, add the day's external flows. Reads nothing from the database; everything it needs
is handed in, so a rebuild and an extension run the same code."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from backend.market.valuation import CloseTable, Pricer

from .activity import ZERO, Event, Holdings
from .flows import FlowScopes

ONE = Decimal(1)


@dataclass
class DayRow:
    connection_id: int | None            # None: the whole portfolio
    day: date
    value: Decimal
    cash: Decimal
    flow: Decimal
    unpriced: set = field(default_factory=set)   # asset ids held without a close; currency codes without a rate


@dataclass
class Walk:
    brokers: Mapping[int, str]           # connection id -> broker (whose source prices its holdings first)
    first_days: Mapping[int, date]       # connection id -> day of its first transaction
    scopes: FlowScopes
    pricer: Pricer
    closes: CloseTable
    multipliers: Mapping[int, Decimal]
    _units: dict = field(default_factory=dict, init=False, repr=False)
    _days: list = field(default_factory=list, init=False, repr=False)
    _index: int = field(default=0, init=False, repr=False)

    def run(self, *, start: date, end: date, initial: Mapping[int, Holdings],
            events: Sequence[Event]) -> tuple[list[DayRow], dict[int, Holdings]]:
        """Rows for every day from `start` to `end`, and the holdings at the start of `end`
        (the checkpoint an extension resumes from)."""
        state = {c: (initial.get(c) or Holdings()).copy() for c in self.brokers}
        rows: list[DayRow] = []
        checkpoint: dict[int, Holdings] = {}
        todays = _by_day(events)
        portfolio_first = min(self.first_days.values(), default=start)
        self._days, self._units = list(_dates(start, end)), {}
        for self._index, day in enumerate(self._days):
            if day == end:
                checkpoint = {c: h.copy() for c, h in state.items()}
            flows, portfolio_flow, missing = self._apply(state, todays.get(day, ()), day)
            day_rows = [self._value(c, state[c], day, flows[c], missing[c]) for c in state
                        if c in self.first_days and day >= self.first_days[c]]
            rows += day_rows
            if day >= portfolio_first:
                rows.append(DayRow(None, day, sum((r.value for r in day_rows), ZERO),
                                   sum((r.cash for r in day_rows), ZERO), portfolio_flow,
                                   set().union(*(r.unpriced for r in day_rows))))
        return rows, checkpoint

    def _apply(self, state, events: Sequence[Event], day: date):
        flows: dict[int, Decimal] = defaultdict(Decimal)
        missing: dict[int, set] = defaultdict(set)
        portfolio_flow = ZERO
        for e in events:
            state[e.connection_id].apply(e)
            if not e.is_flow or not self.scopes.of_connection(e.id):
                continue
            value, unpriced = self._flow_value(e, day)
            flows[e.connection_id] += value
            missing[e.connection_id] |= unpriced
            if self.scopes.of_portfolio(e.id):
                portfolio_flow += value
        return flows, portfolio_flow, missing

    def _flow_value(self, e: Event, day: date) -> tuple[Decimal, set]:
        value, unpriced = ZERO, set()
        if e.holding is not None:
            unit = self._unit(e.asset_id, self.brokers[e.connection_id], day)
            if unit is None:
                unpriced.add(e.asset_id)
            else:
                value += e.holding * unit
        for currency, change in e.cash:
            rate = self.pricer.rate(currency, day)
            if rate is None:
                unpriced.add(currency)
            else:
                value += change * rate
        return value, unpriced

    def _value(self, connection_id: int, held: Holdings, day: date, flow: Decimal, unpriced: set) -> DayRow:
        broker = self.brokers[connection_id]
        value = ZERO
        for asset_id, quantity in held.assets.items():
            unit = self._unit(asset_id, broker, day)
            if unit is None:
                unpriced.add(asset_id)
            else:
                value += quantity * unit
        cash = ZERO
        for code, amount in held.cash.items():
            rate = self.pricer.rate(code, day)
            if rate is None:
                unpriced.add(code)
            else:
                cash += amount * rate
        return DayRow(connection_id, day, value + cash, cash, flow, unpriced)

    def _unit(self, asset_id: int, broker: str, day: date) -> Decimal | None:
        """Base-currency value of one unit at the day's close: each (asset, broker) is priced
        for the whole range the first time it is asked for."""
        key = (asset_id, broker)
        series = self._units.get(key)
        if series is None:
            multiplier = self.multipliers.get(asset_id, ONE)
            series = self._units[key] = [None if unit is None else unit * multiplier for unit in
                                         self.pricer.close_series(self.closes, asset_id, broker, self._days)]
        return series[self._index]


def _by_day(events: Sequence[Event]) -> dict[date, list[Event]]:
    grouped: dict[date, list[Event]] = defaultdict(list)
    for e in events:
        grouped[e.day].append(e)
    return grouped


def _dates(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)
