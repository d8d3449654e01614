"""Issue 10's smaller findings: private pages, the seeded token, suspensions
decided by status codes, undecryptable tokens, the upstream taskId in the log,
and a rate limit shared by every process."""

import logging

import pytest
import responses
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.cache.backends.db import DatabaseCache
from django.core.management import call_command
from django.db import connection
from django.tasks import default_task_backend
from django.urls import reverse
from django.utils.module_loading import import_string

from bananaweb import tokens
from bananaweb.models import ErrorCode, ImageRequest, TokenAuditEntry, UpstreamToken
from bananaweb.tasks import image_request_submit_task, token_check_task
from tests.factories import ImageRequestFactory, UpstreamTokenFactory, make_image

Status = ImageRequest.Status
GENERATE = "https://upstream.test/gemini/image/generate"
RESULT = "https://upstream.test/gemini/task/result"

pytestmark = pytest.mark.usefixtures("clear_tasks")


def submit(capture, image_request: ImageRequest) -> ImageRequest:
    with capture(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    return image_request


# --- pages with personal data are never cached ----------------------------------------


def test_personal_pages_are_private_and_not_stored(client_logged_in, user):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    for url in (
        reverse("index"),
        reverse("index") + "?page=1",
        reverse("request-detail", args=[image_request.pk]),
        reverse("request-updates") + f"?ids={image_request.pk}",
        reverse("api-tokens"),
    ):
        cache_control = client_logged_in.get(url)["Cache-Control"]
        assert "private" in cache_control and "no-store" in cache_control, url
    file_url = reverse("image-file", args=[image_request.pk, image.pk, "thumbnail"])
    assert "immutable" in client_logged_in.get(file_url)["Cache-Control"]


# --- the seeded token ---------------------------------------------------------------------


def test_a_deleted_seeded_token_is_never_brought_back(db, settings, admin_user):
    settings.MOUNTSEA_API_TOKEN = "sim-leaked-0001"
    seeded = tokens.token_seed_from_environment()
    tokens.token_delete(token=seeded, actor=admin_user)  # say, because it leaked
    call_command("start_background")
    assert tokens.token_seed_from_environment() is None
    assert not UpstreamToken.objects.exists()


# --- suspensions ----------------------------------------------------------------------------


@responses.activate
def test_an_answer_that_mentions_credit_suspends_nothing(
    user, upstream_token, django_capture_on_commit_callbacks
):
    # The upstream's text may echo the prompt; only the status code decides.
    responses.post(GENERATE, status=400, json={"message": "Insufficient credits"})
    image_request = submit(
        django_capture_on_commit_callbacks,
        ImageRequestFactory(user=user, prompt="a sign reading Insufficient credits"),
    )
    upstream_token.refresh_from_db()
    assert upstream_token.state == "ready"
    assert image_request.status == Status.FAILED
    assert image_request.error_code == ErrorCode.REJECTED


@responses.activate
def test_one_request_suspends_at_most_one_token(
    user, django_capture_on_commit_callbacks
):
    first = UpstreamTokenFactory(priority=2)
    second = UpstreamTokenFactory(priority=1)
    responses.post(GENERATE, status=401, json={"message": "Unauthorized"})
    image_request = submit(
        django_capture_on_commit_callbacks, ImageRequestFactory(user=user)
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == "suspended"
    assert second.state == "ready"
    assert image_request.status == Status.FAILED
    assert TokenAuditEntry.objects.filter(event="suspended").count() == 1


# --- a token the keys can't open ---------------------------------------------------------------


@responses.activate
def test_an_undecryptable_token_is_taken_out_and_nothing_is_unknown(
    user, django_capture_on_commit_callbacks
):
    broken = UpstreamTokenFactory(secret_encrypted="gAAAA-not-decryptable")
    image_request = submit(
        django_capture_on_commit_callbacks, ImageRequestFactory(user=user)
    )
    broken.refresh_from_db()
    assert not responses.calls  # nothing was sent
    assert broken.state == "suspended" and "decrypted" in broken.suspended_reason
    assert image_request.status == Status.FAILED
    assert image_request.error_code == ErrorCode.NO_TOKEN  # never "unknown outcome"


def test_check_now_reports_an_undecryptable_token(
    db, django_capture_on_commit_callbacks
):
    broken = UpstreamTokenFactory(secret_encrypted="gAAAA-not-decryptable")
    with django_capture_on_commit_callbacks(execute=True):
        token_check_task.call(broken.pk)
    entry = TokenAuditEntry.objects.filter(token=broken, event="checked").get()
    assert "decrypted" in entry.detail
    broken.refresh_from_db()
    assert broken.state == "suspended"


# --- tracing ---------------------------------------------------------------------------------------


@responses.activate
def test_the_upstream_task_id_is_logged_with_the_request(
    user, upstream_token, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="bananaweb.pipeline")
    responses.post(GENERATE, json={"taskId": "up-trace-77"})
    image_request = submit(
        django_capture_on_commit_callbacks, ImageRequestFactory(user=user)
    )
    assert any(
        "up-trace-77" in record.getMessage()
        and str(image_request.pk) in record.getMessage()
        for record in caplog.records
    )


# --- one rate limit for every process -------------------------------------------------------------


def test_the_rate_limit_counts_in_the_shared_database_cache(db):
    # Django's database cache or a subclass of it (bananaweb.cache's): stored in
    # the database every process shares, not in one process's memory.
    backend = import_string(django_settings.CACHES["default"]["BACKEND"])
    assert issubclass(backend, DatabaseCache)
    cache.set("shared-by-every-process", 1)
    table = django_settings.CACHES["default"]["LOCATION"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        assert cursor.fetchone()[0] >= 1
    assert not default_task_backend.results
