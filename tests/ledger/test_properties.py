"""Invariants of the lot engine over random histories (hypothesis, bounded by max_examples)."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from backend.ledger.engine import METHODS, Event, Kind, Leg, Ledger

from .helpers import D, DictPricer, at, trade

ASSETS = (1, 2)
CONNS = (1, 2)
START = at(2023, 1, 2)
# Sums of pieces are exact by construction (the last piece takes the remainder), but a
# Decimal subtraction can round in the 28th digit: far below a cent.
TOLERANCE = Decimal("1e-12")

qty = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2)
price = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(1000), places=2)
step = st.tuples(st.sampled_from(ASSETS), st.sampled_from(CONNS), st.booleans(), qty, price,
                 st.integers(min_value=0, max_value=40))


def _events(steps, *, allow_short: bool):
    held: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    events, when = [], START
    for i, (asset, conn, buy, q, p, gap) in enumerate(steps):
        when += timedelta(days=gap, minutes=1)
        if not buy and not allow_short:
            q = min(q, held[(asset, conn)])
            if not q:
                continue
        signed = q if buy else -q
        held[(asset, conn)] += signed
        events.append(trade(f"t{i}", when, asset, signed, -signed * p, conn=conn))
    return events, held, when


@settings(max_examples=60, deadline=None)
@given(st.lists(step, max_size=40), st.sampled_from(METHODS))
def test_lots_never_go_negative_and_open_quantity_is_the_signed_sum(steps, method):
    events, held, _ = _events(steps, allow_short=True)
    ledger = Ledger(method=method, pricer=DictPricer()).run(events)
    for lot in ledger.lots.values():
        # A lot never flips sign nor grows past what it opened with.
        assert lot.remaining * lot.quantity >= 0 and abs(lot.remaining) <= abs(lot.quantity)
        assert lot.basis is None or lot.basis >= -TOLERANCE
    for (asset, conn), book in ledger.books.items():
        assert book.quantity() == held[(asset, conn)]
        assert len({lot.is_short for lot in book.lots.values() if lot.remaining}) <= 1   # never long and short at once


@settings(max_examples=50, deadline=None)
@given(st.lists(step, min_size=1, max_size=40), price)
def test_after_a_full_liquidation_every_method_realizes_the_same_gain(steps, last_price):
    events, held, when = _events(steps, allow_short=False)
    for i, ((asset, conn), q) in enumerate(sorted(held.items())):
        if q:
            events.append(trade(f"close{i}", when + timedelta(days=1), asset, -q, q * last_price, conn=conn))
    totals = []
    for method in METHODS:
        ledger = Ledger(method=method, pricer=DictPricer()).run(events)
        assert not any(book.quantity() for book in ledger.books.values())
        totals.append(sum((d.gain for d in ledger.disposals.values()), Decimal(0)))
    assert max(totals) - min(totals) <= TOLERANCE, totals


cash_step = st.one_of(
    st.tuples(st.just("trade"), st.sampled_from(ASSETS), st.booleans(), qty, price),
    st.tuples(st.just("swap"), st.sampled_from(ASSETS), st.booleans(), qty, price),
    st.tuples(st.just("dividend"), st.sampled_from(ASSETS), st.booleans(), price, price),
    st.tuples(st.just("fee"), st.sampled_from(ASSETS), st.booleans(), price, price),
    st.tuples(st.just("reward"), st.sampled_from(ASSETS), st.booleans(), qty, price),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(cash_step, max_size=30), st.sampled_from(METHODS), st.tuples(price, price),
       st.decimals(min_value=0, max_value=100_000, places=2))
def test_realized_plus_unrealized_plus_income_less_fees_is_value_less_net_deposits(steps, method, now, deposit):
    # One connection, cash in USD. Fair values come from a price per asset per day; "now" prices
    # value what is still open. Shorts are allowed (a sale with nothing held).
    prices, cash, events, when = {}, deposit, [], START
    holdings: dict[int, Decimal] = defaultdict(Decimal)
    for i, (kind, asset, flag, a, p) in enumerate(steps):
        when += timedelta(days=1)
        prices[(asset, when.date())] = p
        other = 2 if asset == 1 else 1
        prices[(other, when.date())] = p / 2 + 1
        key = f"1:e{i}"
        if kind == "trade":
            signed = a if flag else -a
            events.append(trade(f"e{i}", when, asset, signed, -signed * p))
            cash -= signed * p
            holdings[asset] += signed
        elif kind == "swap":             # give `a` of asset, get the other at fair value
            got = (a * p / (p / 2 + 1)).quantize(Decimal("0.0001"))
            if got:
                events.append(Event(Kind.TRADE, at=when, connection_id=1, key=key,
                                    legs=(Leg(asset, -a), Leg(other, got))))
                holdings[asset] -= a
                holdings[other] += got
        elif kind in ("dividend", "fee"):
            amount = a if kind == "dividend" else -(a / 10)
            events.append(Event(Kind.INCOME if kind == "dividend" else Kind.FEE, at=when, connection_id=1, key=key,
                                income_kind=kind, asset_id=asset, cash=(("USD", amount),)))
            cash += amount
        else:                            # a reward of `a` units at the day's price
            events.append(Event(Kind.INCOME, at=when, connection_id=1, key=key, income_kind="reward",
                                legs=(Leg(asset, a),)))
            holdings[asset] += a
    # Asset 1 is under the wash-sale rule: deferring a loss into a replacement lot moves it
    # from realized to unrealized and must leave the total alone.
    ledger = Ledger(method=method, pricer=DictPricer(prices), wash_assets={1}).run(events)
    latest = dict(zip(ASSETS, now))
    realized = sum((d.gain for d in ledger.disposals.values()), Decimal(0))
    unrealized = Decimal(0)
    for lot in ledger.lots.values():
        if lot.remaining > 0:
            unrealized += lot.remaining * latest[lot.asset_id] - lot.basis
        elif lot.remaining < 0:
            unrealized += lot.basis + lot.remaining * latest[lot.asset_id]
    income = sum((i.amount for i in ledger.income if i.kind != "fee"), Decimal(0))
    fees = -sum((i.amount for i in ledger.income if i.kind == "fee"), Decimal(0))
    value_now = cash + sum((q * latest[a] for a, q in holdings.items()), Decimal(0))
    assert abs((realized + unrealized + income - fees) - (value_now - deposit)) <= Decimal("1e-9")
