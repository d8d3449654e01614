"""Visibility and the team gallery (issue 12): private or team requests in every view
and URL (owner, teammate, staff, anonymous), the Team view with its search and its
person filter, stars of one's own, running a teammate's request again as one's
own, the default visibility (site, person, form, API) and the settings page."""

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from django.urls import reverse
from django_htmx.http import HTMX_STOP_POLLING

from bananaweb import history, services
from bananaweb.models import (
    GeneratedImage,
    ImageRequest,
    Reference,
    Star,
    Upload,
    UserPreference,
)
from tests.factories import ImageRequestFactory, UserFactory, make_image, make_upload
from tests.gateway_helpers import bearer, issue_token

Status = ImageRequest.Status
Visibility = ImageRequest.Visibility
PRIVATE, TEAM = Visibility.PRIVATE, Visibility.TEAM
HTMX = {"HX-Request": "true"}
HISTORY = {"HX-Request": "true", "HX-Target": "history"}
EDIT = {"action": "edit", "prompt": "Make it blue"}

pytestmark = pytest.mark.usefixtures("clear_tasks")


def done(user, visibility: str = PRIVATE, **fields) -> ImageRequest:
    """A completed request with its image."""
    image_request = ImageRequestFactory(
        user=user, status=Status.COMPLETED, visibility=visibility, **fields
    )
    make_image(image_request)
    return image_request


def html_of(response) -> str:
    return response.content.decode()


def listed(client, query: str = "", **headers) -> str:
    response = client.get(reverse("index") + query, headers=headers or None)
    assert response.status_code == 200
    return html_of(response)


def shown(html: str, *image_requests: ImageRequest) -> list[bool]:
    return [f'id="request-{r.pk}"' in html for r in image_requests]


@pytest.fixture
def staff(db):
    return UserFactory(username="staffer", is_staff=True)


@pytest.fixture
def as_other(client, other_user):
    client.force_login(other_user)
    return client


# --- who sees what --------------------------------------------------------------------


def test_visible_to_is_own_team_and_for_staff_everything_never_deleted(
    user, other_user, staff
):
    private = ImageRequestFactory(user=user)
    shared = ImageRequestFactory(user=user, visibility=TEAM)
    theirs = ImageRequestFactory(user=other_user)
    gone = ImageRequestFactory(user=user, visibility=TEAM)
    ImageRequest.objects.filter(pk=gone.pk).update(deleted_at="2026-01-01T00:00Z")

    def seen(who):
        return set(ImageRequest.objects.visible_to(who))

    assert seen(user) == {private, shared}
    assert seen(other_user) == {shared, theirs}
    assert seen(staff) == {private, shared, theirs}
    assert set(ImageRequest.objects.team()) == {shared}


def test_images_and_uploads_follow_their_requests(user, other_user):
    private, shared = done(user), done(user, visibility=TEAM)
    loose = make_upload(user, name="loose.png")
    used = make_upload(user, name="used.png")
    Reference.objects.create(image_request=shared, upload=used)
    assert set(GeneratedImage.objects.visible_to(other_user)) == {shared.images.get()}
    assert set(GeneratedImage.objects.visible_to(user)) == {
        private.images.get(),
        shared.images.get(),
    }
    assert set(Upload.objects.visible_to(other_user)) == {used}
    assert set(Upload.objects.visible_to(user)) == {loose, used}


def request_urls(image_request: ImageRequest) -> dict[str, str]:
    """Every page URL that reads one request."""
    image = image_request.images.get()
    return {
        "detail": reverse("request-detail", args=[image_request.pk]),
        "card": reverse("request-card", args=[image_request.pk]),
        "full": reverse("image-file", args=[image_request.pk, image.pk, "full"]),
        "thumbnail": reverse(
            "image-file", args=[image_request.pk, image.pk, "thumbnail"]
        ),
        "download": reverse("request-download", args=[image_request.pk]),
        "zip": reverse("selection-download") + f"?ids={image_request.pk}",
    }


READABLE = (200, HTMX_STOP_POLLING)


@pytest.mark.parametrize(
    ("visibility", "who", "sees"),
    [
        (PRIVATE, "owner", True),
        (PRIVATE, "teammate", False),
        (PRIVATE, "staff", True),
        (TEAM, "owner", True),
        (TEAM, "teammate", True),
        (TEAM, "staff", True),
    ],
)
def test_every_view_of_a_request_follows_its_visibility(
    client, user, other_user, staff, visibility, who, sees
):
    image_request = done(user, visibility=visibility)
    client.force_login({"owner": user, "teammate": other_user, "staff": staff}[who])
    for name, url in request_urls(image_request).items():
        status = client.get(url).status_code
        assert (status in READABLE) if sees else (status == 404), (name, status)


@pytest.mark.parametrize("visibility", [PRIVATE, TEAM])
def test_anonymous_sees_no_request(client, user, visibility):
    image_request = done(user, visibility=visibility)
    for name, url in request_urls(image_request).items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response.url.startswith(reverse("login")), name


def test_a_group_zip_holds_only_what_the_user_can_see(as_other, user):
    group = "5b2c8f1e-1111-4222-8333-944455556666"
    shared = done(user, visibility=TEAM, group=group, group_kind="variations")
    done(user, visibility=PRIVATE, group=group, group_kind="variations")
    response = as_other.get(reverse("group-download", args=[group]))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert [name.rsplit("-", 1)[1] for name in archive.namelist()] == [
        f"{shared.pk}.png"
    ]


def test_a_private_group_is_404_to_a_teammate(as_other, user):
    group = "5b2c8f1e-1111-4222-8333-944455556667"
    done(user, group=group, group_kind="variations")
    assert as_other.get(reverse("group-download", args=[group])).status_code == 404


def test_compare_takes_team_images_but_not_a_private_one(as_other, user, other_user):
    mine = done(other_user)
    shared = done(user, visibility=TEAM)
    private = done(user)
    url = reverse("compare")
    ok = as_other.get(url, {"ids": [mine.pk, shared.pk]})
    assert ok.status_code == 200
    assert "By</dt><dd>alice</dd>" in html_of(ok)
    assert as_other.get(url, {"ids": [mine.pk, private.pk]}).status_code == 404


def test_an_upload_is_seen_with_the_request_made_from_it(client, user, other_user):
    upload = make_upload(user)
    image_request = ImageRequestFactory(user=user)
    Reference.objects.create(image_request=image_request, upload=upload)
    url = reverse("upload-file", args=[upload.pk])
    client.force_login(other_user)
    assert client.get(url).status_code == 404
    ImageRequest.objects.filter(pk=image_request.pk).update(visibility=TEAM)
    assert client.get(url).status_code == 200


def test_the_api_stays_personal(client, user, other_user):
    """A teammate's shared request is no task of theirs, nor its image."""
    image_request = done(user, visibility=TEAM)
    image = image_request.images.get()
    theirs = bearer(issue_token(other_user))
    response = client.get(reverse("gateway-image", args=[image.pk]), headers=theirs)
    assert response.status_code == 404
    client.force_login(other_user)
    assert client.get(reverse("gateway-image", args=[image.pk])).status_code == 404


def test_the_api_task_result_of_a_shared_request_is_404_to_a_teammate(
    client, user, other_user, clear_tasks
):
    services.user_preference_set(user=user, default_visibility=TEAM)
    response = client.post(
        reverse("gateway-generate"),
        data=json.dumps({"prompt": "A pear", "action": "generate"}),
        content_type="application/json",
        headers=bearer(issue_token(user)),
    )
    task_id = response.json()["taskId"]
    url = reverse("gateway-task-result") + f"?taskId={task_id}"
    assert client.get(url, headers=bearer(issue_token(user))).status_code == 200
    assert client.get(url, headers=bearer(issue_token(other_user))).status_code == 404


# --- the owner's alone: delete, visibility, resubmit ----------------------------------


def test_a_teammate_sees_a_shared_request_read_only(as_other, user):
    image_request = done(user, visibility=TEAM, prompt="A shared pear")
    html = html_of(as_other.get(reverse("request-detail", args=[image_request.pk])))
    assert "By <strong>alice</strong>" in html
    assert "Visible to the team" in html
    assert 'id="detail-visibility"' not in html
    assert reverse("request-visibility", args=[image_request.pk]) not in html
    assert "Run again" in html and "of your own" in html
    assert f"?template={image_request.pk}" in html  # use as template
    assert f"references={image_request.images.get().pk}" in html  # as a reference


def test_the_owner_changes_visibility_from_the_detail_page(client_logged_in, user):
    image_request = done(user)
    detail = reverse("request-detail", args=[image_request.pk])
    html = html_of(client_logged_in.get(detail))
    assert 'id="detail-visibility"' in html and "Yours" in html
    response = client_logged_in.post(
        reverse("request-visibility", args=[image_request.pk]),
        {"visibility": "team", "next": detail},
    )
    assert response.status_code == 302 and response.url == detail
    image_request.refresh_from_db()
    assert image_request.visibility == TEAM


def test_the_owner_shares_from_the_card(client_logged_in, user):
    image_request = done(user)
    html = listed(client_logged_in)
    assert f'id="share-{image_request.pk}"' in html
    assert 'name="visibility" value="team"' in html
    response = client_logged_in.post(
        reverse("request-visibility", args=[image_request.pk]),
        {"visibility": "team"},
        headers=HTMX,
    )
    card = html_of(response)
    assert response.status_code == 200
    assert f'id="request-{image_request.pk}"' in card
    assert 'aria-pressed="true"' in card.split(f'id="share-{image_request.pk}"')[1]
    assert 'name="visibility" value="private"' in card
    assert ImageRequest.objects.get(pk=image_request.pk).visibility == TEAM


def test_a_bad_visibility_is_refused(client_logged_in, user):
    image_request = done(user)
    url = reverse("request-visibility", args=[image_request.pk])
    assert client_logged_in.post(url, {"visibility": "world"}).status_code == 400
    assert ImageRequest.objects.get(pk=image_request.pk).visibility == PRIVATE


def test_the_next_page_is_ours_only(client_logged_in, user):
    image_request = done(user)
    response = client_logged_in.post(
        reverse("request-visibility", args=[image_request.pk]),
        {"visibility": "team", "next": "https://evil.test/"},
    )
    assert response.url == f"{reverse('index')}#request-{image_request.pk}"


@pytest.mark.parametrize("who", ["teammate", "staff"])
def test_nobody_else_changes_visibility_resubmits_or_deletes(
    client, user, other_user, staff, who
):
    image_request = done(user, visibility=TEAM)
    failed = ImageRequestFactory(user=user, status=Status.FAILED, visibility=TEAM)
    client.force_login(other_user if who == "teammate" else staff)
    visibility = reverse("request-visibility", args=[image_request.pk])
    assert client.post(visibility, {"visibility": "private"}).status_code == 404
    resubmit = reverse("request-resubmit", args=[failed.pk])
    assert client.post(resubmit).status_code == 404
    delete = reverse("requests-delete")
    assert client.get(delete, {"ids": [image_request.pk]}).status_code == 404
    assert client.post(delete, {"ids": [image_request.pk]}).status_code == 404
    assert ImageRequest.objects.filter(user=user, deleted_at=None).count() == 2
    assert ImageRequest.objects.get(pk=image_request.pk).visibility == TEAM
    assert ImageRequest.objects.count() == 2


def test_a_teammates_card_has_no_owner_tools(as_other, user):
    image_request = done(user, visibility=TEAM)
    html = listed(as_other, "?scope=team")
    card = html[html.index(f'id="request-{image_request.pk}"') :]
    card = card[: card.index("</li>")]
    assert "By <strong>alice</strong>" in card
    assert f'id="share-{image_request.pk}"' not in card
    assert f'id="star-{image_request.pk}"' in card
    assert f'id="select-{image_request.pk}"' in card
    assert "requests/delete/" not in html  # no Delete… in the Team view


# --- the Team view --------------------------------------------------------------------


def test_the_team_view_lists_everyones_shared_requests(as_other, user, other_user):
    alices_shared = done(user, visibility=TEAM)
    alices_private = done(user)
    bobs_shared = done(other_user, visibility=TEAM)
    bobs_private = done(other_user)
    html = listed(as_other, "?scope=team")
    assert shown(html, alices_shared, alices_private, bobs_shared, bobs_private) == [
        True,
        False,
        True,
        False,
    ]
    assert '<h2 id="history-title">Team images</h2>' in html
    assert '<input type="hidden" name="scope" value="team">' in html
    mine = listed(as_other)
    assert shown(mine, alices_shared, bobs_shared, bobs_private) == [
        False,
        True,
        True,
    ]


def test_mine_and_team_are_two_links(client_logged_in):
    html = listed(client_logged_in)
    assert '<nav class="scope-switch" aria-label="Whose images">' in html
    assert '<a href="/" aria-current="page">Mine</a>' in html
    assert '<a href="/?scope=team">Team</a>' in html
    team = listed(client_logged_in, "?scope=team")
    assert '<a href="/?scope=team" aria-current="page">Team</a>' in team


def test_the_team_view_searches_and_filters(as_other, user, other_user):
    boat = done(user, visibility=TEAM, prompt="A banana boat")
    cat = done(user, visibility=TEAM, prompt="A sleeping cat")
    private_boat = done(user, prompt="A private banana boat")
    html = listed(as_other, "?scope=team&q=banana+boat", **HISTORY)
    assert shown(html, boat, cat, private_boat) == [True, False, False]
    assert "1 match." in html
    # The address bar keeps the Team view, and clearing stays in it.
    response = as_other.get(
        reverse("index") + "?scope=team&q=banana+boat", headers=HISTORY
    )
    assert response["HX-Push-Url"] == "/?scope=team&q=banana+boat"
    assert 'href="/?scope=team"' in html


def test_the_person_filter(as_other, user, other_user):
    carol = UserFactory(username="carol")
    alices = done(user, visibility=TEAM)
    carols = done(carol, visibility=TEAM)
    done(UserFactory(username="dave"))  # nothing shared: not a choice
    html = listed(as_other, "?scope=team")
    assert 'id="history-person"' in html
    choices = html[html.index('id="history-person"') :]
    choices = choices[: choices.index("</select>")]
    assert '<option value="alice">alice</option>' in choices
    assert '<option value="carol">carol</option>' in choices
    assert "dave" not in choices and "bob" not in choices
    only_carol = listed(as_other, "?scope=team&person=carol")
    assert shown(only_carol, alices, carols) == [False, True]
    assert '<option value="carol" selected>carol</option>' in only_carol


def test_an_unknown_person_is_a_note_not_an_error(as_other, user):
    alices = done(user, visibility=TEAM)
    html = listed(as_other, "?scope=team&person=dave")
    assert "“dave” has shared no images with the team" in html
    assert shown(html, alices) == [True]


def test_a_person_in_my_own_view_is_ignored(client_logged_in, user):
    mine = done(user)
    html = listed(client_logged_in, "?person=alice")
    assert "Choosing a person applies to the Team view" in html
    assert shown(html, mine) == [True]
    assert 'id="history-person"' not in html


def test_a_bad_scope_shows_mine(client_logged_in, user):
    html = listed(client_logged_in, "?scope=everyone")
    assert "is not a choice of images; showing yours." in html
    assert '<h2 id="history-title">Your images</h2>' in html


def test_the_team_gallery(as_other, user):
    shared = done(user, visibility=TEAM)
    private = done(user)
    html = listed(as_other, "?scope=team&view=gallery")
    assert f'id="tile-{shared.pk}"' in html
    assert f'id="tile-{private.pk}"' not in html
    assert '<span class="tile__author">alice</span>' in html


def test_the_team_view_has_its_own_empty_state(client_logged_in):
    html = listed(client_logged_in, "?scope=team")
    assert "Nothing is shared with the team yet." in html


def test_the_team_view_stays_within_the_query_budget(
    as_other, user, other_user, django_assert_max_num_queries
):
    for owner in (user, other_user, UserFactory(username="carol")):
        for _ in range(5):
            star_of = done(owner, visibility=TEAM)
        services.image_request_star(
            image_request=star_of, starred=True, user=other_user
        )
    with django_assert_max_num_queries(12):
        html = listed(as_other, "?scope=team")
    assert html.count('class="card card--completed"') == 15
    with django_assert_max_num_queries(12):
        html = listed(as_other, "?scope=team&view=gallery")
    assert html.count('class="tile"') == 15


def test_filters_parse_scope_and_person():
    filters = history.history_filters(
        {"scope": "team", "person": "carol", "q": "pear"}, people=["carol"]
    )
    assert (filters.scope, filters.person, filters.notes) == ("team", "carol", ())
    assert filters.team and filters.narrowed
    assert filters.querystring() == "?scope=team&q=pear&person=carol"
    assert filters.cleared == "?scope=team"
    assert not history.history_filters({"scope": "team"}).narrowed


# --- stars are each person's own ------------------------------------------------------


def test_a_teammate_stars_a_shared_request_for_themselves(as_other, user):
    image_request = done(user, visibility=TEAM)
    url = reverse("request-star", args=[image_request.pk])
    response = as_other.post(url, {"starred": "1"}, headers=HTMX)
    assert response.status_code == 200
    assert 'aria-pressed="true"' in html_of(response)
    assert list(Star.objects.values_list("user__username", flat=True)) == ["bob"]
    # Not the owner's star.
    image_request.refresh_from_db()
    assert not image_request.starred


def test_each_person_sees_their_own_stars(client, user, other_user):
    image_request = done(user, visibility=TEAM)
    services.image_request_star(image_request=image_request, starred=True, user=user)
    star_button = f'id="star-{image_request.pk}" aria-pressed="true"'
    client.force_login(user)
    assert star_button in listed(client)
    client.force_login(other_user)
    assert star_button not in listed(client, "?scope=team")
    assert not shown(listed(client, "?scope=team&starred=1"), image_request)[0]
    services.image_request_star(
        image_request=image_request, starred=True, user=other_user
    )
    assert shown(listed(client, "?scope=team&starred=1"), image_request) == [True]
    # Starred, in the Team view, but not in Bob's own images.
    assert shown(listed(client, "?starred=1"), image_request) == [False]


def test_a_star_from_the_detail_page_comes_back_to_it(as_other, user):
    image_request = done(user, visibility=TEAM)
    detail = reverse("request-detail", args=[image_request.pk])
    response = as_other.post(
        reverse("request-star", args=[image_request.pk]),
        {"starred": "1", "next": detail},
    )
    assert response.status_code == 302 and response.url == detail
    assert 'aria-pressed="true"' in html_of(as_other.get(detail))


def test_a_private_request_cant_be_starred_by_others(as_other, user):
    image_request = done(user)
    url = reverse("request-star", args=[image_request.pk])
    assert as_other.post(url, {"starred": "1"}).status_code == 404
    assert not Star.objects.exists()


def test_stars_twice_are_one_and_unstar_removes_it(user, other_user):
    image_request = done(user, visibility=TEAM)
    for _ in range(2):
        services.image_request_star(
            image_request=image_request, starred=True, user=other_user
        )
    assert Star.objects.count() == 1
    services.image_request_star(
        image_request=image_request, starred=False, user=other_user
    )
    assert not Star.objects.exists()


def test_deleting_a_request_takes_everyones_stars(user, other_user):
    image_request = done(user, visibility=TEAM)
    for who in (user, other_user):
        services.image_request_star(image_request=image_request, starred=True, user=who)
    services.image_requests_delete(user=user, ids=[image_request.pk])
    assert not Star.objects.exists()


def test_compare_shows_the_viewers_stars(as_other, user, other_user):
    shared = done(user, visibility=TEAM)
    mine = done(other_user)
    services.image_request_star(image_request=shared, starred=True, user=user)
    html = html_of(as_other.get(reverse("compare"), {"ids": [shared.pk, mine.pk]}))
    assert "tile__star" not in html  # Alice's star is hers
    services.image_request_star(image_request=mine, starred=True, user=other_user)
    html = html_of(as_other.get(reverse("compare"), {"ids": [shared.pk, mine.pk]}))
    assert html.count('class="tile__star"') == 1


# Run in a process of its own, on a database of its own: migrating the test database
# back and forth would need a transactional test, whose flush loses what other
# migrations put in it.
MIGRATION_SCRIPT = """
import json
import django
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

django.setup()
BEFORE = ("bananaweb", "0007_prompt_search_index")
AFTER = ("bananaweb", "0008_visibility_stars_preferences")


def models_at(node):
    call_command("migrate", *node, verbosity=0)
    return MigrationExecutor(connection).loader.project_state([node]).apps


apps = models_at(BEFORE)
owner = apps.get_model("auth", "User").objects.create(username="alice")
fields = dict(user=owner, action="generate", prompt="Old", model="nano-banana-fast")
Request = apps.get_model("bananaweb", "ImageRequest")
starred = Request.objects.create(starred=True, **fields).pk
Request.objects.create(starred=False, **fields)

apps = models_at(AFTER)
stars = list(apps.get_model("bananaweb", "Star").objects.values_list(
    "user_id", "image_request_id"))
visibilities = sorted(set(apps.get_model("bananaweb", "ImageRequest").objects
    .values_list("visibility", flat=True)))

apps = models_at(BEFORE)
back = list(apps.get_model("bananaweb", "ImageRequest").objects
    .filter(starred=True).values_list("pk", flat=True))
print(json.dumps(dict(owner=owner.pk, starred=starred, stars=stars,
    visibilities=visibilities, back=back)))
"""


def test_the_migration_makes_a_star_of_each_starred_request(tmp_path):
    env = os.environ | {
        "BANANAWEB_DEV": "1",
        "BANANAWEB_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", MIGRATION_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["stars"] == [[found["owner"], found["starred"]]]
    assert found["visibilities"] == ["private"]
    assert found["back"] == [found["starred"]]  # and back again


# --- working from a teammate's images: run again, template, reference -----------------


def test_run_again_of_a_teammates_request_is_the_viewers_own(
    as_other, user, other_user, settings
):
    parent_image = done(user, visibility=TEAM).images.get()
    theirs = services.image_request_create(
        user=user,
        data=EDIT | {"model": "nano-banana-pro", "resolution": "2K"},
        references=[parent_image],
        visibility=TEAM,
    )
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 1  # Alice has used 2 already
    response = as_other.post(reverse("request-run-again", args=[theirs.pk]))
    again = ImageRequest.objects.latest("pk")
    assert response.status_code == 302
    assert response.url == reverse("request-detail", args=[again.pk])
    assert again.user == other_user
    assert (again.prompt, again.model, again.resolution) == (
        "Make it blue",
        "nano-banana-pro",
        "2K",
    )
    assert again.references.get().image == parent_image
    assert again.visibility == PRIVATE  # Bob's default, not Alice's choice
    assert again.source == ImageRequest.Source.WEB
    assert services.quota_usage(user=other_user).used == 1
    # Bob's quota, not Alice's: out of it, he is told so.
    response = as_other.post(reverse("request-run-again", args=[theirs.pk]))
    assert response.status_code == 429
    assert ImageRequest.objects.filter(user=other_user).count() == 1


def test_run_again_of_ones_own_keeps_its_visibility(client_logged_in, user):
    shared = done(user, visibility=TEAM)
    client_logged_in.post(reverse("request-run-again", args=[shared.pk]))
    assert ImageRequest.objects.latest("pk").visibility == TEAM


def test_run_again_of_a_private_request_of_someone_else_is_404(as_other, user):
    private = done(user)
    response = as_other.post(reverse("request-run-again", args=[private.pk]))
    assert response.status_code == 404
    assert ImageRequest.objects.count() == 1


def test_use_a_teammates_request_as_template(as_other, user):
    shared = done(user, visibility=TEAM, prompt="A pear on a plate")
    html = listed(as_other, f"?template={shared.pk}")
    assert "A pear on a plate</textarea>" in html
    private = done(user, prompt="A secret plum")
    assert "A secret plum</textarea>" not in listed(as_other, f"?template={private.pk}")


def test_a_teammates_image_is_a_reference(as_other, user, other_user):
    shared = done(user, visibility=TEAM).images.get()
    private = done(user).images.get()
    html = listed(
        as_other, f"?action=edit&references={shared.pk}&references={private.pk}"
    )
    assert f'name="references" value="{shared.pk}"' in html
    assert f'name="references" value="{private.pk}"' not in html
    response = as_other.post(
        reverse("request-create"), EDIT | {"references": [shared.pk]}, headers=HTMX
    )
    assert response.status_code == 200
    child = ImageRequest.objects.get(user=other_user)
    assert child.references.get().image == shared
    refused = as_other.post(
        reverse("request-create"), EDIT | {"references": [private.pk]}, headers=HTMX
    )
    assert refused.status_code == 422
    assert "nor shared with you" in html_of(refused)


def test_the_service_takes_images_the_user_can_see(user, other_user):
    shared = done(user, visibility=TEAM).images.get()
    private = done(user).images.get()
    made = services.image_request_create(
        user=other_user, data=EDIT, references=[shared]
    )
    assert made.references.get().image == shared
    with pytest.raises(Exception, match="nor one you can see"):
        services.image_request_create(user=other_user, data=EDIT, references=[private])


def test_lineage_hides_what_the_viewer_cant_see(as_other, user, other_user):
    parent = done(user, visibility=TEAM)
    child = services.image_request_create(
        user=other_user, data=EDIT, references=[parent.images.get()]
    )
    detail = reverse("request-detail", args=[child.pk])
    assert reverse("request-detail", args=[parent.pk]) in html_of(as_other.get(detail))
    services.image_request_set_visibility(image_request=parent, visibility=PRIVATE)
    html = html_of(as_other.get(detail))
    assert reverse("request-detail", args=[parent.pk]) not in html
    assert "An image you can't see" in html


# --- the default visibility -----------------------------------------------------------


def test_new_requests_are_private_by_default(user):
    made = services.image_request_create(
        user=user, data={"action": "generate", "prompt": "A"}
    )
    assert made.visibility == PRIVATE


def test_the_site_default_can_be_team(user, settings):
    settings.BANANAWEB_DEFAULT_VISIBILITY = "team"
    made = services.image_request_create(
        user=user, data={"action": "generate", "prompt": "A"}
    )
    assert made.visibility == TEAM


def test_a_persons_default_wins_over_the_site(user, other_user, settings):
    settings.BANANAWEB_DEFAULT_VISIBILITY = "team"
    services.user_preference_set(user=user, default_visibility=PRIVATE)
    data = {"action": "generate", "prompt": "A"}
    assert services.image_request_create(user=user, data=data).visibility == PRIVATE
    assert services.image_request_create(user=other_user, data=data).visibility == TEAM


def test_the_forms_start_with_the_persons_default(client_logged_in, user):
    html = listed(client_logged_in)
    assert '<option value="private" selected>Only me (private)</option>' in html
    services.user_preference_set(user=user, default_visibility=TEAM)
    html = listed(client_logged_in)
    for form in ("generate", "edit"):
        select = html[html.index(f'id="{form}-visibility"') :]
        select = select[: select.index("</select>")]
        assert '<option value="team" selected>The team</option>' in select


def test_the_form_sends_its_choice(client_logged_in, user):
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "A pear", "visibility": "team"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert ImageRequest.objects.get().visibility == TEAM
    # The fresh form keeps the choice.
    assert '<option value="team" selected>The team</option>' in html_of(response)


@pytest.mark.parametrize(("visibility", "listed"), [("team", True), ("private", False)])
def test_the_team_view_lists_a_new_request_only_if_shared(
    client_logged_in, visibility, listed
):
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "A pear", "visibility": visibility},
        headers=HTMX | {"HX-Current-URL": "http://testserver/?scope=team"},
    )
    made = ImageRequest.objects.get()
    assert (f'id="request-{made.pk}"' in html_of(response)) is listed


def test_a_form_without_a_choice_takes_the_default(client_logged_in, user):
    services.user_preference_set(user=user, default_visibility=TEAM)
    client_logged_in.post(
        reverse("request-create"), {"action": "generate", "prompt": "A pear"}
    )
    assert ImageRequest.objects.get().visibility == TEAM


def test_a_bad_choice_in_the_form_is_a_form_error(client_logged_in):
    response = client_logged_in.post(
        reverse("request-create"),
        {"action": "generate", "prompt": "A pear", "visibility": "world"},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert 'id="generate-visibility_error"' in html_of(response)
    assert not ImageRequest.objects.exists()


def test_api_requests_take_the_users_default(client, user):
    headers = bearer(issue_token(user))
    body = json.dumps({"prompt": "A pear", "action": "generate"})
    url = reverse("gateway-generate")
    client.post(url, data=body, content_type="application/json", headers=headers)
    services.user_preference_set(user=user, default_visibility=TEAM)
    client.post(url, data=body, content_type="application/json", headers=headers)
    assert list(
        ImageRequest.objects.order_by("pk").values_list("source", "visibility")
    ) == [("api", PRIVATE), ("api", TEAM)]


@pytest.mark.parametrize(
    ("value", "works"), [("team", True), ("TEAM", True), ("world", False)]
)
def test_the_site_setting_is_checked_at_start(value, works):
    env = os.environ | {
        "BANANAWEB_DEV": "1",
        "BANANAWEB_DEFAULT_VISIBILITY": value,
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bananaweb.settings as s; print(s.BANANAWEB_DEFAULT_VISIBILITY)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if works:
        assert result.stdout.strip() == "team", result.stderr
    else:
        assert "BANANAWEB_DEFAULT_VISIBILITY" in result.stderr
        assert result.returncode != 0


# --- the settings page ----------------------------------------------------------------


def test_the_settings_page_shows_the_current_default(client_logged_in):
    response = client_logged_in.get(reverse("user-settings"))
    html = html_of(response)
    assert response.status_code == 200
    assert '<h1 id="settings-title">Settings</h1>' in html
    assert 'id="id_default_visibility"' in html
    assert '<option value="private" selected>Only me (private)</option>' in html
    assert "the site's default: private" in html
    assert f'href="{reverse("user-settings")}" aria-current="page">Settings</a>' in html


def test_the_settings_page_saves_the_default(client_logged_in, user):
    response = client_logged_in.post(
        reverse("user-settings"), {"default_visibility": "team"}, follow=True
    )
    html = html_of(response)
    assert "Your settings were saved." in html
    assert "Until you choose" not in html
    assert '<option value="team" selected>The team</option>' in html
    assert UserPreference.objects.get(user=user).default_visibility == TEAM


def test_the_settings_page_refuses_a_bad_value(client_logged_in, user):
    response = client_logged_in.post(
        reverse("user-settings"), {"default_visibility": "world"}
    )
    assert response.status_code == 422
    assert not UserPreference.objects.exists()


def test_the_settings_page_is_linked_from_every_page(client_logged_in):
    html = listed(client_logged_in)
    assert f'<a href="{reverse("user-settings")}">Settings</a>' in html


def test_the_settings_page_needs_signing_in(client):
    response = client.get(reverse("user-settings"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
