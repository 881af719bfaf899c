"""The admin pages render, and a connection's keys never appear on them."""
from __future__ import annotations

import pytest

from tests.factories import UserFactory

from .factories import ConnectionFactory, OrderFactory, PositionFactory, SyncRunFactory, TransactionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def connection():
    connection = ConnectionFactory()
    for factory in (PositionFactory, TransactionFactory, OrderFactory, SyncRunFactory):
        factory(connection=connection)
    return connection


@pytest.mark.parametrize("model", ["connections/brokerconnection", "sync/syncrun", "sync/synccursor",
                                   "sync/brokerposition", "sync/brokertransaction", "sync/brokerorder",
                                   "portfolio/portfolio", "portfolio/asset"])
def test_changelists_render_without_secrets(admin_client, connection, model):
    response = admin_client.get(f"/admin/{model}/", {"q": "a"})
    assert response.status_code == 200
    assert connection.api_secret not in response.content.decode()
    assert admin_client.get(f"/admin/{model}/").status_code == 200


def test_connection_form_shows_the_hint_only_and_saving_it_keeps_the_keys(admin_client, connection):
    page = admin_client.get(f"/admin/connections/brokerconnection/{connection.pk}/change/").content.decode()
    assert "****7QX2" in page
    for secret in (connection.api_key, connection.api_secret):
        assert secret not in page
    assert 'name="api_key"' not in page and 'name="api_secret"' not in page

    response = admin_client.post(f"/admin/connections/brokerconnection/{connection.pk}/change/", {
        "owner": connection.owner_id, "portfolio": connection.portfolio_id, "label": "renamed by admin",
        "status": "active", "status_reason": "", "sync_interval": "01:00:00", "sync_positions": "on",
        "sync_transactions": "on", "next_sync_at_0": "", "next_sync_at_1": "", "error_count": "0"})
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert connection.label == "renamed by admin"
    assert connection.api_secret == f"secret-{connection.api_key}"


def test_connections_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get("/admin/connections/brokerconnection/add/").status_code == 403
