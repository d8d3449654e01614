"""What the hottest paths read of one row (the owner's detail page, a thumbnail,
the gateway's token check and task result), from SQL built once per process
(bananaweb.compiled): building these queries with the ORM costs several times
what PostgreSQL takes to run them. Each function answers None where there is no
compiled SQL (SQLite): the caller asks the ORM as before; and False when the row
is not found by it (the caller may still look further, as the ORM path does).
"""

from collections.abc import Sequence

from django.db import router
from django.db.models import Model, Q

from bananaweb import compiled
from bananaweb.models import GeneratedImage, ImageRequest, Reference


def fields(model: type[Model], prefix: str = "") -> tuple[str, ...]:
    """Every column of `model`, as values_list names them (after `prefix`, a
    relation's path such as "user__")."""
    return tuple(prefix + f.attname for f in model._meta.concrete_fields)


def instances(row: Sequence, *models: type[Model]) -> list[Model]:
    """The instances of `models` whose columns (`fields`) follow each other in
    `row`, as the ORM builds them from its rows."""
    built, start = [], 0
    for model in models:
        names = tuple(f.attname for f in model._meta.concrete_fields)
        db = router.db_for_read(model)
        built.append(model.from_db(db, names, row[start : start + len(names)]))
        start += len(names)
    return built


def first_instances(asked: compiled.Query, *models: type[Model]):
    """The instances of `models` (see instances) in the first row of a compiled
    query: None where there is no compiled SQL, False when there is no row."""
    rows = compiled.rows(asked)
    if rows is None:
        return None
    return instances(rows[0], *models) if rows else False


def _images_query(viewer, pk: int) -> compiled.Query:
    return compiled.query(
        ("request-images",),
        lambda _viewer, id_: GeneratedImage.objects.filter(
            image_request_id=id_
        ).values_list(*fields(GeneratedImage)),
        model=GeneratedImage,
        prepare=True,
        user=viewer,
        pk=pk,
    )


def with_images(
    image_request: ImageRequest, viewer, asked: compiled.Query | None = None
) -> ImageRequest:
    """The request with `images.all()` read in one compiled query (`asked`, if
    its images are found another way), as a prefetch would: in their order."""
    asked = asked or _images_query(viewer, image_request.pk)
    image_request.know_images(
        image
        for row in compiled.rows(asked)
        for image in instances(row, GeneratedImage)
    )
    return image_request


def _own_request_query(user, pk: int) -> compiled.Query:
    return compiled.query(
        ("own-request",),
        lambda viewer, id_: (
            ImageRequest.objects.for_user(viewer)
            .filter(pk=id_)
            .with_starred(viewer)
            .order_by()
            .values_list(*fields(ImageRequest), "starred")
        ),
        model=ImageRequest,
        prepare=True,
        user=user,
        pk=pk,
    )


def detail_queries(user, pk: int) -> list[compiled.Query]:
    """What the detail page of request `pk` asks (own_request, has_lineage), to
    ask it in one round trip (compiled.together): most pages are the owner's."""
    return [
        _own_request_query(user, pk),
        _images_query(user, pk),
        _has_lineage_query(user, pk),
    ]


def own_request(user, pk: int) -> ImageRequest | None | bool:
    """The user's own live request `pk`, its `starred`, its user and its images
    loaded, in two queries."""
    rows = compiled.rows(_own_request_query(user, pk))
    if rows is None:
        return None
    if not rows:
        return False
    (image_request,) = instances(rows[0], ImageRequest)
    image_request.starred = rows[0][-1]
    image_request.user = user
    return with_images(image_request, user)


def own_requests_only(user, pks: Sequence[int], names: Sequence[str]) -> list | None:
    """The user's own live requests among `pks`, each with only the `names`
    columns (and its id) loaded: a page's poll, whatever its number of ids (an
    SQL for each number, up to polling.MAX_IDS)."""
    columns = ("id", *names)
    rows = compiled.compiled_rows(
        ("own-requests-only", tuple(names), len(pks)),
        lambda viewer, *ids: (
            ImageRequest.objects.for_user(viewer)
            .filter(pk__in=ids)
            .order_by()
            .values_list(*columns)
        ),
        model=ImageRequest,
        prepare=True,
        user=user,
        **{f"id{index}": pk for index, pk in enumerate(pks)},
    )
    if rows is None:
        return None
    db = router.db_for_read(ImageRequest)
    return [ImageRequest.from_db(db, columns, row) for row in rows]


def own_image(user, pk: int, image_pk: int) -> GeneratedImage | None | bool:
    """Image `image_pk` of the user's own live request `pk`."""
    rows = compiled.compiled_rows(
        ("own-image",),
        lambda viewer, id_: (
            GeneratedImage.objects.for_user(viewer)
            .filter(pk=id_)
            .values_list(*fields(GeneratedImage))
        ),
        model=GeneratedImage,
        prepare=True,
        user=user,
        pk=image_pk,
    )
    if rows is None:
        return None
    images = [image for row in rows for image in instances(row, GeneratedImage)]
    return next((image for image in images if image.image_request_id == pk), False)


def _has_lineage_query(user, pk: int) -> compiled.Query:
    return compiled.query(
        ("has-lineage",),
        lambda _viewer, id_: (
            Reference.objects.filter(
                Q(image_request_id=id_) | Q(image__image_request_id=id_)
            )
            .order_by()
            .values_list("pk")[:1]
        ),
        model=Reference,
        prepare=True,
        user=user,
        pk=pk,
    )


def has_lineage(user, pk: int) -> bool:
    """Whether request `pk` was made from pictures, or its images were used to
    make others: most were not, and then its page needs no lineage query."""
    rows = compiled.rows(_has_lineage_query(user, pk))
    return rows is None or bool(rows)
