"""What production refuses to start without. Each message says what to set."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# Django's own deploy check (security.W009) calls a key weak below these.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5


def refuse_unsafe(*, secret_key: str, fernet_keys: list[str], allowed_hosts: list[str], debug: bool,
                  dev_keys: tuple[str, ...]) -> None:
    if not secret_key or secret_key in dev_keys or len(secret_key) < SECRET_KEY_MIN_LENGTH \
            or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE or secret_key.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            f"production needs SECRET_KEY: at least {SECRET_KEY_MIN_LENGTH} random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'")
    if not fernet_keys or any(key in dev_keys for key in fernet_keys):
        raise ImproperlyConfigured(
            "production needs FERNET_KEYS (comma-separated, newest first), e.g. "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'")
    if not allowed_hosts or "*" in allowed_hosts:
        raise ImproperlyConfigured("production needs ALLOWED_HOSTS: the host names the API is served on, "
                                   "comma-separated (\"*\" is refused)")
    if debug:
        raise ImproperlyConfigured("production refuses DEBUG=true: it shows settings and tracebacks to anyone")
