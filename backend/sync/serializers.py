"""Output serializers for runs and synced rows. Money and quantities are strings, never
floats, and carry no padding zeros (the columns hold 18 places: 1.5 is "1.5")."""
from __future__ import annotations

from decimal import Decimal

from django.db import models
from rest_framework import serializers

from .models import BrokerOrder, BrokerPosition, BrokerTransaction, SyncRun


class PlainDecimalField(serializers.DecimalField):
    """A decimal as an exact string, without the column's trailing zeros."""

    def to_representation(self, value) -> str:
        value = Decimal(value)
        if value == 0:
            return "0"
        return format(value.normalize(), "f")


class DecimalModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.DecimalField: PlainDecimalField}


class StepsField(serializers.DictField):
    """Per-step figures; the run's own bookkeeping (keys starting with "_") stays internal."""

    def to_representation(self, value):
        return super().to_representation({k: v for k, v in (value or {}).items() if not k.startswith("_")})


class SyncRunOutputSerializer(serializers.ModelSerializer):
    steps = StepsField(
        child=serializers.DictField(), help_text="Per step: started_at, finished_at, duration_ms, and counts "
                                                 "(fetched, created, updated, rewritten, changed, closed, skipped, "
                                                 "requests): `updated` rows were seen again, `rewritten` of them "
                                                 "differed and were written, `changed` in their history.")
    reconcile_differences = serializers.JSONField(
        help_text="The connection's open breaks after this run's reconcile: assets (or cash) whose position "
                  "disagrees with the sum of their transactions, each with its type and break id "
                  "(GET /portfolios/{id}/breaks/).")
    open_breaks = serializers.SerializerMethodField(
        help_text="How many breaks were open when this run's reconcile ended (0: everything adds up; null: "
                  "not reconciled yet).")
    skipped_records = serializers.SerializerMethodField(help_text="How many records the broker sent that "
                                                                  "could not be read (kept on the run).")

    class Meta:
        model = SyncRun
        fields = ["id", "connection", "state", "trigger", "current_step", "failed_step", "steps", "error_kind",
                  "error_message", "reconcile_differences", "open_breaks", "skipped_records", "attempts", "queued_at",
                  "started_at", "finished_at"]
        read_only_fields = fields

    def get_open_breaks(self, run: SyncRun) -> int | None:
        return (run.steps or {}).get("reconcile", {}).get("breaks")

    def get_skipped_records(self, run: SyncRun) -> int:
        return len(run.skipped_records or [])


class PositionOutputSerializer(DecimalModelSerializer):
    symbol = serializers.CharField(source="asset.symbol")
    asset_class = serializers.CharField(source="asset.asset_class")

    class Meta:
        model = BrokerPosition
        fields = ["id", "symbol", "asset_class", "broker_symbol", "quantity", "avg_entry_price", "cost_basis",
                  "current_price", "market_value", "is_open", "closed_at", "first_seen_at", "updated_at"]
        read_only_fields = fields


class TransactionOutputSerializer(DecimalModelSerializer):
    symbol = serializers.CharField(source="asset.symbol", allow_null=True)
    asset_class = serializers.CharField(source="asset.asset_class", allow_null=True)

    class Meta:
        model = BrokerTransaction
        fields = ["id", "broker_id", "type", "broker_type", "status", "occurred_at", "symbol", "asset_class",
                  "broker_symbol", "side", "quantity", "price", "amount", "fee", "currency", "order_id",
                  "description"]
        read_only_fields = fields


class OrderOutputSerializer(DecimalModelSerializer):
    symbol = serializers.CharField(source="asset.symbol", allow_null=True)
    asset_class = serializers.CharField(source="asset.asset_class", allow_null=True)

    class Meta:
        model = BrokerOrder
        fields = ["id", "broker_id", "client_order_id", "symbol", "asset_class", "broker_symbol", "side",
                  "order_type", "time_in_force", "status", "broker_status", "quantity", "notional",
                  "filled_quantity", "filled_avg_price", "limit_price", "stop_price", "submitted_at",
                  "updated_at_broker", "filled_at", "canceled_at"]
        read_only_fields = fields
