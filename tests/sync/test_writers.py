"""The writers on PostgreSQL: the COPY-staged path the sync uses there, and the portable ORM
path (the SQLite default), held to the same counts and the same stored rows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.brokers.dtos import AssetClass, AssetRef, Order, Transaction, TransactionType
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio
from backend.sync import writers
from backend.sync.models import BrokerOrder, BrokerTransaction
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=dt_timezone.utc)
NOW = datetime(2026, 4, 1, tzinfo=dt_timezone.utc)
AAPL = AssetRef(symbol="AAPL", asset_class=AssetClass.EQUITY)
BTC = AssetRef(symbol="BTC", asset_class=AssetClass.CRYPTO)
WAYS = pytest.mark.parametrize("portable", [False, True], ids=["staged", "portable"])


def _connection(name: str = "acct-1") -> BrokerConnection:
    user = UserFactory()
    portfolio = Portfolio.objects.create(owner=user, name="p")
    return BrokerConnection.objects.create(owner=user, portfolio=portfolio, broker="alpaca", environment="paper",
                                           broker_account_id=name, status="active")


def _fill(i: int, *, qty: str = "2", price: str = "10.25", at: datetime = T0, asset: AssetRef = AAPL,
          **extra) -> Transaction:
    quantity, unit = Decimal(qty), Decimal(price)
    fields = dict(broker_id=f"fill-{i}", type=TransactionType.TRADE, broker_type="FILL", occurred_at=at,
                  asset=asset, broker_symbol=asset.symbol, quantity=quantity, price=unit, amount=-quantity * unit,
                  fee=Decimal("0"), side="buy", order_id=f"o-{i}", raw={"id": f"fill-{i}", "qty": quantity})
    fields.update(extra)
    return Transaction(**fields)


def _page(n: int, **kw) -> list[Transaction]:
    return [_fill(i, at=T0 + timedelta(minutes=i), **kw) for i in range(n)]


@WAYS
@pytest.mark.django_db
def test_the_same_page_twice_is_one_row_each_and_the_second_pass_writes_nothing(portable):
    connection = _connection()
    first = writers.transactions_upsert(connection, _page(5), NOW, portable=portable)
    assert first == {"fetched": 5, "created": 5, "updated": 0, "rewritten": 0, "changed": 0,
                     "earliest_changed": T0}                              # the earliest new row: fill-0 at T0
    stamps = dict(BrokerTransaction.objects.values_list("broker_id", "updated_at"))

    again = writers.transactions_upsert(connection, _page(5), NOW + timedelta(hours=1), portable=portable)
    assert again == {"fetched": 5, "created": 0, "updated": 5, "rewritten": 0, "changed": 0,
                     "earliest_changed": None}
    assert BrokerTransaction.objects.filter(connection=connection).count() == 5
    # Nothing differed, so nothing was rewritten: the rows keep the first pass's time.
    assert dict(BrokerTransaction.objects.values_list("broker_id", "updated_at")) == stamps


@WAYS
@pytest.mark.django_db
def test_a_record_the_broker_corrected_is_counted_as_changed_from_its_earlier_time(portable):
    connection = _connection()
    writers.transactions_upsert(connection, _page(4), NOW, portable=portable)
    # fill-2 stood at T0+2min; the broker now books it at T0+30min with 3 shares: its history
    # changed from the old time (the earlier of the two), and fill-3 is untouched.
    corrected = [_fill(2, qty="3", at=T0 + timedelta(minutes=30)), _fill(3, at=T0 + timedelta(minutes=3))]
    counts = writers.transactions_upsert(connection, corrected, NOW, portable=portable)
    assert counts == {"fetched": 2, "created": 0, "updated": 2, "rewritten": 1, "changed": 1,
                      "earliest_changed": T0 + timedelta(minutes=2)}
    row = BrokerTransaction.objects.get(connection=connection, broker_id="fill-2")
    # 3 x 10.25 = 30.75 paid: amount -30.75
    assert (row.quantity, row.amount, row.occurred_at) == (Decimal("3"), Decimal("-30.75"), T0 + timedelta(minutes=30))


@WAYS
@pytest.mark.django_db
def test_a_change_outside_history_is_rewritten_but_not_changed(portable):
    connection = _connection()
    writers.transactions_upsert(connection, _page(2), NOW, portable=portable)
    renamed = [_fill(0, at=T0, description="fill (corrected text)"),
               _fill(1, at=T0 + timedelta(minutes=1), raw={"id": "fill-1", "qty": "2", "note": "new"})]
    counts = writers.transactions_upsert(connection, renamed, NOW, portable=portable)
    assert (counts["created"], counts["rewritten"], counts["changed"], counts["earliest_changed"]) == (0, 2, 0, None)
    assert BrokerTransaction.objects.get(broker_id="fill-0").description == "fill (corrected text)"
    assert BrokerTransaction.objects.get(broker_id="fill-1").raw == {"id": "fill-1", "qty": "2", "note": "new"}


@WAYS
@pytest.mark.django_db
def test_decimals_and_raw_are_kept_exactly(portable):
    connection = _connection()
    big = Decimal("12345678901234567890.123456789012345678")      # 38 digits: 20 before the point, 18 after
    wei = Decimal("-0.000000000000000001")                         # one wei out
    raw = {"id": "x-1", "qty": Decimal("0.100000000000000001"), "nested": {"list": [1, "two", None, True]},
           "text": "Zürich \"quoted\" \\ back\tslash\nnewline", "price": "1e-7"}
    item = Transaction(broker_id="x-1", type=TransactionType.TRANSFER, broker_type="send", occurred_at=T0,
                       asset=BTC, broker_symbol="BTC", quantity=big, price=None, amount=wei, fee=Decimal("1E-18"),
                       currency="BTC", description="tab\tand\nnewline and \\N", raw=raw)
    writers.transactions_upsert(connection, [item], NOW, portable=portable)
    row = BrokerTransaction.objects.get(connection=connection, broker_id="x-1")
    assert (row.quantity, row.amount, row.fee, row.price) == (big, wei, Decimal("0.000000000000000001"), None)
    assert str(row.quantity) == "12345678901234567890.123456789012345678"
    assert row.description == "tab\tand\nnewline and \\N"
    assert row.raw == {"id": "x-1", "qty": "0.100000000000000001", "nested": {"list": [1, "two", None, True]},
                       "text": "Zürich \"quoted\" \\ back\tslash\nnewline", "price": "1e-7"}
    assert (row.asset.symbol, row.asset.asset_class, row.portfolio_id) == ("BTC", "crypto", connection.portfolio_id)
    again = writers.transactions_upsert(connection, [item], NOW, portable=portable)
    assert (again["created"], again["rewritten"]) == (0, 0)         # the stored copy reads back equal


@WAYS
@pytest.mark.django_db
def test_a_page_that_repeats_a_record_keeps_its_last_copy(portable):
    connection = _connection()
    page = [_fill(0, qty="1"), _fill(1), _fill(0, qty="4")]
    counts = writers.transactions_upsert(connection, page, NOW, portable=portable)
    assert (counts["fetched"], counts["created"], counts["updated"]) == (3, 2, 0)
    assert BrokerTransaction.objects.get(broker_id="fill-0").quantity == Decimal("4")


@pytest.mark.django_db
def test_pages_in_one_transaction_each_count_only_their_own_rows():
    """An import writes many pages in one transaction: the staging table starts each page empty."""
    connection = _connection()
    with transaction.atomic():
        first = writers.transactions_upsert(connection, _page(3), NOW)
        second = writers.transactions_upsert(connection, [_fill(i) for i in range(3, 5)], NOW)
    assert (first["created"], second["created"], second["updated"]) == (3, 2, 0)
    assert BrokerTransaction.objects.filter(connection=connection).count() == 5


@pytest.mark.django_db(transaction=True)
def test_the_staged_path_commits_on_its_own_outside_a_transaction():
    connection = _connection()
    counts = writers.transactions_upsert(connection, _page(3), NOW)
    assert counts["created"] == 3 and BrokerTransaction.objects.filter(connection=connection).count() == 3


@pytest.mark.django_db
def test_two_connections_keep_the_same_broker_id_apart():
    one, two = _connection("a"), _connection("b")
    writers.transactions_upsert(one, _page(2), NOW)
    counts = writers.transactions_upsert(two, _page(2, qty="7"), NOW)
    assert counts["created"] == 2
    assert sorted(BrokerTransaction.objects.filter(broker_id="fill-0").values_list("quantity", flat=True)) == \
        [Decimal("2"), Decimal("7")]


def _order(i: int, status: str = "open", filled: str = "0") -> Order:
    return Order(broker_id=f"ord-{i}", asset=AAPL, broker_symbol="AAPL", side="buy", order_type="limit",
                 status=status, broker_status=status, submitted_at=T0 + timedelta(minutes=i),
                 quantity=Decimal("5"), filled_quantity=Decimal(filled), limit_price=Decimal("100.01"),
                 raw={"id": f"ord-{i}", "status": status})


@WAYS
@pytest.mark.django_db
def test_orders_are_upserted_and_only_a_moved_order_is_rewritten(portable):
    connection = _connection()
    first = writers.orders_upsert(connection, [_order(0), _order(1)], NOW, portable=portable)
    assert first == {"fetched": 2, "created": 2, "updated": 0, "rewritten": 0}
    moved = writers.orders_upsert(connection, [_order(0, "filled", "5"), _order(1), _order(2)], NOW,
                                  portable=portable)
    assert moved == {"fetched": 3, "created": 1, "updated": 2, "rewritten": 1}
    row = BrokerOrder.objects.get(connection=connection, broker_id="ord-0")
    assert (row.status, row.filled_quantity, row.limit_price) == ("filled", Decimal("5"), Decimal("100.01"))
    assert BrokerOrder.objects.filter(connection=connection).count() == 3


# -- both paths, any sequence of pages --------------------------------------------------------
amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=4, allow_nan=False)
records = st.builds(lambda i, qty, minute, desc: _fill(i, qty=str(abs(qty) or 1), at=T0 + timedelta(minutes=minute),
                                                        description=desc),
                    st.integers(0, 12), amounts, st.integers(0, 50), st.sampled_from(["", "a", "b"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pages=st.lists(st.lists(records, max_size=8), min_size=1, max_size=4))
@pytest.mark.django_db
def test_both_paths_count_and_store_the_same(pages):
    """Counts from both paths agree page by page, and so do the rows they leave; after the
    pages, each id holds its last copy."""
    staged, portable = _connection("s"), _connection("p")
    for page in pages:
        a = writers.transactions_upsert(staged, page, NOW)
        b = writers.transactions_upsert(portable, page, NOW, portable=True)
        assert a == b
        assert a["created"] + a["updated"] == len({t.broker_id for t in page})
        assert a["changed"] <= a["rewritten"] <= a["updated"]
    last = {t.broker_id: t for page in pages for t in page}
    for connection in (staged, portable):
        stored = {r.broker_id: r for r in BrokerTransaction.objects.filter(connection=connection)}
        assert set(stored) == set(last)
        for broker_id, t in last.items():
            assert (stored[broker_id].quantity, stored[broker_id].occurred_at, stored[broker_id].description) == \
                (t.quantity, t.occurred_at, t.description)


# -- the local default: SQLite ----------------------------------------------------------------
SQLITE_PAGES = """
import json, django
django.setup()
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection as db
from backend.brokers.dtos import AssetClass, AssetRef, Transaction, TransactionType
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio
from backend.sync import writers
from backend.sync.models import BrokerTransaction

call_command("migrate", verbosity=0)
user = get_user_model().objects.create(username="u")
portfolio = Portfolio.objects.create(owner=user, name="p")
connection = BrokerConnection.objects.create(owner=user, portfolio=portfolio, broker="alpaca", environment="paper",
                                             broker_account_id="a", status="active")
t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
def page(amount):
    return [Transaction(broker_id=f"d{i}", type=TransactionType.DEPOSIT, broker_type="CSD",
                        occurred_at=t0 + timedelta(days=i), amount=Decimal(amount) if i == 1 else Decimal("5.25"),
                        asset=AssetRef("USD", AssetClass.FIAT, currency="USD"), raw={"n": i}) for i in range(3)]
counts = [writers.transactions_upsert(connection, page(a), t0) for a in ("5.25", "5.25", "7.5")]
print(json.dumps({"vendor": db.vendor, "counts": counts, "rows": BrokerTransaction.objects.count(),
                  "amount": str(BrokerTransaction.objects.get(broker_id="d1").amount)}, default=str))
"""


def test_the_local_sqlite_default_stores_pages_with_the_same_counts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SQLITE_PAGES], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKERSYNC_ENV")}
        | {"DJANGO_SETTINGS_MODULE": "backend.config.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    first, again, corrected = out["counts"]
    assert out["vendor"] == "sqlite" and out["rows"] == 3
    assert (first["created"], first["earliest_changed"]) == (3, "2026-01-05 00:00:00+00:00")
    assert (again["created"], again["updated"], again["rewritten"], again["changed"]) == (0, 3, 0, 0)
    # d1 (5 Jan + 1 day) went from 5.25 to 7.5: changed from its time, the 6th
    assert (corrected["rewritten"], corrected["changed"], corrected["earliest_changed"]) == \
        (1, 1, "2026-01-06 00:00:00+00:00")
    assert Decimal(out["amount"]) == Decimal("7.5")
