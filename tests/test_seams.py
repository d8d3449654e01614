"""The seams tidied in issue 8: tasks and follow-ups, the request's own rules, codes
as enums, the admin's writes through services, and start-up jobs."""

from datetime import timedelta

import pytest
import responses
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.tasks import default_task_backend
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from bananaweb import options
from bananaweb.followups import Step
from bananaweb.gateway import results
from bananaweb.models import ErrorCode, ImageRequest, TokenAuditEntry, UpstreamToken
from bananaweb.tasks import (
    TASKS,
    image_request_reconcile_task,
    image_request_submit_task,
)
from tests.factories import ImageRequestFactory, UpstreamTokenFactory

Status = ImageRequest.Status
GENERATE = "https://upstream.test/gemini/image/generate"

pytestmark = pytest.mark.usefixtures("clear_tasks")


def enqueued(name: str) -> list:
    return [r for r in default_task_backend.results if r.task.name == name]


# --- tasks --------------------------------------------------------------------------


def test_every_step_has_its_task():
    assert set(TASKS) == set(Step)
    assert all(task.name.endswith("_task") for task in TASKS.values())


def test_reconciler_is_its_own_job_and_books_its_next_run(
    user, upstream_token, django_capture_on_commit_callbacks
):
    stuck = ImageRequestFactory(
        user=user,
        status=Status.SUBMITTING,
        created_at=timezone.now() - timedelta(hours=1),
        sending_started_at=timezone.now() - timedelta(hours=1),
    )
    queued = ImageRequestFactory(user=user)
    with responses.RequestsMock() as upstream:
        upstream.post(GENERATE, json={"taskId": "up-9"})
        with django_capture_on_commit_callbacks(execute=True):
            image_request_submit_task.call(queued.pk)
    stuck.refresh_from_db()
    assert stuck.status == Status.SUBMITTING  # a submission no longer sweeps

    with django_capture_on_commit_callbacks(execute=True):
        image_request_reconcile_task.call()
    stuck.refresh_from_db()
    assert stuck.status == Status.UNKNOWN
    assert stuck.error_code == ErrorCode.UNKNOWN_OUTCOME
    [next_run] = enqueued("image_request_reconcile_task")
    assert next_run.task.run_after > timezone.now()


def test_start_background_seeds_once_and_schedules_the_reconciler_once(
    transactional_db, settings
):
    # Both through the fixture: an override_settings decorator beside it would be
    # undone first, and the fixture's teardown would then put its TASKS back.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.MOUNTSEA_API_TOKEN = "sim-start-1234"
    call_command("start_background")
    call_command("start_background")
    assert UpstreamToken.objects.get().secret == "sim-start-1234"
    runs = DBTaskResult.objects.ready().filter(task_path__endswith="reconcile_task")
    assert runs.count() == 1


@responses.activate
def test_a_submission_never_seeds_a_token(
    user, settings, django_capture_on_commit_callbacks
):
    settings.MOUNTSEA_API_TOKEN = "sim-not-on-submit"
    image_request = ImageRequestFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.error_code == ErrorCode.NO_TOKEN
    assert not UpstreamToken.objects.exists()


# --- the request's own rules ----------------------------------------------------------


@pytest.mark.parametrize(
    "status", [Status.COMPLETED, Status.IN_PROGRESS, Status.QUEUED]
)
def test_a_crafted_post_cannot_resubmit_what_may_not_be(client_logged_in, user, status):
    image_request = ImageRequestFactory(user=user, status=status)
    response = client_logged_in.post(
        reverse("request-resubmit", args=[image_request.pk])
    )
    assert response.status_code == 409
    assert "can be resubmitted" in response.content.decode()
    assert ImageRequest.objects.count() == 1
    assert not default_task_backend.results


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        (Status.FAILED, True),
        (Status.UNKNOWN, True),
        (Status.COMPLETED, False),
        (Status.QUEUED, False),
        (Status.SUBMITTING, False),
        (Status.IN_PROGRESS, False),
    ],
)
def test_can_resubmit_only_what_surely_or_maybe_made_no_image(status, allowed):
    assert ImageRequest(status=status).can_resubmit is allowed


def test_the_resubmit_button_follows_the_rule(client_logged_in, user):
    done = ImageRequestFactory(user=user, status=Status.COMPLETED)
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    button = ">Resubmit</button>"
    assert (
        button
        not in client_logged_in.get(
            reverse("request-detail", args=[done.pk])
        ).content.decode()
    )
    assert (
        button
        in client_logged_in.get(
            reverse("request-detail", args=[failed.pk])
        ).content.decode()
    )


def test_state_changes_set_what_goes_with_them(user, upstream_token):
    image_request = ImageRequestFactory(user=user)
    image_request.accept(upstream_task_id="up-1", token=upstream_token)
    assert (image_request.status, image_request.upstream_status) == (
        Status.IN_PROGRESS,
        "pending",
    )
    assert image_request.submitted_at and image_request.counts_toward_quota

    image_request.fail(ErrorCode.DEADLINE, "Too slow.")
    assert image_request.status == Status.FAILED and image_request.finished_at
    assert not image_request.counts_toward_quota  # given back

    unknown = ImageRequestFactory(user=user)
    unknown.mark_outcome_unknown(reason="no answer.")
    assert unknown.status == Status.UNKNOWN and unknown.counts_toward_quota
    assert "(no answer)" in unknown.error_message


# --- rules from the options table ----------------------------------------------------


def test_the_database_refuses_options_a_model_does_not_offer(user):
    image_request = ImageRequestFactory(
        user=user, model=options.Model.NANO_BANANA_2, aspect_ratio="1:8"
    )
    for change in (
        {"model": options.Model.NANO_BANANA_PRO},  # Pro has no 1:8
        {
            "model": options.Model.NANO_BANANA_FAST,
            "aspect_ratio": "",
            "resolution": "2K",
        },
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            ImageRequest.objects.filter(pk=image_request.pk).update(**change)


def test_messages_name_the_models_from_the_table(monkeypatch):
    wide = options.ModelSpec(aspect_ratios=options.ALL_RATIOS, resolutions=())
    monkeypatch.setitem(options.MODELS, options.Model.NANO_BANANA_FAST, wide)
    errors = options.option_errors(
        prompt="x",
        action="generate",
        model=options.Model.NANO_BANANA_PRO,
        aspect_ratio="1:8",
    )
    assert errors["aspect_ratio"].endswith(
        "only Nano Banana Fast or Nano Banana 2 can."
    )
    errors = options.option_errors(prompt="x", action="generate", resolution="2K")
    assert errors["resolution"].endswith(
        "choose Nano Banana Pro or Nano Banana 2 to pick one."
    )


# --- codes as enums -------------------------------------------------------------------


def test_the_gateway_maps_every_error_code():
    assert set(results.ERROR_CODES) == set(ErrorCode)


def test_an_unmapped_code_still_answers(user):
    image_request = ImageRequestFactory(
        user=user, status=Status.FAILED, error_code="gone"
    )
    body = results.task_result(
        type("Task", (), {"task_id": "t", "image_request": image_request})(),
        image_url=str,
    )
    assert body["errorCode"] == results.UNMAPPED_ERROR_CODE


# --- the admin writes through services -------------------------------------------------


def test_admin_token_actions_are_audited_by_the_services(admin_client, db):
    token = UpstreamTokenFactory(name="shared")
    changelist = reverse("admin:bananaweb_upstreamtoken_changelist")
    for action in ("disable", "enable"):
        admin_client.post(
            changelist, {"action": action, "_selected_action": [token.pk]}
        )
    admin_client.post(
        reverse("admin:bananaweb_upstreamtoken_delete", args=[token.pk]),
        {"post": "yes"},
    )
    events = TokenAuditEntry.objects.filter(token_name="shared").order_by("pk")
    assert list(events.values_list("event", flat=True)) == [
        "disabled",
        "enabled",
        "deleted",
    ]
    assert all(entry.actor and entry.actor.is_superuser for entry in events)
