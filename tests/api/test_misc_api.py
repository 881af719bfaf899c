"""GET /brokers/, GET /portfolios/, the token endpoint, /healthz, the OpenAPI schema."""
from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

from backend.core import health

from .factories import ConnectionFactory, PortfolioFactory

pytestmark = pytest.mark.django_db
BROKERS = ["alpaca", "binance", "coinbase", "ibkr", "kraken"]


def test_brokers_lists_installed_adapters_with_their_fields(api):
    brokers = {b["key"]: b for b in api.get("/api/v1/brokers/").json()}

    assert list(brokers) == BROKERS
    alpaca = brokers["alpaca"]
    assert alpaca["name"] == "Alpaca"
    assert alpaca["environments"] == ["paper", "live"]
    assert alpaca["capabilities"] == ["orders", "positions", "transactions"]
    assert [(f["name"], f["secret"]) for f in alpaca["credential_fields"]] == [("api_key", False),
                                                                               ("api_secret", True)]
    assert "200 requests per minute" in alpaca["rate_limit"]
    for key in ("binance", "coinbase", "kraken"):
        assert brokers[key]["environments"] == ["live"]
        assert [f["name"] for f in brokers[key]["credential_fields"]] == ["api_key", "api_secret"]
    ibkr = brokers["ibkr"]            # the Flex token is the secret; the query id is not
    assert [(f["name"], f["secret"]) for f in ibkr["credential_fields"]] == [("api_secret", True), ("api_key", False)]
    assert "10 per minute" in ibkr["rate_limit"]


@pytest.mark.parametrize("failure", ["missing module", "import error", "missing class"])
def test_an_adapter_that_cannot_load_is_left_out_of_the_list(api, unloadable_adapter, failure):
    unloadable_adapter(failure)
    response = api.get("/api/v1/brokers/")

    assert response.status_code == 200
    assert [b["key"] for b in response.json()] == BROKERS             # "ghost" is not listed


def test_portfolios_list_your_portfolios_with_their_connections(api, user, other_user):
    portfolio = PortfolioFactory(owner=user)
    connections = [ConnectionFactory(owner=user, portfolio=portfolio) for _ in range(2)]
    empty = PortfolioFactory(owner=user)
    PortfolioFactory(owner=other_user)

    body = api.get("/api/v1/portfolios/").json()

    assert [(p["id"], sorted(p["connections"])) for p in body] == [
        (portfolio.pk, sorted(c.pk for c in connections)), (empty.pk, [])]


def test_a_token_is_obtained_with_username_and_password(client, user):
    user.set_password("correct horse")
    user.save()
    response = client.post("/api/v1/auth/token/", {"username": user.username, "password": "correct horse"})

    assert response.status_code == 200
    listed = client.get("/api/v1/connections/", HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert listed.status_code == 200


class TestHealth:
    def test_ok(self, client):
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}

    def test_redis_down_is_a_503_naming_it(self, client, settings):
        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "ok", "redis": "unavailable"}

    def test_database_down_is_a_503_naming_it(self, client, monkeypatch):
        def broken():
            raise health.connection.Database.OperationalError("server closed the connection")

        monkeypatch.setitem(health.CHECKS, "database", broken)
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["database"] == "unavailable" and response.json()["redis"] == "ok"


class TestSchema:
    def test_validates_without_warnings(self, tmp_path):
        out = tmp_path / "schema.yaml"
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
        paths = yaml.safe_load(out.read_text())["paths"]
        assert "/api/v1/connections/{connection_id}/transactions/" in paths
        assert "/api/v1/sync-runs/{run_id}/" in paths
        imports = paths["/api/v1/portfolios/{portfolio_id}/imports/"]
        assert "multipart/form-data" in imports["post"]["requestBody"]["content"]
        assert {"get", "patch", "delete"} <= set(paths["/api/v1/portfolios/{portfolio_id}/manual/transactions/"
                                                       "{transaction_id}/"])

    def test_served_with_docs(self, client):
        assert client.get("/api/schema/").status_code == 200
        assert client.get("/api/docs/").status_code == 200
