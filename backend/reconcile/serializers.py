"""Output serializer for breaks: quantities as exact strings, never floats."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backend.sync.serializers import DecimalModelSerializer

from .models import Break


class BreakOutputSerializer(DecimalModelSerializer):
    type = serializers.CharField(source="kind", help_text="history_missing, unexplained_disposal, split, transfer, "
                                                          "precision or cash (README: Reconcile).")
    status = serializers.SerializerMethodField(help_text="open or resolved.")
    symbol = serializers.SerializerMethodField(help_text="The asset's symbol, or the currency of a cash break.")
    asset_class = serializers.SerializerMethodField(help_text="fiat for cash.")
    broker = serializers.CharField(source="connection.broker", help_text="The connection's broker.")
    legs = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()), read_only=True,
        help_text="The missing trade's other legs, [{symbol, asset_class, difference}]: the quote, cash or "
                  "commission asset that differ by it too (recorded here, not as breaks of their own).")
    counterpart = serializers.SerializerMethodField(
        help_text="Transfer breaks: the unmatched leg at another connection {transaction, connection}.")

    class Meta:
        model = Break
        fields = ["id", "connection", "broker", "type", "status", "symbol", "asset_class", "broker_quantity",
                  "ledger_quantity", "difference", "precision", "legs", "window_start",
                  "window_end", "detail", "resolution", "counterpart", "found_by_run", "last_run", "resolved_by_run",
                  "first_seen_at", "last_seen_at", "resolved_at"]
        read_only_fields = fields
        extra_kwargs = {"window_start": {"help_text": "Where the cause lies; null: before the first fetched record."},
                        "window_end": {"help_text": "Null: up to the latest sync."},
                        "found_by_run": {"help_text": "The sync run that found it."}}

    def get_status(self, row: Break) -> str:
        return "open" if row.is_open else "resolved"

    def get_symbol(self, row: Break) -> str:
        return row.asset.symbol if row.asset_id else row.currency

    def get_asset_class(self, row: Break) -> str:
        return row.asset.asset_class if row.asset_id else "fiat"

    @extend_schema_field({"type": "object", "nullable": True, "properties": {
        "transaction": {"type": "integer"}, "connection": {"type": "integer"}}})
    def get_counterpart(self, row: Break) -> dict | None:
        if row.counterpart_id is None:
            return None
        return {"transaction": row.counterpart_id, "connection": row.counterpart.connection_id}
