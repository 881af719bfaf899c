"""How long decrypting one stored secret takes (target: well under a millisecond).

    python benchmarks/credentials.py

Measures the model field's own path (the bytes a database returns -> plaintext), with one
key, and with three keys where the token was made by the oldest (the slowest case during a
key rotation)."""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings")
N = 10_000
SECRET = "s" * 64            # a typical API secret


def field_with_keys(keys: list[str]):
    from django.conf import settings

    from backend.connections.models import BrokerConnection

    settings.FERNET_KEYS = keys
    field = BrokerConnection._meta.get_field("api_secret")
    for attr in ("keys", "fernet_keys", "fernet"):  # fernet_fields caches these per field
        field.__dict__.pop(attr, None)
    return field


def median_us(fn) -> tuple[float, float]:
    for _ in range(500):
        fn()
    samples = []
    for _ in range(N):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main() -> int:
    import django
    from django.db import connection

    django.setup()
    token = field_with_keys(["oldest-key"]).get_db_prep_save(SECRET, connection)
    one = field_with_keys(["oldest-key"])
    median, p99 = median_us(lambda: one.from_db_value(token, None, connection))
    print(f"decrypt one secret, 1 key:                      median {median:6.1f} us, p99 {p99:6.1f} us")
    three = field_with_keys(["newest-key", "middle-key", "oldest-key"])
    median, p99 = median_us(lambda: three.from_db_value(token, None, connection))
    print(f"decrypt one secret, 3 keys, token by the oldest: median {median:6.1f} us, p99 {p99:6.1f} us")
    assert three.from_db_value(token, None, connection) == SECRET
    print(f"ciphertext size for a {len(SECRET)}-character secret: {len(bytes(token))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
