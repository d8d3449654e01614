"""The request pipeline: create, submit, poll, fetch images. Runs in tasks, never in a web request."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from bananaweb import fetching, images, mountsea, options
from bananaweb.models import GeneratedImage, ImageRequest, UserQuota, local_day_start
from bananaweb.tokens import (
    NoUsableToken,
    token_cool_down,
    token_mark_used,
    token_record_error,
    token_select,
    token_suspend,
)

logger = logging.getLogger(__name__)
Status = ImageRequest.Status

NO_TOKEN_MESSAGE = (
    "No upstream API token is available right now, so nothing was sent. "
    "Your request is saved; ask an admin to add or re-enable a token, then resubmit it."
)
UNKNOWN_OUTCOME_MESSAGE = (
    "We sent this request but got no usable answer ({reason}), so we can't tell whether "
    "the image service accepted it. It was not resent automatically, so you are never "
    "charged twice. Resubmit it if no image arrives."
)


# --- Quotas -------------------------------------------------------------------------


class QuotaExceeded(Exception):
    def __init__(self, limit: int, resets_at: datetime):
        self.limit = limit
        self.resets_at = resets_at
        super().__init__(
            f"You have used all {limit} of today's requests. "
            f"Your quota resets at {timezone.localtime(resets_at):%H:%M %Z} ({resets_at:%Y-%m-%d})."
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
    limit = quota.daily_limit if quota and quota.daily_limit is not None else settings.BANANAWEB_DEFAULT_DAILY_QUOTA
    used = ImageRequest.objects.for_user(user).counting_today().count()
    return QuotaUsage(limit=limit, used=used, resets_at=local_day_start() + timedelta(days=1))


def _release_quota(image_request: ImageRequest) -> None:
    """Give a request back to its user's quota: nothing was accepted or it failed upstream."""
    image_request.counts_toward_quota = False


# --- Create ---------------------------------------------------------------------


def image_request_create(*, user, data: dict, source: str = ImageRequest.Source.WEB) -> ImageRequest:
    """Validate and save a request, then send it in the background.

    Raises ValidationError for bad input and QuotaExceeded when the user is out
    of requests for today; in both cases nothing is sent upstream.
    """
    values = {name: data.get(name) for name in ("prompt", "action", "model", "aspect_ratio", "resolution", "image_urls")}
    values["num_images"] = data.get("num_images", 1)
    # The raw values first: the rules' own messages, before any coercion by model fields.
    if errors := options.option_errors(**values, max_image_urls=settings.BANANAWEB_MAX_IMAGE_URLS):
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
    )
    image_request.full_clean()
    with transaction.atomic():
        # Lock the user's row so two submissions can't both take the last request.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        usage = quota_usage(user=user)
        if usage.used >= usage.limit:
            raise QuotaExceeded(usage.limit, usage.resets_at)
        image_request.save()
        _enqueue("image_request_submit_task", image_request.pk)
    return image_request


def image_request_resubmit(*, image_request: ImageRequest) -> ImageRequest:
    """A new request with the same parameters (for a failed one, or one whose outcome is unknown)."""
    fields = ("action", "prompt", "model", "aspect_ratio", "resolution", "num_images", "image_urls")
    data = {name: getattr(image_request, name) for name in fields}
    return image_request_create(user=image_request.user, data=data, source=image_request.source)


# --- Submit ---------------------------------------------------------------------


def _log(image_request: ImageRequest, call: str, outcome: str, message: str, **details) -> None:
    """Add a step to the request's secret-free record, shown in the admin."""
    entry = {"at": timezone.now().isoformat(timespec="seconds"), "call": call, "outcome": outcome, "message": message}
    image_request.exchange = [*image_request.exchange, entry | details]


def _log_exchange(image_request: ImageRequest, call: str, outcome: mountsea.Outcome, token=None) -> None:
    details = {}
    if token is not None:
        details["token"] = token.name
    if status_code := getattr(outcome, "status_code", None):
        details["http_status"] = status_code
    _log(image_request, call, type(outcome).__name__, outcome.message, **details)


def _finish(image_request: ImageRequest, status: str, *, error_code: str = "", message: str = "") -> None:
    image_request.status = status
    image_request.error_code = error_code
    image_request.error_message = message
    image_request.finished_at = timezone.now()


def _upstream_origin() -> str:
    parts = urlsplit(settings.MOUNTSEA_BASE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def _fetch_image(url: str) -> bytes:
    """An image from outside, bounded; only the configured upstream may be on a private address."""
    return fetching.fetch(
        url,
        max_bytes=options.MAX_IMAGE_BYTES,
        timeout=settings.BANANAWEB_FETCH_TIMEOUT,
        trusted_origins=[_upstream_origin()],
    ).content


def _check_image_urls(image_request: ImageRequest) -> str:
    """Why an image URL can't be used (a sentence), or "" when all can: checked before paying."""
    for index, url in enumerate(image_request.image_urls, start=1):
        try:
            images.verify_image(_fetch_image(url), max_bytes=options.MAX_IMAGE_BYTES)
        except (fetching.FetchError, images.ImageInvalid) as exc:
            return f"Image URL {index} can't be used: {exc}"
    return ""


def _enqueue(task_name: str, image_request_id: int, *, delay: float = 0) -> None:
    """Run a pipeline task once the current transaction commits, optionally later."""
    from bananaweb import tasks

    task = getattr(tasks, task_name)
    if delay > 0:
        task = task.using(run_after=timezone.now() + timedelta(seconds=delay))
    transaction.on_commit(partial(task.enqueue, image_request_id))


def image_request_sweep_stale() -> int:
    """Requests stuck in "Sending" (their worker died mid-call) become outcome-unknown, never resent."""
    cutoff = timezone.now() - timedelta(
        seconds=settings.MOUNTSEA_CONNECT_TIMEOUT + settings.MOUNTSEA_READ_TIMEOUT + 60
    )
    return ImageRequest.objects.filter(status=Status.SUBMITTING, created_at__lt=cutoff).update(
        status=Status.UNKNOWN,
        error_code="unknown_outcome",
        error_message=UNKNOWN_OUTCOME_MESSAGE.format(reason="the worker stopped while sending it"),
        finished_at=timezone.now(),
    )


def image_request_submit(*, image_request_id: int) -> None:
    """Send a saved request upstream, failing over between tokens; never resends an unknown outcome."""
    claimed = ImageRequest.objects.filter(pk=image_request_id, status=Status.QUEUED).update(
        status=Status.SUBMITTING
    )
    if not claimed:
        return  # already sent, or being sent by another worker
    image_request = ImageRequest.objects.select_related("user").get(pk=image_request_id)

    if image_request.image_urls:
        if problem := _check_image_urls(image_request):
            _finish(image_request, Status.FAILED, error_code="image_urls", message=problem)
            _release_quota(image_request)
            image_request.save()
            return

    payload = image_request.upstream_payload()
    tried: set[int] = set()
    retry_in: float | None = None
    while True:
        try:
            token = token_select(user=image_request.user, exclude=tried)
        except NoUsableToken:
            break
        tried.add(token.pk)
        image_request.upstream_token = token
        outcome = mountsea.client_for(token.secret).generate(payload)
        _log_exchange(image_request, "generate", outcome, token)
        match outcome:
            case mountsea.Accepted():
                token_mark_used(token=token)
                image_request.status = Status.IN_PROGRESS
                image_request.upstream_task_id = outcome.upstream_task_id
                image_request.upstream_status = options.UpstreamStatus.PENDING
                image_request.submitted_at = timezone.now()
                image_request.error_message = ""  # a wait for a rate limit, now over
                image_request.save()
                _enqueue("image_request_poll_task", image_request.pk, delay=settings.BANANAWEB_POLL_FIRST_DELAY)
                return
            case mountsea.AuthFailed() | mountsea.OutOfCredit():
                # Refused before anything was accepted: safe to try the next token.
                token_suspend(token=token, reason=outcome.message)
                continue
            case mountsea.RateLimited():
                token_cool_down(token=token, seconds=outcome.retry_after, message=outcome.message)
                retry_in = min(retry_in or 3600, outcome.retry_after or 30)
                continue
            case mountsea.NetworkError(sent=False):
                token_record_error(token=token, message=outcome.message)
                retry_in = 15
                break
            case mountsea.NetworkError() | mountsea.Malformed():
                token_record_error(token=token, message=outcome.message)
                _finish(
                    image_request,
                    Status.UNKNOWN,
                    error_code="unknown_outcome",
                    message=UNKNOWN_OUTCOME_MESSAGE.format(reason=outcome.message.rstrip(".")),
                )
                image_request.save()
                return
            case _:  # Rejected, UpstreamError: the upstream said no
                if isinstance(outcome, mountsea.UpstreamError):
                    token_record_error(token=token, message=outcome.message)
                _finish(image_request, Status.FAILED, error_code="rejected", message=outcome.message)
                _release_quota(image_request)
                image_request.save()
                return

    deadline = image_request.created_at + timedelta(seconds=settings.BANANAWEB_SUBMIT_DEADLINE)
    if retry_in is not None and timezone.now() + timedelta(seconds=retry_in) < deadline:
        # Nothing was accepted (rate limited or unreachable): wait and send again.
        image_request.status = Status.QUEUED
        image_request.error_message = "Waiting for the image service: " + image_request.exchange[-1]["message"]
        image_request.save()
        _enqueue("image_request_submit_task", image_request.pk, delay=retry_in)
        return
    if retry_in is not None:
        message = "The image service stayed unavailable, so the request was not sent. " + (
            image_request.exchange[-1]["message"] if image_request.exchange else ""
        )
        _finish(image_request, Status.FAILED, error_code="unavailable", message=message.strip())
    else:
        _finish(image_request, Status.FAILED, error_code="no_token", message=NO_TOKEN_MESSAGE)
    _release_quota(image_request)
    image_request.save()


# --- Poll -----------------------------------------------------------------------


def _next_poll_delay(poll_count: int) -> float:
    first = max(settings.BANANAWEB_POLL_FIRST_DELAY, 1)
    return min(first * 1.5 ** poll_count, settings.BANANAWEB_POLL_MAX_DELAY)


FAILED_STATUS_WORDS = {
    options.UpstreamStatus.FAILED: "The image service could not make this image",
    options.UpstreamStatus.CANCELLED: "The image service cancelled this task",
    options.UpstreamStatus.TIMEOUT: "The image service ran out of time on this task",
}


def image_request_poll(*, image_request_id: int) -> None:
    """Ask the upstream how the task is doing, with the token that submitted it."""
    image_request = ImageRequest.objects.select_related("upstream_token").get(pk=image_request_id)
    if image_request.status != Status.IN_PROGRESS or image_request.upstream_status == options.UpstreamStatus.COMPLETED:
        return
    token = image_request.upstream_token
    if token is None:
        _finish(image_request, Status.FAILED, error_code="token_deleted",
                message="The upstream token that sent this request was deleted, so its result can't be read.")
        image_request.save()
        return

    outcome = mountsea.client_for(token.secret).task_result(image_request.upstream_task_id)
    image_request.poll_count += 1
    if not isinstance(outcome, mountsea.TaskState):
        _log_exchange(image_request, "task_result", outcome, token)
    elif outcome.status != image_request.upstream_status:
        _log_exchange(image_request, "task_result", outcome, token)
        image_request.upstream_status = outcome.status[:40]

    if isinstance(outcome, mountsea.TaskState) and outcome.terminal:
        image_request.result = outcome.result
        if outcome.status == options.UpstreamStatus.COMPLETED:
            image_request.save()
            _enqueue("image_request_fetch_images_task", image_request.pk)
            return
        reason = outcome.error_message or "no reason was given"
        words = FAILED_STATUS_WORDS[outcome.status]
        _finish(image_request, Status.FAILED, error_code=f"upstream_{outcome.status}", message=f"{words}: {reason}")
        _release_quota(image_request)
        image_request.save()
        return

    deadline = (image_request.submitted_at or image_request.created_at) + timedelta(
        seconds=settings.BANANAWEB_POLL_DEADLINE
    )
    if timezone.now() >= deadline:
        minutes = round(settings.BANANAWEB_POLL_DEADLINE / 60)
        _finish(image_request, Status.FAILED, error_code="deadline",
                message=f"No result after {minutes} minutes, so bananaweb stopped waiting.")
        _release_quota(image_request)
        image_request.save()
        return
    image_request.save()
    _enqueue("image_request_poll_task", image_request.pk, delay=_next_poll_delay(image_request.poll_count))


# --- Images ---------------------------------------------------------------------


def image_request_fetch_images(*, image_request_id: int) -> None:
    """Download, verify and store every image of a completed task, with thumbnails."""
    image_request = ImageRequest.objects.get(pk=image_request_id)
    if image_request.status != Status.IN_PROGRESS or image_request.images.exists():
        return
    refs = images.find_images(image_request.result)
    if not refs:
        _finish(image_request, Status.FAILED, error_code="no_images",
                message="The image service said the task completed but sent no image.")
        image_request.save()
        return

    stored: list[GeneratedImage] = []
    problems: list[str] = []
    for ref in refs:
        try:
            content = _fetch_image(ref.url) if ref.url else ref.data
            verified = images.verify_image(content, max_bytes=options.MAX_IMAGE_BYTES)
        except (fetching.FetchError, images.ImageInvalid) as exc:
            # One odd URL in a pass-through result must not lose the images that did arrive.
            problems.append(str(exc))
            continue
        stored.append(_image_build(image_request, len(stored), ref.url, verified))

    with transaction.atomic():
        if problems:
            _log(image_request, "fetch_images", "Skipped", " ".join(problems)[:2000])
        if not stored:
            _finish(image_request, Status.FAILED, error_code="image_fetch",
                    message=f"The image was made but could not be saved: {problems[0]}")
            image_request.save()
            return
        for image in stored:
            image.save()
        _finish(image_request, Status.COMPLETED)
        image_request.save()


def _image_build(image_request: ImageRequest, position: int, url: str, verified: images.VerifiedImage) -> GeneratedImage:
    image = GeneratedImage(
        image_request=image_request,
        position=position,
        source_url=url if len(url) <= 2000 else "",
        content_type=verified.content_type,
        width=verified.width,
        height=verified.height,
        size_bytes=len(verified.content),
    )
    image.file.save(f"image-{position}{verified.extension}", ContentFile(verified.content), save=False)
    thumbnail = images.make_thumbnail(verified.content, size=settings.BANANAWEB_THUMBNAIL_SIZE)
    image.thumbnail.save(f"thumb-{position}.webp", ContentFile(thumbnail), save=False)
    return image
