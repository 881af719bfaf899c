"""A back-dated change replays only the assets it touched, from the checkpoint before it, and
the ledger it leaves is the one a whole replay writes, row for row."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.db import connection as db
from django.utils import timezone
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.ledger.models import Disposal, LedgerCheckpoint, LedgerState, Lot
from backend.ledger.services import ledger_recompute, ledger_request
from backend.portfolio.models import Portfolio
from backend.sync.models import BrokerTransaction

from .conftest import Book
from .helpers import at

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal
SYMBOLS = ("AAA", "BBB", "CCC")
START = at(2023, 1, 3)
NAMES = count()


def rows_of(portfolio) -> tuple:
    """Every column of every ledger row but database ids (links name their disposal and lot
    by key): what must be equal byte for byte."""
    with db.cursor() as cursor:
        out = []
        for sql in (
            "SELECT key, asset_id, connection_id, transaction_id, origin, quantity, remaining, cost_basis, "
            "acquired_at, holding_from, parent_key, wash_adjustment, closed_at, closed_by FROM ledger_lot "
            "WHERE portfolio_id = %s ORDER BY key",
            "SELECT key, source_key, asset_id, connection_id, transaction_id, kind, disposed_at, quantity, proceeds, "
            "cost_basis, gain, wash_disallowed, term, incomplete, pick_status FROM ledger_disposal "
            "WHERE portfolio_id = %s ORDER BY key",
            "SELECT d.key, l.lot_key, lot.key, l.position, l.quantity, l.cost_basis, l.proceeds, l.gain, "
            "l.acquired_at, l.holding_from, l.term, l.wash_disallowed FROM ledger_disposallot l "
            "JOIN ledger_disposal d ON d.id = l.disposal_id LEFT JOIN ledger_lot lot ON lot.id = l.lot_id "
            "WHERE d.portfolio_id = %s ORDER BY d.key, l.position",
            "SELECT key, kind, connection_id, asset_id, transaction_id, occurred_at, amount, currency, "
            "original_amount FROM ledger_income WHERE portfolio_id = %s ORDER BY key",
        ):
            cursor.execute(sql, [portfolio.pk])
            out.append(cursor.fetchall())
    return tuple(out)


def state_of(portfolio) -> dict:
    """The saved engine state without lot sequence numbers (those only order lots within one
    asset's book, and a partial replay numbers its new lots from its own counter)."""
    return without_seq(LedgerState.objects.get(portfolio=portfolio).snapshot)


def difference(partial, whole) -> str:
    for name, a, b in zip(("rows", "state", "checkpoints"), partial, whole):
        if a != b:
            if name == "rows":
                return "; ".join(f"table {i}: only partial {sorted(set(x) - set(y))[:3]} only whole "
                                 f"{sorted(set(y) - set(x))[:3]}" for i, (x, y) in enumerate(zip(a, b)) if x != y)
            if name == "checkpoints":
                return f"checkpoints: only partial {[c for c in a if c not in b][:3]} only whole " \
                       f"{[c for c in b if c not in a][:3]}"
            return f"{name}: {a} != {b}"
    return ""


def without_seq(value):
    if isinstance(value, dict):
        return {k: without_seq(v) for k, v in value.items() if k != "seq"}
    if isinstance(value, list):
        return [without_seq(v) for v in value]
    return value


def checkpoints_of(portfolio) -> list:
    return [(c.at, c.asset_id, repr(without_seq(c.state)))
            for c in LedgerCheckpoint.objects.filter(portfolio=portfolio).order_by("at", "asset_id")]


def age_history(portfolio) -> None:
    """Rows synced long ago: only what the test changes next counts as changed."""
    BrokerTransaction.objects.filter(portfolio=portfolio).update(updated_at=timezone.now() - timedelta(days=2))


def store_fills(book: Book, steps) -> None:
    held = {s: D(0) for s in SYMBOLS}
    when = START
    for i, (symbol, buy, qty, price, gap, kind) in enumerate(steps):
        when += timedelta(days=gap, hours=1)
        if kind == "dividend":
            book.tx("alpaca", f"d{i}", "dividend", when, symbol, None, price, broker_type="DIV")
            continue
        if kind == "interest":
            book.tx("alpaca", f"i{i}", "interest", when, None, None, price, broker_type="INT")
            continue
        if kind == "swap":                    # coin for coin: both assets' lots move in one event
            other = SYMBOLS[(SYMBOLS.index(symbol) + 1) % len(SYMBOLS)]
            book.tx("binance", f"trade:{symbol}{other}:{i}", "trade", when, symbol, qty, None, asset_class="crypto")
            book.tx("binance", f"trade:{symbol}{other}:{i}:quote", "trade", when, other, -qty, None,
                    asset_class="crypto")
            continue
        if not buy:
            qty = min(qty, held[symbol])
            if not qty:
                continue
        signed = qty if buy else -qty
        held[symbol] += signed
        book.tx("alpaca", f"f{i}", "trade", when, symbol, signed, -signed * price, broker_type="FILL")


qty = st.decimals(min_value=D("0.01"), max_value=D(50), places=2)
price = st.decimals(min_value=D("1"), max_value=D(500), places=2)
step = st.tuples(st.sampled_from(SYMBOLS), st.booleans(), qty, price, st.integers(min_value=0, max_value=25),
                 st.sampled_from(["fill"] * 6 + ["dividend", "interest", "swap"]))
change = st.tuples(st.sampled_from(["quantity", "amount", "insert", "delete", "asset", "time"]),
                   st.integers(min_value=0, max_value=10_000), qty, st.integers(min_value=1, max_value=40))


def apply_change(book: Book, kind: str, pick: int, amount: Decimal, days: int):
    """One back-dated change to a row of the history's second half; returns the earliest time
    it touches (the `since` a sync reports)."""
    rows = list(BrokerTransaction.objects.filter(portfolio=book.portfolio, type="trade", broker_id__startswith="f")
                .order_by("occurred_at", "id"))
    row = rows[len(rows) // 2 + pick % max(1, len(rows) - len(rows) // 2)] if rows else None
    if kind == "insert" or row is None:
        when = (row.occurred_at if row else START + timedelta(days=70)) + timedelta(minutes=7)
        book.tx("alpaca", f"late{pick}", "trade", when, SYMBOLS[pick % 3], amount, -amount * 10, broker_type="FILL")
        return when
    since = row.occurred_at
    if kind == "quantity":
        row.quantity += amount
    elif kind == "amount":
        row.amount -= amount
    elif kind == "delete":
        row.delete()
        return since
    elif kind == "asset":
        row.asset = book.asset(SYMBOLS[(SYMBOLS.index(row.asset.symbol) + 1) % 3])
    else:
        row.occurred_at += timedelta(days=days)
    row.save()
    return since


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=8, max_size=45), change, st.sampled_from(["fifo", "hifo", "lifo", "average"]),
       st.booleans())
def test_a_back_dated_change_replayed_per_asset_equals_a_whole_replay(db, steps, changed, method, wash):
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create(username=f"scoped{next(NAMES)}")
    book = Book(Portfolio.objects.create(owner=owner, name="p", cost_basis_method=method, wash_sales=wash))
    store_fills(book, steps)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    age_history(book.portfolio)
    since = apply_change(book, *changed)
    checkpoint = (LedgerCheckpoint.objects.filter(portfolio=book.portfolio, asset_id=None, at__lte=since)
                  .order_by("-at").values_list("at", flat=True).first())
    checkpointed = checkpoint is not None and BrokerTransaction.objects.filter(
        portfolio=book.portfolio, occurred_at__gte=checkpoint).exists()
    result = ledger_recompute(portfolio_id=book.portfolio.pk, since=since)
    partial = rows_of(book.portfolio), state_of(book.portfolio), checkpoints_of(book.portfolio)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    whole = rows_of(book.portfolio), state_of(book.portfolio), checkpoints_of(book.portfolio)
    assert partial == whole, difference(partial, whole)
    # Replayed per asset whenever a checkpoint precedes the change and history follows it (or
    # carried on, past the end).
    assert result["incremental"] or not checkpointed, result


def three_assets(book: Book):
    """Fills in AAA, BBB and CCC every week of 2023; CCC is swapped for BBB in July."""
    when = START
    for week in range(50):
        for j, symbol in enumerate(SYMBOLS):
            buy = week % 3 != 2
            book.tx("alpaca", f"{symbol}{week}", "trade", when + timedelta(hours=j), symbol, 5 if buy else -4,
                    -500 - week if buy else 450 + week, broker_type="FILL")
        when += timedelta(days=7)
    book.tx("binance", "trade:CCCBBB:1", "trade", at(2023, 7, 5), "CCC", 2, None, asset_class="crypto")
    book.tx("binance", "trade:CCCBBB:1:quote", "trade", at(2023, 7, 5), "BBB", -1, None, asset_class="crypto")


def test_a_change_in_one_asset_rewrites_only_that_asset_from_the_month_before(book):
    three_assets(book)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    age_history(book.portfolio)
    untouched = {(lot.key, lot.pk) for lot in Lot.objects.filter(portfolio=book.portfolio, asset__symbol="BBB")}
    early = {(d.key, d.pk) for d in Disposal.objects.filter(portfolio=book.portfolio, asset__symbol="AAA",
                                                             disposed_at__lt=at(2023, 9, 1))}
    row = BrokerTransaction.objects.get(portfolio=book.portfolio, broker_id="AAA36")    # 2023-09-12, a buy
    row.amount = D("-999.00")
    row.save()
    result = ledger_recompute(portfolio_id=book.portfolio.pk, since=row.occurred_at)
    assert result["assets"] == [book.assets["AAA"].pk]
    # BBB's rows were not rewritten (same ids); AAA's before September 1 (the checkpoint) neither.
    assert {(lot.key, lot.pk) for lot in Lot.objects.filter(portfolio=book.portfolio, asset__symbol="BBB")} \
        == untouched
    assert {(d.key, d.pk) for d in Disposal.objects.filter(portfolio=book.portfolio, asset__symbol="AAA",
                                                            disposed_at__lt=at(2023, 9, 1))} == early
    lot = Lot.objects.get(portfolio=book.portfolio, key__endswith=":AAA36#%d" % book.assets["AAA"].pk)
    assert lot.quantity == 5 and lot.cost_basis is not None
    partial = rows_of(book.portfolio)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    assert rows_of(book.portfolio) == partial


def test_assets_a_swap_links_after_the_checkpoint_replay_together(book):
    three_assets(book)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    age_history(book.portfolio)
    row = BrokerTransaction.objects.get(portfolio=book.portfolio, broker_id="CCC20")    # 2023-05-23
    row.quantity = D(7)
    row.save()
    result = ledger_recompute(portfolio_id=book.portfolio.pk, since=row.occurred_at)
    # The July swap gives BBB for CCC: BBB's lots are closed by it, so BBB replays with CCC.
    assert result["assets"] == sorted([book.assets["BBB"].pk, book.assets["CCC"].pk])
    partial = rows_of(book.portfolio)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    assert rows_of(book.portfolio) == partial


def test_changed_closes_replay_every_asset(book):
    three_assets(book)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    age_history(book.portfolio)
    ledger_request(portfolio_id=book.portfolio.pk, since=at(2023, 9, 5), history=False)
    result = ledger_recompute(portfolio_id=book.portfolio.pk)
    assert result["incremental"] is False and result["assets"] is None


def test_new_fills_after_the_last_event_save_the_month_starts_they_pass(book):
    three_assets(book)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    months = set(LedgerCheckpoint.objects.filter(portfolio=book.portfolio, asset_id=None).values_list("at", flat=True))
    assert max(months) == at(2023, 12, 1, 0)
    book.tx("alpaca", "jan", "trade", at(2024, 2, 2), "AAA", 1, -100, broker_type="FILL")
    result = ledger_recompute(portfolio_id=book.portfolio.pk, since=at(2024, 2, 2))
    assert result["incremental"] is True and result["assets"] is None      # carried on from the saved state
    partial = checkpoints_of(book.portfolio)
    assert {at(2024, 1, 1, 0), at(2024, 2, 1, 0)} <= {c[0] for c in partial}
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    assert checkpoints_of(book.portfolio) == partial
