"""What every benchmark needs: a PostgreSQL database of its own, the sandbox and a real
Celery worker as separate processes, and a sync that is timed and counted."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.endpoints import ENDPOINTS, free_port_block  # noqa: E402
from scripts import procs  # noqa: E402

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/brokersync_bench")
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# --limits off lifts the sandbox's own limits: per account where the simulator takes an
# option (sandbox/brokers/<broker>/sim.py create_account) ...
UNLIMITED_ACCOUNT_OPTIONS = {
    "alpaca": {"rate_limit_per_min": 100_000_000},
    "coinbase": {"rate_limits": "none"},
    "kraken": {"tier": "none"},
    "ibkr": {"throttle": False},
}
# ... and through the sandbox process's environment where the limit is sandbox-wide
# (Binance counts weight per IP across accounts, and the UID-weighted /sapi budget).
UNLIMITED_SANDBOX_ENV = {
    "SANDBOX_BINANCE_WEIGHT_LIMIT": str(1_000_000_000),
    "SANDBOX_BINANCE_UID_LIMIT": str(1_000_000_000),
}
UNLIMITED_RULE = {"algorithm": "window", "limit": 1e12, "period": 1}
# Our limiter's rules (backend/config/settings/brokers.py): one per broker, plus Binance's
# UID-weighted /sapi budget, which is a rule of its own.
LIMITER_RULES = sorted({b for b, *_ in ENDPOINTS.values()} | {"binance-uid", "kraken-public"})
# The real limits, for the bound a sync cannot beat (backend/config/settings/brokers.py).
REAL_RATES = {
    "alpaca": lambda m: m["requests"] / (200 / 60),
    "coinbase": lambda m: m["requests"] / 30,
    "binance": lambda m: max(0.0, m.get("cost", m["requests"]) - 6000) / (6000 / 60),
    "kraken": lambda m: max(0.0, m.get("cost", m["requests"]) - 15) / 0.33,
    "ibkr": lambda m: max(0.0, m["requests"] - 10) / (10 / 60),
}


def rate_bound_seconds(broker: str, minimum: dict) -> float:
    return REAL_RATES[broker](minimum)


def _recreate_database(url: str) -> None:
    import psycopg
    from urllib.parse import urlparse

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')



def bench_django(**env: str) -> None:
    """A fresh benchmark database with Django set up on it and migrated, for the benchmarks
    that need no sandbox or worker (`env` adds to the local settings)."""
    _recreate_database(BENCH_DATABASE_URL)
    os.environ.update({"DATABASE_URL": BENCH_DATABASE_URL, "DJANGO_SETTINGS_MODULE": "backend.config.settings",
                       "BROKERSYNC_ENV": "local", "DEBUG": "false", "LOG_LEVEL": "WARNING", **env})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

class BenchEnv:
    def __init__(self, *, limits: str = "off", concurrency: int = 8, workers: int = 1,
                 extra_env: dict | None = None, egress: int = 1):
        """`egress`: loopback source addresses (127.0.0.1 ...) the workers are spread over
        (BROKER_EGRESS_IP), each with its own per-IP budgets; 1 leaves the OS to pick."""
        self.limits = limits
        self.concurrency = concurrency
        self.n_workers = workers
        self.egress = egress
        self.workers: list = []
        self.retired: list[dict] = []          # the last usage of each worker that was killed
        self._last_usage: dict[int, tuple[float, float]] = {}
        self.sandbox_port = free_port_block()
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.config.settings", "BROKERSYNC_ENV": "local",
                    "DATABASE_URL": BENCH_DATABASE_URL, "REDIS_URL": BENCH_REDIS_URL, "DEBUG": "false",
                    "BROKER_SANDBOX": f"127.0.0.1:{self.sandbox_port}", "PYTHONUNBUFFERED": "1",
                    "LOG_LEVEL": "WARNING", **(extra_env or {})}
        if limits == "off":
            self.env["BROKER_RATE_LIMITS_JSON"] = json.dumps({b: UNLIMITED_RULE for b in LIMITER_RULES})
        # The sandbox process alone gets the knobs, and with --limits real not even an
        # inherited one: "real" means the simulators' real budgets.
        self.sandbox_env = {k: v for k, v in self.env.items() if k not in UNLIMITED_SANDBOX_ENV}
        if limits == "off":
            self.sandbox_env.update(UNLIMITED_SANDBOX_ENV)
        self.control_url = f"http://127.0.0.1:{self.sandbox_port}/control"
        self.worker = None
        self.user = None

    # -- processes --------------------------------------------------------------------
    def start(self) -> None:
        _recreate_database(BENCH_DATABASE_URL)
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import redis

        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        logs = ROOT / "var"
        logs.mkdir(exist_ok=True)
        sandbox = procs.start("sandbox", procs.sandbox_cmd(self.sandbox_port), self.sandbox_env,
                              logs / "bench-sandbox.log")
        procs.wait_http(self.control_url + "/health", sandbox, "sandbox")
        from workers.celery_app import app

        for i in range(self.n_workers):
            self.workers.append(self._start_worker(i))
        self.worker = self.workers[0]
        for worker in self.workers:
            procs.wait_worker(app, worker)

    def egress_ip(self, i: int) -> str:
        return f"127.0.0.{i % self.egress + 1}" if self.egress > 1 else ""

    def _start_worker(self, i: int, suffix: str = ""):
        from workers.routing import all_queue_names

        env = {**self.env, "BROKER_EGRESS_IP": self.egress_ip(i)} if self.egress > 1 else self.env
        return procs.start(f"worker{i}{suffix}", procs.worker_cmd(all_queue_names(), self.concurrency,
                                                                  f"bench{i}{suffix}"),
                           env, ROOT / "var" / f"bench-worker{i}{suffix}.log")

    def kill_worker(self, i: int) -> None:
        """kill -9 worker i mid-work (its usage up to now is kept) and start a replacement
        on the same egress address, so the round completes."""
        import signal

        victim = self.workers[i]
        usage = self._usage_of(victim)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        self.retired.append({"cpu_s": usage[0], "peak_rss_mb": usage[1]})
        self.workers[i] = self._start_worker(i, f"r{len(self.retired)}")
        self.worker = self.workers[0]

    def stop(self) -> None:
        procs.stop_all()

    def worker_usage(self) -> dict:
        """CPU seconds (all workers) and the largest peak resident memory of one worker
        process (threads pool: each worker is one process)."""
        cpu = sum(r["cpu_s"] for r in self.retired)
        peak = max([r["peak_rss_mb"] for r in self.retired], default=0.0)
        for worker in self.workers:
            worker_cpu, worker_peak = self._usage_of(worker)
            cpu += worker_cpu
            peak = max(peak, worker_peak)
        return {"cpu_s": cpu, "peak_rss_mb": peak, "workers": len(self.workers), "killed": len(self.retired)}

    def _usage_of(self, worker) -> tuple[float, float]:
        """(CPU seconds, peak RSS MB) of one worker process; the last ones read while it
        lived once it is gone (a dead process has no /proc entry, a zombie no VmHWM)."""
        ticks = os.sysconf("SC_CLK_TCK")
        try:
            stat = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = dict(line.split(":", 1) for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines()
                          if ":" in line)
            usage = ((int(stat[11]) + int(stat[12])) / ticks, int(status["VmHWM"].split()[0]) / 1024)
        except (OSError, KeyError, IndexError, ValueError):
            return self._last_usage.get(worker.pid, (0.0, 0.0))
        self._last_usage[worker.pid] = usage
        return usage

    # -- sandbox ------------------------------------------------------------------------
    def control(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, self.control_url + path, json=body, timeout=600)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return self.control("GET", "/stats")["endpoints"]

    # -- brokersync -----------------------------------------------------------------------
    def connect(self, broker: str, account: dict, *, own_user: bool = False):
        """A connection to the sandbox account, in one shared user's portfolio per broker, or
        (`own_user`, as a fleet of real people has) in a user and portfolio of its own, so
        each ledger and value history holds one account."""
        from django.contrib.auth import get_user_model

        from backend.brokers.dtos import Credentials
        from backend.connections.models import BrokerConnection
        from backend.portfolio.models import Portfolio

        if own_user:
            owner = get_user_model().objects.create(username="bench-" + account["account_id"].replace(":", "-"))
            portfolio = Portfolio.objects.create(owner=owner, name=account["account_id"])
        else:
            self.user = owner = self.user or get_user_model().objects.get_or_create(username="bench")[0]
            portfolio, _ = Portfolio.objects.get_or_create(owner=owner, name=f"bench {broker}")
        connection = BrokerConnection(owner=owner, portfolio=portfolio, broker=broker,
                                      environment=account["environment"],
                                      broker_account_id=str(account["broker_account_id"]), status="active")
        connection.set_credentials(Credentials(**account["credentials"]))
        connection.save()
        return connection

    def timed_sync(self, connection, broker: str, timeout: float = 4 * 3600) -> dict:
        from backend.sync.models import SyncRun
        from backend.sync.services import sync_request

        endpoint = next(name for name, (b, env, _) in ENDPOINTS.items()
                        if b == broker and env == connection.environment)
        before = self.stats().get(endpoint, {})
        run, _ = sync_request(connection=connection, trigger="bench")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if not run.is_active:
                break
            time.sleep(0.25)
        after = self.stats().get(endpoint, {})
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("requests", "429", "418", "5xx")}
        created = sum(int(info.get("created", 0)) for info in run.steps.values() if isinstance(info, dict))
        return {"state": run.state, "seconds": (run.finished_at - run.queued_at).total_seconds() if run.finished_at
                else float("nan"), "created": created, "differences": len(run.reconcile_differences or []),
                "error": run.error_message, **delta}
