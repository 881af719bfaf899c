"""What a worker reports about itself (`celery inspect conf`, Flower's worker pages): its
settings, with every password in a URL masked.

Celery's own `conf` command hides settings whose name says key, secret, password, token
or database, and the broker URL when it is called exactly broker_url; but Django settings
arrive under their own names (REDIS_URL, CELERY_BROKER_URL, CACHES, BROKER_BASE_URLS...), so
a redis://user:PASSWORD@host URL went out as it was. This command replaces Celery's: the
same table, with the password of every URL anywhere in it masked."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from celery.utils.serialization import jsonify
from celery.worker import control as celery_control
from kombu.utils.encoding import safe_repr

MASK = "********"
# scheme://user:password@host -> scheme://user:********@host ; also scheme://:password@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<password>[^\s/]*)@")


def mask_url_passwords(value: Any) -> Any:
    """`value` with the password of every URL in it masked, in strings at any depth."""
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", value)
    if isinstance(value, Mapping):
        return {k: mask_url_passwords(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_url_passwords(v) for v in value]
    return value


celery_control.Panel.data.pop("conf", None)


@celery_control.inspect_command()
def conf(state, with_defaults=False, **kwargs):
    """List configuration (Celery's `conf`, censored as Celery does, URL passwords masked)."""
    table = state.app.conf.table(with_defaults=with_defaults, censored=True)
    return jsonify(mask_url_passwords(jsonify(table, keyfilter=_wanted, unknown_type_filter=safe_repr)),
                   unknown_type_filter=safe_repr)


def _wanted(key: Any) -> bool:
    return isinstance(key, str) and not key.startswith("__")
