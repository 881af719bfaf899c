"""Fixtures for portfolio tests: a user's portfolio with connections, and the Celery messages
a test publishes to the portfolio queue (taken back at the end when no worker took them)."""
from __future__ import annotations

import pytest
from celery.signals import after_task_publish

from tests.api.factories import ConnectionFactory, PortfolioFactory


@pytest.fixture
def portfolio(user):
    return PortfolioFactory(owner=user, name="Main")


@pytest.fixture
def connect(user):
    """connect("kraken", portfolio) -> a stored connection of `user` at that broker."""
    def make(broker: str, portfolio, **fields):
        return ConnectionFactory(owner=user, portfolio=portfolio, broker=broker,
                                 environment="paper" if broker == "alpaca" else "live", **fields)

    return make


@pytest.fixture
def published(redis_client):
    """(queue, task, args) of every message published meanwhile; the ones still waiting in
    Redis afterwards are removed, so no later worker takes a message meant for this test."""
    sent = []

    def note(sender=None, headers=None, routing_key=None, body=None, **kw):
        sent.append((routing_key, headers["task"], headers["argsrepr"], headers["id"]))

    after_task_publish.connect(note, weak=False)
    yield sent
    after_task_publish.disconnect(note)
    for queue, _, _, message_id in sent:
        for raw in redis_client.lrange(queue, 0, -1):
            if message_id.encode() in raw:
                redis_client.lrem(queue, 1, raw)
