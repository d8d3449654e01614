"""Collections: roles (owner, editor, viewer, everyone else), adding images from
anywhere they can be seen, the consent before a private image is shown to members,
order and cover, the ZIP, and that nothing of this ever deletes an image."""

import io
import zipfile

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError
from django.urls import reverse
from django.utils.timezone import localtime

from bananaweb import services as bananaweb_services
from bananaweb.models import GeneratedImage, ImageRequest
from bananaweb.team import services
from bananaweb.team.models import Collection, CollectionItem, CollectionMember, Role
from tests.factories import ImageRequestFactory, UserFactory, make_image, png_bytes

Status = ImageRequest.Status
PRIVATE = ImageRequest.Visibility.PRIVATE
TEAM = ImageRequest.Visibility.TEAM


def finished_image(
    user, *, visibility=PRIVATE, prompt=None, **kwargs
) -> GeneratedImage:
    extra = {"prompt": prompt} if prompt else {}
    image_request = ImageRequestFactory(
        user=user, status=Status.COMPLETED, visibility=visibility, **extra
    )
    return make_image(image_request, **kwargs)


def collection_of(owner, *, name="Moodboard", members=(), images=()) -> Collection:
    """A collection with (user, role) members and the owner's images in it."""
    collection = services.collection_create(owner=owner, name=name)
    for user, role in members:
        services.collection_member_set(collection=collection, user=user, role=role)
    if images:
        services.collection_images_add(
            collection=collection, images=list(images), user=owner, consent=True
        )
    return collection


def add(client, collection, *images, consent=False):
    data = {"collection": collection.pk, "images": [image.pk for image in images]}
    if consent:
        data["consent"] = "1"
    return client.post(reverse("collection-add"), data)


@pytest.fixture
def carol(db):
    return UserFactory(username="carol")


# --- Making and listing ------------------------------------------------------------------


def test_a_new_collection_is_listed_and_opens(client_logged_in, user):
    response = client_logged_in.post(
        reverse("collections"), {"name": "Beach ideas", "description": "Sand"}
    )
    collection = Collection.objects.get(owner=user)
    assert response.status_code == 302
    assert response.url == reverse("collection-detail", args=[collection.pk])

    listing = client_logged_in.get(reverse("collections")).content.decode()
    assert "Beach ideas" in listing
    page = client_logged_in.get(response.url).content.decode()
    assert "Beach ideas" in page and "Sand" in page and "only you see it" in page


def test_a_collection_needs_a_name(client_logged_in, user):
    response = client_logged_in.post(reverse("collections"), {"name": " "})
    assert response.status_code == 422
    assert not Collection.objects.exists()


def test_collections_shared_with_me_are_listed_with_their_owner(client, user, carol):
    collection_of(carol, name="Carol's picks", members=[(user, Role.VIEWER)])
    collection_of(carol, name="Carol's secrets")
    client.force_login(user)
    listing = client.get(reverse("collections")).content.decode()
    assert "Carol&#x27;s picks" in listing and "carol’s" in listing
    assert "secrets" not in listing


# --- Roles -------------------------------------------------------------------------------------


def test_a_non_member_gets_404_everywhere(client, user, other_user):
    image = finished_image(user)
    collection = collection_of(user, images=[image])
    item = collection.items.get()
    client.force_login(other_user)
    their_image = finished_image(other_user)
    for url in (
        reverse("collection-detail", args=[collection.pk]),
        reverse("collection-download", args=[collection.pk]),
        reverse("collection-delete", args=[collection.pk]),
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        reverse("collection-edit", args=[collection.pk]),
        reverse("collection-members", args=[collection.pk]),
        reverse("collection-item-remove", args=[collection.pk, item.pk]),
        reverse("collection-item-cover", args=[collection.pk, item.pk]),
    ):
        assert client.post(url, {"name": "x", "who": "bob"}).status_code == 404, url
    assert add(client, collection, their_image).status_code == 404
    assert collection.items.count() == 1
    assert Collection.objects.get().name == "Moodboard"


def test_staff_are_not_members_of_everyones_collections(client, user):
    collection = collection_of(user)
    client.force_login(UserFactory(username="staffer", is_staff=True))
    assert (
        client.get(reverse("collection-detail", args=[collection.pk])).status_code
        == 404
    )


def test_a_viewer_sees_and_downloads_but_cannot_add(client, user, other_user):
    image = finished_image(user, visibility=TEAM)
    collection = collection_of(
        user, members=[(other_user, Role.VIEWER)], images=[image]
    )
    item = collection.items.get()
    their_image = finished_image(other_user, visibility=TEAM)
    client.force_login(other_user)

    page = client.get(reverse("collection-detail", args=[collection.pk]))
    assert page.status_code == 200
    assert "you are a viewer" in page.content.decode()
    assert "Make cover" not in page.content.decode()
    assert (
        client.get(reverse("collection-download", args=[collection.pk])).status_code
        == 200
    )
    assert add(client, collection, their_image).status_code == 403
    for name in ("collection-item-remove", "collection-item-cover"):
        url = reverse(name, args=[collection.pk, item.pk])
        assert client.post(url).status_code == 403, name
    move = reverse("collection-item-move", args=[collection.pk, item.pk])
    assert client.post(move, {"direction": "later"}).status_code == 403
    assert list(collection.items.values_list("image", flat=True)) == [image.pk]

    # The add page offers only collections they can edit.
    chooser = client.get(reverse("collection-add"), {"images": their_image.pk})
    assert f'value="{collection.pk}"' not in chooser.content.decode()


def test_an_editor_adds_any_image_they_can_see(client, user, other_user, carol):
    collection = collection_of(user, members=[(other_user, Role.EDITOR)])
    own = finished_image(other_user)
    teammates = finished_image(carol, visibility=TEAM)
    client.force_login(other_user)

    response = add(client, collection, teammates)
    assert response.status_code == 302
    assert response.url == reverse("collection-detail", args=[collection.pk])
    item = CollectionItem.objects.get(collection=collection, image=teammates)
    assert item.added_by == other_user

    page = client.get(response.url).content.decode()
    assert "Added 1 image to “Moodboard”." in page
    assert "added by bob" in page and "By carol" in page

    # One they can't see (carol's private image) is a 404, and nothing is added.
    hidden = finished_image(carol)
    assert add(client, collection, hidden).status_code == 404
    # Their own private image: asked first (the collection is alice's).
    assert add(client, collection, own).status_code == 200
    assert add(client, collection, own, consent=True).status_code == 302
    assert collection.items.count() == 2


def test_an_image_added_twice_stays_once_where_it_was(client_logged_in, user):
    first, second = finished_image(user), finished_image(user)
    collection = collection_of(user, images=[first, second])
    response = add(client_logged_in, collection, first)
    assert response.status_code == 302
    follow = client_logged_in.get(response.url).content.decode()
    assert "Added 0 images" in follow and "1 was in it already" in follow
    assert list(collection.items.values_list("image", flat=True)) == [
        first.pk,
        second.pk,
    ]


def test_a_group_membership_counts_and_the_highest_role_wins(client, user, other_user):
    editors = Group.objects.create(name="editors")
    other_user.groups.add(editors)
    collection = collection_of(user, members=[(other_user, Role.VIEWER)])
    services.collection_member_set(
        collection=collection, group=editors, role=Role.EDITOR
    )
    image = finished_image(other_user, visibility=TEAM)
    client.force_login(other_user)
    assert add(client, collection, image).status_code == 302


def test_only_the_owner_manages_members(client, user, other_user, carol):
    collection = collection_of(user, members=[(other_user, Role.EDITOR)])
    members_url = reverse("collection-members", args=[collection.pk])

    client.force_login(other_user)
    assert (
        client.post(members_url, {"who": "carol", "role": "viewer"}).status_code == 403
    )
    member = collection.members.get()
    url = reverse("collection-member", args=[collection.pk, member.pk])
    assert client.post(url, {"remove": "1"}).status_code == 403

    client.force_login(user)
    response = client.post(members_url, {"who": "carol", "role": "viewer"})
    assert response.status_code == 302
    assert collection.members.get(user=carol).role == Role.VIEWER

    unknown = client.post(members_url, {"who": "nobody", "role": "viewer"})
    assert unknown.status_code == 422
    assert "No user or group is called “nobody”." in unknown.content.decode()
    assert (
        client.post(members_url, {"who": "alice", "role": "editor"}).status_code == 422
    )

    Group.objects.create(name="designers")
    assert (
        client.post(members_url, {"who": "designers", "role": "editor"}).status_code
        == 302
    )
    assert collection.members.get(group__name="designers").role == Role.EDITOR

    assert client.post(url, {"role": "viewer"}).status_code == 302
    assert collection.members.get(user=other_user).role == Role.VIEWER
    assert client.post(url, {"remove": "1"}).status_code == 302
    assert not collection.members.filter(user=other_user).exists()

    client.force_login(other_user)
    detail = reverse("collection-detail", args=[collection.pk])
    assert client.get(detail).status_code == 404


def test_a_removed_member_takes_their_private_images_with_them(user, other_user, carol):
    collection = collection_of(
        user, members=[(other_user, Role.EDITOR), (carol, Role.VIEWER)]
    )
    private, shared = (
        finished_image(other_user),
        finished_image(other_user, visibility=TEAM),
    )
    services.collection_images_add(
        collection=collection, images=[private, shared], user=other_user, consent=True
    )
    assert GeneratedImage.objects.visible_to(carol).filter(pk=private.pk).exists()
    services.collection_member_remove(member=collection.members.get(user=other_user))
    assert list(collection.items.values_list("image", flat=True)) == [shared.pk]
    assert not GeneratedImage.objects.visible_to(carol).filter(pk=private.pk).exists()
    assert GeneratedImage.objects.filter(pk=private.pk).exists()


def test_a_name_both_a_user_and_a_group_have_must_be_told_apart(client_logged_in, user):
    UserFactory(username="design")
    Group.objects.create(name="design")
    collection = collection_of(user)
    url = reverse("collection-members", args=[collection.pk])
    response = client_logged_in.post(url, {"who": "design", "role": "viewer"})
    assert response.status_code == 422
    assert "group:design" in response.content.decode()
    assert (
        client_logged_in.post(
            url, {"who": "group:design", "role": "viewer"}
        ).status_code
        == 302
    )
    assert collection.members.get().group.name == "design"


# --- A private image in a shared collection ------------------------------------------------


def test_adding_a_private_image_to_a_shared_collection_asks_first(
    client, user, other_user, carol
):
    image = finished_image(user, prompt="A secret banana")
    collection = collection_of(user, members=[(other_user, Role.VIEWER)])
    client.force_login(user)

    asked = add(client, collection, image)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Show private images to the members of “Moodboard”?" in page
    assert 'name="consent" value="1"' in page
    assert not collection.items.exists()

    # Not yet: the member can't see it.
    detail = reverse("request-detail", args=[image.image_request_id])
    file_url = reverse(
        "image-file", args=[image.image_request_id, image.pk, "thumbnail"]
    )
    client.force_login(other_user)
    assert client.get(detail).status_code == 404

    client.force_login(user)
    assert add(client, collection, image, consent=True).status_code == 302
    image.image_request.refresh_from_db()
    assert image.image_request.visibility == PRIVATE  # private everywhere else

    # Members see it now, read-only; anyone else still gets a 404.
    client.force_login(other_user)
    assert client.get(detail).status_code == 200
    assert client.get(file_url).status_code == 200
    assert (
        ImageRequest.objects.visible_to(other_user)
        .filter(pk=image.image_request_id)
        .exists()
    )
    client.force_login(carol)
    assert client.get(detail).status_code == 404
    assert client.get(file_url).status_code == 404
    assert not ImageRequest.objects.team().filter(pk=image.image_request_id).exists()
    assert not GeneratedImage.objects.visible_to(carol).filter(pk=image.pk).exists()


def test_a_private_image_in_an_unshared_collection_of_its_own_asks_nothing(
    client_logged_in, user
):
    image = finished_image(user)
    collection = collection_of(user)
    assert add(client_logged_in, collection, image).status_code == 302
    assert collection.items.get().image == image


def test_a_member_added_later_sees_the_private_images_and_is_told(
    client_logged_in, user, other_user
):
    image = finished_image(user)
    collection = collection_of(user, images=[image])
    page = client_logged_in.get(reverse("collection-detail", args=[collection.pk]))
    assert "This collection holds 1 private image" in page.content.decode()
    services.collection_member_set(
        collection=collection, user=other_user, role=Role.VIEWER
    )
    assert GeneratedImage.objects.visible_to(other_user).filter(pk=image.pk).exists()


def test_a_group_member_sees_a_private_image_shown_to_the_collection(
    user, other_user, carol
):
    designers = Group.objects.create(name="designers")
    other_user.groups.add(designers)
    image = finished_image(user)
    collection = collection_of(user, images=[image])
    services.collection_member_set(
        collection=collection, group=designers, role=Role.VIEWER
    )
    assert GeneratedImage.objects.visible_to(other_user).filter(pk=image.pk).exists()
    assert not GeneratedImage.objects.visible_to(carol).filter(pk=image.pk).exists()
    # Each request once, however many collections and memberships lead to it.
    collection_of(
        user, name="Again", members=[(other_user, Role.VIEWER)], images=[image]
    )
    assert (
        ImageRequest.objects.visible_to(other_user)
        .filter(pk=image.image_request_id)
        .count()
        == 1
    )


def test_a_teammates_image_someone_else_added_is_hidden_once_made_private(
    client, user, other_user, carol
):
    """Carol shared it with the team, not with this collection: made private, it
    is hers alone again."""
    image = finished_image(carol, visibility=TEAM)
    collection = collection_of(user, members=[(other_user, Role.VIEWER)])
    services.collection_images_add(collection=collection, images=[image], user=user)
    ImageRequest.objects.filter(pk=image.image_request_id).update(visibility=PRIVATE)
    for member in (user, other_user):
        assert (
            not GeneratedImage.objects.visible_to(member).filter(pk=image.pk).exists()
        )
    client.force_login(other_user)
    page = client.get(reverse("collection-detail", args=[collection.pk]))
    assert 'id="item-' not in page.content.decode()
    assert collection.items.exists()  # back in view if she shares it again


def test_someone_elses_private_image_is_never_passed_on(
    client, user, other_user, carol
):
    """Bob sees Alice's private image through her collection; he can't put it in
    a collection of his, where Carol would see it."""
    image = finished_image(user)
    collection_of(user, members=[(other_user, Role.VIEWER)], images=[image])
    bobs = collection_of(other_user, members=[(carol, Role.VIEWER)])
    client.force_login(other_user)
    response = add(client, bobs, image, consent=True)
    assert response.status_code == 422
    assert "only by their owner" in response.content.decode()
    assert not bobs.items.exists()
    assert not GeneratedImage.objects.visible_to(carol).filter(pk=image.pk).exists()


def test_removing_an_image_hides_it_again_and_never_deletes_it(
    client, user, other_user
):
    image = finished_image(user)
    collection = collection_of(
        user, members=[(other_user, Role.VIEWER)], images=[image]
    )
    item = collection.items.get()
    client.force_login(user)
    url = reverse("collection-item-remove", args=[collection.pk, item.pk])
    assert client.post(url).status_code == 302
    assert not collection.items.exists()
    assert GeneratedImage.objects.filter(pk=image.pk).exists()
    assert (
        ImageRequest.objects.for_user(user).filter(pk=image.image_request_id).exists()
    )
    client.force_login(other_user)
    detail = reverse("request-detail", args=[image.image_request_id])
    assert client.get(detail).status_code == 404


def test_an_author_takes_their_image_out_of_a_collection_they_only_view(
    client, user, other_user
):
    image = finished_image(other_user, visibility=TEAM)
    collection = collection_of(user, members=[(other_user, Role.VIEWER)])
    services.collection_images_add(collection=collection, images=[image], user=user)
    item = collection.items.get()
    client.force_login(other_user)
    url = reverse("collection-item-remove", args=[collection.pk, item.pk])
    assert client.post(url).status_code == 302
    assert not collection.items.exists()


def test_deleting_a_collection_keeps_its_images(client_logged_in, user):
    image = finished_image(user)
    collection = collection_of(user, images=[image])
    url = reverse("collection-delete", args=[collection.pk])
    confirm = client_logged_in.get(url)
    assert confirm.status_code == 200 and "not deleted" in confirm.content.decode()
    assert client_logged_in.post(url).status_code == 302
    assert not Collection.objects.exists()
    assert GeneratedImage.objects.filter(pk=image.pk).exists()


def test_deleting_an_image_takes_it_out_of_its_collections(user):
    image = finished_image(user)
    collection = collection_of(user, images=[image])
    Collection.objects.filter(pk=collection.pk).update(cover=image)
    bananaweb_services.image_requests_delete(user=user, ids=[image.image_request_id])
    collection.refresh_from_db()
    assert not collection.items.exists() and collection.cover is None


# --- Order, cover, the page ----------------------------------------------------------------


def test_editors_arrange_the_order_and_choose_the_cover(client, user, other_user):
    images = [finished_image(user, visibility=TEAM) for _ in range(3)]
    collection = collection_of(user, members=[(other_user, Role.EDITOR)], images=images)
    _, second, third = collection.items.order_by("position")
    client.force_login(other_user)

    move = reverse("collection-item-move", args=[collection.pk, third.pk])
    assert client.post(move, {"direction": "earlier"}).status_code == 302
    order = list(collection.items.order_by("position").values_list("image", flat=True))
    assert order == [images[0].pk, images[2].pk, images[1].pk]
    assert client.post(move, {"direction": "sideways"}).status_code == 400

    cover = reverse("collection-item-cover", args=[collection.pk, second.pk])
    assert client.post(cover).status_code == 302
    collection.refresh_from_db()
    assert collection.cover == images[1]
    listing = client.get(reverse("collections")).content.decode()
    thumb = reverse(
        "image-file", args=[images[1].image_request_id, images[1].pk, "thumbnail"]
    )
    assert thumb in listing

    # Its cover taken out, the first image heads it again.
    remove = reverse("collection-item-remove", args=[collection.pk, second.pk])
    client.post(remove)
    collection.refresh_from_db()
    assert collection.cover is None


def test_the_collection_page_shows_who_added_each_and_when(client, user, other_user):
    image = finished_image(user, visibility=TEAM, prompt="A banana boat")
    collection = collection_of(
        user, members=[(other_user, Role.VIEWER)], images=[image]
    )
    client.force_login(other_user)
    page = client.get(
        reverse("collection-detail", args=[collection.pk])
    ).content.decode()
    item = collection.items.get()
    assert f'id="item-{item.pk}"' in page
    assert "added by alice" in page
    assert f'<time datetime="{localtime(item.added_at).isoformat()}">' in page
    assert "A banana boat" in page
    assert reverse("request-detail", args=[image.image_request_id]) in page


# --- The ZIP ------------------------------------------------------------------------------------


def test_the_zip_holds_every_image_in_the_collections_order(client, user, other_user):
    contents = [png_bytes((10 + n, 10)) for n in range(3)]
    images = [
        finished_image(user, visibility=TEAM, prompt=f"Banana {n}", content=content)
        for n, content in enumerate(contents)
    ]
    collection = collection_of(
        user, name="Best of", members=[(other_user, Role.VIEWER)], images=images
    )
    last = collection.items.order_by("position").last()
    services.collection_item_move(item=last, offset=-1)
    client.force_login(other_user)

    response = client.get(reverse("collection-download", args=[collection.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"best-of-{collection.pk}.zip" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    assert [name[:4] for name in names] == ["001-", "002-", "003-"]
    assert "banana-2" in names[1]
    assert [archive.read(name) for name in names] == [
        contents[0],
        contents[2],
        contents[1],
    ]


def test_an_empty_collection_has_no_zip(client_logged_in, user):
    collection = collection_of(user)
    url = reverse("collection-download", args=[collection.pk])
    assert client_logged_in.get(url).status_code == 404


# --- Adding from the card, the detail page and the selection -------------------------------


def test_the_card_the_detail_page_and_the_selection_offer_add_to_collection(
    client_logged_in, user
):
    image = finished_image(user)
    link = f"{reverse('collection-add')}?images={image.pk}"
    index = client_logged_in.get(reverse("index")).content.decode()
    assert link in index
    assert f'formaction="{reverse("collection-add")}"' in index
    detail = client_logged_in.get(
        reverse("request-detail", args=[image.image_request_id])
    ).content.decode()
    assert link in detail


def test_the_selection_adds_the_images_of_the_ticked_requests(client_logged_in, user):
    first, second = finished_image(user), finished_image(user)
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    collection = collection_of(user)
    chooser = client_logged_in.get(
        reverse("collection-add"),
        {"ids": [second.image_request_id, first.image_request_id, failed.pk]},
    )
    assert chooser.status_code == 200
    page = chooser.content.decode()
    assert "Add 2 images to a collection" in page
    assert f'value="{collection.pk}"' in page
    assert page.index(f'name="images" value="{second.pk}"') < page.index(
        f'name="images" value="{first.pk}"'
    )

    response = add(client_logged_in, collection, second, first)
    assert response.status_code == 302
    assert list(collection.items.values_list("image", flat=True)) == [
        second.pk,
        first.pk,
    ]


def test_the_selection_refuses_what_it_cannot_add(client_logged_in, user, other_user):
    url = reverse("collection-add")
    assert client_logged_in.get(url).status_code == 400
    failed = ImageRequestFactory(user=user, status=Status.FAILED)
    assert client_logged_in.get(url, {"ids": failed.pk}).status_code == 400
    theirs = ImageRequestFactory(user=other_user, status=Status.COMPLETED)
    make_image(theirs)
    assert client_logged_in.get(url, {"ids": theirs.pk}).status_code == 404
    assert client_logged_in.get(url, {"ids": "x"}).status_code == 400


def test_images_go_to_a_new_collection_named_on_the_add_page(client_logged_in, user):
    image = finished_image(user)
    response = client_logged_in.post(
        reverse("collection-add"),
        {"collection": "", "name": "Fresh", "images": [image.pk]},
    )
    collection = Collection.objects.get(name="Fresh")
    assert response.url == reverse("collection-detail", args=[collection.pk])
    assert collection.owner == user and collection.items.get().image == image

    neither = client_logged_in.post(
        reverse("collection-add"), {"collection": "", "images": [image.pk]}
    )
    assert neither.status_code == 422
    both = client_logged_in.post(
        reverse("collection-add"),
        {"collection": collection.pk, "name": "Other", "images": [image.pk]},
    )
    assert both.status_code == 422


def test_membership_rows_need_a_user_or_a_group(user):
    collection = collection_of(user)
    with pytest.raises(IntegrityError):
        CollectionMember.objects.create(collection=collection, role=Role.VIEWER)


def test_collections_are_in_the_admin(admin_client, user, other_user):
    image = finished_image(user)
    collection = collection_of(
        user, name="Admin view", members=[(other_user, Role.VIEWER)], images=[image]
    )
    changelist = admin_client.get(reverse("admin:team_collection_changelist"))
    assert changelist.status_code == 200 and "Admin view" in changelist.content.decode()
    change = admin_client.get(
        reverse("admin:team_collection_change", args=[collection.pk])
    )
    assert change.status_code == 200
    assert "bob" in change.content.decode()
