"""The connection services, called directly (the API tests cover the same through HTTP).
Keys are checked by the Alpaca sandbox over real HTTP."""
from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection as db

from backend.brokers.dtos import Credentials
from backend.connections import services
from backend.connections.models import BrokerConnection
from backend.core.exceptions import ApplicationError
from backend.sync.models import SyncRun
from tests.api.factories import ConnectionFactory, PortfolioFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


def create(user, account, **kw):
    return services.connection_create(
        owner=user, broker="alpaca", environment=account["environment"], label=kw.pop("label", "Alpaca paper"),
        credentials=kw.pop("credentials", Credentials(**account["credentials"])), **kw)


class TestConnectionCreate:
    def test_defaults(self, user, account):
        connection = create(user, account)

        assert connection.broker_account_id == account["broker_account_id"]
        assert connection.sync_interval == timedelta(hours=1)
        assert connection.enabled_streams() == ["positions", "transactions", "orders"]   # what Alpaca offers
        assert connection.portfolio.name == "Alpaca paper"
        assert SyncRun.objects.get(connection=connection).trigger == "initial"

    def test_keeps_only_the_credential_fields_the_broker_uses(self, user, account):
        connection = create(user, account,
                            credentials=Credentials(**account["credentials"], access_token="not-for-this-broker"))
        connection.refresh_from_db()
        assert connection.access_token == ""

    def test_an_unnamed_connection_gets_a_portfolio_named_after_the_broker(self, user, account):
        assert create(user, account, label="").portfolio.name == "Alpaca (paper)"

    def test_refuses_someone_elses_portfolio(self, user, account):
        with pytest.raises(ApplicationError) as error:
            create(user, account, portfolio=PortfolioFactory())
        assert "portfolio" in error.value.fields

    def test_a_duplicate_inserted_by_a_parallel_request_is_reported_as_a_duplicate(self, user, account):
        create(user, account)
        # The pre-check misses the row (as if the other request committed just after it).
        with mock.patch.object(services, "_already_connected", side_effect=[False, True]):
            with pytest.raises(ApplicationError, match="already connected"):
                create(user, account)
        assert BrokerConnection.objects.count() == 1

    def test_the_secret_column_holds_a_token_not_the_secret(self, user, account):
        keys = account["credentials"]
        connection = create(user, account)
        with db.cursor() as cursor:
            cursor.execute("SELECT api_secret FROM connections_brokerconnection WHERE id = %s", [connection.pk])
            token = bytes(cursor.fetchone()[0])
        assert keys["api_secret"].encode() not in token and token.startswith(b"gAAAAA")


class TestConnectionUpdate:
    def test_settings_only_needs_no_broker(self, user):
        connection = ConnectionFactory(owner=user, broker="retired-broker")
        updated = services.connection_update(connection=connection, label="kept", sync_interval=timedelta(minutes=5))
        assert (updated.label, updated.sync_interval) == ("kept", timedelta(minutes=5))

    def test_refuses_to_switch_off_every_stream(self, user):
        connection = ConnectionFactory(owner=user, sync_orders=False)
        with pytest.raises(ApplicationError, match="Invalid input"):
            services.connection_update(connection=connection, streams={"positions": False, "transactions": False})


class TestConnectionSync:
    def test_a_failing_connection_may_still_be_synced_by_hand(self, user):
        run, created = services.connection_sync(connection=ConnectionFactory(owner=user, status="error"))
        assert created and run.trigger == "api"

    def test_an_expired_connection_may_not(self, user):
        with pytest.raises(ApplicationError) as error:
            services.connection_sync(connection=ConnectionFactory(owner=user, status="expired"))
        assert error.value.status == 409


def test_disconnect_ends_the_active_run_so_it_cannot_mark_the_connection_expired(user):
    connection = ConnectionFactory(owner=user)
    running = SyncRunFactory(connection=connection, state="running", current_step="transactions")
    finished = SyncRunFactory(connection=connection, state="succeeded")

    services.connection_disconnect(connection=connection)

    running.refresh_from_db()
    finished.refresh_from_db()
    assert (running.state, running.error_kind) == ("failed", "canceled") and running.finished_at
    assert finished.state == "succeeded"
    connection.refresh_from_db()
    assert (connection.api_key, connection.api_secret, connection.key_hint) == ("", "", "")
