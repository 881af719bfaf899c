"""The one session every adapter sends through, against the Alpaca sandbox over HTTP:
in-place retries, 429 handling, learning from headers, the error table, no secrets."""
from __future__ import annotations

import time

import pytest
import requests

from backend.brokers.adapters.alpaca import AlpacaAdapter
from backend.brokers.dtos import Credentials
from backend.brokers.errors import AuthError, PermanentError, RateLimited, TransientError
from backend.brokers.http import BrokerSession, SessionPolicy
from backend.brokers.ratelimit import RateLimiter, RateRule
from sandbox.faults import FaultPlan
from tests.factories import sandbox_account


@pytest.fixture
def account(sandbox):
    return sandbox_account(sandbox, broker="alpaca", environment="live", seed=3, positions=3, activities=20)


def session(sandbox, account, *, limiter=None, policy=None, sleeps=None):
    creds = Credentials(**account["credentials"])
    return BrokerSession(broker="alpaca", base_url=sandbox.urls["alpaca-live"], scope="alpaca:test:acct",
                         limiter=limiter, policy=policy or SessionPolicy(), vendor_errors=AlpacaAdapter.vendor_errors,
                         secrets=creds.secrets(), sleep=(sleeps.append if sleeps is not None else lambda s: None))


def headers(account):
    c = account["credentials"]
    return {"APCA-API-KEY-ID": c["api_key"], "APCA-API-SECRET-KEY": c["api_secret"]}


def test_transient_errors_are_retried_in_place_then_raised(sandbox, account):
    sandbox.faults.set(FaultPlan(target="alpaca-live", error_rate=1.0, error_status=503))
    s = session(sandbox, account, policy=SessionPolicy(transient_retries=2))
    with pytest.raises(TransientError):
        s.get_json("/v2/account", headers=headers(account))
    assert s.requests_made == 3


def test_a_5xx_then_success_is_invisible_to_the_caller(sandbox, account):
    sandbox.faults.set(FaultPlan(target="alpaca-live", fail_next=1, error_status=502))
    s = session(sandbox, account)
    assert s.get_json("/v2/account", headers=headers(account))["id"] == account["broker_account_id"]
    assert s.requests_made == 2


def test_short_429_is_waited_in_place_and_blocks_the_scope(sandbox, account, redis_client):
    limiter = RateLimiter(redis_client, {"alpaca": RateRule("window", 200, 61)})
    blocked_while_waiting: list[float] = []

    def sleep(seconds: float) -> None:
        blocked_while_waiting.append(limiter.blocked_for("alpaca:test:acct"))   # every worker waits too
        time.sleep(seconds)

    sandbox.faults.set(FaultPlan(target="alpaca-live", burst_429=1, retry_after=1))
    s = session(sandbox, account, limiter=limiter)
    s.sleep = sleep
    started = time.monotonic()
    s.get_json("/v2/account", headers=headers(account))
    assert s.rate_limited == 1 and blocked_while_waiting[0] > 0.5
    assert time.monotonic() - started >= 1.0


def test_long_429_gives_the_worker_back(sandbox, account):
    sandbox.faults.set(FaultPlan(target="alpaca-live", burst_429=1, retry_after=30))
    s = session(sandbox, account, policy=SessionPolicy(max_inplace_wait=5))
    with pytest.raises(RateLimited) as caught:
        s.get_json("/v2/account", headers=headers(account))
    assert caught.value.retry_after >= 30


def test_a_zero_retry_after_is_never_trusted(sandbox, account, redis_client):
    limiter = RateLimiter(redis_client, {"alpaca": RateRule("window", 200, 61)})
    sandbox.faults.set(FaultPlan(target="alpaca-live", burst_429=3, retry_after=0))
    s = session(sandbox, account, limiter=limiter, policy=SessionPolicy(max_inplace_wait=0.5))
    with pytest.raises(RateLimited) as caught:
        s.get_json("/v2/account", headers=headers(account))
    assert caught.value.retry_after >= 1.0


def test_headers_teach_the_limiter_what_another_app_spent(sandbox, account, redis_client):
    limiter = RateLimiter(redis_client, {"alpaca": RateRule("window", 200, 61)})
    for _ in range(30):                                          # someone else uses the same key
        requests.get(sandbox.urls["alpaca-live"] + "/v2/account", headers=headers(account), timeout=5)
    s = session(sandbox, account, limiter=limiter)
    s.get_json("/v2/account", headers=headers(account))
    assert limiter.used("alpaca", "alpaca:test:acct") >= 31


def test_status_table_and_no_secret_in_messages(sandbox, account):
    bad = dict(account, credentials={**account["credentials"], "api_secret": account["credentials"]["api_secret"] + "x"})
    s = session(sandbox, bad)
    with pytest.raises(AuthError) as caught:
        s.get_json("/v2/account", headers=headers(bad))
    assert bad["credentials"]["api_secret"][:12] not in str(caught.value)
    with pytest.raises(PermanentError):
        session(sandbox, account).get_json("/v2/orders/not-an-order", headers=headers(account))


def test_malformed_body_is_transient(sandbox, account):
    sandbox.faults.set(FaultPlan(target="alpaca-live", malformed_rate=1.0))
    with pytest.raises(TransientError):
        session(sandbox, account, policy=SessionPolicy(transient_retries=0)).get_json(
            "/v2/positions", headers=headers(account))


def test_waits_in_place_are_capped_in_all_and_per_broker(sandbox, account, redis_client):
    """A spent budget never holds a thread for long, nor more than max_inplace_waiters
    threads per broker: past that, the wait is raised to the task (local: our own pacing)."""
    import threading

    limiter = RateLimiter(redis_client, {"alpaca": RateRule("window", 1, 61)})
    policy = SessionPolicy(max_inplace_wait=100.0, max_inplace_waiters=1)
    first = session(sandbox, account, limiter=limiter, policy=policy)
    first.get_json("/v2/account", headers=headers(account))          # the budget of 1 is spent
    asleep, release = threading.Event(), threading.Event()

    def sleeper(seconds):
        asleep.set()
        release.wait(5)
        raise RuntimeError("stop waiting")                         # ends the first thread's wait

    waiting = BrokerSession(broker="alpaca", base_url=sandbox.urls["alpaca-live"], scope="alpaca:test:acct",
                            limiter=limiter, policy=policy, vendor_errors=AlpacaAdapter.vendor_errors, sleep=sleeper)
    thread = threading.Thread(target=lambda: pytest.raises(RuntimeError, waiting.get_json, "/v2/account",
                                                           headers=headers(account)))
    thread.start()
    assert asleep.wait(5)
    second = session(sandbox, account, limiter=limiter, policy=policy, sleeps=[])
    with pytest.raises(RateLimited) as raised:                       # the one waiter's place is taken
        second.get_json("/v2/account", headers=headers(account))
    assert raised.value.local and 0 < raised.value.retry_after <= 61
    release.set()
    thread.join(5)

    short = session(sandbox, account, limiter=limiter, policy=SessionPolicy(max_inplace_wait=30.0), sleeps=[])
    with pytest.raises(RateLimited) as raised:                       # ~61 s in all is more than 30
        short.get_json("/v2/account", headers=headers(account))
    assert raised.value.local and short.requests_made == 0


def test_a_budget_whose_steps_hold_slots_lets_each_slot_holder_wait_in_place(sandbox, account, redis_client):
    """A rule that caps its steps by slots (Binance: max_active_steps) already caps how many
    threads spend the budget: as many may sleep a short wait as there are slots, then the
    per-broker cap applies again."""
    import threading

    limiter = RateLimiter(redis_client, {"alpaca": RateRule("window", 1, 61, max_active_steps=2)})
    policy = SessionPolicy(max_inplace_wait=100.0, max_inplace_waiters=1)
    session(sandbox, account, limiter=limiter, policy=policy).get_json("/v2/account", headers=headers(account))
    asleep, release = threading.Semaphore(0), threading.Event()

    def sleeper(seconds):
        asleep.release()
        release.wait(5)
        raise RuntimeError("stop waiting")

    threads = []
    for _ in range(2):                                               # two slot holders sleep in place
        waiting = BrokerSession(broker="alpaca", base_url=sandbox.urls["alpaca-live"], scope="alpaca:test:acct",
                                limiter=limiter, policy=policy, vendor_errors=AlpacaAdapter.vendor_errors,
                                sleep=sleeper)
        threads.append(threading.Thread(target=lambda w=waiting: pytest.raises(
            RuntimeError, w.get_json, "/v2/account", headers=headers(account))))
        threads[-1].start()
        assert asleep.acquire(timeout=5)
    slept: list[float] = []
    third = session(sandbox, account, limiter=limiter, policy=policy, sleeps=slept)
    with pytest.raises(RateLimited) as raised:                       # a third is handed to its task at once
        third.get_json("/v2/account", headers=headers(account))
    assert raised.value.local and raised.value.scope == "alpaca:test:acct" and slept == []
    release.set()
    for thread in threads:
        thread.join(5)


def test_broker_sessions_read_proxies_from_the_environment_only_when_it_has_some(monkeypatch, tmp_path):
    """Without proxy variables a broker session never looks at the environment (no ~/.netrc
    credentials sent to a broker, no per-request lookups); with one, requests uses it."""
    from backend.brokers.egress import broker_http

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password leaked\n")
    monkeypatch.setenv("NETRC", str(netrc))
    session = broker_http()
    assert session.trust_env is False
    prepared = session.prepare_request(requests.Request("GET", "http://127.0.0.1:1/x"))
    settings = session.merge_environment_settings(prepared.url, {}, None, None, None)
    assert "Authorization" not in prepared.headers and settings["proxies"] == {}

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxied = broker_http()
    assert proxied.trust_env is True
    assert proxied.merge_environment_settings("https://api.binance.com/x", {}, None, None, None)["proxies"][
        "https"] == "http://proxy.internal:3128"
