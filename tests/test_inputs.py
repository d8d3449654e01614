"""Odd input answered as a 4xx, never a 500 (issue 10): strings that aren't valid
Unicode, and numbers in query strings that aren't ASCII digits."""

import json
from datetime import date

import pytest
from django.core.cache import cache
from django.test import Client

from bananaweb import options
from bananaweb.forms import ImageRequestForm
from bananaweb.models import ImageRequest
from bananaweb.usage import DEFAULT_DAYS, parse_range
from tests.factories import UserFactory
from tests.gateway_helpers import bearer, issue_token

GENERATE = "/api/gemini/image/generate"
DASHBOARD = "/admin/usage/"
EXPORT = "/admin/usage/export.csv"


@pytest.fixture(autouse=True)
def clean_slate(clear_tasks, db):
    cache.clear()  # the gateway's rate limit counts in the cache


@pytest.fixture
def api(db):
    return Client(enforce_csrf_checks=True, raise_request_exception=False)


@pytest.fixture
def staff_client(db):
    staff = UserFactory(username="sam", is_staff=True, is_superuser=True)
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    return client


# --- Strings that aren't Unicode -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", "A banana \ud800"),
        ("image_urls", ["https://cdn.test/a.png", "https://cdn.test/b\ud800.png"]),
        ("model", "\ud800"),
        ("aspect_ratio", "1:1\udfff"),
        ("resolution", "\udc00"),
    ],
)
def test_gateway_refuses_lone_surrogates_as_a_json_400_and_stores_nothing(
    api, user, field, value
):
    body = {
        "prompt": "A banana",
        "action": "edit",
        "image_urls": ["https://cdn.test/a.png"],
        field: value,
    }
    text = json.dumps(body)  # the surrogate escaped, as "\\ud800"
    assert "\\ud" in text

    response = api.post(
        GENERATE,
        text,
        content_type="application/json",
        headers=bearer(issue_token(user)),
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert set(answer) == {"message", "errors"}
    assert "not valid Unicode" in answer["errors"][field]
    assert not ImageRequest.objects.exists()


def test_gateway_refuses_a_nul_in_the_idempotency_key_as_a_json_400(api, user):
    # PostgreSQL can't store it (a 500 there); gunicorn refuses it, other servers may not.
    response = api.post(
        GENERATE,
        json.dumps({"prompt": "A banana", "action": "generate"}),
        content_type="application/json",
        headers=bearer(issue_token(user)) | {"Idempotency-Key": "k\x00-1"},
    )

    assert response.status_code == 400
    assert "NUL" in response.json()["errors"]["Idempotency-Key"]
    assert not ImageRequest.objects.exists()


def test_form_refuses_a_lone_surrogate_with_a_clear_error():
    form = ImageRequestForm(
        {
            "action": options.Action.EDIT,
            "prompt": "A banana \ud800",
            "image_urls": "https://cdn.test/a\udfff.png",
        },
        action=options.Action.EDIT,
    )

    assert not form.is_valid()
    assert "not valid Unicode" in form.errors["prompt"][0]
    assert "not valid Unicode" in form.errors["image_urls"][0]


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\udcff" * 3])
def test_option_errors_name_every_string_with_a_lone_surrogate(value):
    errors = options.option_errors(
        prompt=value, action="edit", image_urls=[f"https://cdn.test/{value}"]
    )
    assert set(errors) == {"prompt", "image_urls"}


def test_a_proper_astral_character_is_still_welcome():
    assert options.option_errors(prompt="A banana 🍌", action="generate") == {}


# --- Numbers in query strings ----------------------------------------------------------


@pytest.mark.parametrize(
    "days", ["²", "٣", "１４", "7²", "-7", "1e1", " 14 x", "9" * 5000, "0" * 5000 + "7"]
)
def test_parse_range_reads_only_ascii_digits(days):
    date_range = parse_range({"days": days}, today=date(2025, 1, 31))

    assert date_range.preset == DEFAULT_DAYS
    assert "is not a range we offer" in date_range.note


@pytest.mark.parametrize("url", [DASHBOARD, EXPORT])
@pytest.mark.parametrize("days", ["²", "٣", "１４"])
def test_dashboard_and_export_answer_odd_digits_without_a_500(staff_client, url, days):
    response = staff_client.get(url, {"days": days})

    assert response.status_code == 200
    if url == DASHBOARD:
        assert "is not a range we offer" in response.content.decode()


# Not "page": that name is pytest-playwright's fixture, which would start a browser.
@pytest.mark.parametrize("number", ["²", "١", "-1", "1e3", "9" * 40, "9" * 5000])
def test_history_page_number_is_never_a_500(client_logged_in, number):
    client_logged_in.raise_request_exception = False
    assert client_logged_in.get("/", {"page": number}).status_code == 200
    response = client_logged_in.get(
        "/", {"page": number}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "created_at__year=0",
        "created_at__month=13",
        "created_at__year__gte=0",
        "at__day=x",
        # Found by the fuzzing too: more digits than Python turns into an int.
        "created_at__year=" + "9" * 5001,
    ],
)
@pytest.mark.parametrize(
    "url", ["/admin/bananaweb/upstreamtoken/", "/admin/bananaweb/imagerequest/"]
)
def test_an_admin_list_refuses_a_date_part_out_of_range(admin_client, url, query):
    # Found by the fuzzing: Django builds year 0 into the query and fails.
    admin_client.raise_request_exception = False
    assert admin_client.get(f"{url}?{query}").status_code in (200, 302, 400)
