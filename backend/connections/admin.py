"""Connections in the admin. The encrypted key columns are never loaded here (deferred),
never on a form and never in a list: an admin sees `key_hint` only, and saving a change
form cannot rewrite a key. Connections are added through the API, which checks the keys."""
from django.contrib import admin, messages

from backend.sync.services import sync_request

from .models import BrokerConnection
from .services import ENCRYPTED_FIELDS


@admin.register(BrokerConnection)
class BrokerConnectionAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "broker", "environment", "label", "status", "last_sync_at", "last_sync_state",
                    "error_count", "next_sync_at")
    list_filter = ("broker", "environment", "status", "last_sync_state")
    search_fields = ("label", "broker_account_id", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "portfolio")
    exclude = ENCRYPTED_FIELDS
    readonly_fields = ("broker", "environment", "broker_account_id", "key_hint", "warnings", "last_sync_at",
                       "last_successful_sync_at", "last_sync_state", "last_error", "created_at", "updated_at")
    ordering = ("-id",)
    actions = ("queue_sync",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*ENCRYPTED_FIELDS)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Queue a sync now")
    def queue_sync(self, request, queryset):
        queued = sum(sync_request(connection=c, trigger="api")[1] for c in queryset if c.schedulable)
        self.message_user(request, f"Queued {queued} sync run(s); connections already syncing or halted were "
                                   "left alone.", messages.INFO)
