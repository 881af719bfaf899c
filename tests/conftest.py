"""Shared fixtures: the sandbox over real HTTP, Redis, and a real Celery worker process.

The sandbox runs in-process on the port block that test_settings chose (BROKER_SANDBOX),
so the Celery worker subprocess reaches it by the same URLs as the tests do."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from sandbox.server import SandboxServer
from scripts.procs import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WORKER_LOG = ROOT / "var" / "test-worker.log"
# The session's Celery worker while it runs: {"hostname": ...}.
_RUNNING_WORKER: dict[str, str] = {}
# Celery's own keys: deleting them under a running worker would drop its queue bindings.
_CELERY_KEY_PREFIXES = (b"_kombu", b"unacked", b"default", b"sync.", b"celery")


def _sandbox_port() -> int:
    from django.conf import settings

    return int(settings.BROKER_SANDBOX.rpartition(":")[2])


@pytest.fixture(scope="session")
def sandbox_server():
    server = _start_sandbox()
    yield server
    server.stop()


def _start_sandbox() -> SandboxServer:
    """On the port block test_settings chose; if another process took a port meanwhile,
    on a fresh block, and every broker URL (ours and the worker's) follows it."""
    from django.conf import settings

    from backend.config.settings.brokers import _sandbox_urls
    from sandbox.endpoints import free_port_block

    for attempt in range(5):
        server = SandboxServer(port=_sandbox_port())
        try:
            return server.start()
        except OSError:
            server.stop()
            hostport = f"127.0.0.1:{free_port_block()}"
            os.environ["BROKER_SANDBOX"] = settings.BROKER_SANDBOX = hostport
            settings.BROKER_BASE_URLS = _sandbox_urls(hostport)
    raise RuntimeError("could not start the sandbox on a free port block")


@pytest.fixture
def sandbox(sandbox_server):
    """The running sandbox with no faults left over from an earlier test."""
    sandbox_server.faults.clear()
    yield sandbox_server
    sandbox_server.faults.clear()


def _clear_redis(client) -> None:
    for key in client.scan_iter(count=1000):
        if not key.startswith(_CELERY_KEY_PREFIXES):
            client.delete(key)


@pytest.fixture
def redis_client():
    """Redis db 15 with our own keys (limiter, locks, nonces) cleared before and after."""
    client = redis_lib.Redis.from_url(TEST_REDIS_URL)
    _clear_redis(client)
    yield client
    _clear_redis(client)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters and remembered key checks live in the cache every web process shares
    (Redis), and every test client comes from 127.0.0.1: each test starts with none."""
    from django.conf import settings

    location = settings.CACHES["default"]["LOCATION"]
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    client = redis_lib.Redis.from_url(location)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()
    yield


@pytest.fixture(autouse=True)
def _no_shared_markets():
    """Binance's exchangeInfo is kept per process for the syncs that follow (SHARED_MARKETS):
    each test counts its requests from none kept."""
    from backend.brokers.adapters.binance.adapter import SHARED_MARKETS

    SHARED_MARKETS.clear()
    yield


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def other_user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def api(user):
    """An API client authenticated as `user` (tests.factories.api_client_for)."""
    from tests.factories import api_client_for

    return api_client_for(user)


@pytest.fixture
def other_api(other_user):
    """An API client authenticated as a second user: their objects must be 404s to `api`."""
    from tests.factories import api_client_for

    return api_client_for(other_user)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, sandbox_server):
    """A real Celery worker on every queue, against the test database and the sandbox."""
    from django.db import connection

    from workers.routing import all_queue_names

    db_name = connection.settings_dict["NAME"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.config.test_settings",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}", "REDIS_URL": TEST_REDIS_URL,
           "SYNC_RUN_LEASE_SECONDS": "120", "SYNC_STEP_MAX_RETRIES": "4", "PYTHONUNBUFFERED": "1"}
    WORKER_LOG.parent.mkdir(exist_ok=True)
    hostname = f"test-worker-{os.getpid()}@{socket.gethostname()}"
    _refuse_foreign_workers()
    log = open(WORKER_LOG, "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=threads",
                             "--concurrency=4", "-Q", ",".join(all_queue_names()), f"--hostname={hostname}",
                             "--loglevel=INFO", "--without-gossip", "--without-mingle"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        _wait_for_worker(proc, hostname)
        proc.hostname = hostname
        _RUNNING_WORKER["hostname"] = hostname
        yield proc
    finally:
        _RUNNING_WORKER.clear()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _refuse_foreign_workers() -> None:
    """Another worker on the test queues (a concurrent or left-over session) would take this
    session's tasks: say so instead of failing later with its wrong sandbox or database."""
    from workers.celery_app import app

    others = app.control.ping(timeout=1.0)
    if others:
        names = sorted(name for reply in others for name in reply)
        raise RuntimeError(f"other Celery workers consume the test queues on {TEST_REDIS_URL}: {names}; "
                           "stop them (or give this session its own Redis database) and run again")


def _wait_for_worker(proc, hostname: str, timeout: float = 60) -> None:
    from workers.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with {proc.returncode}; see {WORKER_LOG}")
        if app.control.ping(destination=[hostname], timeout=1.0):
            return
    raise RuntimeError(f"celery worker did not answer a ping in {timeout}s; see {WORKER_LOG}")


def pytest_collection_modifyitems(config, items):
    """Every test that uses the session worker also gets `worker_drained`, which tears down
    before the test's database is flushed. Every other test on a committed database gets
    `worker_drained_if_running`: what it queued (a rebuild a backfill of closes asked for)
    would otherwise be taken by the session worker a test before started."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None:
            continue
        if "celery_worker_process" in names:
            if "worker_drained" not in names:
                names.append("worker_drained")
        elif any(m.kwargs.get("transaction") for m in item.iter_markers("django_db")):
            names.append("worker_drained_if_running")


@pytest.fixture
def worker_drained(request, _django_db_helper, celery_worker_process):
    """After a test that used the worker: drop what is still queued or scheduled for later
    (a debounced rebuild, a retry's countdown) and wait for running tasks to end, so no task of
    this test touches the database while it is flushed (TRUNCATE would deadlock with it) or
    runs later against the next test's rows. Depends on the database fixture so that it ends
    first."""
    yield
    _drain_worker(celery_worker_process.hostname)


@pytest.fixture
def worker_drained_if_running(_django_db_helper):
    yield
    if _RUNNING_WORKER:
        _drain_worker(_RUNNING_WORKER["hostname"])


def _drain_worker(hostname: str, timeout: float = 60) -> None:
    from workers.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.control.purge()
        inspect = app.control.inspect(destination=[hostname], timeout=2.0, limit=1)
        scheduled = [t["request"]["id"] for t in (inspect.scheduled() or {}).get(hostname, [])]
        if scheduled:
            app.control.revoke(scheduled)
        busy = (inspect.active() or {}).get(hostname, []) + (inspect.reserved() or {}).get(hostname, [])
        if not busy:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the test worker still runs tasks {timeout}s after the test ended; see {WORKER_LOG}")
