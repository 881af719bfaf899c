from django.contrib import admin

from .models import Asset, Portfolio


@admin.register(Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "base_currency", "created_at")
    search_fields = ("name", "owner__username", "owner__email")
    list_filter = ("base_currency",)
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    """Assets are created by syncs; name and exchange may be tidied by hand, the identity may not."""

    list_display = ("id", "symbol", "asset_class", "exchange", "currency", "name")
    list_filter = ("asset_class", "currency")
    search_fields = ("symbol", "name")

    def get_readonly_fields(self, request, obj=None):
        return ("symbol", "asset_class", "created_at") if obj else ("created_at",)
