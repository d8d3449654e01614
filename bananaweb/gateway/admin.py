"""The admin: every API token (never its secret), revocable; the task ids scripts were given."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from bananaweb.admin_lookups import ModelAdmin
from bananaweb.gateway import services
from bananaweb.gateway.models import ApiToken, GatewayTask


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        match self.value():
            case "active":
                return queryset.active()
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(ModelAdmin):
    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [RevokedFilter]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    # Tokens are made by their users or `manage.py issue_api_token`: here they are only read and revoked.
    fields = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ApiToken | None = None
    ) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = sum(
            services.api_token_revoke(api_token=api_token)
            for api_token in queryset.active()
        )
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(GatewayTask)
class GatewayTaskAdmin(ModelAdmin):
    list_display = ["task_id", "image_request", "api_token"]
    search_fields = ["task_id", "image_request__user__username"]
    list_select_related = ["image_request", "api_token"]
    fields = ["task_id", "image_request", "api_token"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: GatewayTask | None = None
    ) -> bool:
        return False
