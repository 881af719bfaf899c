"""POST/GET/PATCH/DELETE /api/v1/connections/ and the sync / disconnect actions. Every key
check goes to the broker sandbox over real HTTP (an Alpaca paper account unless a test needs
another broker); the broker's answer is picked by the account, its keys and the sandbox's
fault plans. Alpaca-specific flows are in test_connections_sandbox.py."""
from __future__ import annotations

import json
import os
import re
from datetime import timedelta

import pytest
from celery.signals import after_task_publish
from django.db import connection as db
from django.utils import timezone

from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio
from backend.sync.models import BrokerPosition, BrokerTransaction, SyncRun
from sandbox.faults import FaultPlan

from .factories import ConnectionFactory, PortfolioFactory, PositionFactory, SyncRunFactory, TransactionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/connections/"
LABEL = "My Alpaca"
SECRET_FIELDS = ("api_key", "api_secret", "access_token", "refresh_token")
SUPPORTED = "alpaca, binance, coinbase, ibkr, kraken"
ALPACA_WARNING = "Alpaca keys can always place orders; brokersync only reads with them."
COINBASE_TRADE_WARNING = "This key can trade; a sync needs a view-only key."


def connect(api, account, **overrides):
    body = {"broker": "alpaca", "environment": account["environment"], "label": LABEL, **account["credentials"],
            **overrides}
    return api.post(URL, body, format="json")


def stored_connection(user, account, **fields) -> BrokerConnection:
    """A connection to the sandbox account as stored earlier, under keys that have since been
    replaced: the account's own keys are the new ones."""
    return ConnectionFactory(owner=user, broker="alpaca", environment=account["environment"],
                             broker_account_id=account["broker_account_id"], **fields)


def hint(keys) -> str:
    return "****" + keys["api_key"][-4:]


def assert_no_secret(response, *secrets, error=False):
    """No secret value anywhere in the body; a connection shows no credential field at all."""
    text = response.content.decode()
    for secret in secrets:
        assert secret not in text
    if not error:
        for name in SECRET_FIELDS:
            assert f'"{name}"' not in text


@pytest.fixture
def published():
    """Celery messages this process publishes, as (queue, task, args, id): the signal fires
    once the broker (Redis db 15) has taken the message."""
    sent = []

    def note(sender=None, headers=None, routing_key=None, **kw):
        sent.append((routing_key, headers["task"], headers["argsrepr"], headers["id"]))

    after_task_publish.connect(note, weak=False)
    yield sent
    after_task_publish.disconnect(note)


@pytest.fixture
def run_ids_no_other_database_has():
    """A run's message goes to the shared sync.<broker> queue, where a worker of another test
    session may take it and look the run up in *its* database. Number our runs far beyond
    anything another session has, so such a worker finds no run and ignores the message."""
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('sync_syncrun', 'id')")
        [sequence] = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        last_value, is_called = cursor.fetchone()
        cursor.execute("SELECT setval(%s, %s)", [sequence, 10**15 + os.getpid() * 10**5])
    yield
    with db.cursor() as cursor:                     # sequences ignore the test's rollback
        cursor.execute("SELECT setval(%s, %s, %s)", [sequence, last_value, is_called])


class TestConnectionCreate:
    def test_good_keys_store_the_connection_and_queue_the_first_sync(self, api, user, account):
        keys = account["credentials"]
        response = connect(api, account, sync_interval=900)

        assert response.status_code == 201, response.content
        body = response.json()
        connection = BrokerConnection.objects.get(pk=body["id"])
        assert connection.owner == user
        assert (connection.broker, connection.environment) == ("alpaca", "paper")
        assert body["broker_account_id"] == account["broker_account_id"]          # the broker's own id
        assert body["status"] == "pending"
        assert body["key_hint"] == hint(keys)
        assert body["warnings"] == [ALPACA_WARNING]
        assert body["sync_interval"] == 900
        assert body["sync_positions"] and body["sync_transactions"] and body["sync_orders"]  # all Alpaca offers
        assert_no_secret(response, keys["api_key"], keys["api_secret"])
        # the keys are stored (encrypted) and read back as given
        assert (connection.api_key, connection.api_secret) == (keys["api_key"], keys["api_secret"])
        portfolio = Portfolio.objects.get(pk=body["portfolio"])
        assert (portfolio.owner, portfolio.name) == (user, LABEL)
        assert abs(connection.next_sync_at - (timezone.now() + timedelta(seconds=900))) < timedelta(seconds=30)
        run = SyncRun.objects.get(connection=connection)
        assert (run.state, run.trigger) == ("queued", "initial")

    def test_the_first_sync_is_sent_to_the_brokers_queue_on_commit(
            self, api, account, published, run_ids_no_other_database_has, redis_client,
            django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = connect(api, account)
            assert response.status_code == 201, response.content
            run = SyncRun.objects.get(connection_id=response.json()["id"])
            assert published == []                                      # not before the commit

        assert len(callbacks) == 1
        [(queue, task, args, message_id)] = published
        assert (queue, task, args) == ("sync.alpaca", "sync.fetch_positions", f"({run.pk},)")
        # Take the message back if no worker has yet: nobody needs it once this test ends.
        for raw in redis_client.lrange(queue, 0, -1):
            if json.loads(raw)["headers"]["id"] == message_id:
                redis_client.lrem(queue, 1, raw)

    def test_bad_keys_are_a_400_with_the_brokers_reason_and_nothing_is_stored(self, api, account):
        response = connect(api, account, api_secret=account["credentials"]["api_secret"] + "x")

        assert response.status_code == 400
        body = response.json()
        assert body["message"] == "The broker rejected these credentials."
        [reason] = body["fields"].pop("api_key")
        assert "request is not authorized" in reason                     # Alpaca's own words
        assert body["fields"] == {}
        assert_no_secret(response, *account["credentials"].values(), error=True)
        assert not BrokerConnection.objects.exists()
        assert not Portfolio.objects.exists()
        assert not SyncRun.objects.exists()

    @pytest.mark.parametrize("outcome", ["down", "rate limited"])
    def test_broker_unreachable_or_rate_limiting_is_a_503_and_nothing_is_stored(self, api, sandbox, account,
                                                                                 outcome):
        if outcome == "down":
            sandbox.faults.set(FaultPlan(target="alpaca-paper", error_rate=1.0, error_status=503))
        else:       # a wait longer than the session may sit out in place
            sandbox.faults.set(FaultPlan(target="alpaca-paper", burst_429=10, retry_after=30))
        response = connect(api, account)

        assert response.status_code == 503, response.content
        message = response.json()["message"]
        assert "nothing was saved" in message
        if outcome == "down":
            assert "Could not reach Alpaca" in message
        else:
            # Alpaca's reset time, rounded up; never more than its 60 s window.
            seconds = int(re.search(r"Try again in (\d+) seconds", message)[1])
            assert 30 <= seconds <= 60, message
        assert not BrokerConnection.objects.exists() and not Portfolio.objects.exists()

    @pytest.mark.parametrize("can_trade, warnings", [(False, []), (True, [COINBASE_TRADE_WARNING])])
    def test_a_key_that_can_trade_is_accepted_with_a_warning(self, api, broker_account, can_trade, warnings):
        account = broker_account("coinbase", can_trade=can_trade)
        response = connect(api, account, broker="coinbase")

        assert response.status_code == 201, response.content
        assert response.json()["warnings"] == warnings
        assert BrokerConnection.objects.get(pk=response.json()["id"]).warnings == warnings

    @pytest.mark.parametrize("broker", ["nobroker", "ghost"])
    def test_a_broker_without_an_adapter_is_a_400(self, api, account, unloadable_adapter, broker):
        unloadable_adapter("missing module")            # "ghost" is registered, its module is not there
        response = connect(api, account, broker=broker)

        assert response.status_code == 400
        assert response.json()["fields"]["broker"] == [f"Unknown broker {broker!r}. Supported: {SUPPORTED}."]
        assert not BrokerConnection.objects.exists()

    @pytest.mark.parametrize("overrides, field", [
        ({"environment": "sandbox"}, "environment"),
        ({"api_secret": ""}, "api_secret"),
        ({"sync_interval": 299}, "sync_interval"),
        ({"sync_positions": False, "sync_transactions": False, "sync_orders": False}, "non_field_errors"),
    ])
    def test_invalid_input_is_a_400_naming_the_field(self, api, account, overrides, field):
        response = connect(api, account, **overrides)

        assert response.status_code == 400
        assert field in response.json()["fields"], response.json()
        assert not BrokerConnection.objects.exists()

    def test_the_same_broker_account_twice_is_a_400(self, api, other_api, user, account):
        # The same account id in the other environment is another account: no conflict.
        ConnectionFactory(owner=user, broker="alpaca", environment="live",
                          broker_account_id=account["broker_account_id"])
        assert connect(api, account).status_code == 201
        response = connect(api, account, label="again")

        assert response.status_code == 400
        assert "already connected" in response.json()["message"]
        assert BrokerConnection.objects.filter(owner=user, environment="paper").count() == 1
        # ...but another user may connect the same account
        assert connect(other_api, account).status_code == 201

    def test_portfolio_can_be_chosen_but_only_among_your_own(self, api, user, other_user, account):
        mine, theirs = PortfolioFactory(owner=user), PortfolioFactory(owner=other_user)

        refused = connect(api, account, portfolio=theirs.pk)
        assert refused.status_code == 400 and "portfolio" in refused.json()["fields"]
        created = connect(api, account, portfolio=mine.pk)
        assert created.status_code == 201 and created.json()["portfolio"] == mine.pk

    def test_a_connection_without_a_portfolio_gets_its_own_even_when_the_name_is_taken(self, api, user, account):
        existing = PortfolioFactory(owner=user, name=LABEL)
        response = connect(api, account)
        portfolio = Portfolio.objects.get(pk=response.json()["portfolio"])
        assert portfolio.pk != existing.pk and portfolio.name == f"{LABEL} (2)"
        assert not existing.connections.exists()

    def test_needs_authentication(self, client):
        response = client.post(URL, {"broker": "alpaca"}, content_type="application/json")
        assert response.status_code == 401

    def test_session_authentication_works_too(self, client, user):
        client.force_login(user)
        assert client.get(URL).status_code == 200


class TestConnectionReadAndScope:
    def test_list_and_detail_show_only_your_connections_without_secrets(self, api, user, other_user):
        mine = ConnectionFactory(owner=user)
        ConnectionFactory(owner=other_user)

        listed = api.get(URL)
        assert [c["id"] for c in listed.json()] == [mine.pk]
        assert_no_secret(listed, mine.api_key, mine.api_secret)
        detail = api.get(f"{URL}{mine.pk}/")
        assert detail.json()["key_hint"] == "****7QX2"
        assert_no_secret(detail, mine.api_key, mine.api_secret)

    @pytest.mark.parametrize("method, suffix, body", [
        ("get", "", None), ("patch", "", {"label": "x"}), ("delete", "", None),
        ("post", "sync/", None), ("post", "disconnect/", None),
        ("get", "sync-runs/", None), ("get", "positions/", None), ("get", "transactions/", None),
        ("get", "orders/", None),
    ])
    def test_another_users_connection_is_a_404(self, api, other_user, method, suffix, body):
        theirs = ConnectionFactory(owner=other_user)
        response = getattr(api, method)(f"{URL}{theirs.pk}/{suffix}", body, format="json")

        assert response.status_code == 404
        assert response.json() == {"message": "Not found.", "fields": {}}
        theirs.refresh_from_db()
        assert theirs.label != "x" and theirs.status == "active" and not SyncRun.objects.exists()


class TestConnectionUpdate:
    def test_label_interval_and_streams(self, api, user):
        connection = ConnectionFactory(owner=user, last_sync_at=timezone.now() - timedelta(hours=2))
        response = api.patch(f"{URL}{connection.pk}/", {"label": "Renamed", "sync_interval": 600,
                                                        "sync_transactions": False}, format="json")

        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["label"], body["sync_interval"], body["sync_transactions"]) == ("Renamed", 600, False)
        connection.refresh_from_db()
        # a shorter interval counts from the last sync: this one is due now
        assert connection.next_sync_at < timezone.now()

    def test_new_keys_for_the_same_account_are_verified_and_stored(self, api, user, account):
        connection = stored_connection(user, account)
        keys = account["credentials"]
        response = api.patch(f"{URL}{connection.pk}/", keys, format="json")

        assert response.status_code == 200, response.content
        assert response.json()["key_hint"] == hint(keys)
        assert response.json()["warnings"] == [ALPACA_WARNING]
        assert_no_secret(response, keys["api_key"], keys["api_secret"])
        connection.refresh_from_db()
        assert (connection.api_key, connection.api_secret) == (keys["api_key"], keys["api_secret"])

    @pytest.mark.parametrize("case, field, words", [
        ("another account's keys", "api_key", "not {account_id}"),
        ("wrong secret", "api_key", "request is not authorized"),
        ("no secret", "api_secret", "required"),
    ])
    def test_keys_that_do_not_verify_or_reach_another_account_are_refused(self, api, user, account,
                                                                          broker_account, case, field, words):
        connection = stored_connection(user, account)
        before = (connection.api_key, connection.api_secret)
        keys = {"another account's keys": lambda: broker_account()["credentials"],
                "wrong secret": lambda: {**account["credentials"], "api_secret": "wrong"},
                "no secret": lambda: {"api_key": account["credentials"]["api_key"]}}[case]()
        response = api.patch(f"{URL}{connection.pk}/", keys, format="json")

        assert response.status_code == 400
        assert words.format(account_id=account["broker_account_id"]) in " ".join(response.json()["fields"][field])
        connection.refresh_from_db()
        assert (connection.api_key, connection.api_secret) == before

    @pytest.mark.parametrize("status", ["expired", "revoked", "error"])
    def test_new_keys_bring_a_halted_connection_back(self, api, user, account, status):
        connection = stored_connection(user, account, status=status, error_count=5,
                                       status_reason="request is not authorized", next_sync_at=None)
        response = api.patch(f"{URL}{connection.pk}/", account["credentials"], format="json")

        assert response.status_code == 200, response.content
        connection.refresh_from_db()
        assert (connection.status, connection.error_count, connection.status_reason) == ("pending", 0, "")
        assert connection.next_sync_at is not None and connection.next_sync_at <= timezone.now()


class TestConnectionDelete:
    def test_deletes_the_connection_and_its_data_but_not_the_portfolio(self, api, user):
        connection = ConnectionFactory(owner=user)
        PositionFactory(connection=connection)
        TransactionFactory(connection=connection)
        SyncRunFactory(connection=connection)

        response = api.delete(f"{URL}{connection.pk}/")

        assert response.status_code == 204
        assert not BrokerConnection.objects.exists()
        assert not (BrokerPosition.objects.exists() or BrokerTransaction.objects.exists()
                    or SyncRun.objects.exists())
        assert Portfolio.objects.filter(pk=connection.portfolio_id).exists()


class TestConnectionSync:
    def test_queues_a_run_and_returns_the_same_run_while_it_is_active(self, api, user):
        connection = ConnectionFactory(owner=user)

        first = api.post(f"{URL}{connection.pk}/sync/")
        second = api.post(f"{URL}{connection.pk}/sync/")

        assert first.status_code == second.status_code == 202
        assert first.json()["created"] is True and second.json()["created"] is False
        assert first.json()["id"] == second.json()["id"]
        assert (first.json()["state"], first.json()["trigger"]) == ("queued", "api")
        SyncRun.objects.filter(pk=first.json()["id"]).update(state="running")
        assert api.post(f"{URL}{connection.pk}/sync/").json()["id"] == first.json()["id"]

    @pytest.mark.parametrize("status", ["expired", "revoked"])
    def test_refused_until_the_keys_are_updated(self, api, user, status):
        connection = ConnectionFactory(owner=user, status=status)
        response = api.post(f"{URL}{connection.pk}/sync/")

        assert response.status_code == 409
        assert "update the keys first" in response.json()["message"]
        assert not SyncRun.objects.exists()


class TestConnectionDisconnect:
    def test_wipes_the_keys_stops_syncing_and_keeps_the_data(self, api, user):
        connection = ConnectionFactory(owner=user, next_sync_at=timezone.now())
        PositionFactory(connection=connection)
        run = SyncRunFactory(connection=connection, state="queued")
        old_key = connection.api_key

        response = api.post(f"{URL}{connection.pk}/disconnect/")

        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["status_reason"], body["next_sync_at"], body["key_hint"]) == (
            "revoked", "disconnected by user", None, "")
        connection.refresh_from_db()
        assert connection.credentials().secrets() == ()
        assert BrokerPosition.objects.filter(connection=connection).exists()
        run.refresh_from_db()
        assert run.state == "failed" and run.error_kind == "canceled"
        # the stored columns hold encrypted empty strings, not the old tokens
        with db.cursor() as cursor:
            cursor.execute("SELECT api_key, api_secret FROM connections_brokerconnection WHERE id = %s",
                           [connection.pk])
            key_token, secret_token = cursor.fetchone()
        assert old_key.encode() not in bytes(key_token)


def test_the_api_secret_column_holds_no_plaintext(api, account):
    keys = account["credentials"]
    created = connect(api, account).json()

    with db.cursor() as cursor:
        cursor.execute("SELECT api_key, api_secret, key_hint FROM connections_brokerconnection WHERE id = %s",
                       [created["id"]])
        key_token, secret_token, stored_hint = cursor.fetchone()
    for token in (bytes(key_token), bytes(secret_token)):
        assert keys["api_key"].encode() not in token and keys["api_secret"].encode() not in token
        assert token.startswith(b"gAAAAA")                     # a Fernet token (version byte 0x80)
    assert stored_hint == hint(keys)
    assert keys["api_secret"] not in json.dumps(created) and keys["api_key"] not in json.dumps(created)


def test_a_form_encoded_patch_leaves_the_switches_it_does_not_send(api, user):
    connection = ConnectionFactory(owner=user)
    response = api.patch(f"{URL}{connection.pk}/", {"label": "from a form"}, format="multipart")

    assert response.status_code == 200, response.content
    assert response.json()["sync_positions"] is True and response.json()["sync_transactions"] is True
