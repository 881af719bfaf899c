"""Value history rebuilt from stored transactions and closes, worked by hand."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from backend.portfolio.history.rebuild import history_rebuild
from backend.portfolio.models import DailyValue, HistoryState
from backend.portfolio.performance import history_points, returns_get

from tests.api.factories import ConnectionFactory, PortfolioFactory

from .helpers import asset, close, closes, tx

pytestmark = pytest.mark.django_db
D = Decimal
D0 = date(2023, 6, 1)
D1 = D0 + timedelta(365)          # 2024-05-31
D2 = D1 + timedelta(365)          # 2025-05-31


def rows(portfolio, connection=None):
    return {r.day: r for r in DailyValue.objects.filter(portfolio=portfolio, connection=connection)}


@pytest.fixture
def yearly(portfolio, connect):
    """1,000 in and 10 AAPL bought at 100 on D0; a year later AAPL is 110 and 1,100 more buys 10
    more; a year after that AAPL is 121."""
    alpaca = connect("alpaca", portfolio)
    aapl = asset("AAPL")
    closes(aapl, "USD", D0, D1 - timedelta(1), 100)
    closes(aapl, "USD", D1, D2 - timedelta(1), 110)
    close(aapl, "USD", D2, 121)
    for day, cash, price in ((D0, 1000, 100), (D1, 1100, 110)):
        tx(alpaca, day, "deposit", amount=cash, hour=9)
        tx(alpaca, day, "trade", asset=aapl, quantity=10, amount=-cash, price=D(price), hour=15)
    return alpaca


def test_a_deposit_in_the_middle_gives_the_hand_worked_twr_and_xirr(portfolio, yearly):
    result = history_rebuild(portfolio_id=portfolio.pk, since=None, through=D2)
    assert result.rows == 2 * 731                     # the portfolio and its one connection, D0..D2
    days = rows(portfolio)
    # D0: 10 x 100 + cash 0 = 1,000, deposit 1,000. D1: 20 x 110 = 2,200, deposit 1,100. D2: 20 x 121.
    assert (days[D0].value, days[D0].flow) == (D(1000), D(1000))
    assert (days[D1 - timedelta(1)].value, days[D1].value, days[D1].flow) == (D(1000), D(2200), D(1100))
    assert days[D2].value == D(2420) and days[D2].cash == 0
    assert DailyValue.objects.filter(portfolio=portfolio, connection__isnull=True).aggregate(f=Sum("flow"))["f"] == 2100

    returns = returns_get(portfolio=portfolio)
    # TWR: D0 has nothing before it; D1: (2200 - 1100) / 1000 - 1 = 0.10; D2: 2420 / 2200 - 1 = 0.10;
    # every other day 0: 1.1 x 1.1 - 1 = 0.21. XIRR: -1000 (D0), -1100 (D1), +2420 (D2), 365 days
    # apart: at 10 %, -1000 - 1100/1.1 + 2420/1.21 = 0. Gain: 2420 - 0 - 2100 = 320.
    assert returns.twr == D("0.21")
    assert returns.xirr.status == "ok" and abs(returns.xirr.rate - D("0.1")) < D("1e-20")
    assert (returns.start_value, returns.end_value, returns.flows, returns.gain) == (0, 2420, 2100, 320)
    # From D1 only: starts from 1,000 (end of the day before), 1,100 flows in, ends at 2,420.
    later = returns_get(portfolio=portfolio, start=D1)
    assert (later.start_value, later.flows, later.gain, later.twr) == (1000, 1100, 320, D("0.21"))
    # The connection alone has the same history (it is the portfolio's only one).
    assert returns_get(portfolio=portfolio, connection_id=yearly.pk).twr == D("0.21")


def test_history_per_month_keeps_the_last_value_and_sums_the_flows(portfolio, yearly):
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D2)
    months = history_points(portfolio=portfolio, start=D0, end=D1 + timedelta(1), interval="month")
    # June 2023 .. June 2024: 13 months; the last stops at the end of the range (1 June 2024).
    assert [m.day for m in months][:2] == [date(2023, 6, 30), date(2023, 7, 31)]
    assert months[-1].day == D1 + timedelta(1) and len(months) == 13
    may = months[-2]                                  # holds D1: 1,100 deposited, AAPL 100 -> 110
    assert (may.day, may.value, may.flows, may.twr) == (D1, D(2200), D(1100), D("0.1"))
    assert months[0].flows == 1000 and all(m.complete for m in months)


def test_an_eur_portfolio_holding_us_stock_and_btc(user, connect):
    from tests.api.factories import PortfolioFactory

    euro = PortfolioFactory(owner=user, name="Euro", base_currency="EUR")
    alpaca, kraken = connect("alpaca", euro), connect("kraken", euro)
    aapl, btc, eur = asset("AAPL"), asset("BTC", "crypto"), asset("EUR", "fiat")
    a, b = date(2026, 3, 2), date(2026, 3, 3)
    for day, stock, btc_eur, btc_usd, eur_usd in ((a, 200, 60000, 65000, "1.25"), (b, 210, 62000, 70000, "1.20")):
        close(aapl, "USD", day, stock, "alpaca")
        close(btc, "EUR", day, btc_eur, "kraken")
        close(btc, "USD", day, btc_usd, "binance")      # another source, in another quote: not used at Kraken
        close(eur, "USD", day, eur_usd, "kraken")
    tx(alpaca, a, "deposit", amount=1000)
    tx(alpaca, a, "trade", asset=aapl, quantity=5, amount=-1000)
    tx(kraken, a, "transfer", asset=btc, quantity="0.5", currency="EUR")

    history_rebuild(portfolio_id=euro.pk, since=None, through=b)
    # Day a, in EUR: Alpaca 5 x 200 USD / 1.25 = 800 (deposit 1,000 USD / 1.25 = 800);
    # Kraken 0.5 x 60,000 EUR (Kraken's own close) = 30,000, transferred in: a flow of 30,000.
    # Day b: Alpaca 5 x 210 / 1.20 = 875; Kraken 0.5 x 62,000 = 31,000; together 31,875.
    assert [(r.value, r.flow) for r in rows(euro, alpaca).values()] == [(800, 800), (875, 0)]
    assert [(r.value, r.flow) for r in rows(euro, kraken).values()] == [(30000, 30000), (31000, 0)]
    assert [(r.value, r.flow, r.currency) for r in rows(euro).values()] == [(30800, 30800, "EUR"), (31875, 0, "EUR")]
    # TWR day b: 31,875 / 30,800 - 1; the US stock alone: 875 / 800 - 1 = 0.09375 (+5% in USD,
    # and the dollar went from 1/1.25 to 1/1.20 EUR).
    assert returns_get(portfolio=euro).twr == D(31875) / D(30800) - 1
    assert returns_get(portfolio=euro, connection_id=alpaca.pk).twr == D("0.09375")


def test_a_holding_with_no_price_is_left_out_and_the_day_marked(portfolio, connect):
    kraken = connect("kraken", portfolio)
    btc, doge = asset("BTC", "crypto"), asset("DOGE", "crypto")
    a, b = date(2026, 3, 2), date(2026, 3, 3)
    closes(btc, "USD", a, b, 50000, "kraken")
    tx(kraken, a, "transfer", asset=btc, quantity=1)
    tx(kraken, b, "transfer", asset=doge, quantity=1000)          # no source prices DOGE
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=b)

    day_a, day_b = rows(portfolio).values()
    assert (day_a.value, day_a.unpriced) == (50000, [])
    # DOGE is held but valued at nothing: left out of the value and of the flow, and named.
    assert (day_b.value, day_b.flow, day_b.unpriced) == (50000, 0, [doge.pk])
    [_, point_b] = history_points(portfolio=portfolio)
    assert (point_b.complete, point_b.unpriced) == (False, ["DOGE"])
    assert returns_get(portfolio=portfolio).unpriced_days == 1


def test_unpriced_are_stored_ids_by_number_then_codes_shorter_first_whatever_the_days_repeat():
    from backend.portfolio.history.rebuild import _unpriced_lists
    from backend.portfolio.history.walk import DayRow

    sets = [{12, 3, "USDT", "EUR"}, {12, 3, "USDT", "EUR"}, set(), {100, 9}, {100, 9}, {"EUR"}]
    days = [DayRow(None, D0 + timedelta(i), D(0), D(0), D(0), s) for i, s in enumerate(sets)]
    # ids as numbers (9 before 100, which a string sort would reverse), then codes: EUR
    # (3 letters) before USDT (4); a day whose set repeats yesterday's gets the same order.
    assert list(_unpriced_lists(days)) == [[3, 12, "EUR", "USDT"], [3, 12, "EUR", "USDT"], [], [9, 100], [9, 100],
                                           ["EUR"]]


def test_an_asset_moving_between_two_connections_of_the_portfolio_is_no_flow_of_it(portfolio, connect):
    coinbase, kraken = connect("coinbase", portfolio), connect("kraken", portfolio)
    btc = asset("BTC", "crypto")
    a, b = date(2026, 3, 2), date(2026, 3, 3)
    closes(btc, "USD", a, b, 50000, "coinbase")                     # Kraken has no price: Coinbase's is used
    tx(coinbase, a, "transfer", asset=btc, quantity=1, hour=9)      # from outside: a flow of both
    tx(coinbase, b, "transfer", asset=btc, quantity=-1, hour=10)    # sent to Kraken...
    tx(kraken, b, "transfer", asset=btc, quantity="0.999", hour=11)  # ...which receives it less 0.001
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=b)

    # Each connection sees a flow: Coinbase -1 x 50,000, Kraken +0.999 x 50,000 = 49,950.
    assert rows(portfolio, coinbase)[b].flow == -50000 and rows(portfolio, kraken)[b].flow == 49950
    # The portfolio does not: the BTC stayed in it, less the 0.001 BTC (50) network fee, a loss.
    assert [(r.value, r.flow) for r in rows(portfolio).values()] == [(50000, 50000), (49950, 0)]
    assert returns_get(portfolio=portfolio).twr == D("-0.001")


def test_a_move_inside_one_connection_is_no_flow_at_all(portfolio, connect):
    kraken = connect("kraken", portfolio)
    eth = asset("ETH", "crypto")
    a = date(2026, 3, 2)
    close(eth, "USD", a, 2000, "kraken")
    tx(kraken, a, "trade", asset=eth, quantity=2, amount=-4000)
    tx(kraken, a, "deposit", amount=4000, hour=8)
    tx(kraken, a, "transfer", asset=eth, quantity=-2, hour=13)      # spot -> staking and its pair,
    tx(kraken, a, "transfer", asset=eth, quantity=2, hour=13)       # within the hour: one wallet to another
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=a)
    assert [(r.value, r.flow) for r in rows(portfolio, kraken).values()] == [(4000, 4000)]


def test_a_rebuild_from_a_changed_day_leaves_the_days_before_it_alone(portfolio, yearly):
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D2)
    before = {r.day: r.pk for r in DailyValue.objects.filter(portfolio=portfolio)}
    # A dividend of 50 on D1 + 10 shows up late: everything from that day changes, nothing before.
    changed = D1 + timedelta(10)
    tx(yearly, changed, "dividend", amount=50)
    result = history_rebuild(portfolio_id=portfolio.pk, since=changed, through=D2)

    assert (result.start, result.resumed) == (changed, False)
    after = DailyValue.objects.filter(portfolio=portfolio)
    kept = {r.day: r.pk for r in after.filter(day__lt=changed)}
    assert kept == {d: pk for d, pk in before.items() if d < changed}     # the very same rows
    assert not set(after.filter(day__gte=changed).values_list("pk", flat=True)) & set(before.values())
    # The holdings before `changed` were summed by the database: 20 AAPL and no cash; after it, 50 cash.
    assert rows(portfolio)[changed - timedelta(1)].value == 2200
    assert (rows(portfolio)[changed].value, rows(portfolio)[D2].value) == (2250, 2470)


def test_extending_by_a_day_resumes_from_the_checkpoint_and_equals_a_full_rebuild(portfolio, yearly):
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D2 - timedelta(1))
    state = HistoryState.objects.get(portfolio=portfolio)
    assert state.through == D2 - timedelta(1)
    # The checkpoint: the holdings at the start of the last stored day (20 AAPL, no cash).
    assert state.checkpoint == {str(yearly.pk): {"assets": {str(asset("AAPL").pk): "20.000000000000000000"},
                                                 "cash": {}}}
    extended = history_rebuild(portfolio_id=portfolio.pk, since=state.through, through=D2)
    assert extended.resumed and (extended.start, extended.rows) == (D2 - timedelta(1), 4)
    resumed = {(r.connection_id, r.day): (r.value, r.cash, r.flow) for r in DailyValue.objects.all()}
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D2)
    assert resumed == {(r.connection_id, r.day): (r.value, r.cash, r.flow) for r in DailyValue.objects.all()}


def test_a_base_currency_change_rebuilds_everything_in_the_new_currency(portfolio, yearly):
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D2)
    eur = asset("EUR", "fiat")
    closes(eur, "USD", D0, D2, "1.1", "kraken")
    portfolio.base_currency = "EUR"
    portfolio.save()
    result = history_rebuild(portfolio_id=portfolio.pk, since=D2, through=D2)   # a checkpoint would not do
    assert not result.resumed and result.start == D0
    assert rows(portfolio)[D2].value == D(2420) / D("1.1") and rows(portfolio)[D2].currency == "EUR"


def test_a_currency_conversion_counts_both_its_legs_as_cash(portfolio, connect):
    """IBKR's EUR.USD trade: the euros bought are the quantity of the EUR asset, the dollars
    paid the amount. Both are cash, whether the walk applies them or the database sums them."""
    ibkr = connect("ibkr", portfolio)
    eur = asset("EUR", "fiat")
    closes(eur, "USD", D0, D0 + timedelta(2), "1.1")
    tx(ibkr, D0, "deposit", amount=2000, hour=9)
    tx(ibkr, D0, "trade", asset=eur, quantity=1000, amount="-1100.5", hour=10)   # 1,000 EUR for 1,100.50 USD
    tx(ibkr, D0 + timedelta(1), "deposit", asset=eur, quantity=50, currency="EUR", hour=9)   # 50 EUR in
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D0 + timedelta(2))
    days = rows(portfolio)
    # D0: 2,000 - 1,100.50 = 899.50 USD, plus 1,000 EUR x 1.1 = 1,100: 1,999.50 (the 0.50 was the spread).
    assert days[D0].value == days[D0].cash == D("1999.5")
    # D0 + 1: 50 EUR more, 55 USD at 1.1: 2,054.50, and the 55 is a flow in.
    assert (days[D0 + timedelta(1)].value, days[D0 + timedelta(1)].flow) == (D("2054.5"), D(55))
    full = {d: r.value for d, r in days.items()}
    # Rebuilt from the last day: the holdings before it come from the database's sums.
    history_rebuild(portfolio_id=portfolio.pk, since=D0 + timedelta(2), through=D0 + timedelta(2))
    HistoryState.objects.filter(portfolio=portfolio).update(through=None, checkpoint={})
    history_rebuild(portfolio_id=portfolio.pk, since=D0 + timedelta(2), through=D0 + timedelta(2))
    assert {d: r.value for d, r in rows(portfolio).items()} == full


moves = st.lists(st.tuples(st.integers(0, 9),                                   # day
                           st.sampled_from(["usd_in", "eur_in", "usd_to_eur", "eur_to_usd", "gbp_to_eur"]),
                           st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)),
                 min_size=1, max_size=12)
FX = {"USD": D(1), "EUR": D("1.1"), "GBP": D("1.25")}       # each currency's close in USD, every day


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=moves, since=st.integers(0, 9))
def test_cash_in_every_currency_is_the_running_sum_of_both_legs_from_any_day(user, rows, since):
    """Whatever the conversions, each day's cash is the running sum per currency x its rate,
    and a rebuild from any day (holdings summed by the database) equals the full walk."""
    with transaction.atomic():                   # each example on its own rows
        _conversions_match(user, rows, since)
        transaction.set_rollback(True)


def _conversions_match(user, rows, since) -> None:
    portfolio = PortfolioFactory(owner=user)
    ibkr = ConnectionFactory(owner=user, portfolio=portfolio, broker="ibkr", environment="live")
    for code in ("EUR", "GBP"):
        closes(asset(code, "fiat"), "USD", D0 - timedelta(7), D0 + timedelta(9), FX[code])
    held = {c: D(0) for c in FX}
    expected = {}
    for day in range(10):
        for n, (when, kind, amount) in enumerate(rows):
            if when != day:
                continue
            bought, paid = {"usd_in": ("USD", None), "eur_in": ("EUR", None), "usd_to_eur": ("EUR", "USD"),
                            "eur_to_usd": ("USD", "EUR"), "gbp_to_eur": ("EUR", "GBP")}[kind]
            # what the other currency cost, in cents as a broker books it (so every sum is exact)
            cost = (amount * FX[bought] / FX[paid]).quantize(D("0.01")) if paid else None
            if bought == "USD":          # dollars arrive as an amount (a deposit, or a sale of euros)
                tx(ibkr, D0 + timedelta(day), "deposit" if paid is None else "trade", amount=amount, hour=n % 24,
                   asset=None if paid is None else asset(paid, "fiat"),
                   quantity=None if paid is None else -cost, currency="USD")
            else:                        # another currency bought arrives as the quantity of its asset
                tx(ibkr, D0 + timedelta(day), "deposit" if paid is None else "trade", asset=asset(bought, "fiat"),
                   quantity=amount, amount=None if paid is None else -cost, currency=paid or bought, hour=n % 24)
            held[bought] += amount
            if paid:
                held[paid] -= cost
        expected[D0 + timedelta(day)] = sum((q * FX[c] for c, q in held.items()), D(0))
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=D0 + timedelta(9))
    full = {d: r.cash for d, r in rows_of(portfolio).items()}
    assert full == {d: v for d, v in expected.items() if d >= min(full)}
    HistoryState.objects.filter(portfolio=portfolio).update(through=None, checkpoint={})
    history_rebuild(portfolio_id=portfolio.pk, since=D0 + timedelta(since), through=D0 + timedelta(9))
    assert {d: r.cash for d, r in rows_of(portfolio).items()} == full


def rows_of(portfolio):
    return {r.day: r for r in DailyValue.objects.filter(portfolio=portfolio, connection=None)}
