"""One request as its detail page reads it, from SQL built once per process
(bananaweb.compiled): building these queries with the ORM costs several times
what PostgreSQL takes to run them. Elsewhere (SQLite), or when the compiled SQL
is not for it, None: the caller asks the ORM as before.
"""

from django.db import router
from django.db.models import Q

from bananaweb.compiled import compiled_rows
from bananaweb.models import GeneratedImage, ImageRequest, Reference

_REQUEST_FIELDS = tuple(f.attname for f in ImageRequest._meta.concrete_fields)
_IMAGE_FIELDS = tuple(f.attname for f in GeneratedImage._meta.concrete_fields)


def own_request(user, pk: int) -> ImageRequest | None | bool:
    """The user's own live request `pk`, its `starred`, its user and its images
    loaded, in two queries; False when it is not theirs (it may still be one
    they may see), None when there is no compiled SQL here."""
    rows = compiled_rows(
        ("own-request",),
        lambda viewer, id_: (
            ImageRequest.objects.for_user(viewer)
            .filter(pk=id_)
            .with_starred(viewer)
            .order_by()
            .values_list(*_REQUEST_FIELDS, "starred")
        ),
        model=ImageRequest,
        user=user,
        pk=pk,
    )
    if rows is None:
        return None
    if not rows:
        return False
    db = router.db_for_read(ImageRequest)
    image_request = ImageRequest.from_db(db, _REQUEST_FIELDS, rows[0][:-1])
    image_request.starred = rows[0][-1]
    image_request.user = user
    images = image_request.images.all()
    images._result_cache = [
        GeneratedImage.from_db(db, _IMAGE_FIELDS, row)
        for row in compiled_rows(
            ("own-request-images",),
            lambda _viewer, id_: GeneratedImage.objects.filter(
                image_request_id=id_
            ).values_list(*_IMAGE_FIELDS),
            model=GeneratedImage,
            user=user,
            pk=pk,
        )
    ]
    images._prefetch_done = True
    image_request._prefetched_objects_cache = {"images": images}
    return image_request


def has_lineage(user, pk: int) -> bool:
    """Whether request `pk` was made from pictures, or its images were used to
    make others: most were not, and then its page needs no lineage query."""
    rows = compiled_rows(
        ("has-lineage",),
        lambda _viewer, id_: (
            Reference.objects.filter(
                Q(image_request_id=id_) | Q(image__image_request_id=id_)
            )
            .order_by()
            .values_list("pk")[:1]
        ),
        model=Reference,
        user=user,
        pk=pk,
    )
    return rows is None or bool(rows)
