"""Factories and sandbox helpers shared by the sync and end-to-end tests."""
from __future__ import annotations

import time
from datetime import timedelta

import factory
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from backend.brokers.dtos import Credentials
from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


def api_client_for(user):
    """An API client that authenticates as `user` the way a real client does (a token in the
    Authorization header). Every test that calls the API gets its client here."""
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    _, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def sandbox_account(sandbox, **spec) -> dict:
    """Create a sandbox account through the control API (real HTTP)."""
    response = requests.post(sandbox.urls["control"] + "/control/accounts", json=spec, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def sandbox_advance(sandbox, account_id: str, **changes) -> dict:
    response = requests.post(f"{sandbox.urls['control']}/control/accounts/{account_id}/advance", json=changes,
                             timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def sandbox_truth(sandbox, account_id: str) -> dict:
    response = requests.get(f"{sandbox.urls['control']}/control/accounts/{account_id}/truth", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def sandbox_requests(sandbox, endpoint: str) -> int:
    return sandbox.stats.get(endpoint, {}).get("requests", 0)


def make_connection(account: dict, *, broker: str, user=None, **fields) -> BrokerConnection:
    """A connection to a sandbox account, stored the way the API stores one."""
    user = user or UserFactory()
    portfolio, _ = Portfolio.objects.get_or_create(owner=user, name=f"{broker} portfolio")
    connection = BrokerConnection(owner=user, portfolio=portfolio, broker=broker,
                                  environment=account["environment"],
                                  broker_account_id=account["broker_account_id"], status="active",
                                  next_sync_at=timezone.now() + timedelta(hours=1), **fields)
    connection.set_credentials(Credentials(**account["credentials"]))
    connection.save()
    return connection


def wait_for_run(run_id: int, timeout: float = 120):
    """Poll until the run reaches a final state (the worker runs in another process)."""
    from backend.sync.models import SyncRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = SyncRun.objects.get(pk=run_id)
        if not run.is_active:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {SyncRun.objects.get(pk=run_id).state} after {timeout}s")


def raw_db_connection(**options):
    """A psycopg connection of its own to the test database, beside Django's: another
    session that can hold locks or end other sessions while a test watches."""
    import psycopg
    from django.db import connection

    d = connection.settings_dict
    return psycopg.connect(dbname=d["NAME"], user=d["USER"] or "postgres", password=d.get("PASSWORD") or None,
                           host=d["HOST"] or "127.0.0.1", port=d["PORT"] or 5432, **options)
