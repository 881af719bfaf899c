"""API tokens in the admin: who has one, since when, until when; an admin may revoke them
(delete), never add one or see one. knox's own admin shows each token's digest and puts a
new token on the page when one is added: it is replaced."""
from django.contrib import admin
from knox.models import AuthToken

admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "created", "expiry")
    list_filter = ("expiry",)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    fields = ("user", "created", "expiry")
    readonly_fields = fields
    ordering = ("-created",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
