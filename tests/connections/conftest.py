import pytest

from backend.connections.management.commands.rotate_credentials import reset_key_cache
from tests.api.factories import new_sandbox_account
from tests.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def account(sandbox, redis_client) -> dict:
    """An Alpaca paper account on the sandbox, reached over real HTTP (our limiter keys in
    Redis start cleared)."""
    return new_sandbox_account(sandbox)


@pytest.fixture
def use_keys(settings):
    """Switch FERNET_KEYS (newest first) for the encrypted fields, which cache their keys
    per field on first use."""
    def use(*keys, hkdf: bool = True):
        settings.FERNET_KEYS = list(keys)
        settings.FERNET_USE_HKDF = hkdf
        reset_key_cache()

    yield use
    reset_key_cache()           # recomputed from the restored settings on next use
