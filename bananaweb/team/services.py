"""Every write to collections, their members and images, and share links."""

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from bananaweb.models import GeneratedImage, ImageRequest
from bananaweb.team import selectors
from bananaweb.team.models import (
    Collection,
    CollectionItem,
    CollectionMember,
    Role,
    ShareLink,
    new_raw_token,
)

SHARE_LINK_DEFAULT_DAYS = 7


class ConsentNeeded(Exception):
    """Adding these private images would show them to the collection's members:
    the person adding them is asked first."""

    def __init__(self, images: list[GeneratedImage]) -> None:
        super().__init__(
            f"{len(images)} of these images are private: adding them shows them to "
            "the collection's members."
        )
        self.images = images


def _touch(collection: Collection) -> None:
    now = timezone.now()
    Collection.objects.filter(pk=collection.pk).update(updated_at=now)
    collection.updated_at = now


def _lock(collection: Collection) -> None:
    """Hold the collection's row: positions are counted under it."""
    Collection.objects.select_for_update().filter(pk=collection.pk).first()


# --- Collections -------------------------------------------------------------------------


def collection_create(
    *,
    owner,
    name: str,
    description: str = "",
    images: Sequence[GeneratedImage] = (),
) -> Collection:
    """A new collection, shared with nobody yet, with these images of the owner's
    (or the team's) in it."""
    collection = Collection(
        owner=owner, name=name.strip(), description=description.strip()
    )
    collection.full_clean()
    with transaction.atomic():
        collection.save()
        if images:
            collection_images_add(collection=collection, images=images, user=owner)
    return collection


def collection_update(*, collection: Collection, name: str, description: str) -> None:
    collection.name = name.strip()
    collection.description = description.strip()
    collection.updated_at = timezone.now()
    collection.full_clean()
    collection.save(update_fields=["name", "description", "updated_at"])


def collection_delete(*, collection: Collection) -> None:
    """The collection, its members and share links go; its images stay."""
    collection.delete()


# --- Members -----------------------------------------------------------------------------


def collection_member_set(
    *, collection: Collection, role: Role, user=None, group: Group | None = None
) -> CollectionMember:
    """Adds a user or a group with this role, or changes the role they have."""
    if user is not None and user.pk == collection.owner_id:
        raise ValidationError(
            {"who": "The owner is in the collection already, with every right."}
        )
    with transaction.atomic():
        member, _ = CollectionMember.objects.update_or_create(
            collection=collection, user=user, group=group, defaults={"role": role}
        )
        _touch(collection)
    return member


def collection_member_remove(*, member: CollectionMember) -> None:
    """They no longer see the collection. What they added stays in it, but for
    their private images: those were shown to the collection while they were in
    it, and leave with them."""
    collection = member.collection
    with transaction.atomic():
        member.delete()
        if member.user_id is not None:
            collection.items.filter(
                image__image_request__user=member.user_id,
                image__image_request__visibility=ImageRequest.Visibility.PRIVATE,
            ).delete()
        _touch(collection)


# --- Images in a collection ----------------------------------------------------------------


def collection_images_add(
    *,
    collection: Collection,
    images: Sequence[GeneratedImage],
    user,
    consent: bool = False,
) -> int:
    """Adds the images at the end (those already in stay where they are) and
    returns how many were added.

    A private image only its owner may add (anyone else would show it to people
    its owner never chose); if it would be shown to someone who could not see it,
    ConsentNeeded is raised unless `consent`.
    """
    others_private = [
        image
        for image in images
        if selectors.is_private(image) and image.image_request.user_id != user.pk
    ]
    if others_private:
        numbers = ", ".join(f"#{i.image_request_id}" for i in others_private)
        raise ValidationError(
            {
                "images": f"Private images can be added only by their owner "
                f"(request {numbers})."
            }
        )
    with transaction.atomic():
        _lock(collection)
        present = set(
            collection.items.filter(image__in=images).values_list("image", flat=True)
        )
        new_images = [
            image for image in dict.fromkeys(images) if image.pk not in present
        ]
        if not consent and (
            needing := selectors.private_images_needing_consent(
                collection=collection, images=new_images
            )
        ):
            raise ConsentNeeded(needing)
        last = collection.items.aggregate(last=Max("position"))["last"]
        start = 0 if last is None else last + 1
        CollectionItem.objects.bulk_create(
            CollectionItem(
                collection=collection, image=image, position=start + n, added_by=user
            )
            for n, image in enumerate(new_images)
        )
        if new_images:
            _touch(collection)
    return len(new_images)


def collection_item_remove(*, item: CollectionItem) -> None:
    """Takes the image out of the collection; the image itself stays."""
    collection = item.collection
    with transaction.atomic():
        _lock(collection)
        item.delete()
        if collection.cover_id == item.image_id:
            Collection.objects.filter(pk=collection.pk).update(cover=None)
            collection.cover = None
        _touch(collection)


def collection_item_move(*, item: CollectionItem, offset: int) -> None:
    """Moves the image earlier (offset -1) or later (+1) among the others."""
    collection = item.collection
    with transaction.atomic():
        _lock(collection)
        items = list(collection.items.order_by("position", "pk"))
        index = next(n for n, other in enumerate(items) if other.pk == item.pk)
        target = index + offset
        if not 0 <= target < len(items):
            return
        items[index], items[target] = items[target], items[index]
        for position, other in enumerate(items):
            other.position = position
        CollectionItem.objects.bulk_update(items, ["position"])
        _touch(collection)


def collection_cover_set(*, item: CollectionItem) -> None:
    """The item's image heads the collection."""
    collection = item.collection
    Collection.objects.filter(pk=collection.pk).update(
        cover=item.image_id, updated_at=timezone.now()
    )
    collection.cover_id = item.image_id


# --- Share links ---------------------------------------------------------------------------


def share_link_create(
    *,
    user,
    collection: Collection | None = None,
    image: GeneratedImage | None = None,
    days: int = SHARE_LINK_DEFAULT_DAYS,
    show_prompts: bool = False,
    show_details: bool = False,
) -> tuple[ShareLink, str]:
    """A new link to the collection or the image, and its token: the only time
    anyone sees it (only its hash is kept)."""
    most = settings.BANANAWEB_SHARE_LINK_MAX_DAYS
    if not 1 <= days <= most:
        raise ValidationError({"days": f"A link lasts from 1 to {most} days."})
    raw = new_raw_token()
    share_link = ShareLink(
        created_by=user,
        collection=collection,
        image=image,
        show_prompts=show_prompts,
        show_details=show_details and collection is not None,
        expires_at=timezone.now() + timedelta(days=days),
    )
    share_link.set_token(raw)
    share_link.full_clean()
    share_link.save()
    return share_link, raw


def share_link_revoke(*, share_link: ShareLink) -> bool:
    """The one way a share link stops working early; True if it was not revoked yet."""
    revoked = ShareLink.objects.filter(
        pk=share_link.pk, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    return bool(revoked)
