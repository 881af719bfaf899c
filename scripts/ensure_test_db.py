"""Create the PostgreSQL role database the tests connect to, if it is missing (pytest-django
then creates test_<name> next to it)."""
from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

import psycopg

url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/brokersync")
parsed = urlparse(url)
name = parsed.path.lstrip("/") or "brokersync"
admin = parsed._replace(path="/postgres").geturl()
try:
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
except psycopg.Error as exc:
    print(f"cannot prepare PostgreSQL database {name!r}: {exc}", file=sys.stderr)
    sys.exit(1)
