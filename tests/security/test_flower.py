"""Flower as `make run` and docker-compose start it (scripts/procs.flower_cmd, a real process)
next to a real worker whose Redis URL carries a password: every page asks for credentials,
the write API is not there, no page shows the password, and outside a local run it does not
start without credentials."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scripts.procs import die_with_parent, flower_cmd
from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "var" / "test-flower.log"
REDIS_PASSWORD = "redis-pw-" + secrets.token_hex(8)        # Redis' default user takes any password
DB_PASSWORD = "db-pw-" + secrets.token_hex(8)
LOGIN = ("ops", "flower-" + secrets.token_hex(8))
PRODUCTION = {"BROKERSYNC_ENV": "production", "DJANGO_SETTINGS_MODULE": "backend.config.settings",
              "SECRET_KEY": "flower-test-" + secrets.token_urlsafe(48), "FERNET_KEYS": "flower-test-fernet-key",
              "ALLOWED_HOSTS": "brokersync.example.com", "PYTHONUNBUFFERED": "1",
              "REDIS_URL": TEST_REDIS_URL.replace("redis://", f"redis://default:{REDIS_PASSWORD}@", 1),
              "DATABASE_URL": f"postgres://brokersync:{DB_PASSWORD}@127.0.0.1:5432/brokersync"}
PAGES = ["/", "/workers", "/worker/{worker}", "/tasks", "/tasks/datatable", "/task/abc", "/broker", "/api/workers",
         "/api/tasks", "/api/task/types", "/api/queues/length", "/api/task/info/abc", "/api/task/result/abc",
         "/metrics", "/healthcheck"]
WRITES = ["/api/worker/shutdown/{worker}", "/api/worker/pool/restart/{worker}", "/api/worker/pool/grow/{worker}",
          "/api/worker/pool/shrink/{worker}", "/api/worker/pool/autoscale/{worker}",
          "/api/worker/queue/add-consumer/{worker}", "/api/worker/queue/cancel-consumer/{worker}",
          "/api/task/apply/workers.tasks.dispatch_due", "/api/task/async-apply/workers.tasks.dispatch_due",
          "/api/task/send-task/workers.tasks.dispatch_due", "/api/task/abort/abc", "/api/task/timeout/abc",
          "/api/task/rate-limit/workers.tasks.dispatch_due", "/api/task/revoke/abc"]


def _env(**extra) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "DJANGO_"))
            and k not in ("SECRET_KEY", "FERNET_KEYS", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "DEBUG")}
    return {**keep, **PRODUCTION, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def flower():
    """(base URL, worker name): our own worker on a queue of its own, and Flower."""
    worker_name = f"flowertest-{os.getpid()}@{socket.gethostname()}"
    port = _free_port()
    LOG.parent.mkdir(exist_ok=True)
    log = open(LOG, "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", f"-Q=flowertest-{os.getpid()}",
         f"--hostname={worker_name}", "--without-mingle", "--without-gossip", "--loglevel=WARNING"],
        cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    web = subprocess.Popen(flower_cmd(port), cwd=ROOT, env=_env(FLOWER_BASIC_AUTH=":".join(LOGIN)), stdout=log,
                           stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_flower_sees(base, worker_name, (worker, web))
        yield base, worker_name
    finally:
        _stop(web)
        _stop(worker)
        log.close()


def _wait_until_flower_sees(base: str, worker_name: str, procs, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"the worker or Flower exited; see {LOG}")
        try:
            listed = requests.get(f"{base}/api/workers?refresh=1", auth=LOGIN, timeout=5)
            if listed.status_code == 200 and worker_name in listed.json():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"Flower did not see the worker in {timeout}s; see {LOG}")


def test_every_page_asks_for_credentials(flower):
    base, worker = flower
    for page in PAGES:
        url = base + page.format(worker=worker)
        anonymous = requests.get(url, timeout=10)
        wrong = requests.get(url, auth=(LOGIN[0], "not-it"), timeout=10)
        assert (anonymous.status_code, wrong.status_code) == (401, 401), page
    assert requests.get(f"{base}/metrics", auth=LOGIN, timeout=10).status_code == 200
    assert requests.get(f"{base}/healthcheck", auth=LOGIN, timeout=10).text == "OK"


def test_the_write_api_is_not_served_even_with_credentials(flower):
    base, worker = flower
    for path in WRITES:
        url = base + path.format(worker=worker)
        answered = requests.post(url, auth=LOGIN, timeout=10, data={"args": "[]"})
        assert answered.status_code in (404, 405), (path, answered.status_code, answered.text[:200])
        assert requests.post(url, timeout=10).status_code in (401, 404, 405)
    # the worker is alive and well
    assert worker in requests.get(f"{base}/api/workers?refresh=1", auth=LOGIN, timeout=10).json()


def test_no_page_shows_a_password_of_a_url(flower):
    base, worker = flower
    seen = []
    for page in PAGES + ["/api/workers?refresh=1", f"/api/workers?workername={worker}&refresh=1"]:
        body = requests.get(base + page.format(worker=worker), auth=LOGIN, timeout=15).text
        seen.append(body)
        assert REDIS_PASSWORD not in body and DB_PASSWORD not in body, page
    worker_page = requests.get(f"{base}/worker/{worker}", auth=LOGIN, timeout=15).text
    assert "REDIS_URL" in worker_page and "default:********@127.0.0.1" in worker_page   # shown, masked
    conf = requests.get(f"{base}/api/workers?workername={worker}&refresh=1", auth=LOGIN, timeout=15).json()
    assert conf[worker]["conf"]["CELERY_BROKER_URL"].startswith("redis://default:********@")


def test_outside_a_local_run_flower_refuses_to_start_without_credentials():
    result = subprocess.run(flower_cmd(_free_port()), cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH=user:password" in result.stderr


def test_the_write_api_is_served_only_when_the_operator_asks():
    from flower.api import control
    from flower.urls import handlers

    from workers.flower import WRITE_HANDLERS, guarded

    def classes(rules):
        return {r.handler_class if hasattr(r, "handler_class") else r[1] for r in rules}

    assert not classes(guarded(handlers, write_api=False)) & WRITE_HANDLERS
    assert control.WorkerShutDown in classes(guarded(handlers, write_api=True))
