"""Reads on connections, always scoped to their owner: another user's connection is a 404."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from backend.brokers import registry

from .models import BrokerConnection
from .services import ENCRYPTED_FIELDS


def connection_list(*, user: AbstractBaseUser) -> QuerySet[BrokerConnection]:
    # The encrypted columns are deferred: nothing that only shows a connection needs to
    # decrypt its keys.
    return BrokerConnection.objects.filter(owner=user).select_related("portfolio").defer(*ENCRYPTED_FIELDS)


def connection_get(*, user: AbstractBaseUser, connection_id: int) -> BrokerConnection:
    return get_object_or_404(connection_list(user=user), pk=connection_id)


def broker_list() -> list[dict[str, Any]]:
    """Every broker whose adapter is installed: capabilities, environments, credential fields."""
    return [registry.get_adapter_class(key).describe() for key in registry.broker_keys()]
