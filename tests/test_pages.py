"""Whole pages rendered once for what they show (bananaweb/pages.py): the same
page for the same rows, a new one the moment anything shown changes, never
another person's, and each response's own token, keys, nonce and times."""

import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bananaweb import fragments, per_response, views
from bananaweb.models import ImageRequest, Star, UserPreference
from bananaweb.prompts.models import PromptTemplate
from tests.factories import ImageRequestFactory, UserFactory, make_image

Status = ImageRequest.Status
HISTORY = {"HX-Request": "true", "HX-Target": "history"}

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="pages are remembered by the rows PostgreSQL read first",
    ),
    pytest.mark.usefixtures("fresh_memory"),
]


@pytest.fixture
def fresh_memory():
    fragments.forget_remembered()
    yield
    fragments.forget_remembered()


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """Which of the main page's renderings ran ("page", "history")."""
    rendered: list[str] = []
    for name, what in (("_page_html", "page"), ("_history_html", "history")):
        render = getattr(views, name)

        def counting(request, render=render, what=what):
            rendered.append(what)
            return render(request)

        monkeypatch.setattr(views, name, counting)
    return rendered


def finished(user, **fields) -> ImageRequest:
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED, **fields)
    make_image(image_request)
    return image_request


def each_response_s_own(html: str) -> str:
    """The page without what differs in every response."""
    for pattern, stand_in in (
        (r'name="csrfmiddlewaretoken" value="[^"]+"', "csrf"),
        (r'"x-csrftoken": "[^"]+"', "csrf"),
        (r'name="idempotency_key" value="[0-9a-f]{32}"', "key"),
        (r'nonce="[^"]+"', "nonce"),
        (r'data-elapsed="\d+"', "elapsed"),
        (r"\d+ s so far", "so far"),
    ):
        html = re.sub(pattern, stand_in, html)
    return html


def warm(client, renders: list, query: str = "", **headers) -> None:
    """Ask twice, and forget those renderings: the first renders the cards and
    stores them in the shared cache (queries its key does not cover, so that page
    is not remembered); the second, from this process's cards, is."""
    for _ in range(2):
        client.get(reverse("index") + query, headers=headers)
    renders.clear()


def page(client, query: str = "", **headers) -> str:
    response = client.get(reverse("index") + query, headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def test_the_main_page_is_rendered_once_for_what_it_shows(
    client_logged_in, user, renders
):
    finished(user, prompt="a remembered banana")
    ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    first = page(client_logged_in)
    second, third = page(client_logged_in), page(client_logged_in)
    assert renders == ["page", "page"]  # the first cached its cards
    assert "a remembered banana" in third
    assert each_response_s_own(first) == each_response_s_own(third)
    # Each response's own CSRF token, nonce and a new key for each form shown.
    for pattern in (r'"x-csrftoken": "([^"]+)"', r'nonce="([^"]+)"'):
        assert (
            len(
                {
                    m
                    for html in (first, second, third)
                    for m in re.findall(pattern, html)
                }
            )
            == 3
        )
    keys = re.findall(r'name="idempotency_key" value="([0-9a-f]{32})"', second + third)
    assert len(keys) == 4 and len(set(keys)) == 4
    for placeholder in (
        per_response.CSRF_PLACEHOLDER,
        per_response.IDEMPOTENCY_PLACEHOLDER,
        per_response.NONCE_PLACEHOLDER,
        "<elapsed-",
    ):
        assert placeholder not in third


def test_a_history_page_and_its_address_come_back_the_same(
    client_logged_in, user, renders
):
    for number in range(25):
        finished(user, prompt=f"banana {number}")
    warm(client_logged_in, renders, "?page=2&nonsense=1", **HISTORY)
    responses = [
        client_logged_in.get(reverse("index") + "?page=2&nonsense=1", headers=HISTORY)
        for _ in range(2)
    ]
    assert renders == []
    html = [response.content.decode() for response in responses]
    assert each_response_s_own(html[0]) == each_response_s_own(html[1])
    assert "banana 4" in html[1] and "banana 5" not in html[1]
    assert responses[0]["HX-Push-Url"] == responses[1]["HX-Push-Url"] == "/?page=2"


@pytest.mark.parametrize(
    "change",
    [
        "star",
        "status",
        "new request",
        "template",
        "renamed",
        "default visibility",
        "deleted",
    ],
)
def test_anything_shown_that_changes_renders_the_page_again(
    client_logged_in, user, renders, change
):
    shown = finished(user, prompt="the banana on show")
    warm(client_logged_in, renders)
    before = page(client_logged_in)
    assert renders == []
    match change:
        case "star":
            Star.objects.create(user=user, image_request=shown)
            expected = 'aria-pressed="true"'
        case "status":
            ImageRequest.objects.filter(pk=shown.pk).update(
                status=Status.FAILED, error_message="The upstream said no."
            )
            expected = "The upstream said no."
        case "new request":
            ImageRequestFactory(user=user, prompt="a brand new banana")
            expected = "a brand new banana"
        case "template":
            PromptTemplate.objects.create(user=user, name="Moonlit", prompt="moon")
            expected = "Moonlit"
        case "renamed":
            user.username = "renamed-person"
            user.save()
            expected = "renamed-person"
        case "default visibility":
            UserPreference.objects.create(
                user=user, default_visibility=ImageRequest.Visibility.TEAM
            )
            expected = '<option value="team" selected>'
        case "deleted":
            ImageRequest.objects.filter(pk=shown.pk).update(deleted_at=timezone.now())
            expected = None
    after = page(client_logged_in)
    assert renders == ["page"]
    if expected is None:  # gone
        assert "the banana on show" in before and "the banana on show" not in after
    else:
        assert expected not in before and expected in after


def test_another_person_never_gets_a_remembered_page(client, user, renders):
    finished(user, prompt="mine alone")
    other = UserFactory()
    client.force_login(user)
    warm(client, renders)
    assert "mine alone" in page(client)
    client.force_login(other)
    assert "mine alone" not in page(client)
    assert renders == ["page"]


def test_a_page_that_asked_more_than_its_rows_is_not_remembered(
    client_logged_in, user, renders
):
    """A group's members are read while the page is built: the page's key would
    not cover them, so such a page is built every time (and so is always right)."""
    group = uuid.uuid4()
    _, second = (finished(user, group=group, prompt=f"variation {n}") for n in range(2))
    warm(client_logged_in, renders)
    ImageRequest.objects.filter(pk=second.pk).update(
        status=Status.FAILED, error_message="The second one failed."
    )
    assert "The second one failed." in page(client_logged_in)
    assert renders == ["page"]


def test_messages_are_shown_once_and_never_remembered(client_logged_in, user):
    finished(user)
    page(client_logged_in)
    response = client_logged_in.post(
        reverse("user-settings"), {"default_visibility": "private"}
    )
    assert response.status_code == 302
    shown = [page(client_logged_in) for _ in range(3)]
    assert ["Your settings were saved." in html for html in shown] == [
        True,
        False,
        False,
    ]


def test_a_card_in_flight_shows_its_time_so_far_in_every_response(
    client_logged_in, user, renders, monkeypatch
):
    ImageRequestFactory(user=user, status=Status.IN_PROGRESS, prompt="still going")
    warm(client_logged_in, renders)
    # An hour later for the times alone: the page's rows (its day's quota among
    # them) stay the same, whatever the hour the test runs at.
    later = timezone.now() + timedelta(hours=1, minutes=3)
    monkeypatch.setattr(per_response, "timezone", SimpleNamespace(now=lambda: later))
    html = page(client_logged_in)
    assert renders == []
    assert "1 h 03 min so far" in html
