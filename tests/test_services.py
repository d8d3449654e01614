"""The request pipeline's services, with the upstream mocked at the HTTP level."""

import json
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
import requests
import responses
from django.core.exceptions import ValidationError
from django.db import connection
from django.tasks import default_task_backend
from django.utils import timezone
from PIL import Image

from bananaweb import fetching, services
from bananaweb.models import ImageRequest, TokenAuditEntry, UpstreamToken, UserQuota
from bananaweb.tasks import (
    image_request_fetch_images_task,
    image_request_poll_task,
    image_request_submit_task,
)
from tests.factories import ImageRequestFactory, UpstreamTokenFactory, png_bytes

UPSTREAM = "https://upstream.test"
GENERATE = f"{UPSTREAM}/gemini/image/generate"
RESULT = f"{UPSTREAM}/gemini/task/result"
Status = ImageRequest.Status


pytestmark = pytest.mark.usefixtures("clear_tasks")


def enqueued(task) -> list:
    return [r.args for r in default_task_backend.results if r.task.name == task.name]


def create(user, django_capture_on_commit_callbacks, **data) -> ImageRequest:
    with django_capture_on_commit_callbacks(execute=True):
        return services.image_request_create(
            user=user, data={"action": "generate", "prompt": "A banana"} | data
        )


# --- create ---------------------------------------------------------------------------


def test_create_saves_before_sending_and_enqueues_submit(
    user, django_capture_on_commit_callbacks
):
    image_request = create(
        user,
        django_capture_on_commit_callbacks,
        model="nano-banana-pro",
        resolution="2K",
    )
    assert ImageRequest.objects.get(pk=image_request.pk).status == Status.QUEUED
    assert enqueued(image_request_submit_task) == [[image_request.pk]]


def test_create_refuses_invalid_options_and_saves_nothing(user):
    with pytest.raises(ValidationError) as exc:
        services.image_request_create(
            user=user, data={"action": "edit", "prompt": "Blue", "image_urls": []}
        )
    assert "image_urls" in exc.value.message_dict
    assert not ImageRequest.objects.exists()
    assert not default_task_backend.results


def test_over_quota_is_refused_with_reset_time(user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 2
    ImageRequestFactory.create_batch(2, user=user)
    with pytest.raises(services.QuotaExceeded) as exc:
        services.image_request_create(
            user=user, data={"action": "generate", "prompt": "One more"}
        )
    assert "all 2 of today's requests" in str(exc.value)
    assert "resets at 00:00" in str(exc.value)
    assert ImageRequest.objects.count() == 2
    assert not default_task_backend.results


def _at_once(user, monkeypatch, first: dict, second: dict) -> list:
    """Two submissions for one user from two connections, the second sent while
    the first holds the user's lock (its request saved, not yet committed): what
    each got, first's then second's."""
    holding, release = threading.Event(), threading.Event()
    real_schedule = services.schedule

    def held(*follow_ups):
        if not holding.is_set():
            holding.set()
            release.wait(10)
        real_schedule(*follow_ups)

    monkeypatch.setattr(services, "schedule", held)
    outcomes = [None, None]

    def submit(index, kwargs):
        try:
            data = {"action": "generate", "prompt": "At once"}
            made = services.image_request_create(user=user, data=data, **kwargs)
            outcomes[index] = made.pk
        except services.QuotaExceeded:
            outcomes[index] = "refused"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=submit, args=(index, kwargs))
        for index, kwargs in enumerate((first, second))
    ]
    threads[0].start()
    assert holding.wait(10)
    threads[1].start()
    time.sleep(0.5)  # the second waits for the first's lock meanwhile
    assert threads[1].is_alive()
    release.set()
    for thread in threads:
        thread.join(10)
    return outcomes


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a row lock between two connections"
)
@pytest.mark.django_db(transaction=True)
def test_two_submissions_at_once_never_both_take_the_last_request(
    user, settings, monkeypatch
):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    made, refused = _at_once(user, monkeypatch, {}, {})
    assert refused == "refused"
    assert list(ImageRequest.objects.values_list("pk", flat=True)) == [made]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a row lock between two connections"
)
@pytest.mark.django_db(transaction=True)
def test_one_idempotency_key_sent_twice_at_once_makes_one_request(user, monkeypatch):
    key = {"idempotency_key": "twice-at-once"}
    first, second = _at_once(user, monkeypatch, key, key)
    assert first == second
    assert list(ImageRequest.objects.values_list("pk", flat=True)) == [first]


def test_per_user_quota_overrides_default(user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    UserQuota.objects.create(user=user, daily_limit=3)
    ImageRequestFactory.create_batch(2, user=user)
    services.image_request_create(
        user=user, data={"action": "generate", "prompt": "Third"}
    )
    assert services.quota_usage(user=user).remaining == 0


def test_given_back_and_yesterdays_requests_do_not_count(user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    ImageRequestFactory(user=user, counts_toward_quota=False, status=Status.FAILED)
    ImageRequestFactory(
        user=user, created_at=timezone.now() - timedelta(days=1, hours=1)
    )
    image_request = services.image_request_create(
        user=user, data={"action": "generate", "prompt": "Fits"}
    )
    assert ImageRequest.objects.get(pk=image_request.pk).status == Status.QUEUED
    assert services.quota_usage(user=user).used == 1  # only the new one counts


# --- submit ---------------------------------------------------------------------------


@responses.activate
def test_submit_stores_task_id_and_schedules_poll(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.post(GENERATE, json={"taskId": "up-1"}, status=201)
    image_request = ImageRequestFactory(
        user=user, model="nano-banana-fast", aspect_ratio="16:9"
    )
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.IN_PROGRESS
    assert image_request.upstream_task_id == "up-1"
    assert image_request.upstream_token == upstream_token
    assert json.loads(responses.calls[0].request.body) == {
        "prompt": image_request.prompt,
        "action": "generate",
        "num_images": 1,
        "model": "nano-banana-fast",
        "aspect_ratio": "16:9",
    }
    assert (
        responses.calls[0].request.headers["Authorization"]
        == "Bearer test-upstream-token"
    )
    assert enqueued(image_request_poll_task) == [[image_request.pk]]


@responses.activate
def test_submit_never_sends_twice(user, upstream_token):
    responses.post(GENERATE, json={"taskId": "up-1"}, status=201)
    image_request = ImageRequestFactory(user=user)
    image_request_submit_task.call(image_request.pk)
    image_request_submit_task.call(image_request.pk)
    assert len(responses.calls) == 1


@responses.activate
def test_read_timeout_is_unknown_and_never_resent(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.post(GENERATE, body=requests.ReadTimeout("read timed out"))
    image_request = ImageRequestFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.UNKNOWN
    assert "not resent automatically" in image_request.error_message
    assert image_request.counts_toward_quota  # it may have been charged
    assert not default_task_backend.results
    assert len(responses.calls) == 1


@responses.activate
def test_malformed_answer_is_unknown(user, upstream_token):
    responses.post(GENERATE, body="<html>oops", status=201)
    image_request = ImageRequestFactory(user=user)
    image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.UNKNOWN


@responses.activate
def test_rejection_fails_with_upstream_message_and_gives_quota_back(
    user, upstream_token
):
    responses.post(
        GENERATE,
        json={"statusCode": 400, "message": "prompt violates policy"},
        status=400,
    )
    image_request = ImageRequestFactory(user=user)
    image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.FAILED
    assert "prompt violates policy" in image_request.error_message
    assert not image_request.counts_toward_quota


@responses.activate
def test_401_suspends_token_and_fails_over_to_next(
    user, django_capture_on_commit_callbacks
):
    bad = UpstreamTokenFactory(name="bad", secret_value="sim-bad-0001", priority=10)
    good = UpstreamTokenFactory(name="good", secret_value="sim-good-0002", priority=0)
    responses.post(
        GENERATE,
        json={"message": "Unauthorized"},
        status=401,
        match=[
            responses.matchers.header_matcher({"Authorization": "Bearer sim-bad-0001"})
        ],
    )
    responses.post(
        GENERATE,
        json={"taskId": "up-2"},
        status=201,
        match=[
            responses.matchers.header_matcher({"Authorization": "Bearer sim-good-0002"})
        ],
    )
    image_request = ImageRequestFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    bad.refresh_from_db()
    assert image_request.status == Status.IN_PROGRESS
    assert image_request.upstream_token == good
    assert bad.state == "suspended" and "401" in bad.suspended_reason
    assert TokenAuditEntry.objects.filter(token=bad, event="suspended").exists()
    assert any(
        r.task.name == "token_recheck_task" for r in default_task_backend.results
    )


@responses.activate
def test_429_cools_token_down_and_requeues(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.post(
        GENERATE,
        json={"message": "slow down"},
        status=429,
        headers={"Retry-After": "20"},
    )
    image_request = ImageRequestFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    upstream_token.refresh_from_db()
    assert image_request.status == Status.QUEUED
    assert upstream_token.state == "cooling down"
    assert upstream_token.cooldown_until > timezone.now() + timedelta(seconds=15)
    retry = [
        r
        for r in default_task_backend.results
        if r.task.name == "image_request_submit_task"
    ]
    assert retry and retry[0].task.run_after > timezone.now() + timedelta(seconds=15)


def test_no_token_fails_with_plain_reason_and_keeps_request(user, settings):
    settings.MOUNTSEA_API_TOKEN = ""
    image_request = ImageRequestFactory(user=user)
    image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.FAILED
    assert image_request.error_code == "no_token"
    assert "No upstream API token is available" in image_request.error_message
    assert not image_request.counts_toward_quota


def test_environment_token_is_seeded_when_none_exist(db, settings):
    settings.MOUNTSEA_API_TOKEN = "sim-seeded-9876"
    from bananaweb.tokens import token_seed_from_environment

    token = token_seed_from_environment()
    assert token.secret == "sim-seeded-9876" and token.last4 == "9876"
    assert token_seed_from_environment() is None  # only the first time
    assert UpstreamToken.objects.count() == 1


def test_group_restricted_token_is_not_used_by_others(user, other_user):
    from django.contrib.auth.models import Group

    from bananaweb.tokens import NoUsableToken, token_select

    team = Group.objects.create(name="design")
    token = UpstreamTokenFactory()
    token.groups.add(team)
    other_user.groups.add(team)
    assert token_select(user=other_user) == token
    with pytest.raises(NoUsableToken):
        token_select(user=user)


def test_tokens_share_load_within_a_priority(user):
    from bananaweb.tokens import token_mark_used, token_select

    first, second = UpstreamTokenFactory(priority=5), UpstreamTokenFactory(priority=5)
    UpstreamTokenFactory(priority=1)
    picked = token_select(user=user)
    token_mark_used(token=picked)
    assert {picked, token_select(user=user)} == {first, second}


# --- poll and fetch -------------------------------------------------------------------


def in_progress(user, token, **fields) -> ImageRequest:
    defaults = {
        "status": Status.IN_PROGRESS,
        "upstream_task_id": "up-1",
        "upstream_status": "pending",
        "submitted_at": timezone.now(),
    }
    return ImageRequestFactory(user=user, upstream_token=token, **(defaults | fields))


@responses.activate
def test_poll_uses_the_submitting_token(
    user, upstream_token, django_capture_on_commit_callbacks
):
    UpstreamTokenFactory(name="other", priority=100)
    responses.get(
        RESULT, json={"taskId": "up-1", "status": "processing", "result": None}
    )
    image_request = in_progress(user, upstream_token)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_poll_task.call(image_request.pk)
    assert (
        responses.calls[0].request.headers["Authorization"]
        == "Bearer test-upstream-token"
    )
    assert "taskId=up-1" in responses.calls[0].request.url
    image_request.refresh_from_db()
    assert image_request.upstream_status == "processing"
    assert enqueued(image_request_poll_task) == [[image_request.pk]]


@responses.activate
def test_unknown_status_counts_as_in_flight(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.get(RESULT, json={"taskId": "up-1", "status": "queued-for-gpu"})
    image_request = in_progress(user, upstream_token)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_poll_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.IN_PROGRESS
    assert enqueued(image_request_poll_task)


@pytest.mark.parametrize("status", ["failed", "cancelled", "timeout"])
@responses.activate
def test_terminal_failure_shows_reason_and_gives_quota_back(
    user, upstream_token, status
):
    responses.get(
        RESULT, json={"taskId": "up-1", "status": status, "errorMessage": "GPU on fire"}
    )
    image_request = in_progress(user, upstream_token)
    image_request_poll_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.FAILED
    assert "GPU on fire" in image_request.error_message
    assert not image_request.counts_toward_quota
    assert image_request.finished_at is not None


@responses.activate
def test_poll_gives_up_after_the_deadline(user, upstream_token, settings):
    settings.BANANAWEB_POLL_DEADLINE = 60
    responses.get(RESULT, json={"taskId": "up-1", "status": "processing"})
    image_request = in_progress(user, upstream_token)
    ImageRequest.objects.filter(pk=image_request.pk).update(
        submitted_at=timezone.now() - timedelta(minutes=2)
    )
    image_request_poll_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.FAILED
    assert image_request.error_code == "deadline"


@responses.activate
def test_poll_network_error_keeps_polling(
    user, upstream_token, django_capture_on_commit_callbacks
):
    responses.get(RESULT, body=requests.ConnectionError("reset"))
    image_request = in_progress(user, upstream_token)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_poll_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.IN_PROGRESS
    assert enqueued(image_request_poll_task)


@responses.activate
def test_completed_task_images_are_stored_with_thumbnails(
    user, upstream_token, django_capture_on_commit_callbacks, settings
):
    settings.MOUNTSEA_BASE_URL = "https://upstream.test"
    image_url = "https://cdn.upstream.test/out/1.png"
    responses.get(
        RESULT,
        json={
            "taskId": "up-1",
            "status": "completed",
            "result": {"data": [{"image": {"url": image_url}}]},
        },
    )
    image_request = in_progress(user, upstream_token)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_poll_task.call(image_request.pk)
    assert enqueued(image_request_fetch_images_task) == [[image_request.pk]]

    fetched = fetching.Fetched(
        content=png_bytes((80, 40)), content_type="image/png", url=image_url
    )
    with mock.patch.object(fetching, "fetch", return_value=fetched) as fetch:
        image_request_fetch_images_task.call(image_request.pk)
    assert fetch.call_args.args[0] == image_url
    assert fetch.call_args.kwargs["max_bytes"] == 10 * 1024 * 1024
    image_request.refresh_from_db()
    assert image_request.status == Status.COMPLETED
    image = image_request.images.get()
    assert (image.width, image.height, image.content_type, image.source_url) == (
        80,
        40,
        "image/png",
        image_url,
    )
    assert image.size_bytes == image.file.size
    with Image.open(image.thumbnail.open("rb")) as thumb:
        assert thumb.format == "WEBP"


def test_completed_without_images_fails_plainly(user, upstream_token):
    image_request = in_progress(
        user, upstream_token, upstream_status="completed", result={"note": "nothing"}
    )
    image_request_fetch_images_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.FAILED
    assert "sent no image" in image_request.error_message


def test_base64_result_image_is_stored(user, upstream_token):
    import base64

    result = {"images": [{"b64_json": base64.b64encode(png_bytes()).decode()}]}
    image_request = in_progress(
        user, upstream_token, upstream_status="completed", result=result
    )
    image_request_fetch_images_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.COMPLETED
    assert image_request.images.get().source_url == ""


def test_resubmit_copies_parameters(user, django_capture_on_commit_callbacks):
    old = ImageRequestFactory(
        user=user,
        status=Status.UNKNOWN,
        model="nano-banana-2",
        aspect_ratio="8:1",
        resolution="4K",
    )
    new = services.image_request_resubmit(image_request=old)
    assert new.pk != old.pk
    assert (new.model, new.aspect_ratio, new.resolution, new.status) == (
        "nano-banana-2",
        "8:1",
        "4K",
        Status.QUEUED,
    )


def test_a_bad_extra_url_does_not_lose_the_good_image(user, upstream_token):
    result = {
        "images": [
            {"url": "https://cdn.test/broken.png"},
            {"url": "https://cdn.test/good.png"},
        ]
    }
    image_request = in_progress(
        user, upstream_token, upstream_status="completed", result=result
    )

    def fake_fetch(url, **kwargs):
        if "broken" in url:
            raise fetching.FetchError(
                "The image at https://cdn.test/broken.png is not an image."
            )
        return fetching.Fetched(content=png_bytes(), content_type="image/png", url=url)

    with mock.patch.object(fetching, "fetch", side_effect=fake_fetch):
        image_request_fetch_images_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.COMPLETED
    assert image_request.images.get().source_url == "https://cdn.test/good.png"
    assert image_request.exchange[-1]["outcome"] == "Skipped"


def test_no_fetchable_image_fails_with_the_reason(user, upstream_token):
    image_request = in_progress(
        user,
        upstream_token,
        upstream_status="completed",
        result={"url": "https://cdn.test/x.png"},
    )
    with mock.patch.object(
        fetching,
        "fetch",
        side_effect=fetching.FetchError(
            "The image at https://cdn.test/x.png is larger than 10 MB."
        ),
    ):
        image_request_fetch_images_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == Status.FAILED
    assert "larger than 10 MB" in image_request.error_message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_images", 1.5),
        ("num_images", True),
        ("num_images", "1"),
        ("image_urls", 7),
        ("image_urls", "https://a.test/x.png"),
    ],
)
def test_create_checks_raw_values_before_any_coercion(user, field, value):
    with pytest.raises(ValidationError) as exc:
        services.image_request_create(
            user=user,
            data={
                "action": "edit",
                "prompt": "p",
                "image_urls": ["https://a.test/1.png"],
                field: value,
            },
        )
    assert field in exc.value.message_dict
    assert not ImageRequest.objects.exists()
