"""Portfolio APIs: management, value, history, returns; a connection moved between portfolios.
Another user's portfolio (or connection) is a 404 everywhere."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.dispatch import receiver

from backend.portfolio.history.rebuild import history_rebuild
from backend.portfolio.models import DailyValue, HistoryState, Portfolio
from backend.portfolio.signals import portfolio_settings_changed
from backend.sync.models import BrokerOrder, BrokerPosition, BrokerTransaction
from backend.sync.signals import history_changed
from tests.api.factories import ConnectionFactory, OrderFactory, PortfolioFactory

from .helpers import asset, closes, latest, position, tx

pytestmark = pytest.mark.django_db
D = Decimal
URL = "/api/v1/portfolios/"
A, B = date(2026, 3, 2), date(2026, 3, 3)


@pytest.fixture
def heard():
    """The signals this test's commits send: (signal name, kwargs)."""
    got = []

    @receiver(history_changed, weak=False, dispatch_uid="test-heard-history")
    def on_history(sender, **kw):
        got.append(("history_changed", kw))

    @receiver(portfolio_settings_changed, weak=False, dispatch_uid="test-heard-settings")
    def on_settings(sender, **kw):
        got.append(("portfolio_settings_changed", kw))

    yield got
    history_changed.disconnect(dispatch_uid="test-heard-history")
    portfolio_settings_changed.disconnect(dispatch_uid="test-heard-settings")


class TestManagement:
    def test_create_list_rename_and_delete(self, api, user):
        created = api.post(URL, {"name": "Retirement", "base_currency": "EUR", "cost_basis_method": "hifo"},
                           format="json")
        assert created.status_code == 201, created.content
        body = created.json()
        assert (body["name"], body["base_currency"], body["cost_basis_method"], body["wash_sales"]) == (
            "Retirement", "EUR", "hifo", True)
        assert body["connections"] == [] and body["latest_value"] is None
        assert [p["name"] for p in api.get(URL).json()] == ["Retirement"]

        renamed = api.patch(f"{URL}{body['id']}/", {"name": "Pension"}, format="json")
        assert renamed.status_code == 200 and renamed.json()["name"] == "Pension"
        assert api.delete(f"{URL}{body['id']}/").status_code == 204
        assert not Portfolio.objects.filter(owner=user).exists()

    def test_bad_input_is_a_400_per_field_and_changes_nothing(self, api, user):
        PortfolioFactory(owner=user, name="Taken")
        for payload, field in (({"name": "Taken"}, "name"), ({"name": "X", "base_currency": "XYZ"}, "base_currency"),
                               ({"name": "X", "cost_basis_method": "random"}, "cost_basis_method"), ({}, "name")):
            response = api.post(URL, payload, format="json")
            assert response.status_code == 400 and field in response.json()["fields"], (payload, response.json())
        assert Portfolio.objects.filter(owner=user).count() == 1
        mine = Portfolio.objects.get(owner=user)
        other = PortfolioFactory(owner=user, name="Other")
        assert api.patch(f"{URL}{other.pk}/", {"name": "Taken"}, format="json").status_code == 400
        assert api.patch(f"{URL}{mine.pk}/", {"base_currency": "usd"}, format="json").status_code == 400
        other.refresh_from_db()
        mine.refresh_from_db()
        assert (other.name, mine.base_currency) == ("Other", "USD")

    def test_a_blank_form_field_is_refused_not_taken_as_absent(self, api, user):
        # A form body's `cost_basis_method=` was read as "not sent" and the portfolio created
        # with FIFO; the schema says the value is one of the methods, so it is a 400.
        for field in ("cost_basis_method", "base_currency", "name"):
            body = {"name": "Blank", "cost_basis_method": "hifo", "base_currency": "EUR", field: ""}
            response = api.post(URL, body)                               # multipart, as a browser form
            assert response.status_code == 400 and field in response.json()["fields"], (field, response.json())
        assert not Portfolio.objects.filter(owner=user).exists()
        mine = PortfolioFactory(owner=user, name="Mine")
        assert api.patch(f"{URL}{mine.pk}/", {"cost_basis_method": ""}).status_code == 400
        assert api.post(URL, {"name": "Form", "cost_basis_method": "lifo"}).json()["cost_basis_method"] == "lifo"

    def test_a_settings_change_is_announced_once_committed(self, api, portfolio, heard,
                                                           django_capture_on_commit_callbacks, published):
        with django_capture_on_commit_callbacks(execute=True):
            api.patch(f"{URL}{portfolio.pk}/", {"name": "Renamed"}, format="json")
        assert heard == []                                  # a name is no setting
        with django_capture_on_commit_callbacks(execute=True):
            response = api.patch(f"{URL}{portfolio.pk}/", {"base_currency": "GBP", "wash_sales": False},
                                 format="json")
            assert response.status_code == 200 and heard == []      # not before the commit
        assert heard == [("portfolio_settings_changed",
                          {"signal": portfolio_settings_changed, "portfolio_id": portfolio.pk,
                           "changed": {"base_currency", "wash_sales"}})]
        # The base currency changed: the value history is queued for a full rebuild.
        assert HistoryState.objects.get(portfolio=portfolio).dirty_since == date(1, 1, 1)
        assert [(q, t, a) for q, t, a, _ in published if q == "portfolio"] == [
            ("portfolio", "portfolio.rebuild_history", f"({portfolio.pk},)")]
        # ... and the ledger recomputes (its own queue): wash sales and the base currency changed.
        assert [(q, t) for q, t, _, _ in published if q != "portfolio"] == [("ledger", "ledger.recompute")]

    def test_a_portfolio_a_connection_feeds_is_not_deleted_and_the_409_names_them(self, api, user, portfolio):
        connection = ConnectionFactory(owner=user, portfolio=portfolio, label="My Kraken", broker="kraken",
                                       environment="live")
        response = api.delete(f"{URL}{portfolio.pk}/")
        assert response.status_code == 409
        assert f"#{connection.pk} My Kraken (kraken live)" in response.json()["message"]
        assert response.json()["fields"]["connections"] == [f"#{connection.pk} My Kraken (kraken live)"]
        assert Portfolio.objects.filter(pk=portfolio.pk).exists()


def test_every_endpoint_is_a_404_for_another_users_portfolio(api, other_user, other_api):
    theirs = PortfolioFactory(owner=other_user)
    paths = ["", "value/", "history/", "returns/"]
    for path in paths:
        assert api.get(f"{URL}{theirs.pk}/{path}").status_code == 404, path
        assert other_api.get(f"{URL}{theirs.pk}/{path}").status_code == 200, path
    assert api.patch(f"{URL}{theirs.pk}/", {"name": "mine now"}, format="json").status_code == 404
    assert api.delete(f"{URL}{theirs.pk}/").status_code == 404
    assert api.get(URL).json() == []
    theirs.refresh_from_db()
    assert theirs.name != "mine now"


def test_value_endpoint_response(api, user, portfolio):
    alpaca = ConnectionFactory(owner=user, portfolio=portfolio)
    aapl, usd = asset("AAPL"), asset("USD", "fiat")
    position(alpaca, aapl, 3)
    position(alpaca, usd, "100.5")
    position(alpaca, asset("ZZZ"), 7)
    latest(aapl, "USD", "150.25", "alpaca", datetime.now(timezone.utc) - timedelta(minutes=5))
    body = api.get(f"{URL}{portfolio.pk}/value/").json()
    # 3 x 150.25 = 450.75, plus 100.50 cash = 551.25; ZZZ has no price and is left out.
    assert (body["currency"], body["total"], body["cash"], body["excludes_unpriced"]) == ("USD", "551.25", "100.50", 1)
    [holding] = body["holdings"]
    assert {k: holding[k] for k in ("quantity", "price", "quote", "source", "value")} == {
        "quantity": "3", "price": "150.25", "quote": "USD", "source": "alpaca", "value": "450.75"}
    assert holding["asset"]["symbol"] == "AAPL" and holding["weight"] == "0.81768707"
    assert body["cash_balances"][0]["currency"] == "USD" and body["unpriced"][0]["asset"]["symbol"] == "ZZZ"
    assert 299 <= body["oldest_price_age_seconds"] <= 400
    assert body["connections"][0]["id"] == alpaca.pk and body["connections"][0]["total"] == "551.25"


@pytest.fixture
def growing(user, portfolio):
    """100 deposited on A and 1 XYZ bought at 100; XYZ closes at 100 on A and 105 on B."""
    alpaca = ConnectionFactory(owner=user, portfolio=portfolio)
    xyz = asset("XYZ")
    closes(xyz, "USD", A, A, 100)
    closes(xyz, "USD", B, B, 105)
    tx(alpaca, A, "deposit", amount=100)
    tx(alpaca, A, "trade", asset=xyz, quantity=1, amount=-100)
    history_rebuild(portfolio_id=portfolio.pk, since=None, through=B)
    return alpaca


def test_history_and_returns_endpoints(api, portfolio, growing):
    history = api.get(f"{URL}{portfolio.pk}/history/", {"from": "2026-03-02", "to": "2026-03-03"}).json()
    assert (history["count"], history["currency"], history["interval"], history["connection"]) == (2, "USD", "day", None)
    assert history["history"] == {"through": "2026-03-03", "rebuilding": False}
    assert [(p["date"], p["value"], p["flows"], p["twr"], p["complete"]) for p in history["results"]] == [
        ("2026-03-02", "100.00", "100.00", "0.00000000", True), ("2026-03-03", "105.00", "0.00", "0.05000000", True)]
    weekly = api.get(f"{URL}{portfolio.pk}/history/", {"interval": "week", "connection": growing.pk}).json()
    assert [(p["date"], p["value"], p["flows"]) for p in weekly["results"]] == [("2026-03-03", "105.00", "100.00")]

    returns = api.get(f"{URL}{portfolio.pk}/returns/").json()
    # 100 in, worth 105: TWR 5 % (day B: 105 / 100 - 1); gain 5.
    assert (returns["twr"], returns["gain"], returns["flows"], returns["start_value"]) == (
        "0.05000000", "5.00", "100.00", "0.00")
    # XIRR over one day: 1.05^365 - 1, far past the searched range: said, not invented.
    assert returns["xirr"]["rate"] is None and returns["xirr"]["status"] == "no_solution"


def test_history_and_returns_validate_their_query(api, user, portfolio, growing):
    theirs = ConnectionFactory(owner=user)                  # mine, but it feeds another portfolio
    for path in ("history/", "returns/"):
        for query, field in (({"from": "2026-03-03", "to": "2026-03-02"}, "to"), ({"from": "yesterday"}, "from"),
                             ({"connection": theirs.pk}, "connection")):
            response = api.get(f"{URL}{portfolio.pk}/{path}", query)
            assert response.status_code == 400 and field in response.json()["fields"], (path, query)
    assert api.get(f"{URL}{portfolio.pk}/history/", {"interval": "hour"}).status_code == 400


class TestConnectionMove:
    def test_rows_follow_and_both_histories_are_asked_for(self, api, user, portfolio, heard, published,
                                                          django_capture_on_commit_callbacks, redis_client):
        target = PortfolioFactory(owner=user, name="Target")
        connection = ConnectionFactory(owner=user, portfolio=portfolio)
        btc = asset("BTC", "crypto")
        position(connection, btc, 1)
        first = tx(connection, A, "transfer", asset=btc, quantity=1)
        tx(connection, B, "fee", amount=-1)
        OrderFactory(connection=connection)
        DailyValue.objects.create(portfolio=portfolio, connection=connection, day=A, currency="USD", value=1, cash=0,
                                  flow=0)
        with django_capture_on_commit_callbacks(execute=True):
            response = api.patch(f"/api/v1/connections/{connection.pk}/", {"portfolio": target.pk}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["portfolio"] == target.pk
        for model in (BrokerPosition, BrokerTransaction, BrokerOrder):
            assert set(model.objects.filter(connection=connection).values_list("portfolio_id", flat=True)) == {
                target.pk}
        assert not DailyValue.objects.filter(connection=connection).exists()
        # history_changed for each portfolio, from the connection's first transaction, reason "moved"...
        assert [(kw["portfolio_id"], kw["connection_id"], kw["since"], kw["reason"]) for _, kw in heard] == [
            (portfolio.pk, connection.pk, first.occurred_at, "moved"),
            (target.pk, connection.pk, first.occurred_at, "moved")]
        # ...and both value histories queued for a rebuild from that day.
        assert dict(HistoryState.objects.values_list("portfolio_id", "dirty_since")) == {portfolio.pk: A,
                                                                                          target.pk: A}
        assert sorted(a for q, _, a, _ in published if q == "portfolio") == sorted(
            [f"({portfolio.pk},)", f"({target.pk},)"])

    def test_not_while_a_sync_step_writes_its_rows(self, api, user, portfolio, redis_client, monkeypatch):
        from backend.portfolio import services
        from workers.tasks import connection_lock

        monkeypatch.setattr(services, "MOVE_LOCK_WAIT_SECONDS", 0.5)      # not the 10 s a user would wait
        target = PortfolioFactory(owner=user, name="Target")
        connection = ConnectionFactory(owner=user, portfolio=portfolio)
        tx(connection, A, "deposit", amount=5)
        with connection_lock(connection.pk) as held:                       # what a running step holds
            assert held
            response = api.patch(f"/api/v1/connections/{connection.pk}/", {"portfolio": target.pk}, format="json")
        assert response.status_code == 409 and "sync" in response.json()["message"]
        assert set(BrokerTransaction.objects.filter(connection=connection).values_list("portfolio_id", flat=True)) == {
            portfolio.pk}
        assert api.patch(f"/api/v1/connections/{connection.pk}/", {"portfolio": target.pk},
                         format="json").json()["portfolio"] == target.pk

    def test_only_to_a_portfolio_of_the_connections_owner(self, api, other_api, user, other_user, portfolio):
        connection = ConnectionFactory(owner=user, portfolio=portfolio)
        theirs = PortfolioFactory(owner=other_user)
        refused = api.patch(f"/api/v1/connections/{connection.pk}/", {"portfolio": theirs.pk}, format="json")
        assert refused.status_code == 400 and "portfolio" in refused.json()["fields"]
        hijack = other_api.patch(f"/api/v1/connections/{connection.pk}/", {"portfolio": theirs.pk}, format="json")
        assert hijack.status_code == 404
        connection.refresh_from_db()
        assert connection.portfolio_id == portfolio.pk

    def test_an_asset_that_moved_between_connections_becomes_a_flow_of_each_portfolio(
            self, user, portfolio, redis_client, published):
        from backend.portfolio.services import connection_move

        coinbase = ConnectionFactory(owner=user, portfolio=portfolio, broker="coinbase", environment="live")
        kraken = ConnectionFactory(owner=user, portfolio=portfolio, broker="kraken", environment="live")
        btc = asset("BTC", "crypto")
        closes(btc, "USD", A, B, 50000, "coinbase")
        tx(coinbase, A, "transfer", asset=btc, quantity=1, hour=9)
        tx(coinbase, B, "transfer", asset=btc, quantity=-1, hour=10)
        tx(kraken, B, "transfer", asset=btc, quantity="0.999", hour=11)
        history_rebuild(portfolio_id=portfolio.pk, since=None, through=B)
        assert DailyValue.objects.get(portfolio=portfolio, connection=None, day=B).flow == 0

        other = PortfolioFactory(owner=user, name="Elsewhere")
        connection_move(connection=kraken, portfolio=other)
        for p in (portfolio, other):
            history_rebuild(portfolio_id=p.pk, since=A, through=B)
        # The same send now leaves one portfolio (-1 BTC = -50,000) and enters the other (+49,950).
        assert DailyValue.objects.get(portfolio=portfolio, connection=None, day=B).flow == -50000
        assert DailyValue.objects.get(portfolio=other, connection=None, day=B).flow == 49950
        assert not DailyValue.objects.filter(portfolio=portfolio, connection=kraken).exists()


def test_the_new_endpoints_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path, method in (("/api/v1/portfolios/", "post"), ("/api/v1/portfolios/{portfolio_id}/", "patch"),
                         ("/api/v1/portfolios/{portfolio_id}/", "delete"),
                         ("/api/v1/portfolios/{portfolio_id}/value/", "get"),
                         ("/api/v1/portfolios/{portfolio_id}/history/", "get"),
                         ("/api/v1/portfolios/{portfolio_id}/returns/", "get")):
        assert method in paths[path], (path, method)
    history = {p["name"] for p in paths["/api/v1/portfolios/{portfolio_id}/history/"]["get"]["parameters"]}
    assert {"from", "to", "interval", "connection", "page"} <= history
