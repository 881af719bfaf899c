"""TWR and XIRR, worked by hand, and the invariants they must keep (hypothesis)."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import assume, given, settings, strategies as st

from backend.portfolio.returns import DayValue, npv, twr, twr_path, xirr, xirr_cashflows

D = Decimal
T0 = date(2023, 6, 1)


def test_a_deposit_in_the_middle_by_hand():
    # Day 0: 1,000 deposited (a flow at the end of the day) and invested: value 1,000.
    # Day 1: +10%                      -> 1,100;  r = (1100 - 0) / 1000 - 1    = 0.10
    # Day 2: +10%, then 1,100 more in  -> 2,310;  r = (2310 - 1100) / 1100 - 1 = 0.10
    # Day 3: -10%                      -> 2,079;  r = 2079 / 2310 - 1          = -0.10
    # TWR = 1.1 x 1.1 x 0.9 - 1 = 0.089, whatever the deposit's size.
    days = [DayValue(T0, D(1000), D(1000)), DayValue(T0 + timedelta(1), D(1100)),
            DayValue(T0 + timedelta(2), D(2310), D(1100)), DayValue(T0 + timedelta(3), D(2079))]
    assert twr_path(days) == [D(0), D("0.10"), D("0.21"), D("0.089")]


def test_xirr_of_a_deposit_a_year_in_by_hand():
    # -1,000 on day 0, -1,100 a year (365 days) later, +2,420 a year after that. At r = 10%:
    # -1000 - 1100 / 1.1 + 2420 / 1.21 = -1000 - 1000 + 2000 = 0, and the flows change sign
    # once, so 10% is the only rate.
    flows = [(T0, D(-1000)), (T0 + timedelta(365), D(-1100)), (T0 + timedelta(730), D(2420))]
    result = xirr(flows)
    assert result.status == "ok"
    assert abs(result.rate - D("0.10")) < D("1e-20")


def test_xirr_matches_excels_documented_example():
    # Microsoft's XIRR help page: these five flows give 0.373362535; Excel stops iterating
    # within 0.000001 % (1e-8), we go on until the NPV is ~0 at 34 digits.
    flows = [(date(2008, 1, 1), D(-10000)), (date(2008, 3, 1), D(2750)), (date(2008, 10, 30), D(4250)),
             (date(2009, 2, 15), D(3250)), (date(2009, 4, 1), D(2750))]
    rate = xirr(flows).rate
    assert abs(rate - D("0.373362535")) < D("1e-8")
    assert abs(npv(rate, flows)) < D("1e-20")


def test_xirr_says_when_there_is_no_solution_or_several():
    # Everything lost: -1,000 in, 0 back. No rate zeroes a sum of flows of one sign.
    lost = xirr([(T0, D(-1000)), (T0 + timedelta(365), D(0))])
    assert (lost.rate, lost.status) == (None, "no_flows")
    same_sign = xirr([(T0, D(-1000)), (T0 + timedelta(365), D(-5))])
    assert (same_sign.rate, same_sign.status) == (None, "no_solution")
    # -100, +230, -132 a year apart: NPV = -(1+r)^-2 (100 (1+r)^2 - 230 (1+r) + 132)
    # = -(1+r)^-2 (10(1+r) - 11)(10(1+r) - 12): zero at 10% and at 20%.
    two = xirr([(date(2020, 1, 1), D(-100)), (date(2020, 12, 31), D(230)), (date(2021, 12, 31), D(-132))])
    assert two.status == "multiple_solutions"
    assert [round(r, 12) for r in two.roots] == [D("0.1"), D("0.2")]
    assert round(two.rate, 12) == D("0.1")                  # the one closest to 0


def test_days_with_nothing_invested_have_no_return():
    # An account emptied on day 1 and refilled on day 2: day 2 starts from 0, so it has no
    # return, and day 3's +5% is the only change: TWR = 1.00 x 1.05 - 1.
    days = [DayValue(T0, D(500), D(500)), DayValue(T0 + timedelta(1), D(0), D(-500)),
            DayValue(T0 + timedelta(2), D(800), D(800)), DayValue(T0 + timedelta(3), D(840))]
    assert twr(days) == D("0.05")


def test_the_investors_cash_flows_are_dated_like_a_spreadsheet():
    days = [DayValue(T0, D(1100), D(100)), DayValue(T0 + timedelta(1), D(1200))]
    # Starting value 1,000 (the end of the day before), 100 deposited on day 0, 1,200 at the end.
    assert xirr_cashflows(days, D(1000)) == [(T0 - timedelta(1), D(-1000)), (T0, D(-100)),
                                             (T0 + timedelta(1), D(1200))]


# -- invariants --------------------------------------------------------------------------------
daily_return = st.integers(min_value=-150, max_value=150).map(lambda n: D(n) / 1000)
money = st.integers(min_value=1, max_value=10**7).map(lambda n: D(n) / 100)


def discounted_size(rate, flows) -> Decimal:
    """The NPV's own scale at `rate`: the sum of the flows' discounted sizes (at -99.9% a year,
    a flow three years out weighs ~10^9 times its face value)."""
    return npv(rate, [(d, abs(f)) for d, f in flows])


def _series(returns, flows, start_value):
    """Values that grew by `returns` with `flows` added at each day's end."""
    days, value = [], start_value
    for i, (r, f) in enumerate(zip(returns, flows)):
        value = value * (1 + r) + f
        days.append(DayValue(T0 + timedelta(i), value, f))
    return days


@settings(max_examples=150, deadline=None)
@given(returns=st.lists(daily_return, min_size=1, max_size=40), start=money, data=st.data())
def test_twr_is_the_chained_growth_whatever_the_flows(returns, start, data):
    flows = [data.draw(st.integers(min_value=0, max_value=10**6).map(lambda n: D(n) / 100)) for _ in returns]
    expected = D(1)
    for r in returns:
        expected *= 1 + r
    assert abs(twr(_series(returns, flows, start), start) - (expected - 1)) < D("1e-18")


@settings(max_examples=150, deadline=None)
@given(returns=st.lists(daily_return, min_size=2, max_size=40), start=money, extra=money, data=st.data())
def test_twr_is_unchanged_by_a_flow_invested_at_the_days_value(returns, start, extra, data):
    k = data.draw(st.integers(min_value=0, max_value=len(returns) - 1))
    base = _series(returns, [D(0)] * len(returns), start)
    # `extra` arrives at the end of day k and grows with the portfolio from there on.
    changed, grown = [], None
    for i, (d, r) in enumerate(zip(base, returns)):
        grown = extra if i == k else (grown * (1 + r) if grown is not None else None)
        changed.append(DayValue(d.day, d.value + (grown or 0), extra if i == k else D(0)))
    assert abs(twr(changed, start) - twr(base, start)) < D("1e-18")


@settings(max_examples=100, deadline=None)
@given(deposits=st.lists(st.tuples(st.integers(min_value=0, max_value=1500), money), min_size=1, max_size=12),
       growth=st.integers(min_value=-900, max_value=3000), horizon=st.integers(min_value=1, max_value=400))
def test_xirr_zeroes_the_npv_and_is_unique_with_one_sign_change(deposits, growth, horizon):
    paid = [(T0 + timedelta(day), -amount) for day, amount in deposits]
    last = max(day for day, _ in deposits)
    final = sum(a for _, a in deposits) * (1 + D(growth) / 1000)
    flows = paid + [(T0 + timedelta(last + horizon), final)]
    result = xirr(flows)
    assume(result.status != "no_solution")          # beyond the searched range of rates
    assert result.status == "ok" and len(result.roots) == 1
    assert abs(npv(result.rate, flows)) <= discounted_size(result.rate, flows) * D("1e-15")


@settings(max_examples=60, deadline=None)
@given(flows=st.lists(st.tuples(st.integers(min_value=0, max_value=2000),
                                st.integers(min_value=-10**6, max_value=10**6).map(D)), min_size=2, max_size=10))
def test_every_rate_xirr_reports_zeroes_the_npv(flows):
    dated = [(T0 + timedelta(day), amount) for day, amount in flows]
    result = xirr(dated)
    for rate in result.roots:
        assert abs(npv(rate, dated)) <= discounted_size(rate, dated) * D("1e-12")
    if result.rate is not None:
        assert result.rate in result.roots
