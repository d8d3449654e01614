"""The gateway API's contract: the upstream's endpoints, status codes, bodies and headers."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.tasks import default_task_backend
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bananaweb import options, services
from bananaweb.gateway import services as gateway_services
from bananaweb.gateway.auth import MAX_BODY_BYTES
from bananaweb.gateway.models import ApiToken, GatewayTask
from bananaweb.models import ImageRequest
from tests.factories import make_image, png_bytes
from tests.gateway_helpers import bearer, issue_token

GENERATE = "/api/gemini/image/generate"
RESULT = "/api/gemini/task/result"
BODY = {
    "prompt": "A banana surfing a wave",
    "action": "generate",
    "model": "nano-banana-fast",
}
Status = ImageRequest.Status


@pytest.fixture(autouse=True)
def clean_slate(clear_tasks, db):
    cache.clear()  # the rate limit's counters (in the database cache)


@pytest.fixture
def api(db):
    """A client that, like a script, never has a CSRF token or a session."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def raw_token(user):
    return issue_token(user)


def post(api: Client, raw: str | None, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = bearer(raw) if raw else {}
    return api.post(
        GENERATE, data, content_type="application/json", headers=headers, **extra
    )


def create_task(api: Client, raw: str, body: dict = BODY) -> tuple[str, ImageRequest]:
    response = post(api, raw, body)
    assert response.status_code == 201, response.content
    task_id = response.json()["taskId"]
    return task_id, GatewayTask.objects.get(task_id=task_id).image_request


def result(api: Client, raw: str | None, task_id: str):
    return api.get(RESULT, {"taskId": task_id}, headers=bearer(raw) if raw else {})


def assert_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "errors"} and body["message"]
    return body


# --- Generate ---------------------------------------------------------------------------


def test_generate_answers_201_with_an_opaque_task_id_at_once(
    api, raw_token, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, raw_token, BODY)

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"taskId"}
    image_request = GatewayTask.objects.get(
        task_id=uuid.UUID(body["taskId"])
    ).image_request
    assert str(image_request.pk) not in body["taskId"].split("-")
    assert image_request.user == user
    assert image_request.source == ImageRequest.Source.API
    assert (image_request.prompt, image_request.action, image_request.model) == (
        BODY["prompt"],
        BODY["action"],
        BODY["model"],
    )
    assert [r.args for r in default_task_backend.results] == [[image_request.pk]]


def test_generate_needs_no_csrf_token_or_session(api, raw_token):
    assert "csrftoken" not in api.cookies
    assert post(api, raw_token, BODY).status_code == 201


def test_generate_ignores_unknown_fields_and_nulls_like_the_upstream(api, raw_token):
    _, image_request = create_task(
        api,
        raw_token,
        BODY | {"callback": "https://x.test", "resolution": None, "seed": 4},
    )
    assert image_request.resolution == ""


def test_generate_sends_the_full_upstream_body_through(api, raw_token):
    body = {
        "prompt": "Make it night",
        "action": "edit",
        "num_images": 1,
        "model": "nano-banana-2",
        "aspect_ratio": "1:8",
        "resolution": "4K",
        "image_urls": ["https://cdn.test/day.png"],
    }
    _, image_request = create_task(api, raw_token, body)
    assert image_request.upstream_payload() == body


# One case per rule family: the message is options.option_errors' own.
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * (options.PROMPT_MAX_LENGTH + 1)}, "prompt"),
        ({"action": "paint"}, "action"),
        ({"model": "nano-banana-9"}, "model"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"model": "nano-banana-pro", "aspect_ratio": "1:8"}, "aspect_ratio"),
        ({"model": "nano-banana-fast", "resolution": "2K"}, "resolution"),
        ({"model": "nano-banana-pro", "resolution": "8K"}, "resolution"),
        ({"num_images": 2}, "num_images"),
        ({"image_urls": ["ftp://cdn.test/a.png"]}, "image_urls"),
        (
            {
                "image_urls": ["https://cdn.test/a.png"]
                * (options.DEFAULT_MAX_IMAGE_URLS + 1)
            },
            "image_urls",
        ),
        ({"action": "edit"}, "image_urls"),
    ],
)
def test_each_rule_is_a_400_naming_the_field(api, raw_token, body, field):
    values = BODY | body
    response = post(api, raw_token, values)

    errors = assert_error(response, 400)["errors"]
    assert field in errors
    expected = options.option_errors(
        **values, max_image_urls=options.DEFAULT_MAX_IMAGE_URLS
    )[field]
    assert errors[field] == expected
    assert not ImageRequest.objects.exists()


def test_every_broken_rule_is_reported_at_once(api, raw_token):
    response = post(
        api,
        raw_token,
        {
            "prompt": "",
            "action": "edit",
            "model": "nano-banana-fast",
            "resolution": "1K",
            "aspect_ratio": "1:8",
            "num_images": 3,
        },
    )
    errors = assert_error(response, 400)["errors"]
    assert set(errors) >= {
        "prompt",
        "image_urls",
        "resolution",
        "aspect_ratio",
        "num_images",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": 5}, "prompt"),
        ({"action": ["generate"]}, "action"),
        ({"num_images": "1"}, "num_images"),
        ({"num_images": True}, "num_images"),
        ({"image_urls": "https://cdn.test/a.png"}, "image_urls"),
        ({"image_urls": 7}, "image_urls"),
        ({"prompt": "a banana\x00"}, "prompt"),
    ],
)
def test_wrong_json_types_are_a_400_naming_the_field(api, raw_token, body, field):
    assert field in assert_error(post(api, raw_token, BODY | body), 400)["errors"]


@pytest.mark.parametrize(
    "raw_body",
    ["{not json", "[1, 2]", '"a string"', "null", "", "[" * 50_000, b"\xff\xfe{"],
)
def test_a_body_that_is_not_a_json_object_is_a_400(api, raw_token, raw_body):
    assert_error(post(api, raw_token, raw_body), 400)


def test_a_body_over_64_kb_is_a_413(api, raw_token):
    body = json.dumps(BODY | {"padding": "x" * MAX_BODY_BYTES})
    assert_error(post(api, raw_token, body), 413)
    assert not ImageRequest.objects.exists()


# --- Tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer bw_not-a-real-token",
        "Basic dXNlcjpwYXNz",
        "bw_no_scheme",
    ],
)
def test_a_missing_or_bad_token_is_a_json_401_never_a_redirect(
    api, raw_token, authorization
):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.post(
        GENERATE, json.dumps(BODY), content_type="application/json", headers=headers
    )

    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not ImageRequest.objects.exists()


def test_the_token_scheme_is_case_insensitive(api, raw_token):
    response = api.post(
        GENERATE,
        json.dumps(BODY),
        content_type="application/json",
        headers={"Authorization": f"bearer {raw_token}"},
    )
    assert response.status_code == 201


def test_a_revoked_token_is_a_401(api, raw_token):
    gateway_services.api_token_revoke(api_token=ApiToken.objects.get())
    assert_error(post(api, raw_token, BODY), 401)
    assert_error(result(api, raw_token, str(uuid.uuid4())), 401)


def test_an_inactive_users_token_is_a_401(api, raw_token, user):
    user.is_active = False
    user.save()
    assert_error(post(api, raw_token, BODY), 401)


def test_a_browser_session_does_not_authenticate_api_calls(client_logged_in):
    response = client_logged_in.post(
        GENERATE, json.dumps(BODY), content_type="application/json"
    )
    assert_error(response, 401)
    assert_error(client_logged_in.get(RESULT, {"taskId": str(uuid.uuid4())}), 401)


# --- Wrong methods ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "allow"),
    [
        ("get", GENERATE, "POST"),
        ("put", GENERATE, "POST"),
        ("post", RESULT, "GET"),
        ("delete", RESULT, "GET"),
    ],
)
def test_a_wrong_method_is_a_json_405(api, raw_token, method, url, allow):
    response = getattr(api, method)(url, headers=bearer(raw_token))
    assert_error(response, 405)
    assert response["Allow"] == allow


# --- Quota and rate limit ---------------------------------------------------------------


def test_over_quota_is_a_429_with_retry_after_until_the_reset(api, raw_token, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    assert post(api, raw_token, BODY).status_code == 201

    response = post(api, raw_token, BODY)

    body = assert_error(response, 429)
    resets_at = services.quota_usage(user=ApiToken.objects.get().user).resets_at
    seconds = int(response["Retry-After"])
    assert 0 < seconds <= 24 * 3600
    assert abs(timezone.now() + timedelta(seconds=seconds) - resets_at) < timedelta(
        seconds=5
    )
    assert "resets at" in body["message"]
    assert ImageRequest.objects.count() == 1


def test_web_requests_count_against_the_api_quota(api, raw_token, user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    services.image_request_create(user=user, data=BODY)

    assert_error(post(api, raw_token, BODY), 429)


def test_api_requests_count_against_the_web_quota(api, raw_token, user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    create_task(api, raw_token)

    assert services.quota_usage(user=user).remaining == 0
    with pytest.raises(services.QuotaExceeded):
        services.image_request_create(user=user, data=BODY)


def test_each_user_is_rate_limited_per_minute_whatever_the_token(
    api, raw_token, user, other_user, settings
):
    # Per user, not per token: a second token buys no more requests (issue 10).
    settings.BANANAWEB_API_RATE_LIMIT = 2
    second_token = issue_token(user, "second")
    someone_elses = issue_token(other_user, "theirs")
    task_id = str(uuid.uuid4())
    assert result(api, raw_token, task_id).status_code == 404
    assert result(api, raw_token, task_id).status_code == 404

    response = result(api, raw_token, task_id)

    body = assert_error(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "2 a minute" in body["message"]
    assert_error(result(api, second_token, task_id), 429)
    assert result(api, someone_elses, task_id).status_code == 404


# --- Task result --------------------------------------------------------------------------


def test_a_new_task_is_pending_in_the_upstreams_shape(api, raw_token):
    task_id, image_request = create_task(api, raw_token)

    response = result(api, raw_token, task_id)

    assert response.status_code == 200
    assert response.json() == {
        "taskId": task_id,
        "status": "pending",
        "result": None,
        "createdAt": image_request.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_a_completed_task_gives_image_urls_that_serve_the_image(api, raw_token):
    task_id, image_request = create_task(api, raw_token)
    image = make_image(image_request)
    image_request.status = Status.COMPLETED
    image_request.finished_at = timezone.now()
    image_request.save()

    body = result(api, raw_token, task_id).json()

    assert body["status"] == "completed"
    assert body["finishedAt"].endswith("Z")
    assert body["result"] == {
        "images": [
            {
                "url": f"http://testserver/api/images/{image.pk}/",
                "upstream_url": "https://cdn.test/a.png",
                "width": 30,
                "height": 20,
                "content_type": "image/png",
            }
        ]
    }
    served = api.get(body["result"]["images"][0]["url"], headers=bearer(raw_token))
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content) == png_bytes()


def test_a_failed_task_gives_its_message_and_a_numeric_code(api, raw_token):
    task_id, image_request = create_task(api, raw_token)
    image_request.status = Status.FAILED
    image_request.error_code = "rejected"
    image_request.error_message = "The prompt was refused."
    image_request.finished_at = timezone.now()
    image_request.save()

    body = result(api, raw_token, task_id).json()

    assert (body["status"], body["errorCode"], body["errorMessage"]) == (
        "failed",
        400,
        "The prompt was refused.",
    )
    assert body["result"] is None


def test_the_taskid_parameter_is_required(api, raw_token):
    response = api.get(RESULT, headers=bearer(raw_token))
    assert "taskId" in assert_error(response, 400)["errors"]


@pytest.mark.parametrize(
    "task_id", [str(uuid.uuid4()), "not-a-uuid", "1", "\x00", "' OR 1=1 --"]
)
def test_an_unknown_task_is_a_404(api, raw_token, task_id):
    assert_error(result(api, raw_token, task_id), 404)


def test_another_users_task_is_a_404(api, raw_token, other_user):
    task_id, _ = create_task(api, issue_token(other_user))
    assert_error(result(api, raw_token, task_id), 404)


def test_any_of_the_users_tokens_reads_their_tasks(api, raw_token, user):
    task_id, _ = create_task(api, raw_token)
    assert result(api, issue_token(user, "laptop"), task_id).status_code == 200


# --- Images ---------------------------------------------------------------------------------


@pytest.fixture
def image(user):
    image_request = ImageRequest.objects.create(
        user=user,
        action="generate",
        prompt="a banana",
        status=Status.COMPLETED,
        source=ImageRequest.Source.WEB,
    )
    return make_image(image_request)


def image_url(image) -> str:
    return reverse("gateway-image", args=[image.pk])


def test_the_image_url_opens_in_the_owners_signed_in_browser(client_logged_in, image):
    response = client_logged_in.get(image_url(image))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"


def test_the_image_url_needs_a_token_or_a_session(api, image):
    response = api.get(image_url(image))
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_another_users_image_is_a_404_by_token_and_by_session(
    api, client, image, other_user
):
    assert_error(
        api.get(image_url(image), headers=bearer(issue_token(other_user))), 404
    )
    client.force_login(other_user)
    assert_error(client.get(image_url(image)), 404)


def test_a_bad_token_for_an_image_is_a_401_even_when_signed_in(client_logged_in, image):
    assert_error(client_logged_in.get(image_url(image), headers=bearer("bw_nope")), 401)


@pytest.mark.parametrize("image_id", ["abc", "-1", "0", str(2**70), "١"])
def test_an_image_id_that_is_not_one_is_a_404(api, raw_token, image_id):
    assert_error(api.get(f"/api/images/{image_id}/", headers=bearer(raw_token)), 404)


# --- The document -------------------------------------------------------------------------


def test_the_openapi_document_is_public_json(api):
    response = api.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json()["servers"] == [{"url": "http://testserver/api"}]
