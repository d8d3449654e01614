"""The reads of collections and share links that take more than one QuerySet method."""

from collections.abc import Iterable

from django.db.models import Count, Prefetch, Q, QuerySet

from bananaweb.models import GeneratedImage, ImageRequest
from bananaweb.team.models import (
    TOKEN_LENGTH,
    Collection,
    CollectionItem,
    ShareLink,
    hash_token,
)

TOKEN_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


def images_visible_to(user) -> QuerySet[GeneratedImage]:
    """The images the user may see, and so add to a collection."""
    return GeneratedImage.objects.visible_to(user)


def requests_visible_to(user) -> QuerySet[ImageRequest]:
    return ImageRequest.objects.visible_to(user)


def is_private(image: GeneratedImage) -> bool:
    return image.image_request.visibility == ImageRequest.Visibility.PRIVATE


def collections_for(*, user) -> QuerySet[Collection]:
    """The collections the user owns or is a member of, with their first image
    and size, the most recently changed first."""
    return (
        Collection.objects.viewable_by(user)
        .select_related("owner", "cover")
        .annotate(
            item_count=Count("items", distinct=True),
            member_count=Count("members", distinct=True),
        )
        .prefetch_related(
            Prefetch(
                "items",
                queryset=CollectionItem.objects.select_related("image"),
                to_attr="ordered_items",
            )
        )
        .recently_changed_first()
    )


def cover_of(
    collection: Collection, items: list[CollectionItem]
) -> GeneratedImage | None:
    """The chosen cover while it is among the images, else the first image."""
    images = [item.image for item in items]
    if collection.cover_id and any(i.pk == collection.cover_id for i in images):
        return next(i for i in images if i.pk == collection.cover_id)
    return images[0] if images else None


def collection_items(*, collection: Collection, user) -> list[CollectionItem]:
    """The collection's images the user may see, in their order, with who added
    each and who made it. (A teammate's image someone else added is left out
    once its owner makes it private.)"""
    return list(
        collection.items.filter(image__in=images_visible_to(user))
        .select_related("image__image_request__user", "added_by")
        .order_by("position", "pk")
    )


def private_images_needing_consent(
    *, collection: Collection, images: Iterable[GeneratedImage]
) -> list[GeneratedImage]:
    """The private images that adding to the collection would show to someone
    who could not see them: its owner, if not theirs, or any member."""
    private = [image for image in images if is_private(image)]
    if not private:
        return []
    shared = collection.is_shared()
    return [
        image
        for image in private
        if shared or image.image_request.user_id != collection.owner_id
    ]


# --- Share links -------------------------------------------------------------------------


def share_link_for_token(token: str) -> ShareLink | None:
    """The active link this token opens, or None (mistyped, tampered, expired,
    revoked, or its creator's account closed)."""
    if len(token) != TOKEN_LENGTH or not TOKEN_CHARACTERS.issuperset(token):
        return None
    return (
        ShareLink.objects.active()
        .filter(token_hash=hash_token(token), created_by__is_active=True)
        .select_related("collection", "image__image_request")
        .first()
    )


def share_link_images(share_link: ShareLink) -> list[GeneratedImage]:
    """What the link shows, in order. A collection's link shows its images that
    are the creator's own or the team's: another member's private image was
    shown to the members only, never to the world."""
    if share_link.image_id:
        return list(
            GeneratedImage.objects.filter(
                pk=share_link.image_id, image_request__deleted_at__isnull=True
            ).select_related("image_request")
        )
    items = (
        CollectionItem.objects.filter(
            collection=share_link.collection_id,
            image__image_request__deleted_at__isnull=True,
        )
        .filter(
            Q(image__image_request__user=share_link.created_by_id)
            | Q(image__image_request__visibility=ImageRequest.Visibility.TEAM)
        )
        .select_related("image__image_request")
        .order_by("position", "pk")
    )
    return [item.image for item in items]


def share_links_for(*, user) -> QuerySet[ShareLink]:
    return (
        ShareLink.objects.for_user(user)
        .select_related("collection", "image")
        .newest_first()
    )
