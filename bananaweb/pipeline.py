"""The request pipeline's background steps: submit, poll, fetch images, sweep.

Each step runs in a task (tasks.py), never in a web request. It loads the
request by id, talks to the upstream through mountsea.py, changes the request
through its own state methods, and returns the follow-ups to schedule.
"""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from bananaweb import fetching, images, mountsea, options
from bananaweb.followups import FollowUp, Step
from bananaweb.models import (
    UNKNOWN_OUTCOME_MESSAGE,
    ErrorCode,
    GeneratedImage,
    ImageRequest,
)
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
    "Your request is saved; ask an admin to add or re-enable a token, "
    "then resubmit it."
)
FAILED_STATUS_WORDS = {
    options.UpstreamStatus.FAILED: "The image service could not make this image",
    options.UpstreamStatus.CANCELLED: "The image service cancelled this task",
    options.UpstreamStatus.TIMEOUT: "The image service ran out of time on this task",
}
FAILED_STATUS_CODES = {
    options.UpstreamStatus.FAILED: ErrorCode.UPSTREAM_FAILED,
    options.UpstreamStatus.CANCELLED: ErrorCode.UPSTREAM_CANCELLED,
    options.UpstreamStatus.TIMEOUT: ErrorCode.UPSTREAM_TIMEOUT,
}


# --- The exchange log and fetching -----------------------------------------------


def _log(
    image_request: ImageRequest, call: str, outcome: str, message: str, **details
) -> None:
    """Add a step to the request's secret-free record, shown in the admin."""
    entry = {
        "at": timezone.now().isoformat(timespec="seconds"),
        "call": call,
        "outcome": outcome,
        "message": message,
    }
    image_request.exchange = [*image_request.exchange, entry | details]


def _log_exchange(
    image_request: ImageRequest, call: str, outcome: mountsea.Outcome, token=None
) -> None:
    details = {}
    if token is not None:
        details["token"] = token.name
    if status_code := getattr(outcome, "status_code", None):
        details["http_status"] = status_code
    _log(image_request, call, type(outcome).__name__, outcome.message, **details)


def _upstream_origin() -> str:
    parts = urlsplit(settings.MOUNTSEA_BASE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def _fetch_image(url: str) -> bytes:
    """An image from outside, bounded; only the configured upstream may be on a
    private address."""
    return fetching.fetch(
        url,
        max_bytes=options.MAX_IMAGE_BYTES,
        timeout=settings.BANANAWEB_FETCH_TIMEOUT,
        trusted_origins=[_upstream_origin()],
    ).content


def _check_image_urls(image_request: ImageRequest) -> str:
    """Why an image URL can't be used (a sentence), or "" when all can: checked
    before paying."""
    for index, url in enumerate(image_request.image_urls, start=1):
        try:
            images.verify_image(_fetch_image(url), max_bytes=options.MAX_IMAGE_BYTES)
        except (fetching.FetchError, images.ImageInvalid) as exc:
            return f"Image URL {index} can't be used: {exc}"
    return ""


# --- Submit -----------------------------------------------------------------------


def image_request_sweep_stale() -> int:
    """Requests stuck in "Sending" (their worker died mid-call) become
    outcome-unknown, never resent."""
    cutoff = timezone.now() - timedelta(
        seconds=settings.MOUNTSEA_CONNECT_TIMEOUT + settings.MOUNTSEA_READ_TIMEOUT + 60
    )
    reason = "the worker stopped while sending it"
    return ImageRequest.objects.filter(
        status=Status.SUBMITTING, created_at__lt=cutoff
    ).update(
        status=Status.UNKNOWN,
        error_code=ErrorCode.UNKNOWN_OUTCOME,
        error_message=UNKNOWN_OUTCOME_MESSAGE.format(reason=reason),
        finished_at=timezone.now(),
    )


def image_request_submit(*, image_request_id: int) -> list[FollowUp]:
    """Send a saved request upstream, failing over between tokens; never resends
    an unknown outcome."""
    claimed = ImageRequest.objects.filter(
        pk=image_request_id, status=Status.QUEUED
    ).update(status=Status.SUBMITTING)
    if not claimed:
        return []  # already sent, or being sent by another worker
    image_request = ImageRequest.objects.select_related("user").get(pk=image_request_id)
    follow_ups: list[FollowUp] = []

    if image_request.image_urls and (problem := _check_image_urls(image_request)):
        image_request.fail(ErrorCode.IMAGE_URLS, problem)
        image_request.save()
        return follow_ups

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
                image_request.accept(
                    upstream_task_id=outcome.upstream_task_id, token=token
                )
                image_request.save()
                first_poll = settings.BANANAWEB_POLL_FIRST_DELAY
                poll = FollowUp(Step.POLL, (image_request.pk,), delay=first_poll)
                return [*follow_ups, poll]
            case mountsea.AuthFailed() | mountsea.OutOfCredit():
                # Refused before anything was accepted: safe to try the next token.
                follow_ups.append(token_suspend(token=token, reason=outcome.message))
                continue
            case mountsea.RateLimited():
                token_cool_down(
                    token=token, seconds=outcome.retry_after, message=outcome.message
                )
                retry_in = min(retry_in or 3600, outcome.retry_after or 30)
                continue
            case mountsea.NetworkError(sent=False):
                token_record_error(token=token, message=outcome.message)
                retry_in = 15
                break
            case mountsea.NetworkError() | mountsea.Malformed():
                token_record_error(token=token, message=outcome.message)
                image_request.mark_outcome_unknown(reason=outcome.message)
                image_request.save()
                return follow_ups
            case _:  # Rejected, UpstreamError: the upstream said no
                if isinstance(outcome, mountsea.UpstreamError):
                    token_record_error(token=token, message=outcome.message)
                image_request.fail(ErrorCode.REJECTED, outcome.message)
                image_request.save()
                return follow_ups

    last_message = (
        image_request.exchange[-1]["message"] if image_request.exchange else ""
    )
    deadline = image_request.created_at + timedelta(
        seconds=settings.BANANAWEB_SUBMIT_DEADLINE
    )
    if retry_in is not None and timezone.now() + timedelta(seconds=retry_in) < deadline:
        # Nothing was accepted (rate limited or unreachable): wait and send again.
        image_request.wait(message="Waiting for the image service: " + last_message)
        image_request.save()
        return [*follow_ups, FollowUp(Step.SUBMIT, (image_request.pk,), delay=retry_in)]
    if retry_in is not None:
        message = "The image service stayed unavailable, so the request was not sent. "
        image_request.fail(ErrorCode.UNAVAILABLE, (message + last_message).strip())
    else:
        image_request.fail(ErrorCode.NO_TOKEN, NO_TOKEN_MESSAGE)
    image_request.save()
    return follow_ups


# --- Poll -------------------------------------------------------------------------


def _next_poll_delay(poll_count: int) -> float:
    first = max(settings.BANANAWEB_POLL_FIRST_DELAY, 1)
    return min(first * 1.5**poll_count, settings.BANANAWEB_POLL_MAX_DELAY)


def image_request_poll(*, image_request_id: int) -> list[FollowUp]:
    """Ask the upstream how the task is doing, with the token that submitted it."""
    image_request = ImageRequest.objects.select_related("upstream_token").get(
        pk=image_request_id
    )
    if (
        image_request.status != Status.IN_PROGRESS
        or image_request.upstream_status == options.UpstreamStatus.COMPLETED
    ):
        return []
    token = image_request.upstream_token
    if token is None:
        image_request.fail(
            ErrorCode.TOKEN_DELETED,
            "The upstream token that sent this request was deleted, "
            "so its result can't be read.",
            release_quota=False,
        )
        image_request.save()
        return []

    outcome = mountsea.client_for(token.secret).task_result(
        image_request.upstream_task_id
    )
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
            return [FollowUp(Step.FETCH_IMAGES, (image_request.pk,))]
        reason = outcome.error_message or "no reason was given"
        words = FAILED_STATUS_WORDS[outcome.status]
        image_request.fail(FAILED_STATUS_CODES[outcome.status], f"{words}: {reason}")
        image_request.save()
        return []

    started = image_request.submitted_at or image_request.created_at
    if timezone.now() >= started + timedelta(seconds=settings.BANANAWEB_POLL_DEADLINE):
        minutes = round(settings.BANANAWEB_POLL_DEADLINE / 60)
        image_request.fail(
            ErrorCode.DEADLINE,
            f"No result after {minutes} minutes, so bananaweb stopped waiting.",
        )
        image_request.save()
        return []
    image_request.save()
    delay = _next_poll_delay(image_request.poll_count)
    return [FollowUp(Step.POLL, (image_request.pk,), delay=delay)]


# --- Images -----------------------------------------------------------------------


def image_request_fetch_images(*, image_request_id: int) -> list[FollowUp]:
    """Download, verify and store every image of a completed task, with thumbnails."""
    image_request = ImageRequest.objects.get(pk=image_request_id)
    if image_request.status != Status.IN_PROGRESS or image_request.images.exists():
        return []
    refs = images.find_images(image_request.result)
    if not refs:
        image_request.fail(
            ErrorCode.NO_IMAGES,
            "The image service said the task completed but sent no image.",
            release_quota=False,
        )
        image_request.save()
        return []

    stored: list[GeneratedImage] = []
    problems: list[str] = []
    for ref in refs:
        try:
            content = _fetch_image(ref.url) if ref.url else ref.data
            verified = images.verify_image(content, max_bytes=options.MAX_IMAGE_BYTES)
        except (fetching.FetchError, images.ImageInvalid) as exc:
            # One odd URL in a pass-through result must not lose the images that
            # did arrive.
            problems.append(str(exc))
            continue
        stored.append(_image_build(image_request, len(stored), ref.url, verified))

    with transaction.atomic():
        if problems:
            _log(image_request, "fetch_images", "Skipped", " ".join(problems)[:2000])
        if not stored:
            image_request.fail(
                ErrorCode.IMAGE_FETCH,
                f"The image was made but could not be saved: {problems[0]}",
                release_quota=False,
            )
            image_request.save()
            return []
        for image in stored:
            image.save()
        image_request.complete()
        image_request.save()
    return []


def _image_build(
    image_request: ImageRequest, position: int, url: str, verified: images.VerifiedImage
) -> GeneratedImage:
    image = GeneratedImage(
        image_request=image_request,
        position=position,
        source_url=url if len(url) <= 2000 else "",
        content_type=verified.content_type,
        width=verified.width,
        height=verified.height,
        size_bytes=len(verified.content),
    )
    image.file.save(
        f"image-{position}{verified.extension}",
        ContentFile(verified.content),
        save=False,
    )
    thumbnail = images.make_thumbnail(
        verified.content, size=settings.BANANAWEB_THUMBNAIL_SIZE
    )
    image.thumbnail.save(f"thumb-{position}.webp", ContentFile(thumbnail), save=False)
    return image
