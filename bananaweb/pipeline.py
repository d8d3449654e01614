"""The request pipeline's background steps: submit, poll, fetch images, and the
reconciler that looks after them.

Each step runs in a task (tasks.py), never in a web request. It loads the
request by id, talks to the upstream through mountsea.py, changes the request
through its own state methods, and returns the follow-ups to schedule.
"""

import functools
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import structlog
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from bananaweb import crypto, fetching, images, mountsea, options, public_links
from bananaweb.followups import FollowUp, Step
from bananaweb.models import (
    ErrorCode,
    GeneratedImage,
    ImageRequest,
    ImageRequestQuerySet,
)
from bananaweb.tokens import (
    UNDECRYPTABLE,
    NoUsableToken,
    token_cool_down,
    token_free_at,
    token_mark_used,
    token_record_error,
    token_select,
    token_suspend,
    token_unavailable_reason,
)

logger = logging.getLogger(__name__)
jobs_logger = structlog.get_logger("bananaweb.jobs")
Status = ImageRequest.Status

# Seconds before sending again when the upstream said "not now" without a time
# (a 503, a refused connection): doubled after each wait, up to the cap.
UNAVAILABLE_RETRY = 5
UNAVAILABLE_RETRY_CAP = 120
# Answers that take a token out of rotation: it was refused, or is out of credit.
SUSPENDING_STATUSES = frozenset({401, 402, 403})
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


def _reference_urls(image_request: ImageRequest) -> list[str] | None:
    """Signed links to the request's own images (uploads, earlier results), for the
    upstream to fetch; None when one of them was deleted since."""
    urls = []
    for reference in image_request.references.all():
        if reference.upload_id:
            urls.append(
                public_links.public_url(public_links.UPLOAD, reference.upload_id)
            )
        elif reference.image_id:
            urls.append(public_links.public_url(public_links.IMAGE, reference.image_id))
        else:
            return None
    return urls


def _check_image_urls(image_request: ImageRequest) -> str:
    """Why an image URL can't be used (a sentence), or "" when all can: checked
    before paying."""
    for index, url in enumerate(image_request.image_urls, start=1):
        try:
            images.verify_image(_fetch_image(url), max_bytes=options.MAX_IMAGE_BYTES)
        except (fetching.FetchError, images.ImageInvalid) as exc:
            return f"Image URL {index} can't be used: {exc}"
    return ""


# --- One log line per step --------------------------------------------------------


def _job(step: Step) -> Callable:
    """A step on one request runs with that request's ids bound for every log line
    inside (the upstream client's too): its own pk and the id of the web or API
    request that made it. Then one line says how the step ended and how long it took.
    """

    def decorate(function: Callable[..., list[FollowUp]]) -> Callable:
        @functools.wraps(function)
        def run(*, image_request_id: int) -> list[FollowUp]:
            trace_id = (
                ImageRequest.objects.filter(pk=image_request_id)
                .values_list("trace_id", flat=True)
                .first()
            )
            started = time.monotonic()
            with structlog.contextvars.bound_contextvars(
                request_id=trace_id or "", image_request_id=image_request_id
            ):
                try:
                    follow_ups = function(image_request_id=image_request_id)
                except Exception as exc:
                    jobs_logger.error(
                        "job",
                        task=str(step),
                        outcome="raised",
                        error=type(exc).__name__,
                        duration_ms=round((time.monotonic() - started) * 1000),
                    )
                    raise
                jobs_logger.info(
                    "job",
                    task=str(step),
                    # The request's status after the step: "in progress" after a
                    # poll that must ask again, "completed" after the download...
                    outcome=ImageRequest.objects.filter(pk=image_request_id)
                    .values_list("status", flat=True)
                    .first(),
                    next=[str(follow_up.step) for follow_up in follow_ups],
                    duration_ms=round((time.monotonic() - started) * 1000),
                )
                return follow_ups

        return run

    return decorate


# --- Scheduling the next step -----------------------------------------------------


def _next(image_request: ImageRequest, step: Step, delay: float = 0) -> FollowUp:
    """The follow-up for the request's next step; due_at tells the reconciler when
    that step should have run by (the caller saves)."""
    image_request.due_at = timezone.now() + timedelta(seconds=delay)
    return FollowUp(step, (image_request.pk,), delay=delay)


# --- Submit -----------------------------------------------------------------------


def _begin_sending(image_request: ImageRequest) -> bool:
    """Record, committed before the call, that a send begins: if the worker dies
    now, the reconciler knows the outcome is unknown. False when the reconciler
    already took the request back (it was claimed too long ago)."""
    now = timezone.now()
    began = ImageRequest.objects.filter(
        pk=image_request.pk, status=Status.SUBMITTING
    ).update(sending_started_at=now)
    image_request.sending_started_at = now
    return bool(began)


def _save_if_sending(image_request: ImageRequest, *, accepted: bool = False) -> None:
    """Save the send's outcome unless the reconciler ended the request meanwhile.

    An acceptance is saved whatever happened: the image is paid for, so it is
    fetched.
    """
    with transaction.atomic():
        current = (
            ImageRequest.objects.select_for_update()
            .filter(pk=image_request.pk)
            .values_list("status", flat=True)
            .first()
        )
        if current == Status.SUBMITTING or accepted:
            image_request.save()
        else:
            logger.warning(
                "Request %s: the send ended after it was marked %s; kept that.",
                image_request.pk,
                current,
            )


def _backoff(image_request: ImageRequest) -> float:
    return min(UNAVAILABLE_RETRY * 2**image_request.attempts, UNAVAILABLE_RETRY_CAP)


def _no_token_message(user) -> str:
    reason = token_unavailable_reason(user=user)
    return (
        f"No upstream API token is available, so nothing was sent: {reason}. "
        "Your request is saved; resubmit it once that is done."
    )


@_job(Step.SUBMIT)
def image_request_submit(*, image_request_id: int) -> list[FollowUp]:
    """Send a saved request upstream, failing over between tokens.

    Never resends an unknown outcome; a request that was not accepted for a
    passing reason (rate limited, unavailable, unreachable) waits and is sent
    again until its submit deadline.
    """
    now = timezone.now()
    claimed = ImageRequest.objects.filter(
        pk=image_request_id, status=Status.QUEUED
    ).update(status=Status.SUBMITTING, sending_started_at=None, due_at=now)
    if not claimed:
        return []  # already sent, or being sent by another worker
    image_request = ImageRequest.objects.select_related("user").get(pk=image_request_id)
    if image_request.image_urls:
        # Checking the URLs takes a while: the reconciler waits for it before it
        # takes a claim that never began sending back.
        budget = settings.BANANAWEB_FETCH_TIMEOUT * len(image_request.image_urls)
        ImageRequest.objects.filter(pk=image_request.pk).update(
            due_at=now + timedelta(seconds=budget)
        )
    if now >= image_request.submit_deadline:
        image_request.expire()
        _save_if_sending(image_request)
        return []
    if image_request.image_urls and (problem := _check_image_urls(image_request)):
        image_request.fail(ErrorCode.IMAGE_URLS, problem)
        _save_if_sending(image_request)
        return []

    reference_urls = _reference_urls(image_request)
    if reference_urls is None:
        image_request.fail(
            ErrorCode.IMAGE_URLS,
            "A picture this request was made from was deleted, so it can't be sent.",
        )
        _save_if_sending(image_request)
        return []
    payload = image_request.upstream_payload(reference_urls=reference_urls)
    follow_ups: list[FollowUp] = []
    tried: set[int] = set()
    retry_in: float | None = None
    suspended = False
    while True:
        chosen_at = timezone.now()
        try:
            token = token_select(user=image_request.user, exclude=tried)
        except NoUsableToken:
            break
        tried.add(token.pk)
        try:
            client = mountsea.client_for(token.secret)
        except crypto.DecryptionFailed:
            follow_ups.append(token_suspend(token=token, reason=UNDECRYPTABLE))
            continue
        if not _begin_sending(image_request):
            return follow_ups
        image_request.upstream_token = token
        outcome = client.generate(payload)
        _log_exchange(image_request, "generate", outcome, token)
        match outcome:
            case mountsea.Accepted():
                # Logged before anything is written, so that a task accepted just
                # before a failed database write can still be traced.
                logger.info(
                    "Request %s accepted upstream as task %s",
                    image_request.pk,
                    outcome.upstream_task_id,
                )
                token_mark_used(token=token)
                image_request.accept(
                    upstream_task_id=outcome.upstream_task_id, token=token
                )
                poll = _next(
                    image_request, Step.POLL, settings.BANANAWEB_POLL_FIRST_DELAY
                )
                _save_if_sending(image_request, accepted=True)
                return [*follow_ups, poll]
            case mountsea.AuthFailed() | mountsea.OutOfCredit() if (
                outcome.status_code in SUSPENDING_STATUSES and not suspended
            ):
                # Refused before anything was accepted: safe to try the next token.
                # Decided by the status code, never by the answer's text (which may
                # echo the prompt); one suspension a request, so no request can
                # take every token out of rotation.
                suspended = True
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
                retry_in = _backoff(image_request)
                image_request.attempts += 1
                break
            case mountsea.UpstreamError(status_code=503):
                # "Unavailable" says the request was not taken: a wait, for every
                # token alike.
                token_record_error(token=token, message=outcome.message)
                retry_in = outcome.retry_after or _backoff(image_request)
                image_request.attempts += 1
                break
            case (
                mountsea.NetworkError()
                | mountsea.Malformed()
                | mountsea.UpstreamError()
            ):
                # A 500, 502 or 504, a timeout or an answer we can't read: a task
                # may exist upstream, so this is never sent again on its own.
                token_record_error(token=token, message=outcome.message)
                image_request.mark_outcome_unknown(reason=outcome.message)
                _save_if_sending(image_request)
                return follow_ups
            case _:  # Rejected, or refused again within this request
                token_record_error(token=token, message=outcome.message)
                image_request.fail(ErrorCode.REJECTED, outcome.message)
                _save_if_sending(image_request)
                return follow_ups

    reason = image_request.exchange[-1]["message"] if image_request.exchange else ""
    if retry_in is None and (
        free_at := token_free_at(user=image_request.user, since=chosen_at)
    ):
        # Every token was only cooling down after a rate limit (perhaps until a
        # moment ago): wait for the first. The jitter spreads out the requests
        # that all waited for the same moment.
        wait = max((free_at - timezone.now()).total_seconds(), 0)
        retry_in = wait + random.uniform(0.1, 1)
        reason = "every upstream API token is waiting out a rate limit"
    now = timezone.now()
    remaining = (image_request.submit_deadline - now).total_seconds()
    if retry_in is not None and remaining > 1:
        # One more try just before the deadline if the wait would pass it.
        retry_in = min(retry_in, remaining - 1)
        until = timezone.localtime(now + timedelta(seconds=retry_in))
        image_request.wait(
            message=f"Waiting for the image service until {until:%H:%M:%S}: "
            + reason.rstrip(".")
            + ". It is sent then, by itself."
        )
        retry = _next(image_request, Step.SUBMIT, retry_in)
        _save_if_sending(image_request)
        return [*follow_ups, retry]
    if retry_in is not None:
        message = "The image service stayed unavailable, so the request was not sent. "
        image_request.fail(ErrorCode.UNAVAILABLE, (message + reason).strip())
    else:
        image_request.fail(ErrorCode.NO_TOKEN, _no_token_message(image_request.user))
    _save_if_sending(image_request)
    return follow_ups


# --- Poll -------------------------------------------------------------------------


def _next_poll_delay(poll_count: int) -> float:
    first = max(settings.BANANAWEB_POLL_FIRST_DELAY, 1)
    return min(first * 1.5**poll_count, settings.BANANAWEB_POLL_MAX_DELAY)


@_job(Step.POLL)
def image_request_poll(*, image_request_id: int) -> list[FollowUp]:
    """Ask the upstream how the task is doing, with the token that submitted it.

    Any fault on the way (5xx, timeouts, odd answers) only means asking again
    later, until the poll deadline.
    """
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

    try:
        client = mountsea.client_for(token.secret)
    except crypto.DecryptionFailed:
        # Like any other fault on a poll: asked again until the deadline, in case
        # the old key comes back.
        outcome = mountsea.AuthFailed(0, UNDECRYPTABLE)
    else:
        outcome = client.task_result(image_request.upstream_task_id)
    image_request.poll_count += 1
    if not isinstance(outcome, mountsea.TaskState):
        _log_exchange(image_request, "task_result", outcome, token)
    elif outcome.status != image_request.upstream_status:
        _log_exchange(image_request, "task_result", outcome, token)
        image_request.upstream_status = outcome.status[:40]

    if isinstance(outcome, mountsea.TaskState) and outcome.terminal:
        image_request.result = outcome.result
        if outcome.status == options.UpstreamStatus.COMPLETED:
            image_request.attempts = 0  # the download's own count starts
            fetch = _next(image_request, Step.FETCH_IMAGES)
            image_request.save()
            return [fetch]
        reason = outcome.error_message or "no reason was given"
        words = FAILED_STATUS_WORDS[outcome.status]
        image_request.fail(FAILED_STATUS_CODES[outcome.status], f"{words}: {reason}")
        image_request.save()
        return []

    if timezone.now() >= image_request.poll_deadline:
        image_request.miss_deadline()
        image_request.save()
        return []
    poll = _next(image_request, Step.POLL, _next_poll_delay(image_request.poll_count))
    image_request.save()
    return [poll]


# --- Images -----------------------------------------------------------------------


@_job(Step.FETCH_IMAGES)
def image_request_fetch_images(*, image_request_id: int) -> list[FollowUp]:
    """Download, verify and store every image of a completed task, with thumbnails.

    A failure that may pass (a timeout, a 5xx) is tried again with backoff, up
    to BANANAWEB_FETCH_ATTEMPTS times; one that won't (too large, not an image)
    is not.
    """
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

    verified_images: list[tuple[str, images.VerifiedImage]] = []
    problems: list[fetching.FetchError | images.ImageInvalid] = []
    for ref in refs:
        try:
            content = _fetch_image(ref.url) if ref.url else ref.data
            verified = images.verify_image(content, max_bytes=options.MAX_IMAGE_BYTES)
        except (fetching.FetchError, images.ImageInvalid) as exc:
            # One odd URL in a pass-through result must not lose the images that
            # did arrive.
            problems.append(exc)
            continue
        verified_images.append((ref.url, verified))

    passing = [p for p in problems if getattr(p, "transient", False)]
    if passing and image_request.attempts + 1 < settings.BANANAWEB_FETCH_ATTEMPTS:
        image_request.attempts += 1
        _log(image_request, "fetch_images", "Retrying", str(passing[0])[:2000])
        retry = _next(image_request, Step.FETCH_IMAGES, 2**image_request.attempts)
        image_request.save()
        return [retry]

    stored = [
        _image_build(image_request, position, url, verified)
        for position, (url, verified) in enumerate(verified_images)
    ]
    with transaction.atomic():
        # Another run of this step (a rescheduled one) may have saved them first.
        locked = ImageRequest.objects.select_for_update().get(pk=image_request.pk)
        if locked.status != Status.IN_PROGRESS or locked.images.exists():
            # This run's copies are nobody's: left, no row would ever name them.
            # Unless both runs took the same free name (the other's is then this
            # run's same bytes, and kept).
            kept = {
                name
                for names in locked.images.values_list("file", "thumbnail")
                for name in names
            }
            for image in stored:
                for file in (image.file, image.thumbnail):
                    if file.name not in kept:
                        file.delete(save=False)
            return []
        if problems:
            text = " ".join(map(str, problems))[:2000]
            _log(image_request, "fetch_images", "Skipped", text)
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


# --- The reconciler ---------------------------------------------------------------


def image_request_reconcile(*, limit: int = 500) -> list[FollowUp]:
    """Look after every request in flight, whatever happened to its task.

    Sends that began and never finished become outcome unknown (measured from
    when sending began, never resent); claims that never began sending go back
    to the queue; deadlines are enforced; a request whose next step is overdue
    (its task died, or its enqueue was lost) gets that step scheduled again,
    with backoff.
    """
    started = time.monotonic()
    now = timezone.now()
    in_flight = ImageRequest.objects.filter(status__in=ImageRequest.IN_FLIGHT)
    send_cutoff = now - timedelta(
        seconds=settings.MOUNTSEA_CONNECT_TIMEOUT
        + settings.MOUNTSEA_READ_TIMEOUT
        + settings.BANANAWEB_SEND_MARGIN
    )
    _reconcile_each(
        in_flight.filter(status=Status.SUBMITTING, sending_started_at__lt=send_cutoff),
        "marked outcome unknown: the worker stopped while sending it",
        lambda found: found.mark_outcome_unknown(
            reason="the worker stopped while sending it"
        ),
    )
    lost = now - timedelta(seconds=settings.BANANAWEB_LOST_TASK_GRACE)
    # Claimed, and the worker died before it sent anything: safe to send.
    _reconcile_each(
        in_flight.filter(
            status=Status.SUBMITTING, sending_started_at__isnull=True, due_at__lt=lost
        ),
        "queued again: claimed, never sent",
        lambda found: found.update(status=Status.QUEUED),
    )
    _reconcile_each(
        in_flight.filter(
            status=Status.QUEUED,
            created_at__lt=now - timedelta(seconds=settings.BANANAWEB_SUBMIT_DEADLINE),
        ),
        "expired: not sent by the submit deadline",
        lambda found: found.expire(),
    )

    follow_ups: list[FollowUp] = []
    overdue = in_flight.exclude(status=Status.SUBMITTING).filter(due_at__lt=lost)
    for image_request in overdue.order_by("due_at")[:limit]:
        if follow_up := _recover(image_request, now=now):
            follow_ups.append(follow_up)
    jobs_logger.info(
        "job",
        task=str(Step.RECONCILE),
        outcome=f"{len(follow_ups)} steps scheduled again",
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return follow_ups


def _reconcile_each(
    requests: ImageRequestQuerySet, action: str, change: Callable[..., int]
) -> None:
    """One of the reconciler's changes, in one query as before, then a line for
    each request it found, under that request's ids."""
    found = list(requests.values_list("pk", "trace_id"))
    if not found:
        return
    # The same conditions, on the requests just read: one a live step changed in
    # between is left alone, so the lines then say "tried".
    changed = change(requests.filter(pk__in=[pk for pk, _ in found]))
    for pk, trace_id in found:
        with structlog.contextvars.bound_contextvars(
            request_id=trace_id, image_request_id=pk
        ):
            jobs_logger.warning(
                "reconciler",
                action=action,
                outcome="done" if changed == len(found) else "tried",
            )


RECOVERY_FIELDS = (
    "status",
    "error_code",
    "error_message",
    "finished_at",
    "counts_toward_quota",
    "attempts",
    "due_at",
)


def _recover(image_request: ImageRequest, *, now) -> FollowUp | None:
    """Schedule a lost step again, with backoff, or end the request when it may
    not go on."""
    previous = {"status": image_request.status, "due_at": image_request.due_at}
    follow_up = None
    if image_request.status == Status.QUEUED:
        step = Step.SUBMIT
    elif image_request.upstream_status == options.UpstreamStatus.COMPLETED:
        step = Step.FETCH_IMAGES
    else:
        step = Step.POLL
    if step == Step.POLL and now >= image_request.poll_deadline:
        image_request.miss_deadline()
    elif step == Step.FETCH_IMAGES and (
        image_request.attempts + 1 >= settings.BANANAWEB_FETCH_ATTEMPTS
    ):
        image_request.fail(
            ErrorCode.IMAGE_FETCH,
            "The image was made but could not be saved: storing it kept failing.",
            release_quota=False,
        )
    else:
        image_request.attempts += 1
        delay = min(2**image_request.attempts, settings.BANANAWEB_POLL_MAX_DELAY)
        follow_up = _next(image_request, step, delay)
    # Written only if no step touched the request since it was read: a live step
    # wins.
    updated = ImageRequest.objects.filter(pk=image_request.pk, **previous).update(
        **{name: getattr(image_request, name) for name in RECOVERY_FIELDS}
    )
    if updated and follow_up:
        with structlog.contextvars.bound_contextvars(
            request_id=image_request.trace_id, image_request_id=image_request.pk
        ):
            logger.warning(
                "Request %s: its %s step was lost; scheduled again.",
                image_request.pk,
                step,
            )
        return follow_up
    if updated:
        with structlog.contextvars.bound_contextvars(
            request_id=image_request.trace_id, image_request_id=image_request.pk
        ):
            jobs_logger.warning(
                "reconciler",
                action=f"ended: {image_request.error_message}",
                outcome="done",
            )
    return None


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


# --- The task queue's housekeeping --------------------------------------------------


def task_results_prune() -> list[FollowUp]:
    """Delete the queue's rows of tasks long finished (django-tasks-db's own
    prune_db_task_results), and those a killed worker left running as long ago:
    the reconciler has long since scheduled their steps again."""
    days = settings.BANANAWEB_TASK_RESULT_RETENTION_DAYS
    call_command(
        "prune_db_task_results", queue_name="*", min_age_days=days, verbosity=0
    )
    abandoned, _ = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING,
        started_at__lte=timezone.now() - timedelta(days=days),
    ).delete()
    if abandoned:
        logger.warning(
            "Deleted %s task rows left running by a stopped worker over %s days ago.",
            abandoned,
            days,
        )
    return []
