from django.contrib import admin

from .models import Break


@admin.register(Break)
class BreakAdmin(admin.ModelAdmin):
    list_display = ["id", "connection", "kind", "key", "difference", "first_seen_at", "last_seen_at", "resolved_at"]
    list_filter = ["kind"]
    raw_id_fields = ["connection", "portfolio", "asset", "counterpart", "found_by_run", "last_run", "resolved_by_run"]
    readonly_fields = [f.name for f in Break._meta.fields]
