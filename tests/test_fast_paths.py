"""The hot paths of issue 13 (a thumbnail, the detail page, a submit): the owner's
answer costs a few cheap queries, and everyone else's is decided as before."""

import re
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.tasks import default_task_backend
from django.urls import reverse

from bananaweb import lookups, services
from bananaweb.models import ImageRequest, Reference, UserPreference
from tests.factories import ImageRequestFactory, make_image

Status = ImageRequest.Status
Visibility = ImageRequest.Visibility
HTMX = {"HX-Request": "true"}

pytestmark = pytest.mark.usefixtures("clear_tasks")


def thumbnail_url(image) -> str:
    return reverse("image-file", args=[image.image_request_id, image.pk, "thumbnail"])


# --- a thumbnail ------------------------------------------------------------------------


def test_the_owners_thumbnail_costs_one_query_beyond_the_sign_in(
    client_logged_in, user, django_assert_num_queries
):
    image = make_image(ImageRequestFactory(user=user, status=Status.COMPLETED))
    with django_assert_num_queries(3):  # session, user, the image if it is theirs
        response = client_logged_in.get(thumbnail_url(image))
    assert response.status_code == 200
    assert b"".join(response.streaming_content)


@pytest.mark.parametrize(
    ("visibility", "status_code"), [(Visibility.TEAM, 200), (Visibility.PRIVATE, 404)]
)
def test_someone_elses_thumbnail_follows_its_visibility(
    client_logged_in, other_user, visibility, status_code
):
    theirs = ImageRequestFactory(
        user=other_user, status=Status.COMPLETED, visibility=visibility
    )
    response = client_logged_in.get(thumbnail_url(make_image(theirs)))
    assert response.status_code == status_code


def test_the_owners_deleted_request_has_no_thumbnail(client_logged_in, user):
    image = make_image(ImageRequestFactory(user=user, status=Status.COMPLETED))
    ImageRequest.objects.filter(pk=image.image_request_id).update(
        deleted_at=image.created_at
    )
    assert client_logged_in.get(thumbnail_url(image)).status_code == 404


def test_an_image_under_another_requests_id_is_404(client_logged_in, user):
    image = make_image(ImageRequestFactory(user=user, status=Status.COMPLETED))
    other = ImageRequestFactory(user=user, status=Status.COMPLETED)
    url = reverse("image-file", args=[other.pk, image.pk, "thumbnail"])
    assert client_logged_in.get(url).status_code == 404


# --- the detail page --------------------------------------------------------------------


def test_the_owners_detail_page_costs_a_fixed_few_queries(
    client_logged_in, user, django_assert_num_queries
):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    make_image(image_request)
    # Session, user, the request, its images, its lineage both ways: on
    # PostgreSQL the last three in one round trip (compiled.together).
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 5):
        response = client_logged_in.get(
            reverse("request-detail", args=[image_request.pk])
        )
    assert response.status_code == 200


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the owner's first ask is compiled SQL"
)
def test_a_teammates_detail_page_asks_the_owners_side_once(
    client_logged_in, other_user, django_assert_num_queries
):
    theirs = ImageRequestFactory(
        user=other_user, status=Status.COMPLETED, visibility=Visibility.TEAM
    )
    make_image(theirs)
    url = reverse("request-detail", args=[theirs.pk])
    client_logged_in.get(url)  # compiled
    # Session, user, the page's round trip (not the viewer's own: told there),
    # then the request as the team sees it, its images: never "is it mine?" again.
    with django_assert_num_queries(5):
        response = client_logged_in.get(url)
    assert response.status_code == 200
    assert f"Request #{theirs.pk}".encode() in response.content


def test_the_owners_detail_page_from_compiled_sql_is_the_orms(
    client_logged_in, user, monkeypatch
):
    """On PostgreSQL the owner's request and its images are read by SQL built once
    per process (bananaweb.lookups): the page is the very page the ORM's rows
    give, JSON, dates, star, images and lineage included."""
    parent = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image_request = ImageRequestFactory(
        user=user,
        status=Status.COMPLETED,
        image_urls=["https://example.com/a.png", "https://example.com/b.png"],
        upstream_task_id="task-json",
        aspect_ratio="4:3",
    )
    make_image(image_request)
    make_image(image_request, source_url="https://cdn.test/b.png")
    Reference.objects.create(image_request=image_request, image=make_image(parent))
    client_logged_in.post(
        reverse("request-star", args=[image_request.pk]), {"starred": "1"}
    )
    url = reverse("request-detail", args=[image_request.pk])

    def page() -> str:
        html = client_logged_in.get(url).content.decode()
        # But for what each response has of its own: its CSRF token, its nonce.
        html = re.sub(r'(csrfmiddlewaretoken" value|nonce)="[^"]*"', "", html)
        return re.sub(r'"x-csrftoken": "[^"]*"', "", html)

    fast = page()
    for text in ("https://example.com/b.png", "task-json", "★", "Made from"):
        assert text in fast
    monkeypatch.setattr(lookups, "own_request", lambda *args: None)
    monkeypatch.setattr(lookups, "has_lineage", lambda *args: True)
    assert page() == fast


def test_the_lineage_shows_what_the_viewer_may_see_both_ways(
    client_logged_in, user, other_user
):
    hidden_parent = ImageRequestFactory(user=other_user, status=Status.COMPLETED)
    shown_parent = ImageRequestFactory(
        user=other_user, status=Status.COMPLETED, visibility=Visibility.TEAM
    )
    mine = ImageRequestFactory(user=user, status=Status.COMPLETED)
    my_image = make_image(mine)
    for position, parent in enumerate((hidden_parent, shown_parent)):
        Reference.objects.create(
            image_request=mine, position=position, image=make_image(parent)
        )
    my_child = ImageRequestFactory(user=user, prompt="My own child")
    their_private_child = ImageRequestFactory(
        user=other_user, prompt="Their private child"
    )
    for child in (my_child, their_private_child):
        Reference.objects.create(image_request=child, image=my_image)

    html = client_logged_in.get(reverse("request-detail", args=[mine.pk])).content
    html = html.decode()
    assert "An image you can't see" in html
    assert f"Request #{shown_parent.pk}:" in html
    assert f"Request #{hidden_parent.pk}:" not in html
    made_from_this = html.split('id="made-from-this-title"')[1]
    assert f"#{my_child.pk}:" in made_from_this
    assert "Their private child" not in made_from_this
    # The parents' requests are not listed as made from this one.
    assert not re.search(rf"#{shown_parent.pk}:", made_from_this)


# --- a submit ---------------------------------------------------------------------------


def submit(client, **fields):
    data = {
        "action": "generate",
        "prompt": "A benchmark banana",
        "model": "nano-banana-fast",
        "idempotency_key": uuid.uuid4().hex,
    } | fields
    return client.post(
        reverse("request-create"),
        data,
        headers={**HTMX, "HX-Current-URL": "http://testserver/"},
    )


def test_the_htmx_submit_answers_a_fresh_blank_form_the_card_and_the_quota(
    client_logged_in, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(client_logged_in, prompt="A banana boat")
    html = response.content.decode()
    created = ImageRequest.objects.get()
    assert response.status_code == 200
    assert f'id="request-{created.pk}"' in html
    assert 'id="generate-form"' in html
    assert "A banana boat</textarea>" not in html
    assert 'name="csrfmiddlewaretoken"' in html
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', html)
    assert key and key[1] != created.idempotency_key  # a new key for the next one
    limit = settings.BANANAWEB_DEFAULT_DAILY_QUOTA
    assert f"{limit - 1} of {limit} requests left today" in html
    assert [r.args for r in default_task_backend.results] == [[created.pk]]


def test_the_submit_keeps_a_chosen_models_options_in_the_fresh_form(
    client_logged_in,
):
    response = submit(
        client_logged_in, model="nano-banana-pro", aspect_ratio="16:9", resolution="2K"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<option value="nano-banana-pro"[^>]*selected', html)
    assert re.search(r'<option value="2K"[^>]*selected', html)


def test_a_new_request_takes_the_users_default_visibility(user):
    UserPreference.objects.create(user=user, default_visibility=Visibility.TEAM)
    created = services.image_request_create(
        user=user, data={"action": "generate", "prompt": "A banana"}
    )
    assert ImageRequest.objects.get(pk=created.pk).visibility == Visibility.TEAM


def test_a_bad_visibility_is_refused_before_anything_is_saved(user):
    with pytest.raises(services.ValidationError):
        services.image_request_create(
            user=user,
            data={"action": "generate", "prompt": "A banana"},
            visibility="everyone",
        )
    assert not ImageRequest.objects.exists()


def test_a_replayed_key_returns_the_first_request_and_sends_nothing_new(user):
    data = {"action": "generate", "prompt": "A banana"}
    first = services.image_request_create(user=user, data=data, idempotency_key="k1")
    again = services.image_request_create(user=user, data=data, idempotency_key="k1")
    assert again.pk == first.pk
    assert ImageRequest.objects.count() == 1
    with pytest.raises(services.IdempotencyConflict):
        services.image_request_create(
            user=user, data={**data, "prompt": "Another"}, idempotency_key="k1"
        )
