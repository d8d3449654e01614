"""One poll per page (issue 13): the `request-updates` view and the poller on the pages."""

import re

import pytest
from django.urls import reverse
from django_htmx.http import HTMX_STOP_POLLING

from bananaweb import fragments, polling
from bananaweb.models import ImageRequest
from tests.factories import ImageRequestFactory, make_image

Status = ImageRequest.Status
HTMX = {"HX-Request": "true"}

pytestmark = pytest.mark.usefixtures("clear_tasks")


def updates(client, *image_requests, since=(), **params):
    query = {"ids": ",".join(str(r.pk) for r in image_requests), **params}
    if since:
        query["since"] = ",".join(f"{r.pk}:{polling.card_version(r)}" for r in since)
    return client.get(reverse("request-updates"), query, headers=HTMX)


def oob_cards(html: str) -> list[int]:
    """The ids of the cards the answer swaps out of band, in order."""
    return [
        int(pk) for pk in re.findall(r'id="request-(\d+)"[^>]*hx-swap-oob="true"', html)
    ]


def poller(html: str) -> str:
    match = re.search(r'<form id="request-poll"[^>]*>', html)
    assert match, "no poller in the page"
    return match[0]


# --- the answer -------------------------------------------------------------------------


def test_only_cards_that_changed_since_the_page_saw_them_come_back(
    client_logged_in, user
):
    unchanged = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    moved_on = ImageRequestFactory(user=user, status=Status.QUEUED)
    seen_queued = ImageRequest.objects.get(pk=moved_on.pk)
    moved_on.status = Status.IN_PROGRESS
    moved_on.upstream_status = "processing"
    moved_on.save()

    response = updates(
        client_logged_in, unchanged, moved_on, since=[unchanged, seen_queued]
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert oob_cards(html) == [moved_on.pk]
    assert "In progress (processing)" in html
    # Still polling, and both still ask: the moved-on card brings its new version.
    assert 'hx-trigger="every 2s"' in poller(html)
    assert f'data-ids="{unchanged.pk},{moved_on.pk}"' in poller(html)
    assert f'value="{moved_on.pk}:{polling.card_version(moved_on)}"' in html


def test_a_first_poll_without_versions_sends_every_card(client_logged_in, user):
    cards = ImageRequestFactory.create_batch(3, user=user, status=Status.QUEUED)
    html = updates(client_logged_in, *cards).content.decode()
    assert oob_cards(html) == [card.pk for card in cards]


def test_a_card_that_finished_comes_back_final_and_the_poll_stops(
    client_logged_in, user
):
    image_request = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    seen = ImageRequest.objects.get(pk=image_request.pk)
    image_request.complete()
    image_request.save()
    image = make_image(image_request)

    response = updates(client_logged_in, image_request, since=[seen])

    assert response.status_code == HTMX_STOP_POLLING
    html = response.content.decode()
    assert oob_cards(html) == [image_request.pk]
    assert reverse("image-file", args=[image_request.pk, image.pk, "thumbnail"]) in html
    # htmx 2 stops on 286; a poller without a trigger stops any htmx.
    assert "hx-trigger" not in poller(html)
    assert 'form="request-poll"' not in html  # the final card asks nothing more


def test_nothing_changed_and_still_in_flight_is_the_poller_alone(
    client_logged_in, user
):
    image_request = ImageRequestFactory(user=user, status=Status.SUBMITTING)
    response = updates(client_logged_in, image_request, since=[image_request])
    assert response.status_code == 200
    assert oob_cards(response.content.decode()) == []
    assert 'hx-trigger="every 2s"' in poller(response.content.decode())


def test_the_poller_alone_is_rendered_once_for_the_same_cards_in_flight(
    client_logged_in, user, monkeypatch
):
    """Most polls hear that nothing moved: that answer is remembered by the ids
    still in flight, and another set of ids gets its own."""
    first, second = ImageRequestFactory.create_batch(
        2, user=user, status=Status.IN_PROGRESS
    )
    rendered = []
    real = fragments.get_template

    def counting(name):
        rendered.append(name)
        return real(name)

    fragments.forget_remembered()
    monkeypatch.setattr(fragments, "get_template", counting)
    answers = [
        updates(client_logged_in, *cards, since=cards).content.decode()
        for cards in ([first, second], [first, second], [first], [first, second])
    ]
    assert rendered == [fragments.UPDATES_TEMPLATE] * 2
    assert answers[0] == answers[1] == answers[3]
    assert f'data-ids="{first.pk},{second.pk}"' in poller(answers[0])
    assert f'data-ids="{first.pk}"' in poller(answers[2])


def test_no_ids_stops_the_poll(client_logged_in):
    response = client_logged_in.get(reverse("request-updates"), headers=HTMX)
    assert response.status_code == HTMX_STOP_POLLING
    assert "hx-trigger" not in poller(response.content.decode())


# --- whose cards ------------------------------------------------------------------------


def test_other_users_private_ids_are_absent_as_if_they_did_not_exist(
    client_logged_in, user, other_user
):
    theirs = ImageRequestFactory(
        user=other_user, status=Status.IN_PROGRESS, prompt="Bob's secret banana"
    )
    response = updates(client_logged_in, theirs)
    # The same answer as for an id that exists for nobody.
    nobody = client_logged_in.get(
        reverse("request-updates"), {"ids": str(theirs.pk + 1000)}, headers=HTMX
    )
    assert response.status_code == nobody.status_code == HTMX_STOP_POLLING
    html = response.content.decode()
    assert "secret banana" not in html
    assert oob_cards(html) == []
    assert html.replace(str(theirs.pk), "N") == nobody.content.decode().replace(
        str(theirs.pk + 1000), "N"
    )


def test_mixed_ids_answer_only_with_the_users_own(client_logged_in, user, other_user):
    mine = ImageRequestFactory(user=user, status=Status.QUEUED)
    theirs = ImageRequestFactory(user=other_user, status=Status.QUEUED)
    html = updates(client_logged_in, mine, theirs).content.decode()
    assert oob_cards(html) == [mine.pk]
    assert f'data-ids="{mine.pk}"' in poller(html)


def test_a_teammates_shared_request_is_polled_like_any_visible_one(
    client_logged_in, other_user
):
    shared = ImageRequestFactory(
        user=other_user,
        status=Status.IN_PROGRESS,
        visibility=ImageRequest.Visibility.TEAM,
    )
    html = updates(client_logged_in, shared).content.decode()
    assert oob_cards(html) == [shared.pk]
    assert "bob" in html  # "By bob"


def test_a_deleted_request_is_absent(client_logged_in, user):
    image_request = ImageRequestFactory(user=user, status=Status.QUEUED)
    ImageRequest.objects.filter(pk=image_request.pk).update(
        deleted_at=image_request.created_at
    )
    response = updates(client_logged_in, image_request)
    assert response.status_code == HTMX_STOP_POLLING
    assert oob_cards(response.content.decode()) == []


def test_signed_out_is_sent_to_sign_in(client, db):
    response = client.get(reverse("request-updates"), {"ids": "1"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"ids": "3,seven"}, "ids are request numbers"),
        ({"ids": "-3"}, "ids are request numbers"),
        ({"ids": "1" * 40}, "ids are request numbers"),
        ({"ids": "３"}, "ids are request numbers"),  # a full-width digit
        ({"ids": ",".join(map(str, range(1, 200)))}, "At most 100 ids"),
        ({"ids": "3", "since": "3"}, "since lists id:version pairs"),
        ({"ids": "3", "since": "3:<script>"}, "since lists id:version pairs"),
        ({"ids": "3", "since": "x:abcdef12"}, "ids are request numbers"),
    ],
)
def test_bad_ids_are_a_400_that_says_why(client_logged_in, query, message):
    response = client_logged_in.get(reverse("request-updates"), query, headers=HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_ids_may_be_repeated_as_a_form_sends_them(client_logged_in, user):
    cards = ImageRequestFactory.create_batch(2, user=user, status=Status.QUEUED)
    response = client_logged_in.get(
        f"{reverse('request-updates')}?ids={cards[0].pk}&ids={cards[1].pk}",
        headers=HTMX,
    )
    assert oob_cards(response.content.decode()) == [c.pk for c in cards]


def test_only_get(client_logged_in):
    assert client_logged_in.post(reverse("request-updates")).status_code == 405


# --- cost -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 20])
def test_the_answer_costs_the_same_queries_for_1_or_20_ids(
    client_logged_in, user, other_user, django_assert_num_queries, count
):
    """Session, user, the versions of the user's own requests, of the teammate's
    (visible_to), then the changed cards and their images: 20 cards cost what one
    does."""
    cards = ImageRequestFactory.create_batch(
        count, user=user, status=Status.IN_PROGRESS
    )
    done = ImageRequestFactory(user=user, status=Status.COMPLETED)
    make_image(done)
    shared = ImageRequestFactory(
        user=other_user, status=Status.QUEUED, visibility=ImageRequest.Visibility.TEAM
    )
    with django_assert_num_queries(6):
        response = updates(client_logged_in, *cards, done, shared)
    assert len(oob_cards(response.content.decode())) == count + 2


@pytest.mark.parametrize("count", [1, 20])
def test_a_poll_where_nothing_changed_costs_one_query_beyond_the_sign_in(
    client_logged_in, user, django_assert_num_queries, count
):
    """The common poll: the user's own cards, none moved on since the page showed
    them. Session, user, one query of the cards; no images, no card rendered."""
    cards = ImageRequestFactory.create_batch(
        count, user=user, status=Status.IN_PROGRESS
    )
    with django_assert_num_queries(3):
        response = updates(client_logged_in, *cards, since=cards)
    assert response.status_code == 200
    assert oob_cards(response.content.decode()) == []
    ids = ",".join(str(card.pk) for card in cards)
    assert f'data-ids="{ids}"' in response.content.decode()


# --- the pages --------------------------------------------------------------------------


def test_the_main_page_polls_once_for_all_its_cards_in_flight(client_logged_in, user):
    ImageRequestFactory.create_batch(4, user=user, status=Status.IN_PROGRESS)
    ImageRequestFactory(user=user, status=Status.FAILED, error_message="Refused.")
    html = client_logged_in.get(reverse("index")).content.decode()
    assert html.count('hx-trigger="every 2s"') == 1
    assert 'hx-trigger="every 2s"' in poller(html)
    assert html.count('name="ids" value=') - html.count('form="selection"') == 4
    assert reverse("request-updates") in poller(html)


def test_a_page_with_nothing_in_flight_does_not_poll(client_logged_in, user):
    ImageRequestFactory(user=user, status=Status.COMPLETED)
    html = client_logged_in.get(reverse("index")).content.decode()
    assert "hx-trigger" not in poller(html)


def test_a_history_page_brings_its_own_poller(client_logged_in, user):
    ImageRequestFactory(user=user, status=Status.QUEUED, prompt="A flying banana")
    ImageRequestFactory(user=user, status=Status.COMPLETED, prompt="A still lemon")
    found = client_logged_in.get(
        reverse("index"), {"q": "banana"}, headers={**HTMX, "HX-Target": "history"}
    ).content.decode()
    assert 'hx-trigger="every 2s"' in poller(found)
    assert 'form="request-poll"' in found
    other = client_logged_in.get(
        reverse("index"), {"q": "lemon"}, headers={**HTMX, "HX-Target": "history"}
    ).content.decode()
    assert "hx-trigger" not in poller(other)


def test_a_groups_tiles_in_flight_join_the_one_poll(client_logged_in, user):
    group = ImageRequestFactory(user=user, status=Status.QUEUED).pk
    members = ImageRequestFactory.create_batch(3, user=user, status=Status.QUEUED)
    ImageRequest.objects.filter(pk__in=[m.pk for m in members]).update(
        group=f"00000000-0000-0000-0000-{group:012d}",
        group_kind=ImageRequest.GroupKind.VARIATIONS,
    )
    html = client_logged_in.get(reverse("index")).content.decode()
    assert html.count('hx-trigger="every 2s"') == 1
    for member in members:
        assert f'name="ids" value="{member.pk}" form="request-poll"' in html


def test_a_new_submission_joins_the_pages_poll(
    client_logged_in, user, upstream_token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(
            reverse("request-create"),
            {"action": "generate", "prompt": "A banana boat"},
            headers=HTMX,
        )
    assert response.status_code == 200
    html = response.content.decode()
    new = ImageRequest.objects.get()
    # The new card names itself to the poller, and the poller is (re)started out
    # of band: a page whose poll had stopped polls again.
    assert f'name="ids" value="{new.pk}" form="request-poll"' in html
    assert 'hx-swap-oob="true"' in poller(html)
    assert 'hx-trigger="every 2s"' in poller(html)


def test_a_new_private_request_sent_from_the_team_view_starts_no_poll(
    client_logged_in, user
):
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "A banana boat", "visibility": "private"},
        headers={**HTMX, "HX-Current-URL": "http://testserver/?scope=team"},
    )
    assert response.status_code == 200
    assert 'id="request-poll"' not in response.content.decode()


def test_the_old_per_card_poll_is_gone(client_logged_in, user):
    card = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    html = client_logged_in.get(reverse("index")).content.decode()
    assert f'id="request-{card.pk}"' in html
    assert f"/requests/{card.pk}/card/" not in html
