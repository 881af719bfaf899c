"""Settings for the test suite: PostgreSQL and a Redis database of its own.

Defaults are set before the settings read the environment; CI and developers can still
point DATABASE_URL / TEST_REDIS_URL elsewhere."""
import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/brokersync")
os.environ.setdefault("REDIS_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
os.environ.setdefault("BROKERSYNC_ENV", "test")
os.environ.setdefault("FERNET_KEYS", "test-credential-key-1")
# Retry quickly in tests: the sandbox's faults are short.
os.environ.setdefault("SYNC_RETRY_BACKOFF_CAP", "2")
# Fold value-history requests for one second, not five: worker tests wait for the rebuild.
os.environ.setdefault("PORTFOLIO_HISTORY_DEBOUNCE_SECONDS", "1")
if not os.environ.get("BROKER_SANDBOX"):
    # The sandbox fixture listens here; the worker subprocess inherits the same value.
    from sandbox.endpoints import free_port_block

    os.environ["BROKER_SANDBOX"] = f"127.0.0.1:{free_port_block()}"

from backend.config.settings import *  # noqa: E402,F401,F403

# Several suites may run at once on one machine: TEST_DB_NAME keeps them apart.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME", "test_brokersync")}  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]   # fast user creation
