"""Output serializers of the portfolio APIs. Money is shown in the portfolio's base currency
with 2 decimals; quantities and prices as stored; returns as fractions (0.0123 = 1.23%)."""
from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Portfolio

MONEY = {"max_digits": 38, "decimal_places": 2, "coerce_to_string": True}
RATIO = {"max_digits": 30, "decimal_places": 8, "coerce_to_string": True}


@extend_schema_field(OpenApiTypes.DECIMAL)
class ExactDecimalField(serializers.Field):
    """A quantity or price as stored, without trailing zeros (a string, like every decimal here)."""

    def to_representation(self, value: Decimal) -> str:
        return format(value.normalize(), "f") if value else "0"


def money(help_text: str, **kw) -> serializers.DecimalField:
    return serializers.DecimalField(**MONEY, help_text=help_text, **kw)


def ratio(help_text: str, **kw) -> serializers.DecimalField:
    return serializers.DecimalField(**RATIO, help_text=help_text, **kw)


class LatestValueSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total = money("Priced holdings plus cash at the latest prices; unpriced holdings left out.")
    cash = money("Cash balances, converted.")
    unpriced = serializers.IntegerField(help_text="Holdings left out of the total: no price or no rate.")
    oldest_price_at = serializers.DateTimeField(allow_null=True)
    computed_at = serializers.DateTimeField()


class PortfolioOutputSerializer(serializers.ModelSerializer):
    connections = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                     help_text="Ids of the connections feeding it.")
    latest_value = serializers.SerializerMethodField(
        help_text="The value from the last refresh of every portfolio (every minute); null before the first. "
                  "GET .../value/ values it now, holding by holding.")

    class Meta:
        model = Portfolio
        fields = ["id", "name", "base_currency", "cost_basis_method", "wash_sales", "connections", "latest_value",
                  "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(LatestValueSerializer(allow_null=True))
    def get_latest_value(self, portfolio: Portfolio):
        snapshot = getattr(portfolio, "latest_value", None)
        return LatestValueSerializer(snapshot).data if snapshot is not None else None


class AssetRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="asset_id")
    symbol = serializers.CharField()
    asset_class = serializers.CharField()


class HoldingValueSerializer(serializers.Serializer):
    connection = serializers.IntegerField(source="connection_id")
    asset = AssetRefSerializer(source="*")
    quantity = ExactDecimalField()
    price = ExactDecimalField(source="point.price", help_text="In `quote`, as the source gave it.")
    quote = serializers.CharField(source="point.quote")
    price_at = serializers.DateTimeField(source="point.at", help_text="When the price traded.")
    source = serializers.CharField(source="point.source", help_text="The market-data source that gave the price.")
    value = money("In the base currency.")
    weight = ratio("Share of the total.", allow_null=True)


class CashValueSerializer(serializers.Serializer):
    connection = serializers.IntegerField(source="connection_id")
    currency = serializers.CharField(source="symbol")
    amount = ExactDecimalField(source="quantity")
    rate = ExactDecimalField(help_text="Base-currency units per unit of `currency`, at the latest rate.")
    value = money("In the base currency.")
    weight = ratio("Share of the total.", allow_null=True)


class UnpricedSerializer(serializers.Serializer):
    connection = serializers.IntegerField(source="connection_id")
    asset = AssetRefSerializer(source="*")
    quantity = ExactDecimalField()
    reason = serializers.CharField()


class ConnectionValueSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    broker = serializers.CharField()
    environment = serializers.CharField()
    total = money("Its priced holdings plus cash.")
    cash = money("Its cash.")
    unpriced = serializers.IntegerField(help_text="Its holdings left out of the total.")


class ValuationSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField(source="portfolio_id")
    currency = serializers.CharField(help_text="The portfolio's base currency: every value below is in it.")
    as_of = serializers.DateTimeField()
    total = money("Priced holdings plus cash. Excludes the `unpriced` holdings (never counted as 0).")
    cash = money("Cash balances, converted at the latest rates.")
    excludes_unpriced = serializers.SerializerMethodField(help_text="How many holdings the total leaves out.")
    oldest_price_at = serializers.DateTimeField(allow_null=True, help_text="The oldest price used.")
    oldest_price_age_seconds = serializers.SerializerMethodField()
    holdings = HoldingValueSerializer(many=True, help_text="Largest first.")
    cash_balances = CashValueSerializer(many=True)
    unpriced = UnpricedSerializer(many=True, help_text="Holdings no source prices (or whose quote has no rate).")
    connections = ConnectionValueSerializer(many=True)

    def get_excludes_unpriced(self, valuation) -> int:
        return len(valuation.unpriced)

    def get_oldest_price_age_seconds(self, valuation) -> int | None:
        oldest = valuation.oldest_price_at
        return None if oldest is None else int((valuation.as_of - oldest).total_seconds())


class HistoryStateSerializer(serializers.Serializer):
    through = serializers.DateField(allow_null=True, help_text="The last day stored (yesterday, UTC, when current).")
    rebuilding = serializers.BooleanField(help_text="A recompute is queued or running; the figures may change.")


class HistoryPointSerializer(serializers.Serializer):
    date = serializers.DateField(source="day", help_text="The last day of the interval (within the range).")
    value = money("At the end of the day, at that day's close.")
    cash = money("Cash within `value`.")
    flows = money("Net external flows in the interval (in positive, out negative), at each day's close.")
    twr = ratio("Cumulative time-weighted return from the start of the range.")
    complete = serializers.BooleanField(help_text="False when a holding had no price on some day.")
    unpriced = serializers.ListField(child=serializers.CharField(), help_text="What had no price.")


class XirrSerializer(serializers.Serializer):
    rate = ratio("Annual money-weighted return (actual/365); null when there is none.", allow_null=True)
    status = serializers.ChoiceField(choices=["ok", "multiple_solutions", "no_solution", "no_flows"])
    note = serializers.CharField()
    roots = serializers.ListField(child=ratio("A rate that zeroes the cash flows."))


class ReturnsSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="The portfolio's base currency.")
    connection = serializers.IntegerField(source="connection_id", allow_null=True,
                                          help_text="The connection the figures are narrowed to, if any.")
    start = serializers.DateField(allow_null=True, help_text="First day of the range with history.")
    end = serializers.DateField(allow_null=True)
    start_value = money("At the end of the day before `start` (0 before the history begins).")
    end_value = money("At the end of `end`.")
    flows = money("Net external flows in the range.")
    inflows = money("Deposits and transfers in.")
    outflows = money("Withdrawals and transfers out (negative).")
    gain = money("end_value - start_value - flows.")
    twr = ratio("Time-weighted return, daily chain-linked.", allow_null=True)
    xirr = XirrSerializer()
    days = serializers.IntegerField()
    unpriced_days = serializers.IntegerField(help_text="Days on which a holding had no price (left out).")
