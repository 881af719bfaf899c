"""The break rules on hand-worked numbers, and their invariants over random histories.

Pure functions: no database, no sandbox (tests/reconcile/test_faults.py feeds the same
faults through the sandbox and the pipeline)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from backend.brokers.dtos import RepullWindow
from backend.brokers.windows import merged
from backend.reconcile.rules import (
    CASH, HISTORY_MISSING, PRECISION, SPLIT, TRANSFER, UNEXPLAINED_DISPOSAL, Difference, Evidence, Movement,
    SplitEvent, cash_leg_of, classify, is_leg, precision_of,
)

D = Decimal
T0 = datetime(2024, 3, 5, 14, 30, tzinfo=timezone.utc)


def asset(broker: str, history: str, asset_class: str = "equity", symbol: str = "AAPL") -> Difference:
    return Difference("asset:1", 1, symbol, asset_class, D(broker), D(history))


def cash(broker: str, history: str, currency: str = "USD") -> Difference:
    return Difference(f"cash:{currency}", None, currency, "fiat", D(broker), D(history))


# -- hand-worked cases ---------------------------------------------------------------------------
def test_a_sale_the_history_lacks_is_an_unexplained_disposal():
    # bought 10 + 5, sold 6 (the sale is missing): broker 9, history 15, difference 9 - 15 = -6
    verdict = classify(asset("9", "15"), Evidence())
    assert verdict.kind == UNEXPLAINED_DISPOSAL and "6 left" in verdict.detail


def test_a_purchase_the_history_lacks_is_history_missing():
    # held 3 before the first fetched record, bought 2 since: broker 5, history 2, difference +3
    verdict = classify(asset("5", "2"), Evidence())
    assert verdict.kind == HISTORY_MISSING and "3 came from records" in verdict.detail


def test_a_split_reported_twice_is_a_split_break():
    # 100 shares, 3-for-1 split: REMOVE 100, ADD 300 (change +200). Reported twice, the
    # history holds 100 + 200 + 200 = 500 while the broker holds 300: difference -200 = -change.
    split = SplitEvent(T0, removed=D(100), added=D(300), duplicated=True)
    verdict = classify(asset("300", "500"), Evidence(splits=[split, split]))
    assert verdict.kind == SPLIT and "3-for-1" in verdict.detail and "reported it twice" in verdict.detail
    assert verdict.window == (T0, T0)


def test_a_split_the_history_does_not_apply_is_a_split_break():
    # The broker applied 4-for-1 to 25 shares (100); the history's split rows do not count:
    # history 25, broker 100 = 25 x 4.
    verdict = classify(asset("100", "25"), Evidence(splits=[SplitEvent(T0, D(25), D(100))]))
    assert verdict.kind == SPLIT and "has not" in verdict.detail


def test_a_difference_that_matches_no_split_falls_through():
    verdict = classify(asset("300", "499"), Evidence(splits=[SplitEvent(T0, D(100), D(300))]))
    assert verdict.kind == UNEXPLAINED_DISPOSAL


def test_an_arrival_explained_by_a_withdrawal_elsewhere_is_a_transfer():
    # Coinbase sent 0.0043145 BTC (0.0042145 + 0.0001 network fee); this broker holds 0.0042145
    # more than its history: sent - received = 0.0001 = the fee, within max(5% of sent, fee).
    sent = Movement(7, 2, "coinbase", D("-0.0043145"), T0, fee=D("0.0001"), asset_id=1)
    verdict = classify(asset("0.0751", "0.0708855", "crypto", "BTC"), Evidence(movements=[sent]))
    assert verdict.kind == TRANSFER and verdict.counterpart_id == 7
    assert verdict.window == (T0 - timedelta(hours=1), T0 + timedelta(days=8))


def test_a_departure_explained_by_a_deposit_elsewhere_is_a_transfer():
    # Kraken received 1.99 ETH; this broker holds 2 less than its history (0.01 lost on the way).
    arrived = Movement(9, 3, "kraken", D("1.99"), T0, asset_id=1)
    verdict = classify(asset("1", "3", "crypto", "ETH"), Evidence(movements=[arrived]))
    assert verdict.kind == TRANSFER and verdict.window == (T0 - timedelta(days=8), T0 + timedelta(hours=1))


def test_a_movement_that_lost_too_much_on_the_way_is_not_the_transfer():
    # sent 1, received 0.9: 0.1 lost is more than 5% of 1 and there is no stated fee
    sent = Movement(7, 2, "coinbase", D("-1"), T0, asset_id=1)
    assert classify(asset("0.9", "0", "crypto", "BTC"), Evidence(movements=[sent])).kind == HISTORY_MISSING


def test_a_movement_far_from_where_the_difference_arose_is_not_the_transfer():
    # the difference arose in what was fetched since T0 + 30 days; a withdrawal at T0 is
    # more than a transfer's 8 days before that
    sent = Movement(7, 2, "coinbase", D("-1"), T0, asset_id=1)
    arose = (T0 + timedelta(days=30), T0 + timedelta(days=31))
    diff = asset("1", "0", "crypto", "BTC")
    assert classify(diff, Evidence(movements=[sent], window=arose)).kind == HISTORY_MISSING
    assert classify(diff, Evidence(movements=[sent], window=(T0 + timedelta(days=7), None))).kind == TRANSFER


def test_a_missing_fill_is_never_taken_for_a_transfer():
    sent = Movement(7, 2, "coinbase", D("-1"), T0, asset_id=1)
    verdict = classify(asset("1", "0", "crypto", "BTC"), Evidence(movements=[sent], fill_missing=True))
    assert verdict.kind == HISTORY_MISSING


def test_the_quote_and_commission_of_a_missing_fill_are_its_legs():
    # Sold 0.0445762 ETH at 3,730.33 USDT for 166.28263066 USDT, paying 0.00019951 BNB:
    # ETH -0.0445762, USDT +166.28263066 (implied price 166.28263066 / 0.0445762 = 3,730.33),
    # BNB -0.00019951 (a commission the history lacks).
    eth = Difference("asset:1", 1, "ETH", "crypto", D("1.9"), D("1.9445762"))
    usdt = Difference("asset:2", 2, "USDT", "crypto", D("1166.28263066"), D("1000"))
    bnb = Difference("asset:3", 3, "BNB", "crypto", D("0.99980049"), D("1"))
    assert is_leg(usdt, eth, [D("3730.33")], fee=False)
    assert is_leg(bnb, eth, [D("3730.33")], fee=True)
    assert not is_leg(usdt, eth, [D("1000")], fee=False)                  # 3,730 is not near 1,000
    assert not is_leg(Difference("asset:3", 3, "BNB", "crypto", D("1.1"), D("1")), eth, [], fee=True)


def test_a_movement_in_the_same_direction_is_not_the_transfer():
    deposit_elsewhere = Movement(7, 2, "coinbase", D("1"), T0, asset_id=1)
    assert classify(asset("1", "0", "crypto", "BTC"), Evidence(movements=[deposit_elsewhere])).kind == HISTORY_MISSING


def test_below_the_precision_a_difference_is_precision_only():
    # 1.269464004 ETH rounded to 8 places is 1.26946400: difference -0.000000004 < 1e-8
    verdict = classify(asset("1.269464", "1.269464004", "crypto", "ETH"), Evidence())
    assert verdict.kind == PRECISION and verdict.precision == D("1e-8")
    # at the precision itself it is a real difference
    assert classify(asset("1.26946401", "1.26946400", "crypto", "ETH"), Evidence()).kind == HISTORY_MISSING


def test_precision_per_class_and_currency():
    assert precision_of("crypto") == D("0.00000001")
    assert precision_of("equity") == D("0.000000001")
    assert precision_of("fiat", "USD") == D("0.01")
    assert precision_of("fiat", "JPY") == D("1")
    assert classify(cash("100.004", "100"), Evidence()).kind == PRECISION
    assert classify(cash("100.01", "100"), Evidence()).kind == CASH


def test_cash_that_is_a_missing_sale_proceeds_belongs_to_the_asset_break():
    # A sale of 147 GOOGL at 167.28 is missing: cash +24,590.16, GOOGL -147. Implied price
    # 24,590.16 / 147 = 167.28, inside GOOGL's trade prices 150-180 (+-10%).
    owner = cash_leg_of(cash("1024590.16", "1000000"), [("asset:1", D(-147), [D(150), D(180)])])
    assert owner == "asset:1"


def test_cash_that_no_trade_price_explains_is_its_own_break():
    # A missing deposit of 9,636.84 next to a missing 14-share purchase at ~164: the implied
    # price 9,636.84 / -14 is negative (a buy takes cash), so it is not that trade's leg.
    assert cash_leg_of(cash("19636.84", "10000"), [("asset:1", D(14), [D(160), D(170)])]) is None
    # and a price far from the asset's trades is not either: 9,636.84 / 14 = 688.3 vs 160-170
    assert cash_leg_of(cash("10000", "19636.84"), [("asset:1", D(14), [D(160), D(170)])]) is None


def test_the_closest_price_wins_when_two_trades_could_explain_the_cash():
    # -1,000 cash with +10 of A (prices 95-105, implied 100) and +5 of B (190-230, implied 200)
    owner = cash_leg_of(cash("0", "1000"), [("asset:1", D(10), [D(95), D(105)]), ("asset:2", D(5), [D(190), D(230)])])
    assert owner == "asset:1"


def test_windows_merge_where_they_overlap_and_keep_their_kinds():
    a = RepullWindow(T0, T0 + timedelta(hours=1), frozenset({"AAPL"}), frozenset({"trade", "fee"}))
    b = RepullWindow(T0 + timedelta(minutes=30), T0 + timedelta(hours=2), frozenset({"USD"}))
    c = RepullWindow(T0 + timedelta(days=3), T0 + timedelta(days=4), frozenset({"MSFT"}), frozenset({"split"}))
    spans = merged([c, a, b])
    assert [(s.start, s.end, s.assets, s.kinds) for s in spans] == [
        (T0, T0 + timedelta(hours=2), frozenset({"AAPL", "USD"}), frozenset()),    # b wants every kind
        (T0 + timedelta(days=3), T0 + timedelta(days=4), frozenset({"MSFT"}), frozenset({"split"}))]
    assert merged([RepullWindow(None, T0), a])[0].start is None


# -- invariants ----------------------------------------------------------------------------------
quantities = st.decimals(min_value=D("0.001"), max_value=D("100000"), places=6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(fills=st.lists(quantities, min_size=1, max_size=30), pick=st.integers(min_value=0), sign=st.sampled_from([1, -1]))
def test_one_missing_fill_gives_one_break_of_the_fill_size(fills, pick, sign):
    """Any history, one fill missing from it: the difference is exactly that fill, and its sign
    names the type (a missing acquisition: history_missing; a missing disposal: unexplained)."""
    signed = [q if i % 2 == 0 else -q / 2 for i, q in enumerate(fills)]
    missing = sign * fills[pick % len(fills)]
    broker = sum(signed, D(0)) + missing
    diff = asset(str(broker), str(sum(signed, D(0))))
    verdict = classify(diff, Evidence())
    assert diff.difference == missing
    assert verdict.kind == (HISTORY_MISSING if missing > 0 else UNEXPLAINED_DISPOSAL)


@settings(max_examples=200, deadline=None)
@given(held=quantities, ratio=st.integers(min_value=2, max_value=10), later=st.lists(quantities, max_size=5))
def test_a_split_counted_twice_is_always_found_as_a_split(held, ratio, later):
    """Whatever the holding, ratio and trades after the split, counting one split twice makes
    the history exceed the broker by exactly the split's change, and it is typed `split`."""
    event = SplitEvent(T0, held, held * ratio, duplicated=True)
    after = sum(later, D(0))
    broker = held * ratio + after
    history = broker + event.change
    verdict = classify(asset(str(broker), str(history)), Evidence(splits=[event, event]))
    assert verdict.kind == SPLIT


@settings(max_examples=200, deadline=None)
@given(quantity=quantities)
def test_rounding_below_the_step_is_precision_and_never_anything_else(quantity):
    exact = quantity + D("0.0000000004")                     # a tail below the satoshi
    rounded = exact.quantize(D("1e-8"))
    diff = asset(str(rounded), str(exact), "crypto", "BTC")
    assert abs(diff.difference) < D("1e-8")
    assert classify(diff, Evidence(splits=[SplitEvent(T0, D(1), D(2))])).kind == PRECISION
