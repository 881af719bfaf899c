"""Checking a user's keys with their broker, from a web request.

- Characters first: every broker's keys are printable ASCII (a PEM key may also hold line
  breaks). Anything else is a 400 naming the field, before a header could carry it.
- A key the broker rejected is remembered for settings.FAILED_KEY_CHECK_TTL seconds, under
  an HMAC of the credentials (never the credentials): asking again answers the same 400
  without calling the broker.
- The check never sleeps a web thread for long (settings.BROKER_KEY_CHECK_POLICY): a spent
  budget or a broker that says wait is a 503 with Retry-After at once. Budgets every user
  shares (Binance's weight per IP) are spent from a slice reserved for key checks, which
  the adapter names (BinanceAdapter.verify_credentials).
- REFUSE_KEYS_THAT_CAN_TRADE: keys that can trade or withdraw are refused instead of warned.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import math

from django.conf import settings
from django.core.cache import cache

from backend.brokers import registry
from backend.brokers.base import BrokerAdapter
from backend.brokers.dtos import AccountInfo, Credentials
from backend.brokers.errors import AuthError, BrokerError, RateLimited, TransientError
from backend.brokers.http import SessionPolicy
from backend.core.exceptions import ApplicationError

log = logging.getLogger("brokersync.connections")
REJECTED = "The broker rejected these credentials."
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))
_MULTILINE_EXTRA = frozenset("\r\n \t")


def credentials_check_characters(adapter_cls: type[BrokerAdapter], credentials: Credentials) -> None:
    """400 naming each field that holds a character no key of this broker can hold."""
    errors = {}
    for field in adapter_cls.credential_fields:
        value = getattr(credentials, field.name)
        allowed = _PRINTABLE | _MULTILINE_EXTRA if field.multiline else _PRINTABLE
        if field.multiline or not any(c in "\r\n" for c in value):
            bad = next((i for i, c in enumerate(value) if c not in allowed), None)
            if bad is not None:
                errors[field.name] = [f"Must hold only printable ASCII characters, as {adapter_cls.display_name} "
                                      f"keys do; character {bad + 1} is not one."]
        else:
            errors[field.name] = ["Must be one line: it holds a line break (CR or LF)."]
    if errors:
        raise ApplicationError("Invalid input.", fields=errors)


def credentials_verify(*, adapter_cls: type[BrokerAdapter], environment: str,
                       credentials: Credentials) -> AccountInfo:
    """Ask the broker whether the keys work; what it answers, as the API says it."""
    remembered_key = _remembered_key(adapter_cls.key, environment, credentials)
    remembered = cache.get(remembered_key)
    if remembered is not None:
        log.info("connection.keys_rejected_again broker=%s environment=%s", adapter_cls.key, environment)
        raise ApplicationError(REJECTED, fields=remembered)
    account = _ask_broker(adapter_cls, environment, credentials, remembered_key)
    _refuse_if_it_can_trade(adapter_cls, account)
    return account


def _ask_broker(adapter_cls, environment: str, credentials: Credentials, remembered_key: str) -> AccountInfo:
    name = adapter_cls.display_name
    adapter = registry.build_adapter(adapter_cls.key, environment=environment, credentials=credentials)
    adapter.session.policy = SessionPolicy(**settings.BROKER_KEY_CHECK_POLICY)
    try:
        return adapter.verify_credentials()
    except AuthError as exc:
        log.info("connection.keys_rejected broker=%s environment=%s", adapter_cls.key, environment)
        fields = {adapter_cls.credential_fields[0].name: [exc.message]}
        cache.set(remembered_key, fields, settings.FAILED_KEY_CHECK_TTL)
        raise ApplicationError(REJECTED, fields=fields) from exc
    except RateLimited as exc:
        wait = max(1, math.ceil(exc.retry_after))
        log.warning("connection.verify_rate_limited broker=%s wait=%s", adapter_cls.key, wait)
        raise ApplicationError(f"{name} is limiting how often we may call it, so the keys could not be "
                               f"checked and nothing was saved. Try again in {wait} seconds.", status=503,
                               headers={"Retry-After": str(wait)}) from exc
    except TransientError as exc:
        log.warning("connection.verify_unreachable broker=%s environment=%s", adapter_cls.key, environment)
        raise ApplicationError(f"Could not reach {name} to check the keys, so nothing was saved. "
                               "Try again shortly.", status=503, headers={"Retry-After": "30"}) from exc
    except BrokerError as exc:
        log.warning("connection.verify_failed broker=%s environment=%s kind=%s",
                    adapter_cls.key, environment, exc.kind)
        raise ApplicationError(f"{name} could not check these keys: {exc.message}", status=502) from exc
    finally:
        adapter.session.http.close()


def _remembered_key(broker: str, environment: str, credentials: Credentials) -> str:
    """An HMAC (keyed with SECRET_KEY) of the credentials: equal for equal keys, and useless
    to anyone who reads the cache."""
    material = "\0".join((broker, environment, credentials.api_key, credentials.api_secret,
                           credentials.access_token, credentials.refresh_token))
    digest = hmac.new(settings.SECRET_KEY.encode(), material.encode(), hashlib.sha256).hexdigest()
    return f"keycheck:failed:{digest}"


def _refuse_if_it_can_trade(adapter_cls: type[BrokerAdapter], account: AccountInfo) -> None:
    if not settings.REFUSE_KEYS_THAT_CAN_TRADE or not (account.can_trade or account.can_withdraw):
        return
    rights = " and ".join(r for r, on in (("trade", account.can_trade), ("withdraw", account.can_withdraw)) if on)
    message = " ".join((f"This key can {rights}, and this server accepts read-only keys only: create one "
                        "with read permissions only.", *account.warnings))
    log.info("connection.keys_refused_can_trade broker=%s", adapter_cls.key)
    raise ApplicationError("These keys can do more than read.",
                           fields={adapter_cls.credential_fields[0].name: [message]})
