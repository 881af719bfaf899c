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
    result = _check({"BROKERSYNC_ENV": "production", "SECRET_KEY": "s" * 50, "FERNET_KEYS": "new-key,old-key",
                     "ALLOWED_HOSTS": "example.com"})
    assert result.returncode == 0, result.stderr


def test_local_run_defaults_to_sqlite_and_local_redis():
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; django.setup(); from django.conf import settings as s; "
                               "print(s.DATABASES['default']['ENGINE'], s.REDIS_URL)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKERSYNC_ENV")}
        | {"DJANGO_SETTINGS_MODULE": "backend.config.settings"})
    assert result.stdout.split() == ["django.db.backends.sqlite3", "redis://127.0.0.1:6379/0"], result.stderr
