"""Are Redis and PostgreSQL reachable? Used by `make demo`, `make test` and .ci/run to fail
early with a message that says how to start them."""
from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

HOW_TO_START = {
    "redis": ("redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no "
              "(Debian: apt-get install redis-server; macOS: brew services start redis; "
              "Docker: docker compose up -d redis)"),
    "postgres": ("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
                 "(Docker: docker compose up -d postgres)"),
}


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def redis_ok(url: str) -> bool:
    if not reachable(url, 6379):
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def check(names: list[str]) -> int:
    failed = 0
    if "redis" in names:
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if not redis_ok(url):
            print(f"Redis is not reachable at {url}.\n  Start it: {HOW_TO_START['redis']}", file=sys.stderr)
            failed += 1
    if "postgres" in names:
        url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/brokersync")
        if not reachable(url, 5432):
            print(f"PostgreSQL is not reachable at {urlparse(url).hostname}:{urlparse(url).port or 5432}.\n"
                  f"  Start it: {HOW_TO_START['postgres']}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(check(sys.argv[1:] or ["redis", "postgres"]))
