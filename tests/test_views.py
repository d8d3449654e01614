"""The pages and their htmx fragments, and per-user isolation in every view."""

import gzip
import re
import zlib

import pytest
from django.tasks import default_task_backend
from django.urls import reverse
from django_htmx.http import HTMX_STOP_POLLING

from bananaweb.models import ImageRequest
from tests.factories import ImageRequestFactory, make_image

Status = ImageRequest.Status
HTMX = {"HX-Request": "true"}


pytestmark = pytest.mark.usefixtures("clear_tasks")


# --- sign-in ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["index", "api-tokens"])
def test_pages_require_sign_in(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_login_page_is_open(client, db):
    assert client.get(reverse("login")).status_code == 200


# --- the main page ----------------------------------------------------------------------


def test_main_page_has_both_forms_with_api_field_names(client_logged_in):
    response = client_logged_in.get(reverse("index"))
    html = response.content.decode()
    assert response.status_code == 200
    for label in ("Prompt", "Model", "Aspect ratio", "Resolution", "Image URLs"):
        assert f">{label}</label>" in html
    for name in ("prompt", "model", "aspect_ratio", "image_urls"):
        assert f'name="{name}"' in html
    assert (
        "Nano Banana Fast has one resolution." in html
    )  # the default model's resolution is fixed
    assert ">Generate</button>" in html and ">Edit</button>" in html
    assert "Nothing here yet" in html


def _csrf_tokens(html: str) -> set[str]:
    return set(
        re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        + re.findall(r'"x-csrftoken": "([^"]+)"', html)
    )


def test_main_page_masks_its_csrf_token_once_and_each_page_anew(client_logged_in, user):
    """Every form on a page (the request forms, each card's, sign-out) and
    htmx's header carry one token, masked once for the response (each masking
    costs 32 random characters); the next page masks it anew, and a form sent
    with it is accepted."""
    ImageRequestFactory(user=user, status=Status.COMPLETED)
    client_logged_in.handler.enforce_csrf_checks = True
    first = client_logged_in.get(reverse("index")).content.decode()
    second = client_logged_in.get(reverse("index")).content.decode()
    assert first.count("csrfmiddlewaretoken") >= 4  # two forms, a card, sign-out
    assert len(_csrf_tokens(first)) == 1 and len(_csrf_tokens(second)) == 1
    assert _csrf_tokens(first) != _csrf_tokens(second)
    (token,) = _csrf_tokens(first)
    response = client_logged_in.post(reverse("logout"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_history_shows_only_own_requests_newest_first(
    client_logged_in, user, other_user
):
    old = ImageRequestFactory(user=user, prompt="old banana")
    new = ImageRequestFactory(user=user, prompt="new banana")
    ImageRequestFactory(user=other_user, prompt="someone else's secret")
    html = client_logged_in.get(reverse("index")).content.decode()
    assert (
        "someone else&#x27;s secret" not in html and "someone else's secret" not in html
    )
    assert html.index(f'id="request-{new.pk}"') < html.index(f'id="request-{old.pk}"')


def test_history_is_paginated(client_logged_in, user, settings):
    settings.BANANAWEB_HISTORY_PAGE_SIZE = 2
    requests_ = ImageRequestFactory.create_batch(5, user=user)
    page_2 = client_logged_in.get(reverse("index") + "?page=2", headers=HTMX)
    html = page_2.content.decode()
    assert f'id="request-{requests_[2].pk}"' in html
    assert f'id="request-{requests_[4].pk}"' not in html
    # The whole history is never counted: no "of 3", and both ways linked.
    assert re.search(r"Page 2\b(?! of)", html), html
    assert 'href="/?page=3"' in html and 'rel="next"' in html
    assert 'href="/"' in html and 'rel="prev"' in html
    # Only the history fragment: no request form, no search form.
    assert 'id="generate-form"' not in html and 'id="history-filters"' not in html

    last = client_logged_in.get(reverse("index") + "?page=3", headers=HTMX)
    assert f'id="request-{requests_[0].pk}"' in last.content.decode()
    assert 'rel="next"' not in last.content.decode()
    # An old link past the end: the last page (counted, to know which it is).
    beyond = client_logged_in.get(reverse("index") + "?page=9", headers=HTMX)
    assert f'id="request-{requests_[0].pk}"' in beyond.content.decode()
    assert "Page 3 of 3" in beyond.content.decode()


def test_create_with_htmx_returns_fresh_form_and_new_card(
    client_logged_in, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(
            reverse("request-create"),
            {
                "action": "generate",
                "prompt": "A banana boat",
                "model": "nano-banana-pro",
                "aspect_ratio": "16:9",
                "resolution": "2K",
            },
            headers=HTMX,
        )
    assert response.status_code == 200
    image_request = ImageRequest.objects.get()
    assert (image_request.user, image_request.model, image_request.resolution) == (
        user,
        "nano-banana-pro",
        "2K",
    )
    html = response.content.decode()
    assert 'hx-swap-oob="afterbegin:#history-list"' in html
    assert f'id="request-{image_request.pk}"' in html
    assert 'hx-trigger="every 2s"' in html
    assert "A banana boat</textarea>" not in html  # the form comes back empty
    assert [r.args for r in default_task_backend.results] == [[image_request.pk]]


def test_create_without_js_redirects(client_logged_in):
    response = client_logged_in.post(
        reverse("request-create"), {"action": "generate", "prompt": "A banana"}
    )
    assert response.status_code == 302
    assert ImageRequest.objects.count() == 1


def test_invalid_input_shows_inline_error_and_keeps_what_was_typed(client_logged_in):
    response = client_logged_in.post(
        reverse("request-create"),
        {
            "action": "generate",
            "prompt": "My long careful prompt",
            "model": "nano-banana-fast",
            "aspect_ratio": "1:8",
        },
        headers=HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#generate-form"
    assert "can&#x27;t make 1:8 images" in html
    assert "My long careful prompt</textarea>" in html
    assert not ImageRequest.objects.exists()


def test_edit_without_urls_is_an_inline_error(client_logged_in):
    response = client_logged_in.post(
        reverse("request-create"), {"action": "edit", "prompt": "Bluer"}, headers=HTMX
    )
    assert response.status_code == 422
    assert "Editing needs at least one image to start from" in response.content.decode()
    assert response["HX-Retarget"] == "#edit-form"


def test_edit_with_urls_is_saved_as_list(client_logged_in):
    client_logged_in.post(
        reverse("request-create"),
        {
            "action": "edit",
            "prompt": "Bluer",
            "image_urls": "https://a.test/1.png\nhttps://a.test/2.png\n",
        },
    )
    assert ImageRequest.objects.get().image_urls == [
        "https://a.test/1.png",
        "https://a.test/2.png",
    ]


def test_over_quota_says_so_and_saves_nothing(client_logged_in, user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1
    ImageRequestFactory(user=user)
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "more"},
        headers=HTMX,
    )
    assert response.status_code == 429
    assert "used all 1 of today&#x27;s requests" in response.content.decode()
    assert ImageRequest.objects.count() == 1


@pytest.mark.parametrize(
    ("model", "offered", "not_offered", "resolution_fixed"),
    [
        ("nano-banana-fast", ["16:9", "21:9"], ["1:8", "4:1"], True),
        ("nano-banana-pro", ["16:9"], ["1:8"], False),
        ("nano-banana-2", ["1:8", "8:1", "16:9"], [], False),
    ],
)
def test_options_fragment_offers_only_valid_choices(
    client_logged_in, model, offered, not_offered, resolution_fixed
):
    response = client_logged_in.get(
        reverse("request-options"), {"action": "generate", "model": model}, headers=HTMX
    )
    html = response.content.decode()
    for ratio in offered:
        assert f'value="{ratio}"' in html
    for ratio in not_offered:
        assert f'value="{ratio}"' not in html
    assert ('value="4K"' not in html) == resolution_fixed


def test_options_fragment_keeps_a_choice_the_new_model_allows(client_logged_in):
    response = client_logged_in.get(
        reverse("request-options"),
        {
            "action": "edit",
            "model": "nano-banana-pro",
            "aspect_ratio": "4:3",
            "resolution": "4K",
        },
    )
    html = response.content.decode()
    assert 'value="4:3" selected' in html and 'value="4K" selected' in html
    assert 'id="edit-aspect_ratio"' in html


# --- cards and polling ------------------------------------------------------------------


# The page's one poll (request-updates) is tested in tests/test_page_poll.py.


def updates(client, image_request):
    return client.get(
        reverse("request-updates"), {"ids": image_request.pk}, headers=HTMX
    )


def test_in_flight_card_keeps_polling(client_logged_in, user):
    image_request = ImageRequestFactory(
        user=user, status=Status.IN_PROGRESS, upstream_status="processing"
    )
    response = updates(client_logged_in, image_request)
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()
    assert "In progress (processing)" in response.content.decode()


def test_terminal_card_stops_polling(client_logged_in, user):
    image_request = ImageRequestFactory(
        user=user, status=Status.FAILED, error_message="The model refused."
    )
    response = updates(client_logged_in, image_request)
    assert response.status_code == HTMX_STOP_POLLING
    html = response.content.decode()
    assert "hx-trigger" not in html
    assert "The model refused." in html


def test_card_polling_reads_only_the_database(
    client_logged_in, user, django_assert_max_num_queries
):
    image_request = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    # Session, user, the cards' versions; this one is new to the page (no
    # `since`): it, then its images.
    with django_assert_max_num_queries(5):
        updates(client_logged_in, image_request)


def test_completed_card_shows_thumbnail_and_edit_link(client_logged_in, user):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    html = client_logged_in.get(reverse("index")).content.decode()
    assert reverse("image-file", args=[image_request.pk, image.pk, "thumbnail"]) in html
    # "Edit this image" starts from bananaweb's stored copy, not the upstream's URL.
    assert f"?action=edit&amp;references={image.pk}#edit-form" in html
    assert "cdn.test" not in html


def test_detail_shows_parameters_task_id_and_full_image(client_logged_in, user):
    image_request = ImageRequestFactory(
        user=user,
        status=Status.COMPLETED,
        upstream_task_id="task-xyz",
        model="nano-banana-2",
        aspect_ratio="8:1",
    )
    image = make_image(image_request)
    html = client_logged_in.get(
        reverse("request-detail", args=[image_request.pk])
    ).content.decode()
    for text in (
        "task-xyz",
        "nano-banana-2",
        "8:1",
        image_request.prompt,
        reverse("image-file", args=[image_request.pk, image.pk, "full"]),
    ):
        assert text in html


def test_image_is_served_to_its_owner(client_logged_in, user):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    response = client_logged_in.get(
        reverse("image-file", args=[image_request.pk, image.pk, "full"])
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]


def test_resubmit_creates_new_request(client_logged_in, user):
    old = ImageRequestFactory(user=user, status=Status.UNKNOWN)
    response = client_logged_in.post(reverse("request-resubmit", args=[old.pk]))
    new = ImageRequest.objects.exclude(pk=old.pk).get()
    assert response.url == reverse("request-detail", args=[new.pk])


# --- isolation: another user's request is a 404 everywhere ------------------------------


@pytest.mark.parametrize(
    ("method", "name", "with_image"),
    [
        ("get", "request-detail", False),
        ("get", "request-card", False),
        ("post", "request-resubmit", False),
        ("get", "image-file", True),
    ],
)
def test_other_users_request_is_404(
    client_logged_in, other_user, method, name, with_image
):
    theirs = ImageRequestFactory(user=other_user, status=Status.FAILED)
    args = [theirs.pk]
    if with_image:
        args += [make_image(theirs).pk, "full"]
    response = getattr(client_logged_in, method)(reverse(name, args=args))
    assert response.status_code == 404
    assert ImageRequest.objects.count() == 1


def test_image_of_another_request_cannot_be_reached_through_own_request(
    client_logged_in, user, other_user
):
    mine = ImageRequestFactory(user=user)
    theirs_image = make_image(ImageRequestFactory(user=other_user))
    response = client_logged_in.get(
        reverse("image-file", args=[mine.pk, theirs_image.pk, "full"])
    )
    assert response.status_code == 404


def test_main_page_queries_do_not_grow_with_history(
    client_logged_in, user, django_assert_max_num_queries
):
    for image_request in ImageRequestFactory.create_batch(
        20, user=user, status=Status.COMPLETED
    ):
        make_image(image_request)
    with django_assert_max_num_queries(10):
        response = client_logged_in.get(reverse("index"))
    assert response.content.decode().count('class="card card--completed"') == 20


def test_pages_are_compressed_but_images_are_not(client_logged_in, user):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    page = client_logged_in.get(reverse("index"), headers={"Accept-Encoding": "gzip"})
    assert page["Content-Encoding"] == "gzip"
    picture = client_logged_in.get(
        reverse("image-file", args=[image_request.pk, image.pk, "full"]),
        headers={"Accept-Encoding": "gzip"},
    )
    assert not picture.has_header("Content-Encoding")


def test_pages_are_compressed_fast_and_padded_against_breach(client_logged_in, user):
    """Level 3, a third of the default's CPU for about a tenth more bytes, and
    Django's BREACH mitigation kept: a random-length name in the gzip header."""
    ImageRequestFactory.create_batch(5, user=user, status=Status.COMPLETED)
    paddings = set()
    for _ in range(8):
        page = client_logged_in.get(
            reverse("index"), headers={"Accept-Encoding": "gzip"}
        )
        body = page.content
        assert page["Content-Encoding"] == "gzip"
        assert page["Content-Length"] == str(len(body))
        assert "Accept-Encoding" in page["Vary"]
        html = gzip.decompress(body)
        assert b"<form" in html
        assert body[3] & gzip.FNAME
        name_end = body.index(b"\0", 10)
        paddings.add(name_end - 10)
        deflate = zlib.compressobj(3, zlib.DEFLATED, -zlib.MAX_WBITS)
        assert body[name_end + 1 : -8] == deflate.compress(html) + deflate.flush()
    assert len(paddings) > 1
