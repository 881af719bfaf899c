"""Query filters for synced rows (django-filter). Times are half-open: since <= t < until."""
from __future__ import annotations

import django_filters as filters
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from backend.brokers.dtos import TransactionType
from backend.portfolio.models import Asset

from .models import BrokerOrder, BrokerPosition, BrokerTransaction

SIDES = [("buy", "buy"), ("sell", "sell")]
ORDER_STATUSES = [(s, s) for s in ("open", "partially_filled", "filled", "canceled", "expired", "rejected", "other")]


class SymbolFilterMixin(filters.FilterSet):
    symbol = filters.CharFilter(method="filter_symbol",
                                help_text="Asset symbol (BTC) or the broker's own symbol (XXBT), any case.")
    asset_class = filters.ChoiceFilter(field_name="asset__asset_class", choices=Asset.AssetClass.choices)

    def filter_symbol(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(asset__symbol__iexact=value) | Q(broker_symbol__iexact=value))


class PositionFilter(SymbolFilterMixin):
    is_open = filters.BooleanFilter(help_text="true: held now; false: closed (sold to zero).")

    class Meta:
        model = BrokerPosition
        fields = ["symbol", "asset_class", "is_open"]


class TransactionFilter(SymbolFilterMixin):
    type = filters.MultipleChoiceFilter(choices=[(t.value, t.value) for t in TransactionType],
                                        help_text="Repeat to ask for several: type=trade&type=dividend.")
    status = filters.CharFilter(lookup_expr="iexact", help_text="executed, correct or canceled.")
    side = filters.ChoiceFilter(choices=SIDES)
    since = filters.DateTimeFilter(field_name="occurred_at", lookup_expr="gte", help_text="occurred_at >= since")
    until = filters.DateTimeFilter(field_name="occurred_at", lookup_expr="lt", help_text="occurred_at < until")

    class Meta:
        model = BrokerTransaction
        fields = ["symbol", "asset_class", "type", "status", "side", "since", "until"]


class OrderFilter(SymbolFilterMixin):
    status = filters.MultipleChoiceFilter(choices=ORDER_STATUSES,
                                          help_text="Repeat to ask for several: status=open&status=partially_filled.")
    side = filters.ChoiceFilter(choices=SIDES)
    since = filters.DateTimeFilter(field_name="submitted_at", lookup_expr="gte", help_text="submitted_at >= since")
    until = filters.DateTimeFilter(field_name="submitted_at", lookup_expr="lt", help_text="submitted_at < until")

    class Meta:
        model = BrokerOrder
        fields = ["symbol", "asset_class", "status", "side", "since", "until"]


def openapi_parameters(filterset_class: type[filters.FilterSet]) -> list[OpenApiParameter]:
    """The filters as OpenAPI query parameters, for APIViews that apply a FilterSet themselves."""
    parameters = []
    for name, f in filterset_class.base_filters.items():
        kind = (OpenApiTypes.BOOL if isinstance(f, filters.BooleanFilter)
                else OpenApiTypes.DATETIME if isinstance(f, filters.DateTimeFilter) else OpenApiTypes.STR)
        choices = f.extra.get("choices")
        parameters.append(OpenApiParameter(
            name, kind, OpenApiParameter.QUERY, description=f.extra.get("help_text", ""),
            enum=[value for value, _ in choices] if choices else None,
            many=isinstance(f, filters.MultipleChoiceFilter) or None))
    return parameters
