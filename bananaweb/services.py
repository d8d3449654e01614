"""What the pages and the gateway ask for: quotas, creating and resubmitting
requests, who sees them and who starred them, preferences, and a token check.
Sending happens later, in the background steps of pipeline.py, scheduled through
tasks.py."""

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from bananaweb import compiled, images, options, tokens
from bananaweb.followups import FollowUp, Step
from bananaweb.models import (
    GeneratedImage,
    ImageRequest,
    Reference,
    Star,
    Upload,
    UpstreamToken,
    UserPreference,
    local_day_start,
)
from bananaweb.tasks import schedule

# --- Quotas -----------------------------------------------------------------------


class QuotaExceeded(Exception):
    def __init__(self, limit: int, resets_at: datetime):
        self.limit = limit
        self.resets_at = resets_at
        resets = timezone.localtime(resets_at)
        super().__init__(
            f"You have used all {limit} of today's requests. "
            f"Your quota resets at {resets:%H:%M %Z} ({resets_at:%Y-%m-%d})."
        )


@dataclass(frozen=True)
class QuotaUsage:
    limit: int
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def quota_usage(*, user) -> QuotaUsage:
    return _quota_and_preference(user)[0]


def quota_and_default_visibility(*, user) -> tuple[QuotaUsage, str]:
    """The main page's forms' side (the quota, who sees a new request) in one
    query."""
    return _quota_and_preference(user)


def _quota_and_preference(user) -> tuple[QuotaUsage, str]:
    quota, visibility, _ = _quota_preference_and_key(user, idempotency_key="")
    return quota, visibility


def quota_query(
    user, *, idempotency_key: str = "", day_start: datetime | None = None
) -> compiled.Query:
    """The query of _quota_row: the quota, the default visibility (and the id of
    the request an idempotency key made), for every page and every submission."""
    # Prepared, with the day's start written in (a statement a day): as a value,
    # PostgreSQL's generic plan would guess a third of the user's requests are
    # today's, and it would plan the query every time instead.
    day_start = day_start or local_day_start()
    return compiled.query(
        ("quota", bool(idempotency_key), day_start),
        lambda viewer, text=None: _quota_row(viewer, day_start, text),
        model=ImageRequest,
        prepare=True,
        user=user,
        text=idempotency_key or None,
    )


def _quota_preference_and_key(
    user, *, idempotency_key: str
) -> tuple[QuotaUsage, str, int | None]:
    """The quota, the default visibility and the id of the request an idempotency
    key already made (None if none, or no key), in one query, its SQL built once
    per process (bananaweb.compiled)."""
    day_start = local_day_start()
    asked = quota_query(user, idempotency_key=idempotency_key, day_start=day_start)
    rows = compiled.rows(asked)
    if rows is None:
        rows = list(asked.rows_for(user, idempotency_key or None))
    limit, visibility, used, *made = rows[0]
    quota, chosen = _quota_and_visibility(limit, visibility, used, day_start)
    return quota, chosen, made[0] if made else None


def _quota_row(user, day_start: datetime, idempotency_key: str | None = None):
    """The user's own limit (if any), default visibility and requests counted
    today, in one query (every page shows them), in that order; with a key, also
    the id of the request it made (or None)."""
    # Deleted requests count too: deleting gives no quota back. As counting_today,
    # with the day's start given (a stand-in, for bananaweb.compiled).
    counted = (
        ImageRequest.objects.filter(
            user=OuterRef("pk"), counts_toward_quota=True, created_at__gte=day_start
        )
        .order_by()
        .values("user")
        .annotate(count=Count("pk"))
        .values("count")
    )
    row = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values("quota__daily_limit", "preference__default_visibility")
        .annotate(used=Coalesce(Subquery(counted), 0))
    )
    columns = ["quota__daily_limit", "preference__default_visibility", "used"]
    if idempotency_key is not None:
        # Not blank, as the unique index's condition says: so that the prepared
        # statement's generic plan, not knowing the key, still walks that index
        # (else it reads every request of the user's, under their lock).
        made = (
            ImageRequest.objects.filter(
                user=OuterRef("pk"), idempotency_key=idempotency_key
            )
            .exclude(idempotency_key="")
            .order_by()
        )
        row = row.annotate(made=Subquery(made.values("pk")[:1]))
        columns.append("made")
    return row.values_list(*columns)


def _quota_and_visibility(
    limit, chosen, used: int, day_start: datetime
) -> tuple[QuotaUsage, str]:
    quota = QuotaUsage(
        limit=settings.BANANAWEB_DEFAULT_DAILY_QUOTA if limit is None else limit,
        used=used,
        resets_at=day_start + timedelta(days=1),
    )
    return quota, chosen or settings.BANANAWEB_DEFAULT_VISIBILITY


# --- Preferences -------------------------------------------------------------------


def default_visibility(*, user) -> str:
    """Who sees the user's new requests: their own choice, or the site's default."""
    preference = UserPreference.objects.filter(user=user).first()
    if preference and preference.default_visibility:
        return preference.default_visibility
    return settings.BANANAWEB_DEFAULT_VISIBILITY


def user_preference_set(*, user, default_visibility: str) -> UserPreference:
    """Save what the user chose in their settings."""
    if default_visibility not in ImageRequest.Visibility.values:
        raise ValidationError(
            {"default_visibility": "Choose private (only you) or team (every member)."}
        )
    preference, _ = UserPreference.objects.update_or_create(
        user=user, defaults={"default_visibility": default_visibility}
    )
    return preference


# --- Requests ---------------------------------------------------------------------

FIELDS = ("prompt", "action", "model", "aspect_ratio", "resolution", "image_urls")
IDEMPOTENCY_KEY_MAX_LENGTH = 100


class IdempotencyConflict(Exception):
    def __init__(self) -> None:
        super().__init__(
            "This submission's key was already used for a different request, so "
            "nothing new was sent. Reload the page (or use a new Idempotency-Key) "
            "to send another request."
        )


@dataclass(frozen=True)
class VerifiedUpload:
    name: str
    image: images.VerifiedImage

    @property
    def content(self) -> bytes:
        return self.image.content


def _request_hash(values: dict) -> str:
    canonical = json.dumps(values, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def image_request_create(
    *,
    user,
    data: dict,
    source: str = ImageRequest.Source.WEB,
    idempotency_key: str = "",
    uploads: Sequence[UploadedFile] = (),
    references: Sequence[Upload | GeneratedImage] = (),
    visibility: str | None = None,
) -> ImageRequest:
    """Validate and save a request, then send it in the background.

    `uploads` are pictures the user brought, `references` our own images the
    user may see (their uploads and results, the team's) to make it from.
    `visibility` is who sees it; None takes the user's default
    (default_visibility), as every API request does. With an idempotency key, a replay
    (a double click, a reload after POST, a script's retry) gets the request the
    key first made, and nothing new is sent; the same key with other values
    raises IdempotencyConflict.

    Raises ValidationError for bad input and QuotaExceeded when the user is out
    of requests for today; in both cases nothing is sent upstream.
    """
    return image_requests_create(
        user=user,
        variants=[data],
        source=source,
        idempotency_key=idempotency_key,
        uploads=uploads,
        references=references,
        visibility=visibility,
    )[0]


def image_requests_create(
    *,
    user,
    variants: Sequence[dict],
    group_kind: str = "",
    source: str = ImageRequest.Source.WEB,
    idempotency_key: str = "",
    uploads: Sequence[UploadedFile] = (),
    references: Sequence[Upload | GeneratedImage] = (),
    visibility: str | None = None,
) -> list[ImageRequest]:
    """One request per variant, made from the same images, as one group when
    there are several (variations of a prompt, a prompt on every model); each
    counts against the quota. The first request carries the idempotency key."""
    if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise ValidationError(
            {
                "idempotency_key": "An idempotency key is at most "
                f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters long."
            }
        )
    verified = [_verify_upload(upload) for upload in uploads]
    for reference in references:
        if not _can_see(user, reference):
            raise ValidationError(
                {"references": "That image is not one of yours, nor one you can see."}
            )
    if visibility is not None and visibility not in ImageRequest.Visibility.values:
        raise ValidationError(
            {"visibility": "Choose private (only you) or team (every member)."}
        )
    count = len(verified) + len(references)
    group = uuid.uuid4() if len(variants) > 1 else None
    built = []
    for index, data in enumerate(variants):
        values = {name: data.get(name) for name in FIELDS}
        values["num_images"] = data.get("num_images", 1)
        # The raw values first: the rules' own messages, before any coercion by
        # model fields.
        if errors := options.option_errors(
            **values,
            max_image_urls=settings.BANANAWEB_MAX_IMAGE_URLS,
            references=count,
        ):
            raise ValidationError(errors)
        image_request = ImageRequest(
            user=user,
            source=source,
            action=values["action"],
            prompt=values["prompt"],
            model=values["model"] or options.DEFAULT_MODEL,
            aspect_ratio=values["aspect_ratio"] or "",
            resolution=values["resolution"] or "",
            image_urls=values["image_urls"] or [],
            group=group,
            group_kind=group_kind if group else "",
            # None: the user's default, read below with the quota.
            visibility=visibility or settings.BANANAWEB_DEFAULT_VISIBILITY,
        )
        image_request.pending_references = count
        # No constraint is checked by a query each (eight round trips): clean()
        # applies options.option_errors, the rules of the option constraints;
        # the status is the default one, the visibility was checked above. The
        # user is the signed-in one (or the API token's): its row exists.
        image_request.full_clean(
            exclude=["idempotency_key", "user"], validate_constraints=False
        )
        built.append(image_request)
    if idempotency_key:
        first = built[0]
        first.idempotency_key = idempotency_key
        first.request_hash = _request_hash(
            {
                "variants": variants,
                "uploads": [hashlib.sha256(v.content).hexdigest() for v in verified],
                "references": [(type(r).__name__, r.pk) for r in references],
            }
        )

    with (
        transaction.atomic(),
        # Lock the user's row so two submissions can't both take the last request,
        # nor both use one idempotency key. A statement of its own (each statement
        # reads its own snapshot): the quota's, after it, sees what a submission
        # that held the lock committed. Both in one round trip, the lock's time.
        compiled.together(
            _lock_query(user), quota_query(user, idempotency_key=idempotency_key)
        ),
    ):
        _lock_user(user)
        usage, chosen, made = _quota_preference_and_key(
            user, idempotency_key=idempotency_key
        )
        if made is not None:
            first = ImageRequest.objects.get(pk=made)
            if first.request_hash != built[0].request_hash:
                raise IdempotencyConflict
            return _with_group(first)
        if usage.used + len(built) > usage.limit:
            raise QuotaExceeded(usage.limit, usage.resets_at)
        sources = [*(_store_upload(user, v) for v in verified), *references]
        # What is left once these are made: the page shows it, no query to tell.
        left = QuotaUsage(usage.limit, usage.used + len(built), usage.resets_at)
        for image_request in built:
            if visibility is None:
                image_request.visibility = chosen
            image_request.save()
            # By nobody yet, no image yet: no query to tell.
            image_request.starred = False
            image_request.know_images([])
            image_request.quota_left = left
            Reference.objects.bulk_create(
                Reference(
                    image_request=image_request,
                    position=position,
                    upload=source if isinstance(source, Upload) else None,
                    image=source if isinstance(source, GeneratedImage) else None,
                )
                for position, source in enumerate(sources)
            )
            schedule(FollowUp(Step.SUBMIT, (image_request.pk,)))
    return built


def _locking(viewer) -> QuerySet:
    return (
        get_user_model()
        .objects.select_for_update()
        .filter(pk=viewer.pk)
        .values_list("pk")
    )


def _lock_query(user) -> compiled.Query:
    return compiled.query(("lock-user",), _locking, model=get_user_model(), user=user)


def _lock_user(user) -> None:
    """Lock the user's row until the transaction ends (its SQL built once per
    process, bananaweb.compiled)."""
    if compiled.rows(_lock_query(user)) is None:
        list(_locking(user))


def _with_group(image_request: ImageRequest) -> list[ImageRequest]:
    if image_request.group is None:
        return [image_request]
    return list(ImageRequest.objects.filter(group=image_request.group).order_by("pk"))


def _can_see(user, source: Upload | GeneratedImage) -> bool:
    """Whether the user may make a request from this image: theirs, or one they
    can see (a teammate's, shared with the team)."""
    model = Upload if isinstance(source, Upload) else GeneratedImage
    return model.objects.visible_to(user).filter(pk=source.pk).exists()


def _verify_upload(upload: UploadedFile) -> VerifiedUpload:
    name = (upload.name or "picture")[:255]
    if upload.size is not None and upload.size > options.MAX_IMAGE_BYTES:
        size = images.size_text(options.MAX_IMAGE_BYTES)
        raise ValidationError({"uploads": f"“{name}” is larger than {size}."})
    content = upload.read(options.MAX_IMAGE_BYTES + 1)
    try:
        verified = images.verify_image(content, max_bytes=options.MAX_IMAGE_BYTES)
    except images.ImageInvalid as exc:
        raise ValidationError({"uploads": f"“{name}” can't be used: {exc}"}) from None
    return VerifiedUpload(name=name, image=verified)


def _store_upload(user, verified: VerifiedUpload) -> Upload:
    image = verified.image
    upload = Upload(
        user=user,
        original_name=verified.name,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size_bytes=len(image.content),
    )
    upload.file.save(
        f"{uuid.uuid4().hex}{image.extension}", ContentFile(image.content), save=False
    )
    upload.save()
    return upload


def _copy(image_request: ImageRequest) -> tuple[dict, list[Upload | GeneratedImage]]:
    """What it was asked with: its values, and the images it was made from."""
    data = {name: getattr(image_request, name) for name in FIELDS}
    data["num_images"] = image_request.num_images
    references = []
    for reference in image_request.references.select_related("upload", "image"):
        if reference.source is None:
            raise ValidationError(
                "A picture it was made from was deleted, so it can't be sent again."
            )
        references.append(reference.source)
    return data, references


def image_request_resubmit(*, image_request: ImageRequest) -> ImageRequest:
    """A new request with the same parameters, for one that failed or whose
    outcome is unknown (ImageRequest.can_resubmit)."""
    if not image_request.can_resubmit:
        raise ValidationError(
            f"This request is {image_request.get_status_display().lower()}: "
            "only a failed request, or one whose outcome is unknown, can be resubmitted."
        )
    return image_request_run_again(image_request=image_request)


def image_request_run_again(*, image_request: ImageRequest, user=None) -> ImageRequest:
    """A new request with the same parameters and images, whatever became of it.

    It is `user`'s own (counted against their quota, with their default
    visibility) when they run someone else's, e.g. a teammate's; its owner's,
    as private or shared as it was, otherwise."""
    data, references = _copy(image_request)
    if user is not None and user.pk != image_request.user_id:
        return image_request_create(user=user, data=data, references=references)
    return image_request_create(
        user=image_request.user,
        data=data,
        source=image_request.source,
        references=references,
        visibility=image_request.visibility,
    )


def image_request_variations(
    *, user, data: dict, count: int, **kwargs
) -> list[ImageRequest]:
    """`count` requests of one prompt, as one group (the upstream makes one image
    a task)."""
    if not 1 <= count <= settings.BANANAWEB_MAX_VARIATIONS:
        raise ValidationError(
            {"count": f"Ask for 1 to {settings.BANANAWEB_MAX_VARIATIONS} images."}
        )
    kind = ImageRequest.GroupKind.VARIATIONS
    return image_requests_create(
        user=user, variants=[data] * count, group_kind=kind, **kwargs
    )


def image_request_every_model(*, user, data: dict, **kwargs) -> list[ImageRequest]:
    """The prompt on each model, as one group to compare; an aspect ratio or a
    resolution a model doesn't offer is left to its default."""
    variants = [options.fit_to_model(data, model) for model in options.MODELS]
    kind = ImageRequest.GroupKind.MODELS
    return image_requests_create(
        user=user, variants=variants, group_kind=kind, **kwargs
    )


def image_request_star(
    *, image_request: ImageRequest, starred: bool, user=None
) -> None:
    """Star or unstar it for `user` alone (its owner unless said): anyone who can
    see a request stars it for themselves."""
    user_id = user.pk if user is not None else image_request.user_id
    if starred:
        Star.objects.get_or_create(user_id=user_id, image_request=image_request)
    else:
        Star.objects.filter(user_id=user_id, image_request=image_request).delete()
    image_request.starred = starred


def image_request_set_visibility(
    *, image_request: ImageRequest, visibility: str
) -> None:
    """Who sees it: its owner (and staff) only, or the whole team."""
    if visibility not in ImageRequest.Visibility.values:
        raise ValidationError(
            {"visibility": "Choose private (only you) or team (every member)."}
        )
    ImageRequest.objects.filter(pk=image_request.pk).update(visibility=visibility)
    image_request.visibility = visibility


def image_requests_delete(*, user, ids: Iterable[int]) -> int:
    """Delete the user's finished requests among `ids`: their images' files go, and
    they are hidden from the user; each row stays for the staff's accounting.
    Requests still in flight are left alone. The number deleted."""
    finished = (
        ImageRequest.objects.for_user(user)
        .filter(pk__in=list(ids))
        .exclude(status__in=ImageRequest.IN_FLIGHT)
    )
    deleted = 0
    for image_request in finished.prefetch_related("images", "references__upload"):
        with transaction.atomic():
            for image in image_request.images.all():
                image.file.delete(save=False)
                image.thumbnail.delete(save=False)
                image.delete()
            uploads = [r.upload for r in image_request.references.all() if r.upload]
            ImageRequest.objects.filter(pk=image_request.pk).update(
                deleted_at=timezone.now()
            )
            # Gone for everyone: so are the stars anyone gave it.
            Star.objects.filter(image_request=image_request).delete()
            for upload in uploads:
                # An upload another live request was made from stays.
                if not upload.uses.filter(
                    image_request__deleted_at__isnull=True
                ).exists():
                    upload.file.delete(save=False)
                    upload.delete()
        deleted += 1
    return deleted


# --- Upstream tokens --------------------------------------------------------------


def upstream_token_check(*, token: UpstreamToken, actor) -> None:
    """Check a token in the background, spending no credits; the admin's token page
    shows the result once it is back."""
    with transaction.atomic():
        schedule(tokens.token_check_request(token=token, actor=actor))
