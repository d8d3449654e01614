"""The admin: shared upstream tokens (secrets write-only), requests (read-only), quotas."""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from bananaweb import media, services, tokens
from bananaweb.admin_lookups import ModelAdmin, SafeLookupsMixin
from bananaweb.models import (
    GeneratedImage,
    ImageRequest,
    TokenAuditEntry,
    TokenEvent,
    TokenState,
    UpstreamToken,
    UserQuota,
)

admin.site.site_header = "bananaweb admin"
admin.site.site_title = "bananaweb admin"

# --- Upstream tokens ---------------------------------------------------------------


class UpstreamTokenForm(forms.ModelForm):
    secret = forms.CharField(
        label="Token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The Mountsea API token. It is stored encrypted and never shown again; "
        "leave empty to keep the current one.",
    )

    class Meta:
        model = UpstreamToken
        fields = ["name", "secret", "is_active", "priority", "groups", "notes"]

    @method_decorator(sensitive_variables("secret"))
    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if not secret and not self.instance.pk:
            raise forms.ValidationError("Paste the token: a new entry needs one.")
        return secret


@admin.register(UpstreamToken)
class UpstreamTokenAdmin(ModelAdmin):
    form = UpstreamTokenForm
    list_display = [
        "name",
        "masked_secret",
        "state_display",
        "priority",
        "group_list",
        "uses_today",
        "uses_total",
        "last_used_at",
        "short_error",
    ]
    list_filter = ["is_active", "groups"]
    search_fields = ["name", "notes"]
    actions = ["enable", "disable", "check_now"]
    readonly_fields = [
        "masked_secret",
        "state_display",
        "created_by",
        "created_at",
        "updated_at",
        "last_used_at",
        "last_error",
        "last_error_at",
        "suspended_reason",
        "recheck_at",
        "cooldown_until",
        "last_check",
        "usage",
        "audit_log",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "secret",
                    "masked_secret",
                    "is_active",
                    "priority",
                    "groups",
                    "notes",
                ]
            },
        ),
        (
            "Health",
            {
                "fields": [
                    "state_display",
                    "last_check",
                    "suspended_reason",
                    "recheck_at",
                    "cooldown_until",
                    "last_error",
                    "last_error_at",
                    "last_used_at",
                ]
            },
        ),
        (
            "Usage and history",
            {
                "fields": [
                    "usage",
                    "created_by",
                    "created_at",
                    "updated_at",
                    "audit_log",
                ]
            },
        ),
    ]

    @method_decorator(sensitive_post_parameters("secret"))
    def changeform_view(self, *args, **kwargs):
        return super().changeform_view(*args, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_usage().prefetch_related("groups")

    @admin.display(description="Token")
    def masked_secret(self, obj: UpstreamToken) -> str:
        return obj.masked if obj.last4 else "—"

    @admin.display(description="State")
    def state_display(self, obj: UpstreamToken) -> str:
        if obj.state == TokenState.SUSPENDED:
            return f"Out of rotation: {obj.suspended_reason}"
        if obj.state == TokenState.COOLING_DOWN:
            return f"Cooling down until {obj.cooldown_until:%H:%M:%S}"
        return obj.state.capitalize()

    @admin.display(description="Groups")
    def group_list(self, obj: UpstreamToken) -> str:
        return ", ".join(group.name for group in obj.groups.all()) or "Everyone"

    @admin.display(description="Today", ordering="uses_today")
    def uses_today(self, obj: UpstreamToken) -> int:
        return obj.uses_today

    @admin.display(description="Total", ordering="uses_total")
    def uses_total(self, obj: UpstreamToken) -> int:
        return obj.uses_total

    @admin.display(description="Last error")
    def short_error(self, obj: UpstreamToken) -> str:
        return (
            (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error
        )

    @admin.display(description="Last check")
    def last_check(self, obj: UpstreamToken) -> str:
        """The newest "Check now" answer, or that one is waiting for the worker."""
        events = (TokenEvent.CHECK_REQUESTED, TokenEvent.CHECKED)
        entry = (
            obj.audit_entries.filter(event__in=events).select_related("actor").first()
        )
        if entry is None:
            return "Never checked"
        if entry.event == TokenEvent.CHECK_REQUESTED:
            return (
                f"Requested by {entry.actor or 'bananaweb'} at {entry.at:%H:%M:%S}; "
                "waiting for the task worker. Reload this page to see the answer."
            )
        return f"{entry.at:%Y-%m-%d %H:%M:%S}: {entry.detail}"

    @admin.display(description="Usage")
    def usage(self, obj: UpstreamToken) -> str:
        return f"{getattr(obj, 'uses_today', 0)} accepted requests today, {getattr(obj, 'uses_total', 0)} in all"

    @admin.display(description="Audit log")
    def audit_log(self, obj: UpstreamToken) -> str:
        entries = obj.audit_entries.select_related("actor")[:50]
        if not entries:
            return "—"
        return format_html(
            "<ul class='audit'>{}</ul>",
            format_html_join(
                "",
                "<li>{} · {} · {}{}</li>",
                (
                    (
                        f"{e.at:%Y-%m-%d %H:%M}",
                        e.actor or "bananaweb",
                        e.event,
                        f" ({', '.join(e.fields)})" if e.fields else "",
                    )
                    for e in entries
                ),
            ),
        )

    def save_model(
        self,
        request: HttpRequest,
        obj: UpstreamToken,
        form: UpstreamTokenForm,
        change: bool,
    ) -> None:
        tokens.token_save(
            token=obj,
            secret=form.cleaned_data.get("secret", ""),
            changed=form.changed_data,
            actor=request.user,
        )

    def delete_model(self, request: HttpRequest, obj: UpstreamToken) -> None:
        tokens.token_delete(token=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for token in queryset:
            tokens.token_delete(token=token, actor=request.user)

    @admin.action(
        description="Enable selected tokens (back into rotation)",
        permissions=["change"],
    )
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        for token in queryset:
            tokens.token_enable(token=token, actor=request.user)
        self.message_user(
            request, f"Enabled {queryset.count()} token(s).", messages.SUCCESS
        )

    @admin.action(description="Disable selected tokens", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        for token in queryset:
            tokens.token_disable(token=token, actor=request.user)
        self.message_user(
            request, f"Disabled {queryset.count()} token(s).", messages.SUCCESS
        )

    @admin.action(
        description="Check now (a free authenticated call, in the background)",
        permissions=["change"],
    )
    def check_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for token in queryset:
            services.upstream_token_check(token=token, actor=request.user)
        self.message_user(
            request,
            f"Checking {queryset.count()} token(s) in the background: "
            "each token's page shows the answer under Health › Last check.",
            messages.INFO,
        )


@admin.register(TokenAuditEntry)
class TokenAuditEntryAdmin(ModelAdmin):
    list_display = ["at", "token_name", "actor", "event", "field_list", "detail"]
    list_filter = ["event", "token_name"]
    search_fields = ["token_name", "detail"]

    @admin.display(description="Fields")
    def field_list(self, obj: TokenAuditEntry) -> str:
        return ", ".join(obj.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# --- Requests -------------------------------------------------------------------------


@admin.register(ImageRequest)
class ImageRequestAdmin(ModelAdmin):
    list_display = [
        "pk",
        "created_at",
        "user",
        "action",
        "model",
        "status",
        "upstream_token",
        "short_prompt",
        "upstream_task_id",
    ]
    list_filter = [
        "status",
        "model",
        "action",
        "source",
        ("created_at", admin.DateFieldListFilter),
        "user",
    ]
    search_fields = ["prompt", "upstream_task_id"]
    list_select_related = ["user", "upstream_token"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            "Parameters",
            {
                "fields": [
                    "user",
                    "source",
                    "action",
                    "prompt",
                    "model",
                    "aspect_ratio",
                    "resolution",
                    "num_images",
                    "image_urls",
                ]
            },
        ),
        (
            "Outcome",
            {
                "fields": [
                    "status",
                    "upstream_status",
                    "upstream_task_id",
                    "upstream_token",
                    "error_code",
                    "error_message",
                    "counts_toward_quota",
                    "created_at",
                    "submitted_at",
                    "finished_at",
                    "poll_count",
                ]
            },
        ),
        ("Upstream exchange", {"fields": ["exchange_table", "result_json"]}),
        ("Images", {"fields": ["image_list"]}),
    ]
    readonly_fields = [
        field for fieldset in fieldsets for field in fieldset[1]["fields"]
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the history is the team's record (and the chargeback's)

    @admin.display(description="Prompt")
    def short_prompt(self, obj: ImageRequest) -> str:
        return obj.prompt[:60]

    @admin.display(description="Calls (no secrets are ever logged)")
    def exchange_table(self, obj: ImageRequest) -> str:
        if not obj.exchange:
            return "—"
        return format_html(
            "<table><tr><th>At</th><th>Call</th><th>Token</th><th>HTTP</th><th>Outcome</th><th>Message</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        e.get("at"),
                        e.get("call"),
                        e.get("token", ""),
                        e.get("http_status", ""),
                        e.get("outcome"),
                        e.get("message"),
                    )
                    for e in obj.exchange
                ),
            ),
        )

    @admin.display(description="Upstream result")
    def result_json(self, obj: ImageRequest) -> str:
        if obj.result is None:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2)[:20000])

    @admin.display(description="Images")
    def image_list(self, obj: ImageRequest) -> str:
        return (
            format_html_join(
                "",
                "<a href='{0}'><img src='{0}' alt='' width='240'></a> {1}×{2}<br>",
                (
                    (
                        reverse("admin:bananaweb_image_file", args=[image.pk]),
                        image.width,
                        image.height,
                    )
                    for image in obj.images.all()
                ),
            )
            or "—"
        )

    def get_urls(self):
        return [
            path(
                "image/<int:image_pk>/",
                self.admin_site.admin_view(self.image_file),
                name="bananaweb_image_file",
            ),
            *super().get_urls(),
        ]

    def image_file(self, request: HttpRequest, image_pk: int) -> FileResponse:
        """Any user's image, to staff who may view requests."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        image = get_object_or_404(GeneratedImage, pk=image_pk)
        return media.file_response(image.file, content_type=image.content_type)


# --- Quotas ---------------------------------------------------------------------------


class UserQuotaInline(admin.StackedInline):
    model = UserQuota
    can_delete = False
    verbose_name_plural = "Daily request quota"


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class BananawebUserAdmin(SafeLookupsMixin, UserAdmin):
    inlines = [*UserAdmin.inlines, UserQuotaInline]
