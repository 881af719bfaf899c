"""/portfolios/{id}/manual/transactions/: transactions typed by hand into a manual account,
validated like imports, with holdings rebuilt (and splits recomputed) after every change."""
from __future__ import annotations

from decimal import Decimal

import pytest

from backend.connections.models import BrokerConnection
from backend.sync.models import BrokerPosition, BrokerTransaction
from backend.reconcile.totals import differences_for
from backend.sync.signals import history_changed
from tests.api.factories import ConnectionFactory, PortfolioFactory, TransactionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def portfolio(user):
    return PortfolioFactory(owner=user)


def url(portfolio_id: int, transaction_id: int | None = None) -> str:
    return f"/api/v1/portfolios/{portfolio_id}/manual/transactions/" + (f"{transaction_id}/" if transaction_id else "")


def add(api, portfolio, **body):
    response = api.post(url(portfolio.pk), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def held(connection_id: int) -> dict[str, Decimal]:
    return {p.broker_symbol: p.quantity.normalize() for p in
            BrokerPosition.objects.filter(connection_id=connection_id, is_open=True)}


def test_a_manual_account_adds_up_its_history(api, portfolio):
    deposit = add(api, portfolio, type="deposit", occurred_at="2020-01-01", amount="5000")
    connection = BrokerConnection.objects.get(pk=deposit["connection"])
    assert (connection.broker, connection.label, connection.portfolio_id) == ("manual", "Manual", portfolio.pk)
    # an opening balance: 10 AAPL bought at 150 before the account's history starts (no cash moves)
    opening = add(api, portfolio, type="holding", occurred_at="2020-01-02", symbol="aapl", quantity="10",
                  price="150")
    assert (opening["type"], opening["quantity"], opening["price"]) == ("transfer", "10", "150")
    assert BrokerTransaction.objects.get(pk=opening["id"]).raw["cost_basis"] == "1500"
    add(api, portfolio, type="buy", occurred_at="2020-02-03", symbol="AAPL", quantity="5", price="300.10", fee="1")
    add(api, portfolio, type="sell", occurred_at="2020-03-02", symbol="AAPL", quantity="3", price="250", fee="0.5")
    add(api, portfolio, type="dividend", occurred_at="2020-05-14", symbol="AAPL", amount="9.84")
    add(api, portfolio, type="fee", occurred_at="2020-06-01", amount="2.5")
    add(api, portfolio, type="withdrawal", occurred_at="2020-07-01", amount="100")
    split = add(api, portfolio, type="split", occurred_at="2020-08-31", symbol="AAPL", split_to=4, split_from=1)
    # AAPL: 10 + 5 - 3 = 12 before the 4-for-1 split, which adds 12 x (4 - 1) / 1 = 36: 48
    assert BrokerTransaction.objects.get(pk=split["id"]).quantity == Decimal(36)
    # cash: 5000 - (5 x 300.10 + 1) + (3 x 250 - 0.5) + 9.84 - 2.5 - 100
    #     = 5000 - 1501.50 + 749.50 + 9.84 - 2.50 - 100 = 4155.34
    assert held(connection.pk) == {"AAPL": Decimal(48), "cash:USD": Decimal("4155.34")}
    assert differences_for(connection) == []


def test_a_split_follows_changes_to_what_came_before_it(api, portfolio):
    buy = add(api, portfolio, type="buy", occurred_at="2021-01-04", symbol="NVDA", quantity="10", price="13")
    split = add(api, portfolio, type="split", occurred_at="2021-07-20", symbol="NVDA", split_to=4, split_from=1)
    reverse = add(api, portfolio, type="split", occurred_at="2022-01-03", symbol="NVDA", split_to=1, split_from=3)
    # 10 -> 40 (adds 30) -> 1-for-3: 40 x (1 - 3) / 3 = -26.666666666666666666 (18 places, rounded toward zero)
    assert held(buy["connection"])["NVDA"] == Decimal("13.333333333333333334")
    changed = api.patch(url(portfolio.pk, buy["id"]), {"quantity": "12"}, format="json")
    assert changed.status_code == 200 and changed.json()["quantity"] == "12" and changed.json()["price"] == "13"
    # 12 -> 48 (adds 36) -> 48 x (1 - 3) / 3 = -32: 16
    assert BrokerTransaction.objects.get(pk=split["id"]).quantity == Decimal(36)
    assert BrokerTransaction.objects.get(pk=reverse["id"]).quantity == Decimal(-32)
    assert held(buy["connection"]) == {"NVDA": Decimal(16), "cash:USD": Decimal(-156)}     # 12 x 13 paid
    assert api.delete(url(portfolio.pk, buy["id"])).status_code == 204
    assert held(buy["connection"]) == {}                              # nothing held, nothing paid
    assert BrokerTransaction.objects.get(pk=split["id"]).quantity == 0


def test_every_change_tells_history_changed_when(api, portfolio, django_capture_on_commit_callbacks):
    sent = []
    history_changed.connect(receiver := lambda **kw: sent.append((kw["reason"], kw["since"].date().isoformat())))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            row = add(api, portfolio, type="deposit", occurred_at="2022-05-01", amount="10")
            api.patch(url(portfolio.pk, row["id"]), {"occurred_at": "2022-03-01"}, format="json")
            api.delete(url(portfolio.pk, row["id"]))
    finally:
        history_changed.disconnect(receiver)
    assert sent == [("manual", "2022-05-01"), ("manual", "2022-03-01"), ("manual", "2022-03-01")]


@pytest.mark.parametrize("body, errors", [
    ({"type": "buy", "occurred_at": "2020-01-01", "symbol": "AAPL", "quantity": "-1", "price": "1"},
     {"quantity": ["Ensure this value is greater than or equal to 0."]}),
    ({"type": "buy", "occurred_at": "2020-01-01", "symbol": "AAPL", "quantity": "0", "price": "1"},
     {"quantity": ["Must be greater than 0: the type sets the sign."]}),
    ({"type": "buy", "occurred_at": "2020-01-01", "symbol": "AAPL", "quantity": "1"},
     {"price": ["Required for a buy."]}),
    ({"type": "deposit", "occurred_at": "2020-01-01", "amount": "1", "symbol": "AAPL", "quantity": "2"},
     {"symbol": ["Not used by a deposit."], "quantity": ["Not used by a deposit."]}),
    ({"type": "deposit", "occurred_at": "2020-01-01", "amount": "1", "currency": "XYZ"},
     {"currency": ["Not an iso 4217 currency code: 'xyz'."]}),
    ({"type": "deposit", "occurred_at": "2999-01-01", "amount": "1"}, {"occurred_at": ["Must not be in the future."]}),
    ({"type": "deposit", "occurred_at": "2020-01-01", "amount": "1.0000000000000000001"},
     {"amount": ["Ensure that there are no more than 18 decimal places."]}),
    ({"type": "split", "occurred_at": "2020-01-01", "symbol": "AAPL", "split_to": 2, "split_from": 2},
     {"split_to": ["A split changes the number of shares: split_to and split_from differ."]}),
    ({"type": "split", "occurred_at": "2020-01-01", "symbol": "AAPL"},
     {"split_to": ["Required for a split."], "split_from": ["Required for a split."]}),
    ({"type": "swap", "occurred_at": "2020-01-01"}, {"type": ['"swap" is not a valid choice.']}),
])
def test_bad_input_is_a_400_per_field_and_changes_nothing(api, portfolio, body, errors):
    response = api.post(url(portfolio.pk), body, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == errors
    assert not BrokerConnection.objects.exists() and not BrokerTransaction.objects.exists()


def test_broker_and_imported_rows_cannot_be_changed_here(api, portfolio, user):
    synced = TransactionFactory(connection=ConnectionFactory(owner=user, portfolio=portfolio))
    for response in (api.patch(url(portfolio.pk, synced.pk), {"quantity": "1"}, format="json"),
                     api.delete(url(portfolio.pk, synced.pk))):
        assert response.status_code == 400
        assert response.json()["message"] == (
            f"Transaction {synced.pk} came from alpaca sync (connection {synced.connection_id}): only manual "
            "transactions can be changed here. It changes when its source does.")
    assert BrokerTransaction.objects.filter(pk=synced.pk, quantity=Decimal("1.5")).exists()


def test_named_accounts_list_and_filters(api, portfolio):
    add(api, portfolio, type="deposit", occurred_at="2020-01-01", amount="1")
    other = add(api, portfolio, type="deposit", occurred_at="2020-01-02", amount="2", account="Gold coins")
    assert other["account"] == "Gold coins"
    chosen = add(api, portfolio, type="deposit", occurred_at="2020-01-03", amount="3", connection=other["connection"])
    assert chosen["connection"] == other["connection"]
    body = api.get(url(portfolio.pk), {"connection": other["connection"]}).json()
    assert [r["amount"] for r in body["results"]] == ["3", "2"]
    assert api.get(url(portfolio.pk), {"page_size": 1}).json()["count"] == 3
    assert api.get(url(portfolio.pk), {"since": "bad"}).status_code == 400


def test_another_users_portfolio_and_transactions_are_404s(api, other_api, portfolio):
    row = add(api, portfolio, type="deposit", occurred_at="2020-01-01", amount="1")
    assert other_api.get(url(portfolio.pk)).status_code == 404
    assert other_api.post(url(portfolio.pk), {"type": "deposit", "occurred_at": "2020-01-01", "amount": "1"},
                          format="json").status_code == 404
    assert other_api.get(url(portfolio.pk, row["id"])).status_code == 404
    assert other_api.patch(url(portfolio.pk, row["id"]), {"amount": "5"}, format="json").status_code == 404
    assert other_api.delete(url(portfolio.pk, row["id"])).status_code == 404
    assert BrokerTransaction.objects.get(pk=row["id"]).amount == 1
