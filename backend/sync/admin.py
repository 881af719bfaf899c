"""Runs, cursors and synced rows in the admin: read-only (the broker is the source of
truth, and a sync would overwrite any edit). Deleting a run or a row is still allowed."""
from django.contrib import admin

from backend.connections.services import ENCRYPTED_FIELDS

from .models import BrokerOrder, BrokerPosition, BrokerTransaction, SyncCursor, SyncRun


class ReadOnlyAdmin(admin.ModelAdmin):
    # Tables with millions of rows: skip the unfiltered COUNT(*) on every list page.
    show_full_result_count = False

    def get_queryset(self, request):
        # Rows are listed with their connection's name; its key columns need not be decrypted.
        return (super().get_queryset(request).select_related("connection")
                .defer(*(f"connection__{f}" for f in ENCRYPTED_FIELDS)))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "connection", "state", "trigger", "current_step", "failed_step", "error_kind",
                    "queued_at", "started_at", "finished_at")
    list_filter = ("state", "trigger", "error_kind", "connection__broker")
    search_fields = ("=id", "=connection__id", "connection__label", "error_message")
    list_select_related = ("connection",)
    date_hierarchy = "queued_at"


@admin.register(SyncCursor)
class SyncCursorAdmin(ReadOnlyAdmin):
    list_display = ("id", "connection", "stream", "watermark", "updated_at")
    list_filter = ("stream", "connection__broker")
    search_fields = ("=connection__id", "connection__label")
    list_select_related = ("connection",)


@admin.register(BrokerPosition)
class BrokerPositionAdmin(ReadOnlyAdmin):
    list_display = ("id", "connection", "asset", "broker_symbol", "quantity", "market_value", "is_open",
                    "closed_at", "updated_at")
    list_filter = ("is_open", "asset__asset_class", "connection__broker")
    search_fields = ("broker_symbol", "asset__symbol", "=connection__id")
    list_select_related = ("connection", "asset")


@admin.register(BrokerTransaction)
class BrokerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "connection", "occurred_at", "type", "broker_type", "status", "broker_symbol",
                    "quantity", "amount", "currency")
    list_filter = ("type", "status", "connection__broker")
    search_fields = ("broker_id", "broker_symbol", "asset__symbol", "order_id", "=connection__id")
    list_select_related = ("connection", "asset")
    date_hierarchy = "occurred_at"


@admin.register(BrokerOrder)
class BrokerOrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "connection", "submitted_at", "broker_symbol", "side", "order_type", "status",
                    "quantity", "filled_quantity", "filled_avg_price")
    list_filter = ("status", "side", "order_type", "connection__broker")
    search_fields = ("broker_id", "client_order_id", "broker_symbol", "asset__symbol", "=connection__id")
    list_select_related = ("connection", "asset")
    date_hierarchy = "submitted_at"
