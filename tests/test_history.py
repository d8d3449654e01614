"""The history you can find things in, and taking images out (issue 11): search and
filters (on SQLite and on PostgreSQL), strict query strings, the gallery, group
cards, star, compare, downloads (one file, a ZIP streamed), bulk delete, and
ownership of every new URL."""

import io
import os
import uuid
import zipfile
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django_htmx.http import HTMX_STOP_POLLING

from bananaweb import downloads, history
from bananaweb.models import GeneratedImage, ImageRequest
from tests.factories import ImageRequestFactory, UserFactory, make_image, png_bytes

Status = ImageRequest.Status
HTMX = {"HX-Request": "true", "HX-Target": "history"}
POSTGRESQL = connection.vendor == "postgresql"
only_postgresql = pytest.mark.skipif(not POSTGRESQL, reason="PostgreSQL's full text")
only_sqlite = pytest.mark.skipif(POSTGRESQL, reason="SQLite's containment match")

pytestmark = pytest.mark.usefixtures("clear_tasks")


def listed(client, query: str = "", **headers) -> str:
    response = client.get(reverse("index") + query, headers=headers or None)
    assert response.status_code == 200
    return response.content.decode()


def shown(html: str, *image_requests: ImageRequest) -> list[bool]:
    return [f'id="request-{r.pk}"' in html for r in image_requests]


def done(user, **fields) -> ImageRequest:
    """A completed request of the user's, with its image."""
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED, **fields)
    make_image(image_request)
    return image_request


def local(day: str, hour: int = 12) -> datetime:
    return datetime.combine(
        datetime.fromisoformat(day).date(),
        time(hour),
        tzinfo=timezone.get_current_timezone(),
    )


# --- search -----------------------------------------------------------------------------


def test_search_finds_prompts_by_their_words(client_logged_in, user, other_user):
    boat = ImageRequestFactory(user=user, prompt="A banana boat at sunset")
    cat = ImageRequestFactory(user=user, prompt="A sleeping cat on a windowsill")
    theirs = ImageRequestFactory(user=other_user, prompt="Their banana boat")
    html = listed(client_logged_in, "?q=banana+boat")
    assert shown(html, boat, cat, theirs) == [True, False, False]
    assert "1 match." in html


def test_search_is_case_insensitive(client_logged_in, user):
    boat = ImageRequestFactory(user=user, prompt="A Banana BOAT")
    assert shown(listed(client_logged_in, "?q=banana+boat"), boat) == [True]


def test_each_search_finds_its_own_words(client_logged_in, user):
    """One search after another, the filters alike: on PostgreSQL the same SQL,
    built once per process with stand-in words (bananaweb.compiled), run with
    each search's own."""
    boat = ImageRequestFactory(user=user, prompt="A banana boat")
    bread = ImageRequestFactory(user=user, prompt="Cherry bread")
    for query, expected in [
        ("?q=banana", [True, False]),
        ("?q=cherry", [False, True]),
        ("?q=zebra", [False, False]),
        ("?q=banana&status=queued", [True, False]),
        ("?q=cherry&status=queued", [False, True]),
    ]:
        html = listed(client_logged_in, query, **HTMX)
        assert shown(html, boat, bread) == expected, query
        matches = sum(expected)
        assert f"{matches} match{'es' if matches != 1 else ''}" in html or (
            not matches and "No images match" in html
        )


def test_a_search_counts_its_matches_and_an_old_link_shows_its_last_page(
    client_logged_in, user, settings
):
    settings.BANANAWEB_HISTORY_PAGE_SIZE = 2
    bananas = [ImageRequestFactory(user=user, prompt="banana") for _ in range(5)]
    ImageRequestFactory(user=user, prompt="cherry")
    html = listed(client_logged_in, "?q=banana&page=2", **HTMX)
    assert "5 matches" in html and "Page 2 of 3" in html
    beyond = listed(client_logged_in, "?q=banana&page=7", **HTMX)
    assert "Page 3 of 3" in beyond
    assert shown(beyond, *bananas).count(True) == 1


@only_sqlite
def test_sqlite_search_is_a_containment_match(client_logged_in, user):
    boat = ImageRequestFactory(user=user, prompt="Bananarama boats")
    assert shown(listed(client_logged_in, "?q=nanara"), boat) == [True]


@only_postgresql
def test_postgresql_search_matches_word_forms(client_logged_in, user):
    """Full text: "boats" finds "boat", a stemmed English word."""
    boat = ImageRequestFactory(user=user, prompt="A banana boat")
    assert shown(listed(client_logged_in, "?q=boats"), boat) == [True]


@only_postgresql
def test_postgresql_search_ranks_the_better_match_first(client_logged_in, user):
    better = ImageRequestFactory(
        user=user,
        prompt="Banana bread, banana split and a banana smoothie",
        created_at=timezone.now() - timedelta(days=2),
    )
    weaker = ImageRequestFactory(
        user=user, prompt="A still life of pears, apples, grapes and one banana"
    )
    html = listed(client_logged_in, "?q=banana")
    assert html.index(f'id="request-{better.pk}"') < html.index(
        f'id="request-{weaker.pk}"'
    )
    # Without a search, the newest comes first.
    html = listed(client_logged_in)
    assert html.index(f'id="request-{weaker.pk}"') < html.index(
        f'id="request-{better.pk}"'
    )


@only_postgresql
def test_postgresql_search_ranks_by_the_stored_vector_kept_in_step(
    client_logged_in, user
):
    """The rank reads migration 0011's stored vector (not each prompt parsed
    again), which PostgreSQL keeps in step with the prompt: an edited prompt is
    ranked by its new words."""
    first = ImageRequestFactory(user=user, prompt="A pear")
    second = ImageRequestFactory(user=user, prompt="A banana and a pear")
    ranked = history.history_for(
        user=user, filters=history.history_filters({"q": "banana pear"})
    )
    assert '"prompt_search"' in str(ranked.query)
    assert [r.pk for r in ranked] == [second.pk]
    ImageRequest.objects.filter(pk=first.pk).update(
        prompt="Banana, banana, banana and a pear"
    )
    html = listed(client_logged_in, "?q=banana+pear")
    assert html.index(f'id="request-{first.pk}"') < html.index(
        f'id="request-{second.pk}"'
    )


@only_postgresql
def test_postgresql_search_is_served_by_the_gin_index(user):
    """A long history, one rare word: the planner goes to migration 0007's index,
    which it can only do if history.py searches the very expression indexed."""
    ImageRequest.objects.bulk_create(
        ImageRequest(user=user, action="generate", prompt=f"A banana number {n}")
        for n in range(3000)
    )
    ImageRequestFactory(user=user, prompt="A zebra crossing")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bananaweb_imagerequest")
    filters = history.history_filters({"q": "zebra"})
    plan = history.history_for(user=user, filters=filters).explain()
    assert "image_request_prompt_search" in plan, plan


@only_postgresql
def test_the_team_views_people_cost_one_probe_each_whoever_shares_nothing(
    user, other_user
):
    """Who shares anything: a person who shares nothing must not cost a walk
    through all the team shares (6.5 ms for 20 such people and 2,000 shared
    requests before the index of migration 0012)."""
    ImageRequest.objects.bulk_create(
        ImageRequest(
            user=user, action="generate", prompt=f"Shared {n}", visibility="team"
        )
        for n in range(3000)
    )
    quiet = UserFactory.create_batch(20)
    ImageRequestFactory(user=other_user, visibility="team")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bananaweb_imagerequest")
        cursor.execute("ANALYZE auth_user")
    plan = history._people(user).explain()
    assert "image_request_team_people" in plan, plan
    assert history.team_people(user) == sorted([user.username, other_user.username])
    assert not {person.username for person in quiet} & set(history.team_people(user))


@only_postgresql
@pytest.mark.parametrize(
    "q", ['"banana boat"', "banana -cat", "banana or cat", "&|!:*()'", "\\"]
)
def test_postgresql_search_takes_what_people_type(client_logged_in, user, q):
    ImageRequestFactory(user=user, prompt="A banana boat")
    response = client_logged_in.get(reverse("index"), {"q": q})
    assert response.status_code == 200


# --- filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "wanted", "other"),
    [
        ("status=failed", {"status": Status.FAILED}, {"status": Status.COMPLETED}),
        ("model=nano-banana-pro", {"model": "nano-banana-pro"}, {}),
        ("kind=edit", {"action": "edit", "image_urls": ["https://x.test/a.png"]}, {}),
        ("starred=1", {"starred": True}, {}),
        ("source=api", {"source": "api"}, {"source": "web"}),
        ("source=web", {"source": "web"}, {"source": "api"}),
    ],
)
def test_each_filter_narrows_the_history(client_logged_in, user, query, wanted, other):
    match = ImageRequestFactory(user=user, **wanted)
    miss = ImageRequestFactory(user=user, **other)
    html = listed(client_logged_in, f"?{query}")
    assert shown(html, match, miss) == [True, False]


def test_filters_combine_with_the_search(client_logged_in, user):
    match = ImageRequestFactory(user=user, prompt="banana", starred=True)
    unstarred = ImageRequestFactory(user=user, prompt="banana")
    other_words = ImageRequestFactory(user=user, prompt="cherry", starred=True)
    html = listed(client_logged_in, "?q=banana&starred=1")
    assert shown(html, match, unstarred, other_words) == [True, False, False]


def test_date_range_takes_whole_local_days_both_ends_included(client_logged_in, user):
    before = ImageRequestFactory(user=user, created_at=local("2025-03-09", 23))
    first = ImageRequestFactory(user=user, created_at=local("2025-03-10", 0))
    last = ImageRequestFactory(user=user, created_at=local("2025-03-12", 23))
    after = ImageRequestFactory(user=user, created_at=local("2025-03-13", 0))
    html = listed(client_logged_in, "?from=2025-03-10&to=2025-03-12")
    assert shown(html, before, first, last, after) == [False, True, True, False]
    html = listed(client_logged_in, "?from=2025-03-13")
    assert shown(html, last, after) == [False, True]
    html = listed(client_logged_in, "?to=2025-03-09")
    assert shown(html, before, first) == [True, False]


def test_links_into_the_forms_leave_the_history_whole(client_logged_in, user):
    """?action= and ?references= belong to "Edit this image": the kind filter is ?kind=."""
    generated = done(user)
    edited = done(user, action="edit", image_urls=["https://x.test/a.png"])
    image = generated.images.get()
    html = listed(client_logged_in, f"?action=edit&references={image.pk}")
    assert shown(html, generated, edited) == [True, True]
    assert 'class="note"' not in html and "history__summary" not in html


def test_the_filter_form_shows_what_is_applied(client_logged_in, user):
    html = listed(
        client_logged_in, "?q=boat&status=failed&starred=1&from=2025-01-02&view=gallery"
    )
    assert 'id="history-q" name="q" value="boat"' in html
    assert '<option value="failed" selected>' in html
    assert (
        'id="history-starred" name="starred" value="1" class="filter-control" checked'
        in html
    )
    assert 'value="2025-01-02"' in html
    assert (
        'id="view-gallery" name="view" value="gallery" class="filter-control" checked'
        in html
    )
    assert '<details class="filters__more" open>' in html


def test_nothing_matching_says_so_with_a_way_back(client_logged_in, user):
    ImageRequestFactory(user=user, prompt="banana")
    html = listed(client_logged_in, "?q=zebra&view=gallery")
    assert "No images match." in html
    assert 'href="/?view=gallery"' in html  # clear the filters, keep the view


# --- htmx: the list alone, the filters in the address bar --------------------------------


def test_searching_with_htmx_returns_the_history_alone(client_logged_in, user):
    boat = ImageRequestFactory(user=user, prompt="banana boat")
    response = client_logged_in.get(
        reverse("index") + "?q=boat&status=&model=&view=cards", headers=HTMX
    )
    html = response.content.decode()
    assert shown(html, boat) == [True]
    assert 'id="history"' in html
    assert 'id="generate-form"' not in html and 'id="history-filters"' not in html
    # The address bar gets the filters as understood: empty values left out.
    assert response["HX-Push-Url"] == "/?q=boat"
    assert "HX-Request" in response["Vary"]


def test_a_search_that_changes_nothing_adds_no_step_to_the_back_button(
    client_logged_in,
):
    response = client_logged_in.get(
        reverse("index") + "?q=boat&status=",
        headers=HTMX | {"HX-Current-URL": "http://testserver/?q=boat"},
    )
    assert response["HX-Push-Url"] == "false"


def test_the_back_button_gets_the_whole_page(client_logged_in, user):
    """htmx restoring a page it has no copy of asks for all of it."""
    html = listed(
        client_logged_in,
        "?q=boat",
        **HTMX,
        **{"HX-History-Restore-Request": "true"},
    )
    assert 'id="generate-form"' in html and 'id="history-filters"' in html


def test_pages_keep_the_filters(client_logged_in, user, settings):
    settings.BANANAWEB_HISTORY_PAGE_SIZE = 2
    ImageRequestFactory.create_batch(5, user=user, prompt="banana", starred=True)
    ImageRequestFactory.create_batch(3, user=user, prompt="cherry")
    html = listed(client_logged_in, "?q=banana&starred=1&page=2", **HTMX)
    assert "Page 2 of 3" in html
    assert 'href="/?q=banana&amp;starred=1&amp;page=3"' in html
    assert 'href="/?q=banana&amp;starred=1"' in html  # page 1: no page=1


# --- strict query strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "note"),
    [
        ("page=%EF%BC%92", None),  # a full-width digit: page 1
        ("page=-1", None),
        ("page=99999999999999999999", None),
        ("page=9999", None),  # past the end: the last page
        ("status=bogus", "“bogus” is not a known status"),
        ("status=COMPLETED", "is not a known status"),
        ("model=gpt-image", "is not a known model"),
        ("kind=delete", "is not a known kind of request"),
        ("source=email", "is not a known source"),
        ("starred=yes", "is not a choice for starred"),
        ("view=slideshow", "is not a view"),
        ("from=2025-02-30", "is not a date"),
        ("from=20250301", "is not a date"),
        ("from=%EF%BC%92025-03-01", "is not a date"),
        ("from=0001-01-01", "out of range"),
        ("to=9999-12-31", "out of range"),
        ("from=2025-03-02&to=2025-03-01", "before the start date"),
        ("q=%00banana%00", None),
        ("q=" + "banana+" * 100, "cut to its first 200 characters"),
        ("q=%F0%9F%8D%8C%E2%80%8B%0A%09", None),
        ("status=failed&status=bogus", "“bogus” is not a known status"),
        ("q[]=x&page[]=2&ids=1", None),
    ],
)
def test_odd_query_strings_never_fail(client_logged_in, user, query, note):
    ImageRequestFactory(user=user, prompt="banana")
    for headers in ({}, HTMX):
        html = listed(client_logged_in, f"?{query}", **headers)
        if note:
            assert note in html
        assert 'class="note"' in html if note else 'class="note"' not in html


def test_strict_parsing_leaves_out_what_it_cannot_use():
    filters = history.history_filters(
        {"status": "nope", "model": "nano-banana-pro", "q": " a\x00b  c ", "page": "2"}
    )
    assert (filters.status, filters.model, filters.q, filters.page) == (
        "",
        "nano-banana-pro",
        "a b c",
        2,
    )
    assert filters.querystring() == "?q=a+b+c&model=nano-banana-pro&page=2"
    assert len(filters.notes) == 1


# --- the gallery --------------------------------------------------------------------------


def test_gallery_shows_finished_images_as_thumbnails_only(client_logged_in, user):
    image_request = done(user)
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    running = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    html = listed(client_logged_in, "?view=gallery")
    image = image_request.images.get()
    assert f'id="tile-{image_request.pk}"' in html
    assert (
        f'id="tile-{failed.pk}"' not in html and f'id="tile-{running.pk}"' not in html
    )
    assert reverse("image-file", args=[image_request.pk, image.pk, "thumbnail"]) in html
    assert "/full/" not in html
    assert 'loading="lazy"' in html
    assert f'name="ids" value="{image_request.pk}" form="selection"' in html


def test_gallery_pages_keep_the_view_and_filters(client_logged_in, user, settings):
    settings.BANANAWEB_GALLERY_PAGE_SIZE = 3
    made = [done(user, prompt="banana") for _ in range(7)]
    html = listed(client_logged_in, "?view=gallery&q=banana&page=2", **HTMX)
    assert "Page 2 of 3" in html
    assert [f'id="tile-{r.pk}"' in html for r in reversed(made)] == [
        False, False, False, True, True, True, False,
    ]  # fmt: skip
    assert 'href="/?q=banana&amp;view=gallery&amp;page=3"' in html


def test_gallery_queries_do_not_grow_with_its_length(
    client_logged_in, user, django_assert_max_num_queries
):
    for _ in range(20):
        done(user)
    with django_assert_max_num_queries(10):
        html = listed(client_logged_in, "?view=gallery")
    assert html.count('class="tile"') == 20


# --- groups -----------------------------------------------------------------------------


def grouped(user, kind: str, statuses: list[str], **fields) -> list[ImageRequest]:
    group = uuid.uuid4()
    members = []
    for status in statuses:
        member = ImageRequestFactory(
            user=user, group=group, group_kind=kind, status=status, **fields
        )
        if status == Status.COMPLETED:
            make_image(member)
        members.append(member)
    return members


def test_a_group_is_one_card_with_a_tile_each(client_logged_in, user):
    members = grouped(
        user,
        ImageRequest.GroupKind.VARIATIONS,
        [Status.COMPLETED, Status.IN_PROGRESS, Status.QUEUED, Status.COMPLETED],
        prompt="A banana in four moods",
    )
    single = done(user)
    html = listed(client_logged_in)
    assert html.count('class="card-group"') == 1
    assert "4 variations" in html
    assert all(shown(html, *members, single))
    assert reverse("group-download", args=[members[0].group]) in html
    # The tiles in flight join the page's one poll, as cards do.
    assert html.count('hx-trigger="every 2s"') == 1
    assert html.count('form="request-poll"') == 2 * 2  # an id and a version each
    tile = client_logged_in.get(
        reverse("request-updates"),
        {"ids": members[0].pk},
        headers={"HX-Request": "true"},
    )
    assert tile.status_code == HTMX_STOP_POLLING
    assert "hx-trigger" not in tile.content.decode()


def test_an_every_model_group_says_so(client_logged_in, user):
    grouped(user, ImageRequest.GroupKind.MODELS, [Status.FAILED] * 3)
    html = listed(client_logged_in)
    assert "Every model" in html
    assert html.count('class="card-group"') == 1


def test_variations_just_made_join_the_history_as_one_group_card(client_logged_in):
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "A banana, thrice", "count": "3"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'hx-swap-oob="afterbegin:#history-list"' in html
    assert html.count('class="card-group"') == 1 and "3 variations" in html
    # Each tile joins the page's one poll, (re)started with them.
    assert html.count('name="ids" value=') == 3
    assert html.count('hx-trigger="every 2s"') == 1


def test_a_group_counts_once_in_the_pages(client_logged_in, user, settings):
    settings.BANANAWEB_HISTORY_PAGE_SIZE = 2
    grouped(user, ImageRequest.GroupKind.VARIATIONS, [Status.FAILED] * 4)
    ImageRequestFactory(user=user)
    html = listed(client_logged_in)
    assert 'class="pager"' not in html  # two entries: one page


def test_history_with_groups_stays_within_the_query_budget(
    client_logged_in, user, django_assert_max_num_queries
):
    for _ in range(5):
        grouped(user, ImageRequest.GroupKind.VARIATIONS, [Status.COMPLETED] * 3)
    for _ in range(10):
        done(user)
    with django_assert_max_num_queries(10):
        html = listed(client_logged_in)
    assert html.count('class="card-group"') == 5


# --- the card's actions -------------------------------------------------------------------


def test_a_finished_card_offers_edit_reference_download_star_and_select(
    client_logged_in, user
):
    image_request = done(user)
    image = image_request.images.get()
    html = listed(client_logged_in)
    assert f"?action=edit&amp;references={image.pk}#edit-form" in html
    assert f"?action=generate&amp;references={image.pk}#generate-form" in html
    assert reverse("request-download", args=[image_request.pk]) in html
    assert reverse("request-star", args=[image_request.pk]) in html
    assert f'id="select-{image_request.pk}"' in html


def test_a_card_in_flight_has_no_select_box(client_logged_in, user):
    running = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    html = listed(client_logged_in)
    assert f'id="select-{running.pk}"' not in html


def test_star_toggles_and_returns_the_card(client_logged_in, user):
    image_request = done(user)
    url = reverse("request-star", args=[image_request.pk])
    response = client_logged_in.post(url, {"starred": "1"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="request-{image_request.pk}"' in html
    assert 'aria-pressed="true"' in html and 'name="starred" value="0"' in html
    image_request.refresh_from_db()
    assert image_request.starred
    client_logged_in.post(url, {"starred": "0"}, headers=HTMX)
    image_request.refresh_from_db()
    assert not image_request.starred


def test_star_without_js_goes_back_to_the_history(client_logged_in, user):
    image_request = done(user)
    response = client_logged_in.post(
        reverse("request-star", args=[image_request.pk]), {"starred": "1"}
    )
    assert response.status_code == 302
    assert response.url == f"/#request-{image_request.pk}"


@pytest.mark.parametrize("value", ["", "yes", "true", "２"])
def test_star_takes_only_one_or_zero(client_logged_in, user, value):
    image_request = done(user)
    response = client_logged_in.post(
        reverse("request-star", args=[image_request.pk]), {"starred": value}
    )
    assert response.status_code == 400
    image_request.refresh_from_db()
    assert not image_request.starred


def test_a_star_in_flight_keeps_the_card_polling(client_logged_in, user):
    running = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    response = client_logged_in.post(
        reverse("request-star", args=[running.pk]), {"starred": "1"}, headers=HTMX
    )
    # It still names itself to the page's poller.
    assert f'name="ids" value="{running.pk}" form="request-poll"' in (
        response.content.decode()
    )


# --- downloads ----------------------------------------------------------------------------


def test_download_is_the_original_file_with_its_real_name(client_logged_in, user):
    image_request = done(user, prompt="A banana, on a Table! (v2)")
    response = client_logged_in.get(
        reverse("request-download", args=[image_request.pk])
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    name = f"a-banana-on-a-table-v2-{image_request.pk}.png"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert b"".join(response.streaming_content) == png_bytes()


@pytest.mark.parametrize(
    ("prompt", "start"),
    [
        ("香蕉在桌子上", "image-"),
        ("!!!", "image-"),
        ("Crème brûlée " * 20, "creme-brulee-creme-brulee"),
    ],
)
def test_download_names_are_plain_and_short(user, prompt, start):
    image = make_image(ImageRequestFactory(user=user, prompt=prompt))
    name = downloads.download_name(image)
    assert name.startswith(start) and name.endswith(f"-{image.image_request_id}.png")
    assert name.isascii() and len(name) <= 80 and "--" not in name


def test_download_of_a_request_without_an_image_is_404(client_logged_in, user):
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    response = client_logged_in.get(reverse("request-download", args=[failed.pk]))
    assert response.status_code == 404


def read_zip(response) -> dict[str, bytes]:
    assert isinstance(response, StreamingHttpResponse)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    return {name: archive.read(name) for name in archive.namelist()}


def test_a_selection_downloads_as_one_streamed_zip(client_logged_in, user):
    first = done(user, prompt="First banana")
    second = done(user, prompt="Second banana")
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    response = client_logged_in.get(
        reverse("selection-download"),
        {"ids": [first.pk, second.pk, failed.pk]},
        headers={"Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == (
        'attachment; filename="bananaweb-3-images.zip"'
    )
    assert not response.has_header("Content-Encoding")  # stored as it is
    assert read_zip(response) == {
        f"first-banana-{first.pk}.png": png_bytes(),
        f"second-banana-{second.pk}.png": png_bytes(),
    }


def test_a_group_downloads_as_one_zip(client_logged_in, user, other_user):
    members = grouped(
        user,
        ImageRequest.GroupKind.VARIATIONS,
        [Status.COMPLETED, Status.COMPLETED, Status.FAILED],
        prompt="Banana",
    )
    response = client_logged_in.get(reverse("group-download", args=[members[0].group]))
    assert response.status_code == 200
    assert f"banana-variations-{members[0].pk}.zip" in response["Content-Disposition"]
    assert sorted(read_zip(response)) == [
        f"banana-{members[0].pk}.png",
        f"banana-{members[1].pk}.png",
    ]


def test_zip_is_written_while_it_is_sent(user, settings):
    """Chunks of about CHUNK_SIZE, file after file: never the archive in memory."""
    files = []
    for n in range(3):
        image_request = ImageRequestFactory(user=user, prompt=f"big {n}")
        content = os.urandom(3 * downloads.CHUNK_SIZE + 100)
        image = make_image(image_request, content=content)
        files.append((downloads.download_name(image), image.file, content))
    chunks = list(downloads.zip_stream([(name, file) for name, file, _ in files]))
    assert len(chunks) >= 12
    assert max(len(chunk) for chunk in chunks) < 2 * downloads.CHUNK_SIZE
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert [archive.read(name) for name, _, _ in files] == [c for _, _, c in files]


def test_zip_of_requests_without_images_is_404(client_logged_in, user):
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    response = client_logged_in.get(reverse("selection-download"), {"ids": failed.pk})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([], "Nothing was selected"),
        (["x"], "by their numbers"),
        (["１"], "by their numbers"),
        ([str(n) for n in range(1, 102)], "at most 100"),
    ],
)
def test_a_bad_selection_is_a_clear_message(client_logged_in, user, ids, message):
    for name in ("selection-download", "compare", "requests-delete"):
        response = client_logged_in.get(reverse(name), {"ids": ids})
        assert response.status_code == 400
        assert message in response.content.decode()


# --- compare ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 4])
def test_compare_shows_two_to_four_at_full_size_with_parameters(
    client_logged_in, user, count
):
    chosen = [
        done(user, model=model, aspect_ratio="16:9")
        for model in ["nano-banana-pro", "nano-banana-2"] * 2
    ][:count]
    response = client_logged_in.get(reverse("compare"), {"ids": [r.pk for r in chosen]})
    html = response.content.decode()
    assert response.status_code == 200
    assert f"Compare {count} images" in html
    for image_request in chosen:
        image = image_request.images.get()
        assert reverse("image-file", args=[image_request.pk, image.pk, "full"]) in html
        assert image_request.prompt in html
    assert "Nano Banana Pro" in html and "16:9" in html
    assert "/thumbnail/" not in html


@pytest.mark.parametrize("count", [1, 5])
def test_compare_needs_two_to_four(client_logged_in, user, count):
    chosen = [done(user) for _ in range(count)]
    response = client_logged_in.get(reverse("compare"), {"ids": [r.pk for r in chosen]})
    assert response.status_code == 400
    assert "Compare takes 2 to 4 images" in response.content.decode()


# --- bulk delete --------------------------------------------------------------------------


def test_delete_asks_first_listing_what_goes_and_what_stays(client_logged_in, user):
    finished = done(user, prompt="Old banana")
    running = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    response = client_logged_in.get(
        reverse("requests-delete"), {"ids": [finished.pk, running.pk]}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Delete 1 request?" in html and "Old banana" in html
    assert f'name="ids" value="{finished.pk}"' in html
    assert f'name="ids" value="{running.pk}"' not in html
    assert "still being made and will be left" in html
    # Nothing deleted by asking.
    assert ImageRequest.objects.for_user(user).count() == 2


def test_delete_removes_files_keeps_the_accounting_row_and_leaves_in_flight(
    client_logged_in, user
):
    finished = [done(user) for _ in range(2)]
    running = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    paths = [r.images.get().file.path for r in finished]
    response = client_logged_in.post(
        reverse("requests-delete"), {"ids": [*(r.pk for r in finished), running.pk]}
    )
    assert response.status_code == 302 and response.url == reverse("index")
    assert not any(os.path.exists(path) for path in paths)
    assert not GeneratedImage.objects.filter(image_request__in=finished).exists()
    for image_request in finished:
        image_request.refresh_from_db()  # the row stays, for the staff's accounting
        assert image_request.deleted_at is not None
    running.refresh_from_db()
    assert running.deleted_at is None
    html = listed(client_logged_in)
    assert "Deleted 2 requests. 1 still being made was left" in html
    assert shown(html, *finished, running) == [False, False, True]


def test_delete_sent_twice_deletes_once_and_does_not_fail(client_logged_in, user):
    finished = done(user)
    url = reverse("requests-delete")
    client_logged_in.post(url, {"ids": [finished.pk]})
    response = client_logged_in.post(url, {"ids": [finished.pk]})
    assert response.status_code == 302
    assert "Deleted 0 requests." in listed(client_logged_in)


def test_delete_confirmation_of_only_in_flight_offers_nothing(client_logged_in, user):
    running = ImageRequestFactory(user=user, status=Status.QUEUED)
    html = client_logged_in.get(
        reverse("requests-delete"), {"ids": [running.pk]}
    ).content.decode()
    assert (
        "Nothing can be deleted yet" in html
        and "<button" not in html.split("<main")[1].split("</main>")[0]
    )


# --- ownership: another user's things are a 404, everywhere --------------------------------


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "compare"),
        ("get", "selection-download"),
        ("get", "requests-delete"),
        ("post", "requests-delete"),
    ],
)
def test_another_users_id_in_a_selection_is_404(
    client_logged_in, user, other_user, method, name
):
    mine = [done(user), done(user)]
    theirs = done(other_user)
    response = getattr(client_logged_in, method)(
        reverse(name), {"ids": [mine[0].pk, mine[1].pk, theirs.pk]}
    )
    assert response.status_code == 404
    assert ImageRequest.objects.filter(deleted_at__isnull=False).count() == 0
    assert theirs.images.exists()


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("post", "request-star"),
        ("get", "request-download"),
        ("get", "group-download"),
    ],
)
def test_another_users_request_or_group_is_404(
    client_logged_in, other_user, method, name
):
    theirs = grouped(other_user, ImageRequest.GroupKind.VARIATIONS, [Status.COMPLETED])[
        0
    ]
    arg = theirs.group if name == "group-download" else theirs.pk
    response = getattr(client_logged_in, method)(
        reverse(name, args=[arg]), {"starred": "1"} if method == "post" else None
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert not theirs.starred


def test_a_deleted_request_is_gone_from_every_new_url(client_logged_in, user):
    image_request = done(user)
    client_logged_in.post(reverse("requests-delete"), {"ids": [image_request.pk]})
    for response in (
        client_logged_in.get(reverse("request-download", args=[image_request.pk])),
        client_logged_in.post(
            reverse("request-star", args=[image_request.pk]), {"starred": "1"}
        ),
        client_logged_in.get(
            reverse("compare"), {"ids": [image_request.pk, done(user).pk]}
        ),
    ):
        assert response.status_code == 404


def test_another_users_history_never_shows(client_logged_in, user, other_user):
    theirs = done(other_user, prompt="secret banana", starred=True)
    for query in ("?q=secret", "?starred=1", "?view=gallery", "?q=banana&view=gallery"):
        html = listed(client_logged_in, query)
        assert "secret banana" not in html
        assert f'id="tile-{theirs.pk}"' not in html
