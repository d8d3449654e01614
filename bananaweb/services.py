"""What the pages and the gateway ask for: quotas, creating and resubmitting
requests, and a token check. Sending happens later, in the background steps of
pipeline.py, scheduled through tasks.py."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from bananaweb import options, tokens
from bananaweb.followups import FollowUp, Step
from bananaweb.models import ImageRequest, UpstreamToken, UserQuota, local_day_start
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
    quota = UserQuota.objects.filter(user=user).first()
    if quota and quota.daily_limit is not None:
        limit = quota.daily_limit
    else:
        limit = settings.BANANAWEB_DEFAULT_DAILY_QUOTA
    used = ImageRequest.objects.for_user(user).counting_today().count()
    return QuotaUsage(
        limit=limit, used=used, resets_at=local_day_start() + timedelta(days=1)
    )


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


def _request_hash(values: dict) -> str:
    canonical = json.dumps(values, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def image_request_create(
    *,
    user,
    data: dict,
    source: str = ImageRequest.Source.WEB,
    idempotency_key: str = "",
) -> ImageRequest:
    """Validate and save a request, then send it in the background.

    With an idempotency key, a replay (a double click, a reload after POST, a
    script's retry) gets the request the key first made, and nothing new is
    sent; the same key with other values raises IdempotencyConflict.

    Raises ValidationError for bad input and QuotaExceeded when the user is out
    of requests for today; in both cases nothing is sent upstream.
    """
    values = {name: data.get(name) for name in FIELDS}
    values["num_images"] = data.get("num_images", 1)
    if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise ValidationError(
            {
                "idempotency_key": "An idempotency key is at most "
                f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters long."
            }
        )
    # The raw values first: the rules' own messages, before any coercion by
    # model fields.
    if errors := options.option_errors(
        **values, max_image_urls=settings.BANANAWEB_MAX_IMAGE_URLS
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
        idempotency_key=idempotency_key,
        request_hash=_request_hash(values) if idempotency_key else "",
    )
    # The key's uniqueness is checked below, under the lock, as a replay.
    image_request.full_clean(exclude=["idempotency_key"])
    with transaction.atomic():
        # Lock the user's row so two submissions can't both take the last request,
        # nor both use one idempotency key.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if idempotency_key and (
            first := ImageRequest.objects.for_user(user)
            .filter(idempotency_key=idempotency_key)
            .first()
        ):
            if first.request_hash != image_request.request_hash:
                raise IdempotencyConflict
            return first
        usage = quota_usage(user=user)
        if usage.used >= usage.limit:
            raise QuotaExceeded(usage.limit, usage.resets_at)
        image_request.save()
        schedule(FollowUp(Step.SUBMIT, (image_request.pk,)))
    return image_request


def image_request_resubmit(*, image_request: ImageRequest) -> ImageRequest:
    """A new request with the same parameters, for one that failed or whose
    outcome is unknown (ImageRequest.can_resubmit)."""
    if not image_request.can_resubmit:
        raise ValidationError(
            f"This request is {image_request.get_status_display().lower()}: "
            "only a failed request, or one whose outcome is unknown, can be resubmitted."
        )
    data = {name: getattr(image_request, name) for name in FIELDS}
    data["num_images"] = image_request.num_images
    return image_request_create(
        user=image_request.user, data=data, source=image_request.source
    )


# --- Upstream tokens --------------------------------------------------------------


def upstream_token_check(*, token: UpstreamToken, actor) -> None:
    """Check a token in the background, spending no credits; the admin's token page
    shows the result once it is back."""
    with transaction.atomic():
        schedule(tokens.token_check_request(token=token, actor=actor))
