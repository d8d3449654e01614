"""Nothing lost, nothing paid twice (issue 9): the reconciler, waits instead of
failures, idempotent submissions, 5xx on submit, SQLite from DATABASE_URL.

Each section names the defect it covers; the fault matrix over real HTTP is in
test_fault_matrix.py, crashes in test_crashes.py, concurrency in
test_concurrency.py.
"""

import errno
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
import responses
from django.core.files.storage import FileSystemStorage
from django.tasks import default_task_backend
from django.urls import reverse
from django.utils import timezone

from bananaweb import fetching
from bananaweb.models import ErrorCode, ImageRequest, UpstreamToken
from bananaweb.tasks import (
    image_request_fetch_images_task,
    image_request_reconcile_task,
    image_request_submit_task,
)
from tests.factories import ImageRequestFactory, UpstreamTokenFactory, png_bytes
from tests.gateway_helpers import bearer, issue_token

Status = ImageRequest.Status
UPSTREAM = "https://upstream.test"
GENERATE = f"{UPSTREAM}/gemini/image/generate"
RESULT = f"{UPSTREAM}/gemini/task/result"
IMAGE = "https://cdn.upstream.test/out/1.png"
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("clear_tasks")


def enqueued(name: str) -> list:
    return [r for r in default_task_backend.results if r.task.name == name]


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def reconcile(capture) -> None:
    with capture(execute=True):
        image_request_reconcile_task.call()


def submit(capture, image_request: ImageRequest) -> ImageRequest:
    with capture(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    return image_request


# --- 1. a task that dies is found again ----------------------------------------------


def test_a_lost_poll_is_scheduled_again(
    user, upstream_token, django_capture_on_commit_callbacks, settings
):
    settings.BANANAWEB_LOST_TASK_GRACE = 60
    lost = ImageRequestFactory(
        user=user,
        upstream_token=upstream_token,
        status=Status.IN_PROGRESS,
        upstream_task_id="up-1",
        upstream_status="processing",
        submitted_at=ago(120),
        due_at=ago(100),  # its poll should have run 100 s ago: the worker died
    )
    reconcile(django_capture_on_commit_callbacks)
    assert [r.args for r in enqueued("image_request_poll_task")] == [[lost.pk]]
    lost.refresh_from_db()
    assert lost.status == Status.IN_PROGRESS and lost.due_at > timezone.now()

    default_task_backend.clear()
    reconcile(django_capture_on_commit_callbacks)  # once rescheduled, left alone
    assert not enqueued("image_request_poll_task")


def test_a_lost_poll_past_its_deadline_ends_with_a_reason(
    user, upstream_token, django_capture_on_commit_callbacks, settings
):
    settings.BANANAWEB_POLL_DEADLINE = 15 * 60
    lost = ImageRequestFactory(
        user=user,
        upstream_token=upstream_token,
        status=Status.IN_PROGRESS,
        upstream_task_id="up-1",
        upstream_status="processing",
        submitted_at=ago(3600),
        due_at=ago(3000),
    )
    reconcile(django_capture_on_commit_callbacks)
    lost.refresh_from_db()
    assert lost.status == Status.FAILED and lost.error_code == ErrorCode.DEADLINE
    assert "15 minutes" in lost.error_message
    assert not enqueued("image_request_poll_task")


@responses.activate
def test_disk_full_while_saving_is_retried_and_then_ends(
    user, upstream_token, django_capture_on_commit_callbacks, settings
):
    settings.BANANAWEB_FETCH_ATTEMPTS = 3
    image_request = ImageRequestFactory(
        user=user,
        upstream_token=upstream_token,
        status=Status.IN_PROGRESS,
        upstream_task_id="up-1",
        upstream_status="completed",
        submitted_at=ago(60),
        result={"data": [{"image": {"url": IMAGE}}]},
    )
    fetched = fetching.Fetched(content=png_bytes(), content_type="image/png", url=IMAGE)
    disk_full = OSError(errno.ENOSPC, "No space left on device")
    with (
        mock.patch.object(fetching, "fetch", return_value=fetched),
        mock.patch.object(FileSystemStorage, "_save", side_effect=disk_full),
        pytest.raises(OSError),
    ):
        image_request_fetch_images_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.IN_PROGRESS  # not lost, not done

    for _ in range(5):
        ImageRequest.objects.filter(pk=image_request.pk).update(due_at=ago(3600))
        reconcile(django_capture_on_commit_callbacks)
    image_request.refresh_from_db()
    assert len(enqueued("image_request_fetch_images_task")) == 2  # attempts 1 and 2
    assert image_request.status == Status.FAILED
    assert image_request.error_code == ErrorCode.IMAGE_FETCH
    assert "could not be saved" in image_request.error_message


@responses.activate
def test_a_passing_download_failure_is_retried_with_backoff(
    user, upstream_token, django_capture_on_commit_callbacks
):
    image_request = ImageRequestFactory(
        user=user,
        upstream_token=upstream_token,
        status=Status.IN_PROGRESS,
        upstream_task_id="up-1",
        upstream_status="completed",
        result={"data": [{"image": {"url": IMAGE}}]},
    )
    busy = fetching.FetchError("HTTP 503", transient=True)
    with mock.patch.object(fetching, "fetch", side_effect=busy):
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                image_request_fetch_images_task.call(image_request.pk)
    retries = enqueued("image_request_fetch_images_task")
    assert len(retries) == 2
    assert retries[1].task.run_after - retries[0].task.run_after > timedelta(seconds=1)
    fetched = fetching.Fetched(content=png_bytes(), content_type="image/png", url=IMAGE)
    with mock.patch.object(fetching, "fetch", return_value=fetched):
        image_request_fetch_images_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.COMPLETED


# --- 3. one rate limit fails nobody ---------------------------------------------------


@responses.activate
def test_requests_wait_while_the_only_token_cools_down(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.post(GENERATE, status=429, headers={"Retry-After": "2"}, json={})
    first = submit(django_capture_on_commit_callbacks, ImageRequestFactory(user=user))
    assert first.status == Status.QUEUED
    others = [
        submit(django_capture_on_commit_callbacks, ImageRequestFactory(user=user))
        for _ in range(12)
    ]
    assert len(responses.calls) == 1  # the others never hit the cooling token
    for other in others:
        assert other.status == Status.QUEUED, other.error_message
        assert other.error_message.startswith("Waiting for the image service until ")
    retries = enqueued("image_request_submit_task")
    assert len(retries) == 13
    free_at = UpstreamToken.objects.get().cooldown_until
    for retry in retries[1:]:
        assert free_at <= retry.task.run_after <= free_at + timedelta(seconds=1.5)


@pytest.mark.parametrize(
    ("tokens", "words"),
    [
        ([], "no upstream API token has been added"),
        ([{"is_active": False}], "every upstream API token is disabled"),
        (
            [{"suspended_reason": "HTTP 401"}],
            "every upstream API token is out of rotation",
        ),
    ],
)
def test_no_token_says_which_case_it_is(
    user, django_capture_on_commit_callbacks, tokens, words
):
    for fields in tokens:
        UpstreamTokenFactory(**fields)
    image_request = submit(
        django_capture_on_commit_callbacks, ImageRequestFactory(user=user)
    )
    assert image_request.error_code == ErrorCode.NO_TOKEN
    assert words in image_request.error_message
    assert "No upstream API token is available" in image_request.error_message


# --- 4. a send in progress is never called unknown -------------------------------------


def test_a_send_that_began_just_now_is_not_swept_however_old_the_request(
    user, django_capture_on_commit_callbacks
):
    sending = ImageRequestFactory(
        user=user,
        status=Status.SUBMITTING,
        created_at=ago(3600),  # queued for an hour, waiting out rate limits
        sending_started_at=ago(2),
    )
    reconcile(django_capture_on_commit_callbacks)
    sending.refresh_from_db()
    assert sending.status == Status.SUBMITTING


def test_a_claim_that_never_began_sending_goes_back_to_the_queue(
    user, django_capture_on_commit_callbacks, settings
):
    claimed = ImageRequestFactory(
        user=user, status=Status.SUBMITTING, sending_started_at=None, due_at=ago(600)
    )
    reconcile(django_capture_on_commit_callbacks)
    claimed.refresh_from_db()
    assert claimed.status == Status.QUEUED
    reconcile(django_capture_on_commit_callbacks)
    assert [r.args for r in enqueued("image_request_submit_task")] == [[claimed.pk]]


@responses.activate
def test_the_senders_late_write_does_not_undo_the_reconcilers(
    user, upstream_token, django_capture_on_commit_callbacks
):
    image_request = ImageRequestFactory(user=user)

    def refused_after_the_reconciler_gave_up(request):
        ImageRequest.objects.filter(pk=image_request.pk).update(
            status=Status.UNKNOWN, error_code=ErrorCode.UNKNOWN_OUTCOME
        )
        return 400, {}, json.dumps({"message": "bad prompt"})

    responses.add_callback(
        responses.POST, GENERATE, callback=refused_after_the_reconciler_gave_up
    )
    image_request = submit(django_capture_on_commit_callbacks, image_request)
    assert image_request.status == Status.UNKNOWN  # not flipped to failed


# --- 5. queued requests expire ------------------------------------------------------------


@responses.activate
def test_a_request_queued_past_its_deadline_is_never_sent(
    user, upstream_token, django_capture_on_commit_callbacks, settings
):
    settings.BANANAWEB_SUBMIT_DEADLINE = 600
    stale = ImageRequestFactory(user=user, created_at=ago(3 * 3600))
    stale = submit(django_capture_on_commit_callbacks, stale)
    assert not responses.calls
    assert stale.status == Status.FAILED and stale.error_code == ErrorCode.EXPIRED
    assert not stale.counts_toward_quota
    assert "nothing was charged" in stale.error_message


def test_a_queued_request_whose_enqueue_was_lost_is_sent_or_expires(
    user, django_capture_on_commit_callbacks, settings
):
    settings.BANANAWEB_SUBMIT_DEADLINE = 600
    lost = ImageRequestFactory(user=user, created_at=ago(120), due_at=ago(120))
    forgotten = ImageRequestFactory(user=user, created_at=ago(3600), due_at=ago(3600))
    reconcile(django_capture_on_commit_callbacks)
    assert [r.args for r in enqueued("image_request_submit_task")] == [[lost.pk]]
    forgotten.refresh_from_db()
    assert (
        forgotten.status == Status.FAILED and forgotten.error_code == ErrorCode.EXPIRED
    )
    assert not forgotten.counts_toward_quota


# --- 6. replays pay once ----------------------------------------------------------------


def test_three_identical_posts_make_one_request(
    client_logged_in, user, django_capture_on_commit_callbacks
):
    page = client_logged_in.get(reverse("index")).content.decode()
    assert 'name="idempotency_key"' in page
    form = {
        "action": "generate",
        "prompt": "A banana in the rain",
        "model": "nano-banana-fast",
        "idempotency_key": "4b1f0c7e9d6a4a55a1f2b3c4d5e6f708",
    }
    for headers in ({}, {"HX-Request": "true"}, {}):
        with django_capture_on_commit_callbacks(execute=True):
            response = client_logged_in.post(
                reverse("request-create"), form, headers=headers
            )
        assert response.status_code in (200, 302)
    assert ImageRequest.objects.count() == 1
    assert len(enqueued("image_request_submit_task")) == 1


def test_a_reused_form_key_with_other_values_is_refused(client_logged_in, user):
    form = {"action": "generate", "prompt": "One", "idempotency_key": "k-1"}
    client_logged_in.post(reverse("request-create"), form)
    response = client_logged_in.post(
        reverse("request-create"), form | {"prompt": "Two"}
    )
    assert response.status_code == 422
    assert "already used for a different request" in response.content.decode()
    assert ImageRequest.objects.count() == 1


def test_the_gateway_honours_idempotency_key(client, user):
    raw = issue_token(user)
    body = {"prompt": "A pear", "action": "generate", "num_images": 1}
    url = "/api/gemini/image/generate"

    def post(data, key):
        headers = bearer(raw) | {"Idempotency-Key": key}
        return client.post(
            url, json.dumps(data), content_type="application/json", headers=headers
        )

    first, again = post(body, "retry-1"), post(body, "retry-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["taskId"] == again.json()["taskId"]
    conflict = post(body | {"prompt": "A plum"}, "retry-1")
    assert (
        conflict.status_code == 422 and "Idempotency-Key" in conflict.json()["errors"]
    )
    assert post(body, "retry-2").json()["taskId"] != first.json()["taskId"]
    assert ImageRequest.objects.count() == 2


# --- 7. a 5xx on submit may have made a task --------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
@responses.activate
def test_a_5xx_on_submit_is_an_unknown_outcome_never_resent(
    user, upstream_token, django_capture_on_commit_callbacks, status
):
    responses.post(GENERATE, status=status, json={"message": "oops"})
    image_request = submit(
        django_capture_on_commit_callbacks, ImageRequestFactory(user=user)
    )
    assert image_request.status == Status.UNKNOWN
    assert image_request.error_code == ErrorCode.UNKNOWN_OUTCOME
    assert image_request.counts_toward_quota  # it may have been charged
    assert "not resent" in image_request.error_message
    assert not enqueued("image_request_submit_task")


@responses.activate
def test_a_503_with_retry_after_is_a_wait(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.post(GENERATE, status=503, headers={"Retry-After": "7"}, json={})
    image_request = submit(
        django_capture_on_commit_callbacks, ImageRequestFactory(user=user)
    )
    assert image_request.status == Status.QUEUED
    assert "Waiting for the image service until" in image_request.error_message
    [retry] = enqueued("image_request_submit_task")
    assert (
        timedelta(seconds=5)
        < retry.task.run_after - timezone.now()
        <= timedelta(seconds=7)
    )


# --- 8. SQLite from DATABASE_URL ---------------------------------------------------------


def test_sqlite_from_database_url_gets_the_same_options(tmp_path):
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    )
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    options = json.loads(out)
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 20
    assert "journal_mode=WAL" in options["init_command"]
