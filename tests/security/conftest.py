"""Fixtures for the security tests: sandbox accounts come from the API tests' fixtures."""
from tests.api.conftest import account, broker_account  # noqa: F401  (fixtures)
