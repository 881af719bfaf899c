"""Reads on runs and synced rows. Callers pass a connection they got from
connections.selectors.connection_get, which is already scoped to its owner."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters import FilterSet

from backend.connections.models import BrokerConnection

from .filters import OrderFilter, PositionFilter, TransactionFilter
from .models import BrokerOrder, BrokerPosition, BrokerTransaction, SyncRun


def sync_run_list(*, connection: BrokerConnection) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(connection=connection).order_by("-id")


def sync_run_get(*, user: AbstractBaseUser, run_id: int) -> SyncRun:
    return get_object_or_404(SyncRun.objects.filter(connection__owner=user), pk=run_id)


def positions_for_connection(*, connection: BrokerConnection,
                             filters: Mapping[str, Any] | None = None) -> QuerySet[BrokerPosition]:
    queryset = BrokerPosition.objects.filter(connection=connection).select_related("asset").order_by("broker_symbol")
    return _filtered(PositionFilter, queryset, filters)


def transactions_for_connection(*, connection: BrokerConnection,
                                filters: Mapping[str, Any] | None = None) -> QuerySet[BrokerTransaction]:
    queryset = (BrokerTransaction.objects.filter(connection=connection).select_related("asset")
                .order_by("-occurred_at", "-id"))
    return _filtered(TransactionFilter, queryset, filters)


def orders_for_connection(*, connection: BrokerConnection,
                          filters: Mapping[str, Any] | None = None) -> QuerySet[BrokerOrder]:
    queryset = (BrokerOrder.objects.filter(connection=connection).select_related("asset")
                .order_by("-submitted_at", "-id"))
    return _filtered(OrderFilter, queryset, filters)


def _filtered(filterset_class: type[FilterSet], queryset: QuerySet, filters: Mapping[str, Any] | None) -> QuerySet:
    """Apply the filters; a bad value is a 400 naming the parameter, never silently ignored."""
    filterset = filterset_class(filters or {}, queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs
