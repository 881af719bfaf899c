"""Configuration comes from the environment; production refuses to start without secrets."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FERNET_KEYS", "DATABASE_URL")}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "backend.config.settings", **env}, timeout=60)


def test_production_refuses_to_start_without_a_secret_key():
    result = _check({"BROKERSYNC_ENV": "production", "FERNET_KEYS": "k" * 44})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_credential_keys():
    result = _check({"BROKERSYNC_ENV": "production", "SECRET_KEY": "s" * 50})
    assert result.returncode != 0 and "FERNET_KEYS" in result.stderr


def test_production_starts_with_both():
    result = _check({"BROKERSYNC_ENV": "production", "SECRET_KEY": "production-secret-key-" + "0123456789" * 4,
                     "FERNET_KEYS": "new-key,old-key", "ALLOWED_HOSTS": "example.com"})
    assert result.returncode == 0, result.stderr


def test_local_run_defaults_to_sqlite_and_local_redis():
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; django.setup(); from django.conf import settings as s; "
                               "print(s.DATABASES['default']['ENGINE'], s.REDIS_URL)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKERSYNC_ENV")}
        | {"DJANGO_SETTINGS_MODULE": "backend.config.settings"})
    assert result.stdout.split() == ["django.db.backends.sqlite3", "redis://127.0.0.1:6379/0"], result.stderr


SQLITE_WRITERS = """
import threading, time, django
django.setup()
from django.db import connection, transaction
with connection.cursor() as c:
    c.execute("CREATE TABLE IF NOT EXISTS t (n integer)")
held, errors = threading.Event(), []

def long_writer():
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("INSERT INTO t VALUES (1)")
        held.set()
        time.sleep(0.5)
    connection.close()

def read_then_write():
    held.wait(5)
    try:
        with transaction.atomic():
            with connection.cursor() as c:
                c.execute("SELECT count(*) FROM t")
                c.execute("INSERT INTO t VALUES (2)")
    except Exception as exc:
        errors.append(repr(exc))
    connection.close()

threads = [threading.Thread(target=long_writer), threading.Thread(target=read_then_write)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors or "ok")
"""


def test_local_sqlite_waits_for_the_write_lock_instead_of_failing(tmp_path):
    """Worker threads that read and then write in one transaction (a checkpoint, a retry
    note) must queue for SQLite's write lock, not fail with 'database is locked'."""
    result = subprocess.run(
        [sys.executable, "-c", SQLITE_WRITERS], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKERSYNC_ENV")}
        | {"DJANGO_SETTINGS_MODULE": "backend.config.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert result.stdout.strip() == "ok", (result.stdout, result.stderr)
