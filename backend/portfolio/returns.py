"""Returns from a daily series of values and external flows. Pure functions, Decimal throughout.

Convention: a day's flows arrive at the **end** of the day, after that day's price change
(flows are valued at the day's close, and a deposit sits as cash until it is invested), and
a day's value is its end, so a day's return is

    r_d = (V_d - F_d) / V_{d-1} - 1

and the time-weighted return chains them: TWR = prod(1 + r_d) - 1. A day that starts with
nothing invested (V_{d-1} <= 0: the first day, an emptied account) has no return and is left
out of the chain.

XIRR (money-weighted) is the annual rate r with sum(CF_i / (1 + r)^(t_i / 365)) = 0, t_i in
days from the first flow (actual/365, as Excel's XIRR). Seen from the investor: the starting
value and every deposit are paid in (negative), withdrawals and the final value come back
(positive), each dated like a spreadsheet would: the starting value on the day before the
range, a flow on its day, the final value on the last day.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext

ZERO, ONE = Decimal(0), Decimal(1)
DAYS_PER_YEAR = 365
# XIRR is searched between -99.9999% and +1,000,000% a year: beyond that a rate says nothing
# useful, and (1 + r)^(t/365) leaves any sensible precision.
XIRR_MIN, XIRR_MAX = Decimal("-0.999999"), Decimal("10000")
# Where the NPV may have several roots, it is scanned for sign changes at points spaced in
# ln(1 + r): 0.5% apart around 0, 15% further apart at each step outwards (about 110 points):
# two rates closer together than that spacing are seen as one.
XIRR_SCAN_FIRST_STEP, XIRR_SCAN_GROWTH = Decimal("0.005"), Decimal("1.15")
XIRR_PRECISION = 34                # significant digits while solving
XIRR_TOLERANCE = Decimal("1e-24")  # on the discount factor q (a rate good to ~1e-20)
XIRR_MAX_STEPS = 300


@dataclass(frozen=True)
class DayValue:
    day: date
    value: Decimal
    flow: Decimal = ZERO


def day_return(previous: Decimal, value: Decimal, flow: Decimal) -> Decimal | None:
    if previous <= 0:
        return None
    return (value - flow) / previous - ONE


def twr_path(days: Sequence[DayValue], start_value: Decimal = ZERO) -> list[Decimal]:
    """Cumulative TWR at the end of each day, from `start_value` (the value before the first day)."""
    growth, previous, path = ONE, start_value, []
    for d in days:
        r = day_return(previous, d.value, d.flow)
        if r is not None:
            growth *= ONE + r
        path.append(growth - ONE)
        previous = d.value
    return path


def twr(days: Sequence[DayValue], start_value: Decimal = ZERO) -> Decimal:
    return twr_path(days, start_value)[-1] if days else ZERO


def xirr_cashflows(days: Sequence[DayValue], start_value: Decimal = ZERO) -> list[tuple[date, Decimal]]:
    """The investor's cash flows over `days`: -start value, -each day's flow, +end value."""
    if not days:
        return []
    flows = [(days[0].day - timedelta(days=1), -start_value)] if start_value else []
    flows += [(d.day, -d.flow) for d in days if d.flow]
    flows.append((days[-1].day, days[-1].value))
    return flows


@dataclass(frozen=True)
class Xirr:
    rate: Decimal | None
    status: str                     # ok, multiple_solutions, no_solution, no_flows
    note: str = ""
    roots: tuple[Decimal, ...] = ()


def xirr(cashflows: Iterable[tuple[date, Decimal]]) -> Xirr:
    """Solve for the rate. With one sign change in the time-ordered flows there is exactly one
    rate (Descartes' rule of signs on the discount factor q = (1+r)^(-1/365)); with more, the
    range is scanned for every sign change and each bracket is solved."""
    flows = _by_day(cashflows)
    if len(flows) < 2:
        return Xirr(None, "no_flows", "XIRR needs money in and money out on at least two days.")
    signs = [f > 0 for _, f in flows]
    if all(signs) or not any(signs):
        return Xirr(None, "no_solution", "All cash flows have the same sign: no rate makes their value zero.")
    with localcontext() as ctx:
        ctx.prec = XIRR_PRECISION
        t0 = flows[0][0]
        terms = [((d - t0).days, f) for d, f in flows]
        changes = sum(1 for a, b in zip(signs, signs[1:]) if a != b)
        brackets = [(_q_of(XIRR_MAX), _q_of(XIRR_MIN))] if changes == 1 else _brackets(terms)
        roots = sorted(_rate_of(q) for q in (_solve(terms, a, b) for a, b in brackets) if q is not None)
    if not roots:
        return Xirr(None, "no_solution", f"No rate between {XIRR_MIN:%} and {XIRR_MAX:%} a year makes the "
                                         "cash flows' value zero.")
    best = min(roots, key=abs)
    if len(roots) > 1:
        return Xirr(best, "multiple_solutions", "Several rates make the cash flows' value zero; this is the one "
                                                "closest to 0.", tuple(roots))
    return Xirr(best, "ok", roots=(best,))


def npv(rate: Decimal, cashflows: Iterable[tuple[date, Decimal]]) -> Decimal:
    """sum(CF_i / (1 + rate)^(t_i / 365)), t_i in days from the first flow."""
    flows = _by_day(cashflows)
    if not flows:
        return ZERO
    with localcontext() as ctx:
        ctx.prec = XIRR_PRECISION
        t0 = flows[0][0]
        return _npv_q([((d - t0).days, f) for d, f in flows], _q_of(rate))


def _by_day(cashflows: Iterable[tuple[date, Decimal]]) -> list[tuple[date, Decimal]]:
    summed: dict[date, Decimal] = {}
    for d, f in cashflows:
        summed[d] = summed.get(d, ZERO) + f
    return sorted((d, f) for d, f in summed.items() if f)


def _q_of(rate: Decimal) -> Decimal:
    """The daily discount factor: (1 + rate)^(-1/365)."""
    return ((ONE + rate).ln() / -DAYS_PER_YEAR).exp()


def _rate_of(q: Decimal) -> Decimal:
    return q ** -DAYS_PER_YEAR - ONE


def _npv_q(terms, q: Decimal) -> Decimal:
    """sum(CF_i * q^t_i) for terms sorted by t: each power from the previous one."""
    total, power, t_prev = ZERO, ONE, 0
    for t, f in terms:
        power *= q ** (t - t_prev)
        t_prev = t
        total += f * power
    return total


def _scan_points() -> list[Decimal]:
    """Discount factors q to scan, in increasing order (decreasing rate)."""
    low, high = (ONE + XIRR_MIN).ln(), (ONE + XIRR_MAX).ln()
    xs, x, step = [ZERO], ZERO, XIRR_SCAN_FIRST_STEP
    while x < max(-low, high):
        x += step
        step *= XIRR_SCAN_GROWTH
        xs += [v for v in (x, -x) if low <= v <= high]
    xs += [low, high]
    return [(v / -DAYS_PER_YEAR).exp() for v in sorted(set(xs), reverse=True)]


def _brackets(terms) -> list[tuple[Decimal, Decimal]]:
    """Neighbouring scan points between which the NPV changes sign."""
    points = _scan_points()
    values = [_npv_q(terms, q) for q in points]
    found = []
    for i in range(len(points) - 1):
        if values[i] == 0:
            found.append((points[i], points[i]))
        elif values[i] * values[i + 1] < 0:
            found.append((points[i], points[i + 1]))
    if values[-1] == 0:
        found.append((points[-1], points[-1]))
    return found


def _solve(terms, a: Decimal, b: Decimal) -> Decimal | None:
    """A root of the NPV in q within [a, b]. Illinois steps (regula falsi that halves the weight
    of an end kept twice in a row, superlinear where the NPV is smooth), with a bisection
    whenever two steps have not halved the bracket: the discounted flows span thirty orders
    of magnitude at the ends of the range, where regula falsi alone crawls. The bracket always
    holds the root, and it shrinks at least as fast as bisection's, every other step."""
    fa, fb = _npv_q(terms, a), _npv_q(terms, b)
    if fa == 0 or a == b:
        return a
    if fb == 0:
        return b
    if fa * fb > 0:
        return None
    side, widths = 0, [abs(b - a)] * 2
    for _ in range(XIRR_MAX_STEPS):
        if abs(b - a) < XIRR_TOLERANCE:
            break
        c = (fa * b - fb * a) / (fa - fb)
        if abs(b - a) > widths[-2] / 2 or not min(a, b) < c < max(a, b):
            c = (a + b) / 2
        widths.append(abs(b - a))
        fc = _npv_q(terms, c)
        if fc == 0:
            return c
        if (fc > 0) == (fb > 0):
            b, fb = c, fc
            if side == -1:
                fa /= 2
            side = -1
        else:
            a, fa = c, fc
            if side == 1:
                fb /= 2
            side = 1
    return (a + b) / 2
