"""Chaos harness: every test gets its own redis-server, its own Celery worker processes and
a beat stand-in, so killing and restarting never touches the machine's shared services or
the session worker (`celery_worker_process` in tests/conftest.py).

    redis-server  private, on a free port, nothing on disk (--save "" --appendonly no): a
                  restart loses every queued message, lock and rate-limit key
    workers       `celery worker --pool=threads` subprocesses, started the way
                  `celery_worker_process` starts one, against the test database and the
                  in-process sandbox, with a short lease (SYNC_RUN_LEASE_SECONDS) and a short
                  CELERY_VISIBILITY_TIMEOUT so a killed worker's message comes back in the test
    beat          not a process: `Chaos.tick()` calls what beat's two entries call each minute,
                  `reap_stale()` and `dispatch_due()`, every BEAT_EVERY seconds while a test
                  waits (with a lease of seconds, once a minute would be far too slow)
    sends         the test process's Celery app read CELERY_BROKER_URL at import time; the
                  fixture points it at the private Redis (`point_celery_at`) and back after,
                  so sync_request's chain and the reaper's re-queues are real sends

Logs: var/chaos/<test>/ (redis.log, worker-<label>.log). A failing test prints every
worker's log tail and the state of every run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
import redis as redis_lib

from scripts.procs import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
LOG_ROOT = ROOT / "var" / "chaos"
BEAT_EVERY = 1.0                  # seconds between beat stand-in ticks
APP_NAME_PREFIX = "bs-chaos-"     # application_name of the chaos workers' database sessions

# Every chaos worker gets these unless a test overrides them.
LEASE_SECONDS = 8
WORKER_ENV = {
    "SYNC_RUN_LEASE_SECONDS": str(LEASE_SECONDS),   # a dead worker's run is re-queued after 8 s
    "CELERY_VISIBILITY_TIMEOUT": "10",              # Redis hands an unacked message out again after 10 s
    "SYNC_STEP_MAX_RETRIES": "30",                  # a step that makes no progress is failed after this
    "SYNC_RETRY_BACKOFF_CAP": "2",
    "BROKER_READ_TIMEOUT": "2",                     # the flaky sandbox hangs a little longer than this
    "BROKER_CONNECT_TIMEOUT": "2",
    # The big accounts have their sandbox limit raised (rate_limit_per_min); ours is raised with
    # it, so an 8,000-activity backfill that is resumed (pages fetched twice) never waits for
    # Alpaca's 200/min window: the tests time chaos, not rate limits.
    "BROKER_RATE_LIMITS_JSON": json.dumps({"alpaca": {"algorithm": "window", "limit": 100_000, "period": 61}}),
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own. `kill()` is kill -9; `start()` again reuses the port."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)

    def start(self, timeout: float = 15) -> "PrivateRedis":
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        self.starts += 1
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.log_dir), "--logfile", str(self.log_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.log_dir / 'redis.log'}")
            try:
                if self.client().ping():
                    return self
            except redis_lib.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on :{self.port} did not answer in {timeout}s")

    def kill(self) -> None:
        """kill -9: nothing is saved, every client connection drops."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    stop = kill


class ChaosWorker:
    """One `celery worker` subprocess (threads pool) on every queue."""

    def __init__(self, label: str, env: dict, log_path: Path, concurrency: int):
        self.label = label
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.killed = False               # by the test (kill -9)
        self.stopped = False              # by the harness, at the end
        self.restarted = False            # by the supervisor, after it exited on its own

    def start(self) -> "ChaosWorker":
        from workers.routing import all_queue_names

        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=threads",
             f"--concurrency={self.concurrency}", "-Q", ",".join(all_queue_names()),
             f"--hostname=chaos-{self.label}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, timeout: float = 60) -> "ChaosWorker":
        # Readiness from the worker's own log: pinging would go through the test process's
        # Celery app, which is bound to the shared Redis.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.label} exited with {self.proc.returncode}:\n{self.tail()}")
            if re.search(r"chaos-\S+ ready\.", self.log()):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.label} not ready after {timeout}s:\n{self.tail()}")

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.killed = True

    def exited_on_its_own(self) -> bool:
        return (self.proc is not None and self.proc.poll() is not None and not self.killed and not self.stopped
                and not self.restarted)

    def stop(self) -> None:
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    # -- what the log says happened ---------------------------------------------------------
    def received(self) -> list[str]:
        return re.findall(r"Task sync\.\w+\[([0-9a-f-]{36})\] received", self.log())

    def settled(self) -> set[str]:
        """Task ids this worker finished one way or another (succeeded, retried, ignored, failed)."""
        return set(re.findall(r"Task sync\.\w+\[([0-9a-f-]{36})\] (?:succeeded|retry|ignored|raised)", self.log()))

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))


class Chaos:
    def __init__(self, *, name: str, db_settings: dict, sandbox, settings):
        self.name = name
        self.settings = settings          # pytest-django's: restored after the test
        self.lease = LEASE_SECONDS
        self.log_dir = LOG_ROOT / name
        shutil.rmtree(self.log_dir, ignore_errors=True)          # no log left from an earlier run
        self.log_dir.mkdir(parents=True)
        self.db = db_settings
        self.sandbox = sandbox
        self.redis = PrivateRedis(self.log_dir)
        self.workers: list[ChaosWorker] = []
        self.stats: Counter = Counter()
        self._last_tick = 0.0
        self.notes: list[str] = []
        self.errors_seen: set[str] = set()      # errors recorded on runs while they retried
        self._faults_before = dict(sandbox.faults.injected)     # the board counts for the whole session

    def faults_injected(self) -> dict:
        """Faults the sandbox injected during this test: {"5xx": n, "timeout": n, ...}."""
        now = dict(self.sandbox.faults.injected)
        return {k: v - self._faults_before.get(k, 0) for k, v in now.items() if v - self._faults_before.get(k, 0)}

    # -- processes --------------------------------------------------------------------------
    def database_url(self, label: str) -> str:
        d = self.db
        auth = quote(d["USER"] or "postgres") + (":" + quote(d["PASSWORD"]) if d.get("PASSWORD") else "")
        return (f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"
                f"?application_name={APP_NAME_PREFIX}{label}")

    def worker_env(self, label: str, **overrides: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DATABASE_URL", "REDIS_URL")}
        env.update(WORKER_ENV)
        env["SYNC_RUN_LEASE_SECONDS"] = str(self.lease)
        env.update({"DJANGO_SETTINGS_MODULE": "backend.config.test_settings",
                    "DATABASE_URL": self.database_url(label), "REDIS_URL": self.redis.url})
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def set_lease(self, seconds: int) -> None:
        """The lease of the workers started from now on, and of the reaper here."""
        self.lease = seconds
        self.settings.SYNC_RUN_LEASE_SECONDS = seconds

    def start_worker(self, label: str, *, concurrency: int = 4, wait: bool = True, **env: str) -> ChaosWorker:
        worker = self._spawn(label, self.worker_env(label, **env), concurrency)
        if wait:
            self.wait_ready(worker)
        return worker

    def _spawn(self, label: str, env: dict, concurrency: int) -> ChaosWorker:
        worker = ChaosWorker(label, env, self.log_dir / f"worker-{label}.log", concurrency)
        self.workers.append(worker)
        return worker.start()

    def wait_ready(self, worker: ChaosWorker, timeout: float = 60) -> None:
        """Wait for a worker's 'ready', ticking the beat stand-in meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                worker.wait_ready(timeout=0.2)
                return
            except RuntimeError:
                if worker.proc.poll() is not None or time.monotonic() > deadline:
                    raise
            self.maybe_tick()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.redis.stop()

    # -- sends ------------------------------------------------------------------------------
    def sync(self, connection, trigger: str = "api"):
        from backend.sync.services import sync_request

        run, _ = sync_request(connection=connection, trigger=trigger)
        return run

    # -- beat stand-in -----------------------------------------------------------------------
    def tick(self) -> None:
        """What celery beat's two entries do each minute. A tick that fails (Redis or the
        database away) is logged and skipped, as a failed beat task would be."""
        from django.db import close_old_connections

        from backend.sync.models import SyncRun
        from backend.sync.scheduling import dispatch_due, reap_stale

        self._last_tick = time.monotonic()
        self.stats["ticks"] += 1
        try:
            self.stats["reaped"] += reap_stale()
            self.stats["dispatched"] += dispatch_due()
            self.errors_seen.update(SyncRun.objects.filter(state__in=SyncRun.ACTIVE_STATES)
                                    .exclude(error_message="").values_list("error_message", flat=True))
        except Exception as exc:  # noqa: BLE001 - a failed beat tick, as in production
            self.stats["tick_errors"] += 1
            self.notes.append(f"tick error: {type(exc).__name__}: {str(exc)[:200]}")
            close_old_connections()

    def maybe_tick(self) -> None:
        self.supervise()
        if time.monotonic() - self._last_tick >= BEAT_EVERY:
            self.tick()
        else:
            time.sleep(0.1)

    def supervise(self) -> None:
        """Restart a worker that exited without being told to, as a process supervisor
        (systemd, Kubernetes, compose `restart:`) would, and say why it exited."""
        for worker in list(self.workers):
            if worker.exited_on_its_own():
                worker.restarted = True
                why = [line for line in worker.log().splitlines() if "CRITICAL" in line or "Unrecoverable" in line]
                self.stats["worker_restarts"] += 1
                self.notes.append(f"worker {worker.label} exited with {worker.proc.returncode} "
                                  f"({why[-1][:300] if why else 'no CRITICAL line'}); restarted")
                self._spawn(f"{worker.label}-restart{self.stats['worker_restarts']}", worker.env, worker.concurrency)

    def wait_until(self, predicate, *, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.maybe_tick()
        raise AssertionError(f"[{self.name}] timed out after {timeout}s waiting for {what}\n{self.report()}")

    def wait_final(self, run_ids, *, timeout: float):
        from backend.sync.models import SyncRun

        ids = list(run_ids)

        def all_final():
            runs = list(SyncRun.objects.filter(pk__in=ids))
            return runs if len(runs) == len(ids) and not any(r.is_active for r in runs) else None

        return self.wait_until(all_final, timeout=timeout, what=f"runs {ids} to end")

    # -- observation -------------------------------------------------------------------------
    def redelivered(self) -> set[str]:
        """Task ids a killed worker had received but not settled, later received by another
        worker: messages Redis handed out again (visibility timeout)."""
        found = set()
        for dead in (w for w in self.workers if w.killed):
            lost = set(dead.received()) - dead.settled()
            for other in self.workers:
                if other is not dead:
                    found |= lost & set(other.received())
        return found

    def requeued(self) -> int:
        """Runs the reaper sent again: everything it reaped, less the runs it failed as lost."""
        from backend.sync.models import SyncRun

        return self.stats["reaped"] - SyncRun.objects.filter(error_kind="lost").count()

    def counters(self) -> dict:
        logs = [w for w in self.workers]
        return {
            "requeued_by_reaper": self.requeued(),
            "reaped_total": self.stats["reaped"],
            "redelivered": len(self.redelivered()),
            "step_retries": sum(w.count(r"sync\.step_retry ") for w in logs),
            # kind=? : the database or Redis failed, not the broker
            "infra_retries": sum(w.count(r"sync\.step_retry run=\d+ step=\w+ kind=\? ") for w in logs),
            "retry_unrecorded": sum(w.count(r"sync\.retry_unrecorded") for w in logs),
            "celery_retries": sum(w.count(r"\] retry: Retry in") for w in logs),
            "runs_failed": sum(w.count(r"sync\.run_failed") for w in logs),
            "tick_errors": self.stats["tick_errors"],
            "worker_restarts": self.stats["worker_restarts"],
            "reruns": self.stats["reruns"],
            "sandbox_faults": self.faults_injected(),
            "retry_errors_seen": sorted({e.split(" on ")[0][:60] for e in self.errors_seen}),
        }

    def report(self) -> str:
        from backend.sync.models import SyncRun

        parts = [f"== chaos {self.name}: stats {dict(self.stats)}"]
        try:
            for run in SyncRun.objects.order_by("id"):
                parts.append(f"run {run.pk} conn={run.connection_id} {run.state} step={run.current_step!r} "
                             f"failed_step={run.failed_step!r} error={run.error_kind}:{run.error_message[:160]!r} "
                             f"attempts={run.attempts} steps={ {k: v for k, v in run.steps.items()} }")
        except Exception as exc:  # noqa: BLE001 - a report must not hide the failure it reports
            parts.append(f"(runs unavailable: {exc})")
        parts += self.notes[-20:]
        for worker in self.workers:
            parts.append(f"-- worker {worker.label} pid={worker.proc.pid if worker.proc else None} "
                         f"killed={worker.killed} log {worker.log_path} (tail)\n{worker.tail(60)}")
        return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def point_celery_at(app, url: str) -> str:
    """Make the test process's Celery app publish to `url` (sync_request's chain, the
    reaper's re-queues), dropping the pooled connections to the old broker. Returns the old URL."""
    from kombu import pools

    previous = app.conf.broker_url
    app.conf.broker_url = url
    app.conf.broker_write_url = None
    # kombu keeps its pools in a registry keyed by connection: close them and empty it, or
    # pointing back at the shared broker would hand out the pool closed here.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    return previous


@pytest.fixture
def chaos(request, sandbox, transactional_db, settings):
    """A private Redis (started), room for workers, the test process's sends and limiter on it."""
    from django.db import connection

    from backend.brokers.registry import default_limiter
    from workers.celery_app import app

    harness = Chaos(name=request.node.name, db_settings=connection.settings_dict, sandbox=sandbox,
                    settings=settings)
    harness.redis.start()
    # The reaper runs here: it must use the workers' lease, and anything here that reads
    # REDIS_URL (the limiter, locks) or publishes tasks must reach the private Redis.
    harness.set_lease(LEASE_SECONDS)
    shared_broker = point_celery_at(app, harness.redis.url)   # first: the app reads its URL from settings
    settings.REDIS_URL = harness.redis.url
    settings.CELERY_BROKER_URL = harness.redis.url
    default_limiter.cache_clear()
    started = time.monotonic()
    try:
        yield harness
    finally:
        call = getattr(request.node, "rep_call", None)
        if call is not None and call.failed:
            print(harness.report())
        harness.stop()
        point_celery_at(app, shared_broker)
        default_limiter.cache_clear()
        summary = {"test": harness.name, "seconds": round(time.monotonic() - started, 1), **harness.counters()}
        with open(LOG_ROOT / "summary.jsonl", "a") as f:
            f.write(json.dumps(summary) + "\n")
        print(f"chaos summary: {json.dumps(summary)}")
