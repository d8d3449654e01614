"""A walk of the URL configuration: every URL that names an object, and every page of
ours in the admin, filled with user A's things and visited as everyone else.

Generated from the resolver, so a URL added later is walked without anyone
remembering to: one this walk can't fill fails, naming itself, until it gets a
row in FILLS (or, with a reason, in EXEMPT).
"""

import inspect
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from bananaweb.gateway.models import ApiToken
from bananaweb.models import GeneratedImage, ImageRequest, Reference
from bananaweb.prompts import services as prompt_services
from bananaweb.team import services as team_services
from bananaweb.team.models import Collection, Role
from tests.factories import ImageRequestFactory, UserFactory, make_image, make_upload
from tests.gateway_helpers import bearer, issue_token

pytestmark = pytest.mark.usefixtures("clear_tasks")


# --- the URL configuration, flattened ------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", for reverse(); "" when the pattern has none
    pattern: str  # the whole route, for messages
    arguments: frozenset[str]
    module: str  # where the view really lives, under its decorators

    @property
    def kind(self) -> str:
        if self.pattern.startswith("api/"):
            return "api"
        return "admin" if self.pattern.startswith("admin/") else "page"

    @property
    def ours(self) -> bool:
        return self.module.startswith("bananaweb")


def _arguments(pattern) -> set[str]:
    return set(getattr(pattern, "converters", {})) | set(pattern.regex.groupindex)


def _module(callback: Callable) -> str:
    view = inspect.unwrap(callback)
    return getattr(view, "view_class", view).__module__


def routes(
    patterns=None, prefix: str = "", namespace: str = "", arguments=frozenset()
) -> Iterator[Route]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        here = arguments | _arguments(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from routes(
                entry.url_patterns, prefix + str(entry.pattern), inner, here
            )
        elif isinstance(entry, URLPattern):
            name = ":".join(filter(None, [namespace, entry.name])) if entry.name else ""
            yield Route(
                name,
                prefix + str(entry.pattern),
                frozenset(here),
                _module(entry.callback),
            )


# --- what the walk fills, and what it leaves to others ---------------------------------


@dataclass
class World:
    owner: object  # user A, whose things fill the URLs
    other: object  # user B
    staff: object  # staff, without any permission
    superuser: object
    image_request: ImageRequest
    image: GeneratedImage
    api_token: ApiToken
    keys: dict[str, str]  # each user's API token, by username


def in_a_group(world: World) -> str:
    """A's request, made one of a group (of variations)."""
    group = uuid.uuid4()
    ImageRequest.objects.filter(pk=world.image_request.pk).update(
        group=group, group_kind=ImageRequest.GroupKind.VARIATIONS
    )
    return str(group)


def a_collection(world: World) -> Collection:
    """A's collection, holding A's image, with Carol (never B) as a viewer."""
    collection = team_services.collection_create(
        owner=world.owner, name="A's", images=[world.image]
    )
    carol = UserFactory(username="carol")
    team_services.collection_member_set(
        collection=collection, user=carol, role=Role.VIEWER
    )
    return collection


def a_collection_item(world: World) -> dict:
    collection = a_collection(world)
    return {"pk": collection.pk, "item_pk": collection.items.get().pk}


def a_collection_member(world: World) -> dict:
    collection = a_collection(world)
    return {"pk": collection.pk, "member_pk": collection.members.get().pk}


def a_share_link(world: World) -> dict:
    share_link, _ = team_services.share_link_create(user=world.owner, image=world.image)
    return {"pk": share_link.pk}


def a_prompt_template(world: World) -> dict:
    """A's personal template, with a placeholder (so using it shows a page)."""
    prompt_template = prompt_services.prompt_template_create(
        user=world.owner,
        name=f"Template {uuid.uuid4().hex[:8]}",
        prompt="A {animal} on a mat",
        model="nano-banana-fast",
    )
    return {"pk": prompt_template.pk}


def a_reference_upload(world: World) -> int:
    """A picture A brought and made their request from (whoever sees the request
    sees it too)."""
    upload = make_upload(world.owner)
    Reference.objects.create(image_request=world.image_request, upload=upload)
    return upload.pk


# URL name -> the arguments naming A's things (one visit per dict).
FILLS: dict[str, Callable[[World], list[dict]]] = {
    "request-detail": lambda w: [{"pk": w.image_request.pk}],
    "request-card": lambda w: [{"pk": w.image_request.pk}],
    "request-resubmit": lambda w: [{"pk": w.image_request.pk}],
    "request-run-again": lambda w: [{"pk": w.image_request.pk}],
    "upload-file": lambda w: [{"pk": a_reference_upload(w)}],
    "request-star": lambda w: [{"pk": w.image_request.pk}],
    "request-visibility": lambda w: [{"pk": w.image_request.pk}],
    "request-download": lambda w: [{"pk": w.image_request.pk}],
    "group-download": lambda w: [{"group": in_a_group(w)}],
    "image-file": lambda w: [
        {"pk": w.image_request.pk, "image_pk": w.image.pk, "variant": variant}
        for variant in ("full", "thumbnail")
    ],
    "api-token-revoke": lambda w: [{"pk": w.api_token.pk}],
    "gateway-image": lambda w: [{"image_id": str(w.image.pk)}],
    "admin:bananaweb_image_file": lambda w: [{"image_pk": w.image.pk}],
    "collection-detail": lambda w: [{"pk": a_collection(w).pk}],
    "collection-edit": lambda w: [{"pk": a_collection(w).pk}],
    "collection-delete": lambda w: [{"pk": a_collection(w).pk}],
    "collection-download": lambda w: [{"pk": a_collection(w).pk}],
    "collection-members": lambda w: [{"pk": a_collection(w).pk}],
    "collection-member": lambda w: [a_collection_member(w)],
    "collection-item-remove": lambda w: [a_collection_item(w)],
    "collection-item-move": lambda w: [a_collection_item(w)],
    "collection-item-cover": lambda w: [a_collection_item(w)],
    "share-link-revoke": lambda w: [a_share_link(w)],
    "prompt-template-edit": lambda w: [a_prompt_template(w)],
    "prompt-template-share": lambda w: [a_prompt_template(w)],
    "prompt-template-delete": lambda w: [a_prompt_template(w)],
    "prompt-template-use": lambda w: [a_prompt_template(w)],
    "prompt-template-fill": lambda w: [a_prompt_template(w)],
    # Our staff pages name no object, but show everyone's usage.
    "usage-dashboard": lambda w: [{}],
    "usage-export": lambda w: [{}],
}

# Who may see A's request without owning it (staff always; a teammate once A shares
# it with the team) gets these URLs of it: to read it, or to act for themselves (a
# star of their own, a run again that is their own request). Every other URL
# naming A's things stays A's alone: a 404 to everyone else.
VIEWERS = {
    "request-detail": "read",
    "request-card": "read",
    "request-download": "read",
    "group-download": "read",
    "image-file": "read",
    "upload-file": "read",
    "request-star": "act",
    "request-run-again": "act",
}

# Route prefix -> why views that are not ours, mounted there, are not walked.
EXEMPT = {
    "admin/": "Django's own admin views (app index, model change, delete and "
    "history, view on site, the catch-all) check the model permissions themselves",
}


# Ours, and open to anyone by design; each has tests of its own.
PUBLIC = {
    "public-file": "a signed, expiring link to one stored image, for the upstream "
    "to fetch (tests/test_references.py: works, expired, tampered, other file)",
    "share-page": "a share link: its unguessable token is the key, read-only, "
    "expiring, revocable (tests/test_share_links.py: works signed out, expired, "
    "revoked, tampered, nothing else reachable)",
    "share-image": "an image of a share link, by its place in the link's list "
    "(tests/test_share_links.py)",
    "share-thumbnail": "a thumbnail of a share link's image (tests/test_share_links.py)",
}


def exempt(route: Route) -> bool:
    if route.name in PUBLIC:
        return True
    return not route.ours and route.pattern.startswith(tuple(EXEMPT))


WALKED = [
    route
    for route in routes()
    if (route.arguments or (route.ours and route.kind == "admin")) and not exempt(route)
]


# --- visiting ----------------------------------------------------------------------------


@pytest.fixture
def world(db) -> World:
    owner = UserFactory(username="alice")
    other = UserFactory(username="bob")
    staff = UserFactory(username="staffer", is_staff=True)
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    image_request = ImageRequestFactory(
        user=owner, status=ImageRequest.Status.COMPLETED
    )
    keys = {user.username: issue_token(user) for user in (owner, other, staff)}
    return World(
        owner=owner,
        other=other,
        staff=staff,
        superuser=superuser,
        image_request=image_request,
        image=make_image(image_request),
        api_token=ApiToken.objects.get(user=owner),
        keys=keys,
    )


def visit(client, url: str, headers: dict | None = None):
    """GET, or POST where the view takes only that."""
    response = client.get(url, headers=headers)
    if response.status_code == 405:
        response = client.post(url, headers=headers)
    return response


def as_user(client, route: Route, world: World, user):
    """A client signed in as the user: a session for pages, their token for the API."""
    if route.kind == "api":
        return {"headers": bearer(world.keys[user.username])}
    client.force_login(user)
    return {}


def assert_json_status(response, status: int) -> None:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["message"]


def assert_sent_to(response, login_url: str | tuple[str, ...]) -> None:
    assert response.status_code == 302
    assert response.url.startswith(login_url)


def assert_viewer_gets(response, route: Route, url: str) -> None:
    """What someone who may see A's request, and doesn't own it, gets at its URL."""
    if VIEWERS[route.name] == "read":
        assert 200 <= response.status_code < 300, (url, response.status_code)
    else:  # for themselves: taken (or refused as malformed), never as A's
        assert response.status_code < 500, (url, response.status_code)
        assert response.status_code not in (403, 404), (url, response.status_code)


@pytest.mark.parametrize("route", WALKED, ids=lambda route: route.name or route.pattern)
def test_a_url_naming_an_object_is_refused_to_all_but_its_owner(route, world, client):
    fill = FILLS.get(route.name)
    if fill is None:
        pytest.fail(
            f"{route.pattern} ({route.name or 'no name'}) takes "
            f"{', '.join(sorted(route.arguments)) or 'no arguments'} but the walk "
            "can't fill it: add it to FILLS in tests/test_url_walk.py (or, with a "
            "reason, to EXEMPT)."
        )
    owner = world.superuser if route.kind == "admin" else world.owner
    requests_before = ImageRequest.objects.filter(user=world.owner).count()

    for kwargs in fill(world):
        url = reverse(route.name, kwargs=kwargs)

        client.logout()
        anonymous = visit(client, url)
        if route.kind == "api":
            assert_json_status(anonymous, 401)
        else:  # the site's sign-in page; the admin's, for some admin views
            assert_sent_to(anonymous, (reverse("login"), reverse("admin:login")))

        for user in (world.other, world.staff):
            response = visit(client, url, **as_user(client, route, world, user))
            if route.kind == "api":
                assert_json_status(response, 404)
            elif route.kind == "page" and user.is_staff and route.name in VIEWERS:
                # Staff see every request (A's is private), read-only.
                assert_viewer_gets(response, route, url)
            elif route.kind == "page":
                assert response.status_code == 404, (url, user)
            elif user.is_staff:
                assert response.status_code in (302, 403, 404), (url, user)
                if response.status_code == 302:
                    assert_sent_to(response, reverse("admin:login"))
            else:
                assert_sent_to(response, reverse("admin:login"))

        # The owner gets it: the walk filled the URL with something real.
        response = client.get(url, **as_user(client, route, world, owner))
        if response.status_code != 405:
            assert 200 <= response.status_code < 300, (url, response.status_code)

    # Nobody else's visit changed A's things (staff running it again made their own).
    assert ImageRequest.objects.filter(user=world.owner).count() == requests_before
    assert not ImageRequest.objects.filter(user=world.other).exists()
    world.image_request.refresh_from_db()
    assert world.image_request.visibility == ImageRequest.Visibility.PRIVATE
    assert world.image_request.deleted_at is None
    world.api_token.refresh_from_db()
    assert world.api_token.revoked_at is None


SHARED_WALK = [route for route in WALKED if route.kind != "admin"]


@pytest.mark.parametrize(
    "route", SHARED_WALK, ids=lambda route: route.name or route.pattern
)
def test_a_request_shared_with_the_team_is_read_only_to_a_teammate(
    route, world, client
):
    """A shares their request with the team: B may now read it and act for
    themselves (VIEWERS); every other URL of A's stays a 404, and the API stays
    personal."""
    fill = FILLS.get(route.name)
    if fill is None:
        pytest.skip("unfilled: the walk above fails for it")
    ImageRequest.objects.filter(pk=world.image_request.pk).update(
        visibility=ImageRequest.Visibility.TEAM
    )
    requests_before = ImageRequest.objects.filter(user=world.owner).count()

    for kwargs in fill(world):
        url = reverse(route.name, kwargs=kwargs)
        response = visit(client, url, **as_user(client, route, world, world.other))
        if route.kind == "api":
            assert_json_status(response, 404)
        elif route.name in VIEWERS:
            assert_viewer_gets(response, route, url)
        else:
            assert response.status_code == 404, url

    assert ImageRequest.objects.filter(user=world.owner).count() == requests_before
    world.image_request.refresh_from_db()
    assert world.image_request.visibility == ImageRequest.Visibility.TEAM
    assert world.image_request.deleted_at is None


def test_the_walk_covers_the_known_object_urls():
    walked = {route.name for route in WALKED}
    assert set(FILLS) <= walked, set(FILLS) - walked
