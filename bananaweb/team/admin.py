"""The admin: collections with their members and images; every share link (never its
token), revocable by staff who hold the permission."""

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bananaweb.admin_lookups import ModelAdmin
from bananaweb.team import services
from bananaweb.team.models import (
    Collection,
    CollectionItem,
    CollectionMember,
    ShareLink,
)


class CollectionMemberInline(admin.TabularInline):
    model = CollectionMember
    extra = 0
    fields = ["user", "group", "role", "added_at"]
    readonly_fields = ["added_at"]
    raw_id_fields = ["user"]


class CollectionItemInline(admin.TabularInline):
    """Removing an item here takes the image out of the collection; it stays."""

    model = CollectionItem
    extra = 0
    fields = ["position", "image", "added_by", "added_at"]
    readonly_fields = ["image", "added_by", "added_at"]
    ordering = ["position", "pk"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # images are added from the site, where visibility is checked


@admin.register(Collection)
class CollectionAdmin(ModelAdmin):
    list_display = ["name", "owner", "images", "members_count", "updated_at"]
    search_fields = ["name", "description", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner", "cover"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [CollectionMemberInline, CollectionItemInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Collection]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                item_count=Count("items", distinct=True),
                member_count=Count("members", distinct=True),
            )
        )

    @admin.display(description="images", ordering="item_count")
    def images(self, obj: Collection) -> int:
        return obj.item_count

    @admin.display(description="members", ordering="member_count")
    def members_count(self, obj: Collection) -> int:
        return obj.member_count


class ShareLinkStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ShareLink.State.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        match self.value():
            case ShareLink.State.ACTIVE:
                return queryset.active()
            case ShareLink.State.EXPIRED:
                return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
            case ShareLink.State.REVOKED:
                return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ShareLink)
class ShareLinkAdmin(ModelAdmin):
    list_display = [
        "prefix",
        "target",
        "created_by",
        "show_prompts",
        "created_at",
        "expires_at",
        "state",
    ]
    list_filter = [ShareLinkStateFilter, "show_prompts"]
    search_fields = ["prefix", "created_by__username", "collection__name"]
    list_select_related = ["created_by", "collection", "image"]
    # Links are made by their creators on the site: here they are read and revoked.
    fields = [
        "prefix",
        "created_by",
        "collection",
        "image",
        "show_prompts",
        "show_details",
        "created_at",
        "expires_at",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ShareLink | None = None
    ) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("team.revoke_sharelink")

    @admin.display(description="shares")
    def target(self, obj: ShareLink) -> str:
        return obj.target_text

    @admin.display(description="state")
    def state(self, obj: ShareLink) -> str:
        return obj.state.label

    @admin.action(description="Revoke the selected share links", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        count = sum(
            services.share_link_revoke(share_link=share_link)
            for share_link in queryset.filter(Q(revoked_at__isnull=True))
        )
        self.message_user(request, f"Revoked {count} share link(s).", messages.SUCCESS)
