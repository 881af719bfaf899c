"""Reads on breaks, scoped to the requesting user: another user's portfolio is a 404."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import django_filters as filters
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404

from backend.portfolio.models import Portfolio

from .models import Break


class BreakFilter(filters.FilterSet):
    connection = filters.NumberFilter(field_name="connection_id", help_text="Only this connection's breaks.")
    type = filters.MultipleChoiceFilter(field_name="kind", choices=Break.Kind.choices,
                                        help_text="Repeat to ask for several: type=split&type=transfer.")
    status = filters.ChoiceFilter(choices=[("open", "open"), ("resolved", "resolved")], method="filter_status",
                                  help_text="open: still found by the latest sync; resolved: a later sync no "
                                            "longer found it. Both when left out.")

    class Meta:
        model = Break
        fields = ["connection", "type", "status"]

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(resolved_at__isnull=value == "open")


def portfolio_get(*, user: AbstractBaseUser, portfolio_id: int) -> Portfolio:
    return get_object_or_404(Portfolio, pk=portfolio_id, owner=user)


def breaks_for_portfolio(*, portfolio: Portfolio, filters: Mapping[str, Any] | None = None) -> QuerySet[Break]:
    """Open breaks first, then resolved ones; newest seen first. A bad filter is a 400."""
    queryset = (Break.objects.filter(portfolio=portfolio)
                .select_related("asset", "connection", "counterpart__connection")
                .order_by(F("resolved_at").desc(nulls_first=True), "-last_seen_at", "-id"))
    filterset = BreakFilter(filters or {}, queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs
