"""Cards' HTML from the cache (bananaweb/fragments.py): rendered once, never
stale, never another person's."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.middleware.csrf import _unmask_cipher_token
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bananaweb import fragments, per_response, services
from bananaweb.models import ImageRequest, Star, UserPreference
from bananaweb.prompts.models import PromptTemplate
from tests.factories import ImageRequestFactory, UserFactory, make_image

Status = ImageRequest.Status
TEAM = ImageRequest.Visibility.TEAM
TOKEN_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]*)"')


def finished(user, **fields) -> ImageRequest:
    fields.setdefault("status", Status.COMPLETED)
    image_request = ImageRequestFactory(user=user, **fields)
    make_image(image_request)
    return image_request


def card_of(client, image_request: ImageRequest, query: str = "") -> str:
    html = client.get(reverse("index") + query).content.decode()
    match = re.search(
        rf'<li class="card [^"]*" id="request-{image_request.pk}".*?</li>\n',
        html,
        re.DOTALL,
    )
    assert match, "the card is listed"
    return match.group(0)


@pytest.fixture
def renders(monkeypatch) -> list[int]:
    """The ids of the cards rendered (not taken from the cache)."""
    rendered: list[int] = []
    render = fragments._render_card

    def counting(image_request, viewer):
        rendered.append(image_request.pk)
        return render(image_request, viewer)

    monkeypatch.setattr(fragments, "_render_card", counting)
    return rendered


def test_a_finished_card_is_rendered_once_then_comes_from_the_cache(
    client_logged_in, user, renders
):
    image_request = finished(user)
    first = card_of(client_logged_in, image_request)
    second = card_of(client_logged_in, image_request)
    assert renders == [image_request.pk]
    # The same card but for the CSRF token, which is each response's own.
    assert TOKEN_INPUT.sub("", first) == TOKEN_INPUT.sub("", second)
    assert "<csrf-token>" not in second


def test_the_cached_card_is_the_card_the_template_renders(client_logged_in, user):
    image_request = finished(user, visibility=TEAM)
    card_of(client_logged_in, image_request)  # cached now
    cached = card_of(client_logged_in, image_request)
    cache.clear()
    fragments.forget_remembered()
    fragments_off = card_of(client_logged_in, image_request)
    assert TOKEN_INPUT.sub("", cached) == TOKEN_INPUT.sub("", fragments_off)


def test_a_card_in_flight_is_rendered_once_and_its_time_filled_on_each_page(
    client_logged_in, user, renders, monkeypatch
):
    image_request = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    started = timezone.now() - timedelta(seconds=65)
    ImageRequest.objects.filter(pk=image_request.pk).update(created_at=started)
    first = card_of(client_logged_in, image_request)
    assert re.search(r'data-elapsed="6[5-9]">1 min 0[5-9] s so far<', first), first

    an_hour_later = started + timedelta(seconds=3665)
    monkeypatch.setattr(timezone, "now", lambda: an_hour_later)
    later = card_of(client_logged_in, image_request)
    assert renders == [image_request.pk]
    assert 'data-elapsed="3665">1 h 01 min so far<' in later
    assert "<elapsed" not in later and "<csrf-token>" not in later
    # It still joins the page's poll, with the version it shows.
    assert f'name="ids" value="{image_request.pk}" form="request-poll"' in later


def test_a_card_leaving_flight_is_rendered_anew(client_logged_in, user, renders):
    image_request = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    assert "so far" in card_of(client_logged_in, image_request)
    ImageRequest.objects.filter(pk=image_request.pk).update(
        status=Status.COMPLETED, finished_at=timezone.now()
    )
    done = card_of(client_logged_in, image_request)
    assert renders == [image_request.pk, image_request.pk]
    assert "so far" not in done and 'form="request-poll"' not in done


def test_a_starred_card_shows_its_star_at_once(client_logged_in, user):
    image_request = finished(user)
    assert 'aria-pressed="false"' in card_of(client_logged_in, image_request)
    client_logged_in.post(
        reverse("request-star", args=[image_request.pk]), {"starred": "1"}
    )
    assert "★" in card_of(client_logged_in, image_request)
    client_logged_in.post(
        reverse("request-star", args=[image_request.pk]), {"starred": "0"}
    )
    assert "★" not in card_of(client_logged_in, image_request)


def test_a_shared_or_private_again_card_shows_it_at_once(client_logged_in, user):
    image_request = finished(user)
    share = 'id="share-{}" aria-pressed="{}"'
    assert share.format(image_request.pk, "false") in card_of(
        client_logged_in, image_request
    )
    services.image_request_set_visibility(image_request=image_request, visibility=TEAM)
    assert share.format(image_request.pk, "true") in card_of(
        client_logged_in, image_request
    )


def test_a_renamed_author_is_shown_by_the_new_name(client, user, other_user):
    image_request = finished(user, visibility=TEAM)
    client.force_login(other_user)
    assert "By <strong>alice</strong>" in card_of(client, image_request, "?scope=team")
    get_user_model().objects.filter(pk=user.pk).update(username="alicia")
    assert "By <strong>alicia</strong>" in card_of(client, image_request, "?scope=team")


def test_a_changed_card_is_rendered_anew(client_logged_in, user):
    image_request = finished(user, prompt="a lighthouse")
    card_of(client_logged_in, image_request)
    ImageRequest.objects.filter(pk=image_request.pk).update(
        status=Status.FAILED, error_message="The model refused."
    )
    card = card_of(client_logged_in, image_request)
    assert "The model refused." in card
    assert "card--failed" in card


def test_a_deleted_card_is_gone(client_logged_in, user):
    kept, deleted = finished(user), finished(user)
    card_of(client_logged_in, deleted)
    services.image_requests_delete(user=user, ids=[deleted.pk])
    html = client_logged_in.get(reverse("index")).content.decode()
    assert f'id="request-{kept.pk}"' in html
    assert f'id="request-{deleted.pk}"' not in html


def test_a_cached_card_is_never_another_persons(client, user, other_user):
    """Alice's card, cached as she sees it, is not what Bob sees: no share button
    (hers alone), his star not hers, her name on it, his CSRF token in its forms."""
    image_request = finished(user, visibility=TEAM)
    Star.objects.create(user=user, image_request=image_request)
    client.force_login(user)
    hers = card_of(client, image_request, "?scope=team")
    assert "share-button" in hers and "★" in hers

    as_bob = Client(enforce_csrf_checks=True)
    as_bob.force_login(other_user)
    his = card_of(as_bob, image_request, "?scope=team")
    assert "share-button" not in his
    assert "★" not in his
    assert "By <strong>alice</strong>" in his
    token = TOKEN_INPUT.search(his).group(1)
    response = as_bob.post(
        reverse("request-star", args=[image_request.pk]),
        {"starred": "1", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302  # his token: accepted
    assert Star.objects.filter(user=other_user, image_request=image_request).exists()


def test_staff_see_their_own_link_on_a_cached_card(client, user):
    image_request = finished(
        user,
        visibility=TEAM,
        status=Status.FAILED,
        error_code=ImageRequest.ErrorCode.NO_TOKEN,
    )
    client.force_login(user)
    assert "Add an upstream token" not in card_of(client, image_request, "?scope=team")
    client.force_login(UserFactory(username="admin", is_staff=True))
    assert "Add an upstream token" in card_of(client, image_request, "?scope=team")


def test_a_prompt_cannot_forge_the_token_placeholder(client_logged_in, user):
    image_request = finished(user, prompt="look <csrf-token> here")
    card_of(client_logged_in, image_request)
    card = card_of(client_logged_in, image_request)
    assert "look &lt;csrf-token&gt; here" in card


def test_a_page_of_cards_costs_one_cache_read(
    client_logged_in, user, django_assert_max_num_queries
):
    for _ in range(20):
        finished(user)
    client_logged_in.get(reverse("index"))  # fills the cache
    fragments.forget_remembered()  # another process: the shared cache only
    with django_assert_max_num_queries(9) as captured:
        html = client_logged_in.get(reverse("index")).content.decode()
    assert html.count('class="card card--completed"') == 20
    cache_queries = [q for q in captured if "bananaweb_cache" in q["sql"]]
    assert len(cache_queries) == 1


def test_cards_this_process_served_cost_no_cache_read(
    client_logged_in, user, django_assert_max_num_queries
):
    for _ in range(20):
        finished(user)
    client_logged_in.get(reverse("index"))
    with django_assert_max_num_queries(8) as captured:
        html = client_logged_in.get(reverse("index")).content.decode()
    assert html.count('class="card card--completed"') == 20
    assert not [q for q in captured if "bananaweb_cache" in q["sql"]]


# --- the request forms -------------------------------------------------------------

KEY_INPUT = re.compile(r'name="idempotency_key" value="([^"]*)"')


def form_of(client, kind: str, query: str = "") -> str:
    html = client.get(reverse("index") + query).content.decode()
    match = re.search(rf'<form id="{kind}-form".*?</form>', html, re.DOTALL)
    assert match, f"the {kind} form is shown"
    return match.group(0)


def without_keys(html: str) -> str:
    return KEY_INPUT.sub("", TOKEN_INPUT.sub("", html))


@pytest.fixture
def form_renders(monkeypatch) -> list[int]:
    """The users whose forms were rendered (not taken from the process's copy)."""
    rendered: list[int] = []
    render = fragments._render_forms

    def counting(user, visibility, menu):
        rendered.append(user.pk)
        return render(user, visibility, menu)

    monkeypatch.setattr(fragments, "_render_forms", counting)
    fragments.forget_remembered()
    return rendered


def test_blank_forms_are_rendered_once_each_page_with_new_keys(
    client_logged_in, user, form_renders
):
    pages = [client_logged_in.get(reverse("index")).content.decode() for _ in range(2)]
    assert form_renders == [user.pk]
    keys = [key for html in pages for key in KEY_INPUT.findall(html)]
    # Generate and Edit on each page: sending one form twice makes one request,
    # two forms never share a key.
    assert len(keys) == 4 and len(set(keys)) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)
    for html in pages:
        assert (
            "<csrf-token>" not in html
            and per_response.IDEMPOTENCY_PLACEHOLDER not in html
        )
        # The page's own token (masked anew each time it is asked for).
        secrets = {_unmask_cipher_token(t) for t in TOKEN_INPUT.findall(html)}
        assert len(secrets) == 1 and len(secrets.pop()) == 32


def test_the_remembered_forms_are_the_forms_the_template_renders(
    client_logged_in, user
):
    client_logged_in.get(reverse("index"))
    remembered = form_of(client_logged_in, "edit")
    fragments.forget_remembered()
    fresh = form_of(client_logged_in, "edit")
    assert without_keys(remembered) == without_keys(fresh)
    # A filled form (a link's prefill) is rendered on its own, not remembered.
    filled = form_of(client_logged_in, "generate", "?action=generate&prompt=a+red+boat")
    assert "a red boat" in filled


def test_a_new_or_changed_template_shows_in_the_menu_at_once(
    client_logged_in, user, form_renders
):
    assert "Night sky" not in form_of(client_logged_in, "generate")
    template = PromptTemplate.objects.create(user=user, name="Night sky", prompt="x")
    assert "Night sky" in form_of(client_logged_in, "generate")
    PromptTemplate.objects.filter(pk=template.pk).update(name="Day sky")
    assert "Day sky" in form_of(client_logged_in, "generate")
    template.delete()
    assert "Day sky" not in form_of(client_logged_in, "generate")


def visibility_chosen(form: str) -> str:
    select = re.search(r'<select name="visibility".*?</select>', form, re.DOTALL)
    return re.search(r'<option value="(\w+)" selected>', select.group(0)).group(1)


def test_a_changed_default_visibility_shows_at_once(client_logged_in, user):
    assert visibility_chosen(form_of(client_logged_in, "generate")) == "private"
    UserPreference.objects.create(user=user, default_visibility=TEAM)
    assert visibility_chosen(form_of(client_logged_in, "generate")) == TEAM
    assert visibility_chosen(form_of(client_logged_in, "edit")) == TEAM


def test_a_changed_setting_shows_in_the_forms_at_once(client_logged_in, settings):
    settings.BANANAWEB_MAX_VARIATIONS = 3
    assert "Up to 3: one request each." in form_of(client_logged_in, "generate")
    settings.BANANAWEB_MAX_VARIATIONS = 5
    assert "Up to 5: one request each." in form_of(client_logged_in, "generate")


def test_remembered_forms_are_never_another_persons(client, user, other_user):
    """Alice's private template and her forms' tokens never reach Bob; her shared
    one does, marked as hers."""
    PromptTemplate.objects.create(user=user, name="Alice private", prompt="x")
    PromptTemplate.objects.create(
        user=user, name="Alice shared", prompt="x", shared=True
    )
    client.force_login(user)
    hers = form_of(client, "generate")
    assert "Alice private" in hers and "shared by" not in hers

    as_bob = Client(enforce_csrf_checks=True)
    as_bob.force_login(other_user)
    his = form_of(as_bob, "generate")
    assert "Alice private" not in his
    assert "Alice shared" in his and "shared by alice" in his
    # His CSRF secret, not hers.
    assert _unmask_cipher_token(TOKEN_INPUT.search(his).group(1)) != (
        _unmask_cipher_token(TOKEN_INPUT.search(hers).group(1))
    )


# --- galleries and the filters form ---------------------------------------------------

HTMX = {"HX-Request": "true", "HX-Target": "history"}


def test_a_plain_gallery_is_paged_without_counting(
    client_logged_in, user, settings, django_assert_max_num_queries
):
    settings.BANANAWEB_GALLERY_PAGE_SIZE = 3
    made = [finished(user) for _ in range(7)]
    with django_assert_max_num_queries(10) as captured:
        html = client_logged_in.get("/?view=gallery&page=2", headers=HTMX)
    html = html.content.decode()
    assert not [
        q
        for q in captured
        if 'FROM "bananaweb_imagerequest"' in q["sql"] and "COUNT(" in q["sql"]
    ]
    shown = [f'id="tile-{r.pk}"' in html for r in reversed(made)]
    assert shown == [False, False, False, True, True, True, False]
    assert "Page 2<" in html  # no total: it was not counted
    assert 'href="/?view=gallery&amp;page=3"' in html and 'rel="next"' in html
    assert 'href="/?view=gallery"' in html and 'rel="prev"' in html
    last = client_logged_in.get("/?view=gallery&page=3", headers=HTMX)
    assert 'rel="next"' not in last.content.decode()
    # An old link past the end shows the last page.
    beyond = client_logged_in.get("/?view=gallery&page=9", headers=HTMX)
    assert f'id="tile-{made[0].pk}"' in beyond.content.decode()


def test_an_empty_team_gallery_says_so(client_logged_in):
    html = client_logged_in.get("/?scope=team&view=gallery").content.decode()
    assert "Nothing is shared with the team yet." in html


def test_a_cached_tile_is_never_another_persons(client, user, other_user):
    image_request = finished(user, visibility=TEAM, prompt="a shared lighthouse")
    Star.objects.create(user=user, image_request=image_request)
    tile = rf'<li class="tile" id="tile-{image_request.pk}">.*?</li>'
    client.force_login(user)
    hers = re.search(
        tile, client.get("/?scope=team&view=gallery").content.decode(), re.DOTALL
    )
    assert "tile__star" in hers.group(0) and "tile__author" not in hers.group(0)

    client.force_login(other_user)
    his = re.search(
        tile, client.get("/?scope=team&view=gallery").content.decode(), re.DOTALL
    )
    assert "tile__star" not in his.group(0)
    assert '<span class="tile__author">alice</span>' in his.group(0)
    Star.objects.create(user=other_user, image_request=image_request)
    his = re.search(
        tile, client.get("/?scope=team&view=gallery").content.decode(), re.DOTALL
    )
    assert "tile__star" in his.group(0)


def test_the_filters_form_follows_the_filters_and_the_team(client, user, other_user):
    client.force_login(user)
    html = client.get("/?scope=team&status=failed").content.decode()
    assert '<option value="failed" selected>' in html
    assert '<option value="bob">' not in html
    finished(other_user, visibility=TEAM)  # bob shares his first image
    html = client.get("/?scope=team&status=failed").content.decode()
    assert '<option value="bob">bob</option>' in html
    html = client.get("/?scope=team").content.decode()
    assert '<option value="failed" selected>' not in html


def test_the_history_fragment_renders_no_forms(
    client_logged_in, user, monkeypatch, django_assert_max_num_queries
):
    for _ in range(3):
        finished(user)
    monkeypatch.setattr(fragments, "request_forms_html", None)  # would raise
    monkeypatch.setattr(fragments, "filters_html", None)
    with django_assert_max_num_queries(6) as captured:
        response = client_logged_in.get("/?page=1", headers=HTMX)
    assert response.status_code == 200
    assert not [q for q in captured if "prompttemplate" in q["sql"]]
