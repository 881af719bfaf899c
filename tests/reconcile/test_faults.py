"""Each fault injected into a sandbox Alpaca account gives exactly its typed break, through the
real pipeline over real HTTP, and the break clears once the sandbox is put right and the
account syncs again (the re-pull of the break's window reads the corrected records).

Expected numbers come from the sandbox's truth (what the broker really holds)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from backend.reconcile.models import Break, ReconcileMark
from backend.sync.models import BrokerTransaction
from tests.factories import make_connection, sandbox_account, sandbox_advance, sandbox_truth

from .helpers import inject, open_breaks, put_right, sync

pytestmark = pytest.mark.django_db
ENDPOINT = "alpaca-paper"
QUIET = {"dividend": False, "split": False, "close_position": False, "orders": 0, "cancel_orders": 0,
         "new_symbol": False}


@pytest.fixture
def alpaca(sandbox, redis_client):
    """A paper account (seed 5: a 3-for-1 XOM split, 1.269464004 ETH) with a few later fills,
    so every record a fault hides lies before the cursor a first sync leaves."""
    account = sandbox_account(sandbox, broker="alpaca", environment="paper", seed=5, positions=6, activities=150)
    sandbox_advance(sandbox, account["account_id"], fills=3, deposit=True, **QUIET)
    truth = sandbox_truth(sandbox, account["account_id"])
    return account, make_connection(account, broker="alpaca"), truth


def held(truth: dict, symbol: str) -> Decimal:
    return sum((Decimal(p["quantity"]) for p in truth["positions"] if p["symbol"] == symbol), Decimal(0))


def middle(truth: dict, kind: str, sign: int = 0) -> dict:
    rows = [t for t in truth["transactions"] if t["type"] == kind and t["status"] == "executed"
            and (not sign or (Decimal(t["quantity"]) > 0) == (sign > 0))]
    return rows[len(rows) // 2]


def assert_cleared(sandbox, account, connection, found: Break) -> None:
    put_right(sandbox, account["account_id"])
    run, made = sync(connection, ENDPOINT, sandbox)
    found.refresh_from_db()
    assert found.resolved_at is not None and found.resolved_by_run_id == run.pk
    assert open_breaks(connection) == [] and run.steps["reconcile"]["breaks"] == 0
    assert run.steps["reconcile"]["resolved"] == 1 and run.reconcile_differences == []
    return run, made


def test_a_clean_account_reconciles_without_a_re_pull(sandbox, alpaca):
    _, connection, _ = alpaca
    run, made = sync(connection, ENDPOINT, sandbox)
    assert run.steps["reconcile"]["differences"] == 0 and run.steps["reconcile"]["breaks"] == 0
    assert made == 0 and "requests" not in run.steps["reconcile"]
    assert not Break.objects.filter(connection=connection).exists()


@pytest.mark.parametrize("sign, kind", [(-1, "unexplained_disposal"), (+1, "history_missing")])
def test_a_dropped_fill_is_one_break_of_its_size_and_clears(sandbox, alpaca, sign, kind):
    account, connection, truth = alpaca
    fill = middle(truth, "trade", sign)
    inject(sandbox, account["account_id"], kind="drop", record=fill["broker_id"])

    run, made = sync(connection, ENDPOINT, sandbox)
    [found] = open_breaks(connection)
    quantity, broker = Decimal(fill["quantity"]), held(truth, fill["symbol"])
    # the broker counts the fill, the history lacks it: ledger = broker - fill, difference = fill
    assert (found.kind, found.asset.symbol) == (kind, fill["symbol"])
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (broker, broker - quantity, quantity)
    # its cash leg (-(qty x price)) is part of this break, not a second one
    assert found.legs == [{"symbol": "USD", "asset_class": "fiat", "difference": fill["amount"]}]
    assert found.found_by_run_id == run.pk and run.steps["reconcile"]["breaks"] == 1
    assert run.reconcile_differences[0]["type"] == kind
    # the re-pull asked for the short-filled order's window once, and the fault survived it
    assert made == run.steps["reconcile"]["requests"] >= 1 and run.steps["reconcile"]["fixed_by_repull"] == 0

    cleared, made = assert_cleared(sandbox, account, connection, found)
    stored = BrokerTransaction.objects.get(connection=connection, broker_id=fill["broker_id"])
    assert found.window_start <= stored.occurred_at <= found.window_end
    assert made >= 1 and cleared.steps["transactions"]["created"] == 0
    # only the re-pull changed history: what depends on it recomputes from the fill's time
    assert cleared.changed_since == stored.occurred_at


def test_a_split_reported_twice_is_a_split_break_and_clears(sandbox, alpaca):
    account, connection, truth = alpaca
    remove, add = [t for t in truth["transactions"] if t["type"] == "split"][:2]
    inject(sandbox, account["account_id"], kind="double_split", record=remove["broker_id"])

    run, made = sync(connection, ENDPOINT, sandbox)
    [found] = open_breaks(connection)
    change = Decimal(add["quantity"]) + Decimal(remove["quantity"])       # shares in - shares out
    broker = held(truth, add["symbol"])
    assert (found.kind, found.asset.symbol) == ("split", add["symbol"])
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (broker, broker + change, -change)
    assert "reported it twice" in found.detail and found.legs == []
    assert made == run.steps["reconcile"]["requests"] >= 1

    # Put right, Alpaca withdraws the copies (status canceled); the re-pull of the split's
    # window reads them so, and they stop counting.
    _, made = assert_cleared(sandbox, account, connection, found)
    copies = BrokerTransaction.objects.filter(connection=connection, type="split", broker_id__endswith="-dup")
    assert made >= 1 and sorted(copies.values_list("status", flat=True)) == ["canceled", "canceled"]


def test_a_hidden_deposit_is_a_cash_break_and_clears(sandbox, alpaca):
    account, connection, truth = alpaca
    deposit = [t for t in truth["transactions"] if t["type"] == "deposit"][1]
    inject(sandbox, account["account_id"], kind="drop", record=deposit["broker_id"])

    run, made = sync(connection, ENDPOINT, sandbox)
    [found] = open_breaks(connection)
    cash, amount = Decimal(truth["cash"]["USD"]), Decimal(deposit["amount"])
    assert (found.kind, found.asset, found.currency) == ("cash", None, "USD")
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (cash, cash - amount, amount)
    # nothing locates a cash movement: the re-pull read everything since the last reconcile
    # (a first one: the whole history, two pages of 100 activities)
    assert made == run.steps["reconcile"]["requests"] == 2 and found.window_start is None

    _, made = assert_cleared(sandbox, account, connection, found)
    assert made == 2 and BrokerTransaction.objects.filter(broker_id=deposit["broker_id"]).exists()


def test_a_rounded_quantity_is_precision_only_and_clears(sandbox, alpaca):
    account, connection, truth = alpaca
    exact = held(truth, "ETH")                                   # 1.269464004
    inject(sandbox, account["account_id"], kind="round", symbol="ETH", decimals=8)

    run, made = sync(connection, ENDPOINT, sandbox)
    [found] = open_breaks(connection)
    rounded = exact.quantize(Decimal("1e-8"))                    # 1.26946400: 0.000000004 below a satoshi
    assert (found.kind, found.asset.symbol, found.precision) == ("precision", "ETH", Decimal("1e-8"))
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (rounded, exact, rounded - exact)
    assert "0.00000001" in found.detail
    # rounding cannot be a missing record: no re-pull
    assert made == 0 and "requests" not in run.steps["reconcile"]

    assert_cleared(sandbox, account, connection, found)


def test_a_break_that_lasts_is_updated_not_repeated(sandbox, alpaca):
    account, connection, truth = alpaca
    fill = middle(truth, "trade", -1)
    inject(sandbox, account["account_id"], kind="drop", record=fill["broker_id"])
    first, _ = sync(connection, ENDPOINT, sandbox)
    second, made = sync(connection, ENDPOINT, sandbox)
    [found] = Break.objects.filter(connection=connection)
    assert found.found_by_run_id == first.pk and found.last_run_id == second.pk and found.resolved_at is None
    assert found.repulls == 2 and made >= 1                     # its window is small: asked for again
    assert second.steps["reconcile"]["new"] == 0 and second.steps["reconcile"]["breaks"] == 1


def test_after_a_clean_reconcile_a_new_difference_is_asked_for_since_then(sandbox, alpaca):
    """The mark: at the last reconcile everything added up, so a new cash difference lies in
    what was fetched since (from two days before, for records filed late): one page, not the
    whole history's two."""
    account, connection, _ = alpaca
    sync(connection, ENDPOINT, sandbox)
    mark = ReconcileMark.objects.get(connection=connection).through
    added = sandbox_advance(sandbox, account["account_id"], fills=1, deposit=True, **QUIET)
    deposit = added["activities"][0]                              # advance posts the deposit first
    inject(sandbox, account["account_id"], kind="drop", record=deposit)

    run, made = sync(connection, ENDPOINT, sandbox)
    [found] = open_breaks(connection)
    assert (found.kind, found.difference) == ("cash", Decimal("1000"))       # advance deposits 1,000 USD
    assert found.window_start == mark - timedelta(days=2)
    assert made == run.steps["reconcile"]["requests"] == 1
