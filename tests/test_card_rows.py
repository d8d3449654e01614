"""Cached cards and tiles read as rows (bananaweb/history.py's CardRow): their keys
are the model's, a page of cached cards builds no ImageRequest, and what changes
shows at once. Also the submit form's checks and the rate limit's counter."""

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from bananaweb import fragments, history, services
from bananaweb.forms import ImageRequestForm
from bananaweb.models import ImageRequest, Star, UserPreference
from bananaweb.prompts.models import PromptTemplate
from tests.factories import ImageRequestFactory, make_image

Status = ImageRequest.Status
TEAM = ImageRequest.Visibility.TEAM
HTMX = {"HX-Request": "true", "HX-Target": "history"}
postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="PostgreSQL's upsert"
)


@pytest.fixture(autouse=True)
def empty_caches(db):
    cache.clear()
    fragments.forget_remembered()


def finished(user, **fields) -> ImageRequest:
    fields.setdefault("status", Status.COMPLETED)
    image_request = ImageRequestFactory(user=user, **fields)
    make_image(image_request)
    return image_request


def rows_of(viewer, *image_requests, row=history.CardRow) -> list[history.Row]:
    pks = [r.pk for r in image_requests]
    queryset = ImageRequest.objects.filter(pk__in=pks).order_by("pk")
    return history._as_card_rows(history._card_rows(queryset, viewer, row=row), row)


def models_of(viewer, *image_requests) -> list[ImageRequest]:
    pks = [r.pk for r in image_requests]
    queryset = ImageRequest.objects.filter(pk__in=pks).order_by("pk")
    return list(history._for_cards(queryset, viewer))


def test_a_row_and_its_request_have_the_same_card_and_tile_keys(user, other_user):
    own = finished(user, prompt="mine")
    shared = finished(other_user, prompt="theirs", visibility=TEAM)
    Star.objects.create(user=user, image_request=shared)
    imageless = ImageRequestFactory(user=user, status=Status.FAILED)
    requests_ = (own, shared, imageless)
    for viewer in (user, other_user):
        rows = rows_of(viewer, *requests_)
        models = models_of(viewer, *requests_)
        assert [fragments.card_key(r, viewer) for r in rows] == [
            fragments.card_key(m, viewer) for m in models
        ]
        assert [fragments.tile_key(r, viewer) for r in rows] == [
            fragments.tile_key(m, viewer) for m in models
        ]
        assert [
            fragments.tile_key(r, viewer)
            for r in rows_of(viewer, *requests_, row=history.TileRow)
        ] == [fragments.tile_key(m, viewer) for m in models]
    # The viewer's side differs: a star is each person's own.
    assert fragments.card_key(rows_of(user, shared)[0], user) != fragments.card_key(
        rows_of(other_user, shared)[0], other_user
    )


def test_a_page_of_cached_cards_builds_no_request(
    client_logged_in, user, monkeypatch, django_assert_max_num_queries
):
    made = [finished(user, prompt=f"banana {n}") for n in range(3)]
    client_logged_in.get(reverse("index"), headers=HTMX)  # renders and caches them

    def built(row):
        raise AssertionError(f"request {row.pk} was built, its card is cached")

    monkeypatch.setattr(history, "_as_request", built)
    # Session, user, the rows (their images' ids ride along): no prefetch.
    with django_assert_max_num_queries(3) as captured:
        html = client_logged_in.get(reverse("index"), headers=HTMX).content.decode()
    assert all(f'id="request-{r.pk}"' in html for r in made)
    assert not [q for q in captured if 'generatedimage"."file' in q["sql"]]


def test_the_cached_gallery_builds_no_request(client_logged_in, user, monkeypatch):
    made = [finished(user) for _ in range(2)]
    client_logged_in.get(reverse("index") + "?view=gallery")
    monkeypatch.setattr(history, "_as_request", None)  # would raise
    html = client_logged_in.get(reverse("index") + "?view=gallery").content.decode()
    assert all(f'id="tile-{r.pk}"' in html for r in made)


def test_the_gallery_reads_a_tiles_columns_not_a_cards(client_logged_in, user):
    made = finished(user, prompt="a tile's banana", error_message="not on a tile")
    html = client_logged_in.get(reverse("index") + "?view=gallery").content.decode()
    assert f'id="tile-{made.pk}"' in html and "a tile&#x27;s banana" in html
    for query in ("view=gallery", "view=gallery&q=banana", "view=gallery&scope=team"):
        filters = history.history_filters(QueryDict(query))
        asked = history.page_query(user, filters)
        sql = str(asked.rows_for(*asked.values.values()).query)
        assert '"prompt"' in sql and '"error_message"' not in sql, query
    cards = history.page_query(user, history.history_filters(QueryDict("")))
    assert '"error_message"' in str(cards.rows_for(*cards.values.values()).query)


def test_a_changed_request_shows_at_once_though_its_card_was_cached(
    client_logged_in, user, other_user
):
    image_request = finished(user, prompt="a yellow banana")
    client_logged_in.get(reverse("index"))
    # Changed behind the app's back (no signal, no save): the row says so.
    ImageRequest.objects.filter(pk=image_request.pk).update(prompt="a green banana")
    html = client_logged_in.get(reverse("index")).content.decode()
    assert "a green banana" in html and "a yellow banana" not in html

    shared = finished(other_user, prompt="shared", visibility=TEAM)
    client_logged_in.get(reverse("index") + "?scope=team&view=gallery")
    other_user.username = "renamed-person"
    other_user.save()
    html = client_logged_in.get(
        reverse("index") + "?scope=team&view=gallery"
    ).content.decode()
    assert f'id="tile-{shared.pk}"' in html and "renamed-person" in html


def test_a_card_in_flight_is_rendered_from_its_row_with_its_images(
    client_logged_in, user
):
    in_flight = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    html = client_logged_in.get(reverse("index"), headers=HTMX).content.decode()
    assert f'id="request-{in_flight.pk}"' in html
    saving = finished(user, status=Status.IN_PROGRESS)
    html = client_logged_in.get(reverse("index"), headers=HTMX).content.decode()
    assert f'id="request-{saving.pk}"' in html


# --- The submit form ----------------------------------------------------------------


def test_the_form_checks_the_options_without_a_query(django_assert_num_queries):
    data = {"action": "generate", "prompt": "a banana", "model": "nano-banana-fast"}
    with django_assert_num_queries(0):
        assert ImageRequestForm(data, action="generate").is_valid()


def test_the_form_still_refuses_options_the_model_does_not_take():
    data = {
        "action": "generate",
        "prompt": "a banana",
        "model": "nano-banana-fast",
        "resolution": "4K",
    }
    form = ImageRequestForm(data, action="generate")
    assert not form.is_valid()
    assert "resolution" in form.errors


# --- The rate limit's counter ----------------------------------------------------------


def test_a_counter_starts_at_one_and_counts(db):
    counts = [cache.count_hit("hits", 60) for _ in range(3)]
    assert counts == [1, 2, 3]
    assert cache.get("hits") == 3  # readable as any cached value


@postgresql_only  # elsewhere add+incr: incr's set keeps it for the default timeout
def test_an_expired_counter_starts_again(db):
    cache.count_hit("hits", 1)
    cache.count_hit("hits", 1)
    time.sleep(2.1)
    assert cache.count_hit("hits", 60) == 1


@postgresql_only
def test_a_hit_is_one_statement(db, django_assert_num_queries):
    cache.count_hit("hits", 60)
    with django_assert_num_queries(1):
        assert cache.count_hit("hits", 60) == 2


@postgresql_only
def test_a_counter_overwritten_by_another_value_starts_from_zero(db):
    cache.set("hits", 41)  # pickled at the highest protocol: not read as a count
    assert cache.count_hit("hits", 60) == 1
    assert connection.vendor == "postgresql"


def test_each_person_gets_their_own_rows_from_the_compiled_queries(
    client, user, other_user
):
    """On PostgreSQL the unfiltered pages' SQL and the menu's are compiled once
    for a stand-in and run with the viewer's id: nobody gets another's rows."""
    mine = finished(user, prompt="my private banana")
    theirs = finished(other_user, prompt="their private cherry")
    PromptTemplate.objects.create(user=user, name="my-template", prompt="p")
    PromptTemplate.objects.create(user=other_user, name="their-template", prompt="p")
    for person, own, other in ((user, mine, theirs), (other_user, theirs, mine)):
        client.force_login(person)
        for query in ("", "?view=gallery"):
            html = client.get(reverse("index") + query).content.decode()
            assert own.prompt in html and other.prompt not in html
        assert ("my-template" in html) == (person == user)
        assert ("their-template" in html) == (person == other_user)


def test_the_compiled_quota_counts_each_persons_requests_of_today(user, other_user):
    ImageRequestFactory.create_batch(2, user=user)
    old = ImageRequestFactory(user=user)
    ImageRequest.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    UserPreference.objects.create(user=other_user, default_visibility=TEAM)
    mine, my_visibility = services.quota_and_default_visibility(user=user)
    theirs, their_visibility = services.quota_and_default_visibility(user=other_user)
    assert (mine.used, theirs.used) == (2, 0)
    assert their_visibility == TEAM and my_visibility != TEAM
    assert mine.resets_at == theirs.resets_at > timezone.now()
