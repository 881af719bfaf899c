"""Reads for imports and manual transactions, always through a portfolio of the requesting
user: another user's portfolio, import or transaction is a 404."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django_filters as filters
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from backend.portfolio.models import Portfolio
from backend.sync.filters import TransactionFilter
from backend.sync.models import BrokerTransaction

from . import accounts
from .formats import LAYOUTS
from .models import FileImport


class ImportFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=FileImport.Status.choices,
                                          help_text="Repeat to ask for several: status=queued&status=running.")
    # Not `format`: DRF reads ?format= as the response format.
    file_format = filters.ChoiceFilter(field_name="format", choices=[(k, k) for k in LAYOUTS],
                                       help_text="The file's layout.")

    class Meta:
        model = FileImport
        fields = ["status", "file_format"]


class ManualTransactionFilter(TransactionFilter):
    connection = filters.NumberFilter(field_name="connection_id", help_text="One manual account's id.")

    class Meta(TransactionFilter.Meta):
        fields = [*TransactionFilter.Meta.fields, "connection"]


def portfolio_get(*, user: AbstractBaseUser, portfolio_id: int) -> Portfolio:
    return get_object_or_404(Portfolio.objects.filter(owner=user), pk=portfolio_id)


def import_list(*, portfolio: Portfolio, filters: Mapping[str, Any] | None = None) -> QuerySet[FileImport]:
    return _filtered(ImportFilter, FileImport.objects.filter(portfolio=portfolio).order_by("-id"), filters)


def import_get(*, portfolio: Portfolio, import_id: int) -> FileImport:
    return get_object_or_404(FileImport.objects.filter(portfolio=portfolio), pk=import_id)


def manual_transaction_list(*, portfolio: Portfolio,
                            filters: Mapping[str, Any] | None = None) -> QuerySet[BrokerTransaction]:
    queryset = (BrokerTransaction.objects.filter(portfolio=portfolio, connection__broker=accounts.MANUAL)
                .select_related("asset", "connection").order_by("-occurred_at", "-id"))
    return _filtered(ManualTransactionFilter, queryset, filters)


def portfolio_transaction_get(*, portfolio: Portfolio, transaction_id: int) -> BrokerTransaction:
    """Any transaction of the portfolio (the caller says why one that is not manual cannot change)."""
    return get_object_or_404(BrokerTransaction.objects.filter(portfolio=portfolio)
                             .select_related("asset", "connection"), pk=transaction_id)


def _filtered(filterset_class, queryset: QuerySet, params: Mapping[str, Any] | None) -> QuerySet:
    filterset = filterset_class(params or {}, queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs
