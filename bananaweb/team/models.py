"""The team's shared spaces: collections of images with their members, and share
links that show a collection or one image to anyone who has the link."""

import enum
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone

from bananaweb.models import GeneratedImage

# --- Collections -----------------------------------------------------------------------


class Access(enum.IntEnum):
    """What someone may do with a collection; each level may do what those below may."""

    NONE = 0
    VIEWER = 1  # see its images, download them
    EDITOR = 2  # add, remove and arrange images
    OWNER = 3  # rename, delete, choose the members, share it by a link


class Role(models.TextChoices):
    """A member's role, given by the owner."""

    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"


ROLE_ACCESS = {Role.VIEWER: Access.VIEWER, Role.EDITOR: Access.EDITOR}


class CollectionMemberQuerySet(models.QuerySet):
    def of(self, user) -> "CollectionMemberQuerySet":
        """The memberships that count for the user: theirs, and their groups'."""
        return self.filter(Q(user=user) | Q(group__in=user.groups.all()))


class CollectionQuerySet(models.QuerySet):
    def viewable_by(self, user) -> "CollectionQuerySet":
        """Collections the user owns or is a member of (by name or by a group)."""
        member_of = CollectionMember.objects.of(user).values("collection")
        return self.filter(Q(owner=user) | Q(pk__in=member_of))

    def editable_by(self, user) -> "CollectionQuerySet":
        """Collections the user owns or edits."""
        edits = CollectionMember.objects.of(user).filter(role=Role.EDITOR)
        return self.filter(Q(owner=user) | Q(pk__in=edits.values("collection")))

    def recently_changed_first(self) -> "CollectionQuerySet":
        return self.order_by("-updated_at", "-pk")


class Collection(models.Model):
    """A named, ordered set of images, shown to its owner and its members."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="collections",
    )
    name = models.CharField(max_length=100)
    description = models.TextField(max_length=2000, blank=True)
    # Chosen by an editor among its images; when empty (or no longer among them)
    # the first image is shown.
    cover = models.ForeignKey(
        GeneratedImage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = CollectionQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return self.name

    def access_for(self, user) -> Access:
        if self.owner_id == user.pk:
            return Access.OWNER
        roles = self.members.of(user).values_list("role", flat=True)
        return max((ROLE_ACCESS[role] for role in roles), default=Access.NONE)

    def is_shared(self) -> bool:
        """Whether anyone besides its owner sees it."""
        return self.members.exists()


class CollectionMember(models.Model):
    """A user, or a group (each of its members), given a role in a collection."""

    Role = Role

    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="members"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="collection_memberships",
    )
    group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="collection_memberships",
    )
    role = models.CharField(max_length=6, choices=Role, default=Role.VIEWER)
    added_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = CollectionMemberQuerySet.as_manager()

    class Meta:
        ordering = ["added_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=True, group__isnull=False)
                | Q(user__isnull=False, group__isnull=True),
                name="collection_member_user_or_group",
            ),
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="collection_member_role_valid"
            ),
            models.UniqueConstraint(
                fields=["collection", "user"],
                condition=Q(user__isnull=False),
                name="collection_member_user_once",
            ),
            models.UniqueConstraint(
                fields=["collection", "group"],
                condition=Q(group__isnull=False),
                name="collection_member_group_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.who} ({self.get_role_display()}) in {self.collection}"

    @property
    def who(self) -> str:
        if self.user_id:
            return self.user.get_username()
        return f"Group {self.group.name}"


class CollectionItem(models.Model):
    """One image in a collection: who added it, when, and where it stands.

    Removing it never deletes the image; deleting the image removes it.
    """

    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="items"
    )
    image = models.ForeignKey(
        GeneratedImage, on_delete=models.CASCADE, related_name="collection_items"
    )
    position = models.PositiveIntegerField(default=0)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    added_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "image"], name="collection_item_image_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.image} in {self.collection}"


# --- Share links -------------------------------------------------------------------------


def hash_token(raw: str) -> str:
    """SHA-256 is enough: the tokens are random with 256 bits of entropy."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_raw_token() -> str:
    return secrets.token_urlsafe(32)


TOKEN_LENGTH = len(new_raw_token())
PREFIX_LENGTH = 6  # what is shown of a link in its creator's list


class ShareLinkState(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class ShareLinkQuerySet(models.QuerySet):
    def for_user(self, user) -> "ShareLinkQuerySet":
        """The links the user made."""
        return self.filter(created_by=user)

    def active(self) -> "ShareLinkQuerySet":
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

    def newest_first(self) -> "ShareLinkQuerySet":
        return self.order_by("-created_at", "-pk")


class ShareLink(models.Model):
    """A read-only link, needing no sign-in, to a collection or to one image.

    Only the hash of its token is stored: the link is shown once, when it is made.
    """

    State = ShareLinkState

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="share_links",
    )
    collection = models.ForeignKey(
        Collection,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="share_links",
    )
    image = models.ForeignKey(
        GeneratedImage,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="share_links",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    show_prompts = models.BooleanField(
        default=False, help_text="The prompts are shown under the images."
    )
    show_details = models.BooleanField(
        "show name and description",
        default=False,
        help_text="A collection's name and description head the page.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("revoke_sharelink", "Can revoke anyone's share links")]
        constraints = [
            models.CheckConstraint(
                condition=Q(collection__isnull=True, image__isnull=False)
                | Q(collection__isnull=False, image__isnull=True),
                name="share_link_collection_or_image",
            )
        ]

    def __str__(self) -> str:
        return f"Share link {self.prefix}… to {self.target_text}"

    def set_token(self, raw: str) -> None:
        self.prefix = raw[:PREFIX_LENGTH]
        self.token_hash = hash_token(raw)

    @property
    def state(self) -> ShareLinkState:
        if self.revoked_at is not None:
            return ShareLinkState.REVOKED
        if self.expires_at <= timezone.now():
            return ShareLinkState.EXPIRED
        return ShareLinkState.ACTIVE

    @property
    def is_active(self) -> bool:
        return self.state == ShareLinkState.ACTIVE

    @property
    def target_text(self) -> str:
        if self.collection_id:
            return f"collection “{self.collection.name}”"
        return f"an image of request #{self.image.image_request_id}"
