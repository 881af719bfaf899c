"""Checking keys cannot be turned against other users: bad characters are 400s before any
broker call, a rejected key is answered from the cache, a spent budget is a 503 with
Retry-After at once, Binance checks spend their own slice of the IP's weight, and connect
and sync are throttled per user and per IP."""
from __future__ import annotations

import time

import pytest
from django.conf import settings

from backend.brokers import registry
from backend.brokers.base import egress_ip
from backend.connections.models import BrokerConnection
from tests.factories import UserFactory, api_client_for, sandbox_requests

pytestmark = pytest.mark.django_db
URL = "/api/v1/connections/"
ENVIRONMENT = {"alpaca": "paper", "binance": "live", "kraken": "live", "coinbase": "live"}
ENDPOINT = {"alpaca": "alpaca-paper", "binance": "binance", "kraken": "kraken", "coinbase": "coinbase"}


def connect(api, broker, credentials, **kw):
    body = {"broker": broker, "environment": ENVIRONMENT[broker], **credentials}
    return api.post(URL, body, format="json", **kw)


# -- characters (item: every bad input a 400) -----------------------------------------------------
@pytest.mark.parametrize("broker, field", [("alpaca", "api_key"), ("alpaca", "api_secret"),
                                           ("binance", "api_key"), ("kraken", "api_key")])
@pytest.mark.parametrize("bad", ["clé-ünïcode", "key\u2603snowman", "line\r\nbreak", "only\nlf", "tab\tin"])
def test_characters_no_key_holds_are_a_400_naming_the_field_on_post_and_patch(api, broker_account, sandbox, broker,
                                                                              field, bad):
    account = broker_account(broker)
    before = sandbox_requests(sandbox, ENDPOINT[broker])
    response = connect(api, broker, {**account["credentials"], field: bad})
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == [field]
    assert not BrokerConnection.objects.exists()

    connection_id = connect(api, broker, account["credentials"]).json()["id"]
    calls = sandbox_requests(sandbox, ENDPOINT[broker])
    patched = api.patch(f"{URL}{connection_id}/", {**account["credentials"], field: bad}, format="json")
    assert patched.status_code == 400 and list(patched.json()["fields"]) == [field]
    assert sandbox_requests(sandbox, ENDPOINT[broker]) == calls          # no broker call for either
    assert calls > before


def test_a_line_break_message_says_so_and_a_pem_key_keeps_its_lines(api, broker_account):
    response = connect(api, "alpaca", {**broker_account("alpaca")["credentials"], "api_secret": "abc\ndef"})
    assert response.json()["fields"] == {"api_secret": ["Must be one line: it holds a line break (CR or LF)."]}
    coinbase = broker_account("coinbase")
    assert "\n" in coinbase["credentials"]["api_secret"]
    assert connect(api, "coinbase", coinbase["credentials"]).status_code == 201


# -- a rejected key is remembered ------------------------------------------------------------------
def test_a_rejected_key_asked_again_is_answered_without_calling_the_broker(api, broker_account, sandbox,
                                                                          redis_client):
    account = broker_account("binance")
    wrong = {**account["credentials"], "api_secret": "S" * 64}
    first = connect(api, "binance", wrong)
    calls = sandbox_requests(sandbox, "binance")
    again = [connect(api, "binance", wrong) for _ in range(5)]

    assert first.status_code == 400 and "-1022" in first.json()["fields"]["api_key"][0]
    assert [r.json() for r in again] == [first.json()] * 5
    assert sandbox_requests(sandbox, "binance") == calls
    # the cache holds a digest of the keys, never the keys
    for key in redis_client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*"):
        blob = key + (redis_client.get(key) or b"")
        assert wrong["api_key"].encode() not in blob and wrong["api_secret"].encode() not in blob
    # other keys are still asked
    assert connect(api, "binance", account["credentials"]).status_code == 201
    assert sandbox_requests(sandbox, "binance") > calls


# -- Binance: checks spend their own slice; a spent slice is a 503 at once -------------------------
def test_a_bad_binance_key_costs_no_api_weight_and_checks_never_spend_the_syncs_share(api, broker_account,
                                                                                     sandbox, redis_client):
    account = broker_account("binance")
    limiter = registry.default_limiter()
    verify_scope = f"binance:verify:ip:{egress_ip()}"
    sim = sandbox.sims["binance"]
    weight_before = sim.weights.used("127.0.0.1", sim.rate_now_ms())

    assert connect(api, "binance", {**account["credentials"], "api_key": "K" * 64}).status_code == 400
    # apiRestrictions (1, /sapi) refused the key: nothing else was asked
    assert sim.weights.used("127.0.0.1", sim.rate_now_ms()) == weight_before
    assert limiter.used("binance-verify", verify_scope) == 1

    assert connect(api, "binance", account["credentials"]).status_code == 201
    assert limiter.used("binance-verify", verify_scope) == 1 + 1 + 20      # apiRestrictions, account


def test_when_the_check_budget_is_spent_the_answer_is_a_503_with_retry_after_at_once(api, broker_account,
                                                                                    sandbox, redis_client):
    account = broker_account("binance")
    limiter = registry.default_limiter()
    verify_scope = f"binance:verify:ip:{egress_ip()}"
    while limiter.acquire("binance-verify", verify_scope, 50) == 0:          # someone spent the slice
        pass
    calls = sandbox_requests(sandbox, "binance")

    started = time.monotonic()
    response = connect(api, "binance", account["credentials"])
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.content
    assert 1 <= int(response["Retry-After"]) <= 61
    assert f"Try again in {response['Retry-After']} seconds" in response.json()["message"]
    assert elapsed < settings.BROKER_KEY_CHECK_POLICY["max_inplace_wait"] + 1.5
    assert sandbox_requests(sandbox, "binance") == calls and not BrokerConnection.objects.exists()
    # the syncs' share is untouched: a sync step may still spend it
    assert limiter.acquire("binance", f"binance:ip:{egress_ip()}", 20) == 0


def test_a_broker_that_says_wait_longer_than_a_moment_is_a_503_at_once(api, broker_account, sandbox):
    from sandbox.faults import FaultPlan

    account = broker_account("alpaca")
    sandbox.faults.set(FaultPlan(target="alpaca-paper", burst_429=5, retry_after=30))
    started = time.monotonic()
    response = connect(api, "alpaca", account["credentials"])
    assert response.status_code == 503 and int(response["Retry-After"]) >= 30
    assert time.monotonic() - started < 2


# -- throttles ---------------------------------------------------------------------------------------
def test_connects_are_throttled_per_user_and_others_still_connect(api, broker_account, sandbox):
    account = broker_account("binance")
    wrong = {**account["credentials"], "api_key": "K" * 64}
    answers = [connect(api, "binance", wrong).status_code for _ in range(31)]     # connect: 30/hour per user
    assert answers[:30] == [400] * 30 and answers[30] == 429

    throttled = connect(api, "binance", account["credentials"])
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    other = api_client_for(UserFactory())
    assert connect(other, "binance", account["credentials"]).status_code == 201


def test_connects_are_throttled_per_ip_across_users(broker_account, sandbox):
    wrong = {**broker_account("binance")["credentials"], "api_key": "K" * 64}
    users = [api_client_for(UserFactory()) for _ in range(3)]
    ip = {"REMOTE_ADDR": "198.51.100.23"}
    answers = [connect(users[n // 30], "binance", wrong, **ip).status_code for n in range(60)]  # 60/hour per IP
    assert set(answers) == {400}
    assert connect(users[2], "binance", wrong, **ip).status_code == 429
    assert connect(users[2], "binance", wrong, REMOTE_ADDR="198.51.100.24").status_code == 400


def test_sync_requests_are_throttled_per_user(api, user, other_api, other_user):
    from tests.api.factories import ConnectionFactory

    mine, theirs = ConnectionFactory(owner=user), ConnectionFactory(owner=other_user)
    answers = [api.post(f"{URL}{mine.pk}/sync/").status_code for _ in range(61)]   # sync: 60/hour per user
    assert answers[:60] == [202] * 60 and answers[60] == 429
    assert other_api.post(f"{URL}{theirs.pk}/sync/").status_code == 202
