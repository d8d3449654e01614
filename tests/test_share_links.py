"""Share links: a collection or one image, shown without sign-in through the link's
own URLs; only what its creator chose; expired, revoked or tampered is a 404; no
other data is reachable from it; only its hash is stored."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from bananaweb.models import ImageRequest
from bananaweb.team import services
from bananaweb.team.models import Role, ShareLink
from tests.factories import UserFactory, png_bytes
from tests.test_collections import TEAM, collection_of, finished_image

LINK = re.compile(r'id="new-share-link" type="text" value="([^"]+)"')


def create_link(client, **data) -> tuple[str, ShareLink]:
    """Makes a link through the page, as a person would; its path and its row."""
    response = client.post(reverse("share-link-create"), data)
    assert response.status_code == 201, response.content.decode()
    url = LINK.search(response.content.decode()).group(1)
    assert url.startswith("http://testserver/s/")
    return url.removeprefix("http://testserver"), ShareLink.objects.latest("pk")


def assert_public_and_unindexed(response) -> None:
    cache_control = response["Cache-Control"]
    assert "private" in cache_control and "no-store" in cache_control
    assert response["X-Robots-Tag"] == "noindex"
    assert response["Referrer-Policy"] == "no-referrer"


@pytest.fixture
def carol(db):
    return UserFactory(username="carol")


@pytest.fixture
def shared(client, user, other_user):
    """Alice's collection of two images, one by Bob (a member, team-visible), and a
    link to it with nothing chosen; the client is signed out."""
    own = finished_image(user, prompt="A golden banana", content=png_bytes((31, 20)))
    bobs = finished_image(other_user, visibility=TEAM, prompt="Bob's banana")
    collection = collection_of(
        user,
        name="Secret project",
        members=[(other_user, Role.EDITOR)],
        images=[own, bobs],
    )
    client.force_login(user)
    path, share_link = create_link(client, collection=collection.pk, days=7)
    client.logout()
    return {"path": path, "link": share_link, "images": [own, bobs]}


# --- Works without sign-in ------------------------------------------------------------------


def test_a_collection_link_works_without_sign_in(client, shared):
    response = client.get(shared["path"])
    assert response.status_code == 200
    assert_public_and_unindexed(response)
    page = response.content.decode()
    assert '<meta name="robots" content="noindex">' in page
    for n, image in enumerate(shared["images"], start=1):
        full = client.get(f"{shared['path']}images/{n}/")
        assert full.status_code == 200
        assert_public_and_unindexed(full)
        assert b"".join(full.streaming_content) == image.file.open("rb").read()
        assert f"{shared['path']}images/{n}/" in page
        thumbnail = client.get(f"{shared['path']}images/{n}/thumbnail/")
        assert thumbnail.status_code == 200


def test_the_link_expires_after_the_days_chosen(client, shared):
    share_link = shared["link"]
    assert (
        timedelta(days=7) - timedelta(minutes=1)
        < share_link.expires_at - share_link.created_at
        <= timedelta(days=7)
    )
    ShareLink.objects.filter(pk=share_link.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    for path in (shared["path"], f"{shared['path']}images/1/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert_public_and_unindexed(response)
        assert b"expired or been revoked" in response.content


def test_a_revoked_link_is_404(client, user, shared):
    client.force_login(user)
    listing = client.get(reverse("share-links")).content.decode()
    assert "Collection “Secret project”" in listing and "Active" in listing
    revoke = reverse("share-link-revoke", args=[shared["link"].pk])
    assert client.post(revoke).status_code == 302
    client.logout()
    assert client.get(shared["path"]).status_code == 404
    assert client.get(f"{shared['path']}images/1/").status_code == 404
    client.force_login(user)
    assert "Revoked" in client.get(reverse("share-links")).content.decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: token[:-1],
        lambda token: token + "x",
        lambda token: token.upper(),
        lambda token: token[:-1] + "é",
        lambda token: hashlib.sha256(token.encode()).hexdigest(),
    ],
    ids=["one-character", "shorter", "longer", "case", "non-ascii", "its-hash"],
)
def test_a_tampered_token_is_404(client, shared, tamper):
    token = shared["path"].split("/")[2]
    path = reverse("share-page", args=[tamper(token)])
    assert client.get(path).status_code == 404
    image = reverse("share-image", args=[tamper(token), 1])
    assert client.get(image).status_code == 404


def test_only_the_hash_of_the_token_is_stored(shared):
    token = shared["path"].split("/")[2]
    share_link = shared["link"]
    assert share_link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = [str(value) for value in ShareLink.objects.values().get().values()]
    assert not any(token in value for value in stored)


# --- Shows only what was chosen ---------------------------------------------------------------


def test_the_link_shows_nothing_but_the_images_unless_chosen(client, shared):
    page = client.get(shared["path"]).content.decode()
    for secret in (
        "alice",
        "bob",
        "Secret project",
        "A golden banana",
        "Bob&#x27;s banana",
        "/requests/",
        "/collections/",
        "/settings/",
        "/accounts/",
        "csrf",
    ):
        assert secret not in page, secret
    for image in shared["images"]:
        assert f"#{image.image_request_id}" not in page
    assert "Shared images" in page


def test_prompts_and_the_name_are_shown_when_chosen(client, user, other_user):
    image = finished_image(user, prompt="A golden banana")
    collection = collection_of(user, name="Secret project", images=[image])
    collection.description = "For the spring campaign"
    collection.save()
    client.force_login(user)
    path, _ = create_link(
        client,
        collection=collection.pk,
        days=3,
        show_prompts="on",
        show_details="on",
    )
    client.logout()
    page = client.get(path).content.decode()
    assert "A golden banana" in page
    assert "Secret project" in page and "For the spring campaign" in page
    assert "alice" not in page


def test_another_members_private_image_is_never_shown_by_a_link(
    client, user, other_user
):
    """Bob showed his private image to the collection's members, not the world."""
    own = finished_image(user)
    bobs_private = finished_image(other_user)
    collection = collection_of(user, members=[(other_user, Role.EDITOR)], images=[own])
    services.collection_images_add(
        collection=collection, images=[bobs_private], user=other_user, consent=True
    )
    client.force_login(user)
    path, _ = create_link(client, collection=collection.pk, days=1)
    client.logout()
    page = client.get(path).content.decode()
    assert f"{path}images/1/" in page and f"{path}images/2/" not in page
    assert client.get(f"{path}images/2/").status_code == 404


def test_no_other_data_is_reachable_from_a_link(client, user, shared):
    path = shared["path"]
    for n in (0, 3, 99):
        assert client.get(f"{path}images/{n}/").status_code == 404
    # The site's own URLs for the same images still ask for a sign-in.
    image = shared["images"][0]
    for url in (
        reverse("image-file", args=[image.image_request_id, image.pk, "full"]),
        reverse("request-detail", args=[image.image_request_id]),
        reverse("collection-detail", args=[shared["link"].collection_id]),
        reverse("collection-download", args=[shared["link"].collection_id]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(
            reverse("login")
        ), url
    # An image's file name says nothing of whose it is.
    full = client.get(f"{path}images/1/")
    assert full["Content-Disposition"] == 'inline; filename="image-1.png"'


def test_a_link_to_one_image(client, user):
    image = finished_image(user, prompt="Only this one")
    other = finished_image(user, prompt="Not this one")
    collection_of(user, images=[image, other])
    client.force_login(user)
    form = client.get(reverse("share-link-create"), {"image": image.pk})
    assert form.status_code == 200 and "show_details" not in form.content.decode()
    path, share_link = create_link(client, image=image.pk, days=2, show_prompts="on")
    assert share_link.image == image and share_link.collection is None
    client.logout()
    page = client.get(path).content.decode()
    assert "Only this one" in page and "Not this one" not in page
    assert client.get(f"{path}images/1/").status_code == 200
    assert client.get(f"{path}images/2/").status_code == 404


def test_a_deleted_image_or_collection_takes_its_links_with_it(client, user, shared):
    collection = shared["link"].collection
    services.collection_delete(collection=collection)
    assert client.get(shared["path"]).status_code == 404
    assert not ShareLink.objects.exists()


def test_a_closed_account_closes_its_links(client, user, shared):
    user.is_active = False
    user.save()
    assert client.get(shared["path"]).status_code == 404


# --- Who makes links, for how long ---------------------------------------------------------------


def test_only_an_images_author_shares_it(client, user, other_user):
    image = finished_image(user, visibility=TEAM)
    client.force_login(other_user)
    assert (
        client.get(reverse("share-link-create"), {"image": image.pk}).status_code == 404
    )
    response = client.post(reverse("share-link-create"), {"image": image.pk, "days": 7})
    assert response.status_code == 404
    assert not ShareLink.objects.exists()


def test_only_a_collections_owner_shares_it(client, user, other_user, carol):
    collection = collection_of(
        user, members=[(other_user, Role.EDITOR)], images=[finished_image(user)]
    )
    client.force_login(other_user)
    data = {"collection": collection.pk, "days": 7}
    assert client.post(reverse("share-link-create"), data).status_code == 403
    client.force_login(carol)
    assert client.post(reverse("share-link-create"), data).status_code == 404
    assert not ShareLink.objects.exists()


def test_a_link_names_exactly_one_thing(client_logged_in, user):
    image = finished_image(user)
    collection = collection_of(user, images=[image])
    url = reverse("share-link-create")
    assert client_logged_in.get(url).status_code == 404
    both = {"image": image.pk, "collection": collection.pk, "days": 7}
    assert client_logged_in.post(url, both).status_code == 404


def test_the_expiry_is_bounded_by_the_setting(client_logged_in, user, settings):
    image = finished_image(user)
    url = reverse("share-link-create")
    form = client_logged_in.get(url, {"image": image.pk}).content.decode()
    assert 'value="7"' in form and 'max="30"' in form
    assert (
        client_logged_in.post(url, {"image": image.pk, "days": 31}).status_code == 422
    )
    assert client_logged_in.post(url, {"image": image.pk, "days": 0}).status_code == 422
    settings.BANANAWEB_SHARE_LINK_MAX_DAYS = 3
    assert client_logged_in.post(url, {"image": image.pk, "days": 4}).status_code == 422
    assert client_logged_in.post(url, {"image": image.pk, "days": 3}).status_code == 201
    assert not ShareLink.objects.filter(
        expires_at__gt=timezone.now() + timedelta(days=3)
    ).exists()


def test_the_settings_page_lists_only_my_links(client, user, other_user, shared):
    client.force_login(other_user)
    listing = client.get(reverse("share-links")).content.decode()
    assert "Secret project" not in listing and "No share links yet" in listing
    revoke = reverse("share-link-revoke", args=[shared["link"].pk])
    assert client.post(revoke).status_code == 404
    assert ShareLink.objects.get().revoked_at is None


def test_the_header_links_the_collections_and_share_links(client_logged_in):
    page = client_logged_in.get(reverse("collections")).content.decode()
    assert f'href="{reverse("share-links")}"' in page
    assert f'href="{reverse("collections")}"' in page


# --- Staff revoke any link in the admin ----------------------------------------------------------


def test_staff_with_the_permission_revoke_any_link(client, shared):
    changelist = reverse("admin:team_sharelink_changelist")
    action = {
        "action": "revoke",
        "_selected_action": [shared["link"].pk],
    }
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sharelink"))
    client.force_login(viewer)
    assert client.get(changelist).status_code == 200
    client.post(changelist, action)
    assert ShareLink.objects.get().revoked_at is None

    revoker = UserFactory(username="revoker", is_staff=True)
    revoker.user_permissions.add(
        Permission.objects.get(codename="view_sharelink"),
        Permission.objects.get(codename="revoke_sharelink"),
    )
    client.force_login(revoker)
    assert client.post(changelist, action).status_code == 302
    assert ShareLink.objects.get().revoked_at is not None
    client.logout()
    assert client.get(shared["path"]).status_code == 404


def test_the_admin_never_shows_a_token(admin_client, shared):
    token = shared["path"].split("/")[2]
    page = admin_client.get(
        reverse("admin:team_sharelink_change", args=[shared["link"].pk])
    ).content.decode()
    assert token not in page and shared["link"].token_hash not in page
    assert ImageRequest.objects.count() == 2  # the admin changed nothing
