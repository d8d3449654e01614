"""Collections (their pages, members and images), share links and the public pages
those links open."""

from pathlib import PurePosixPath

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bananaweb import downloads, history, media
from bananaweb.models import GeneratedImage
from bananaweb.team import selectors, services
from bananaweb.team.forms import (
    AddToCollectionForm,
    CollectionForm,
    MemberForm,
    ShareLinkForm,
)
from bananaweb.team.models import (
    Access,
    Collection,
    CollectionItem,
    CollectionMember,
    Role,
    ShareLink,
)


def _collection(
    request: HttpRequest, pk: int, at_least: Access = Access.VIEWER
) -> tuple[Collection, Access]:
    """The collection if the user is in it (a 404 for anyone else), and their access;
    a member without the access needed is refused (403)."""
    collection = get_object_or_404(
        Collection.objects.viewable_by(request.user).select_related("owner"), pk=pk
    )
    access = collection.access_for(request.user)
    if access < at_least:
        raise PermissionDenied(
            f"Only the collection's {at_least.name.lower()}s may do this."
            if at_least < Access.OWNER
            else "Only the collection's owner may do this."
        )
    return collection, access


def _item(collection: Collection, item_pk: int) -> CollectionItem:
    return get_object_or_404(
        collection.items.select_related("image__image_request"), pk=item_pk
    )


# --- Collections -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def collections(request: HttpRequest) -> HttpResponse:
    """The user's collections and those shared with them; a POST makes a new one."""
    form = CollectionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        collection = services.collection_create(
            owner=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
        )
        return redirect("collection-detail", pk=collection.pk)
    entries = [
        (collection, selectors.cover_of(collection, collection.ordered_items))
        for collection in selectors.collections_for(user=request.user)
    ]
    return render(
        request,
        "team/collections.html",
        {"entries": entries, "form": form},
        status=422 if form.is_bound else 200,
    )


def _detail(
    request: HttpRequest,
    collection: Collection,
    access: Access,
    *,
    status: int = 200,
    **forms,
) -> HttpResponse:
    items = selectors.collection_items(collection=collection, user=request.user)
    context = {
        "collection": collection,
        "is_owner": access >= Access.OWNER,
        "can_edit": access >= Access.EDITOR,
        "items": items,
        "cover": selectors.cover_of(collection, items),
        "members": collection.members.select_related("user", "group"),
        "roles": Role.choices,
        "private_count": sum(selectors.is_private(item.image) for item in items),
    }
    if access >= Access.OWNER:
        context |= {
            "details_form": CollectionForm(instance=collection),
            "member_form": MemberForm(),
            "share_form": ShareLinkForm(),
            "share_link_count": collection.share_links.for_user(request.user)
            .active()
            .count(),
        }
    return render(request, "team/collection.html", context | forms, status=status)


@require_GET
def collection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    collection, access = _collection(request, pk)
    return _detail(request, collection, access)


@require_POST
def collection_edit(request: HttpRequest, pk: int) -> HttpResponse:
    collection, access = _collection(request, pk, Access.OWNER)
    form = CollectionForm(request.POST, instance=Collection(owner=collection.owner))
    if not form.is_valid():
        return _detail(request, collection, access, status=422, details_form=form)
    services.collection_update(
        collection=collection,
        name=form.cleaned_data["name"],
        description=form.cleaned_data["description"],
    )
    return redirect("collection-detail", pk=collection.pk)


@require_http_methods(["GET", "POST"])
def collection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what deleting it does, to confirm; POST: delete it (its images stay)."""
    collection, _ = _collection(request, pk, Access.OWNER)
    if request.method == "GET":
        context = {"collection": collection, "item_count": collection.items.count()}
        return render(request, "team/collection_delete.html", context)
    services.collection_delete(collection=collection)
    messages.success(request, f"Deleted the collection “{collection.name}”.")
    return redirect("collections")


@require_GET
def collection_download(request: HttpRequest, pk: int) -> HttpResponse:
    """Every image of the collection as one ZIP, in its order, written while it is sent."""
    collection, _ = _collection(request, pk)
    items = selectors.collection_items(collection=collection, user=request.user)
    if not items:
        raise Http404("This collection has no images yet.")
    files = [
        (f"{n:03d}-{downloads.download_name(item.image)}", item.image.file)
        for n, item in enumerate(items, start=1)
    ]
    slug = slugify(collection.name)[: downloads.SLUG_MAX_LENGTH].strip("-")
    filename = f"{slug or 'collection'}-{collection.pk}.zip"
    return StreamingHttpResponse(
        downloads.zip_stream(files),
        content_type="application/zip",
        headers={"Content-Disposition": content_disposition_header(True, filename)},
    )


# --- Members -------------------------------------------------------------------------------


@require_POST
def collection_members(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner adds a user or a group, or changes the role of one already in."""
    collection, access = _collection(request, pk, Access.OWNER)
    form = MemberForm(request.POST)
    if form.is_valid():
        user, group = form.cleaned_data["who"]
        try:
            services.collection_member_set(
                collection=collection,
                user=user,
                group=group,
                role=form.cleaned_data["role"],
            )
        except ValidationError as exc:
            form.add_error("who", exc.message_dict["who"])
    if not form.is_valid():
        return _detail(request, collection, access, status=422, member_form=form)
    return redirect(reverse("collection-detail", args=[collection.pk]) + "#members")


@require_POST
def collection_member(request: HttpRequest, pk: int, member_pk: int) -> HttpResponse:
    """The owner changes a member's role (role=viewer|editor) or removes them
    (remove=1)."""
    collection, _ = _collection(request, pk, Access.OWNER)
    member = get_object_or_404(
        CollectionMember.objects.select_related("collection"),
        pk=member_pk,
        collection=collection,
    )
    if request.POST.get("remove"):
        services.collection_member_remove(member=member)
    elif (role := request.POST.get("role")) in Role.values:
        services.collection_member_set(
            collection=collection, user=member.user, group=member.group, role=role
        )
    else:
        return HttpResponseBadRequest("role is viewer or editor, or remove is 1.")
    return redirect(reverse("collection-detail", args=[collection.pk]) + "#members")


# --- Images in a collection ----------------------------------------------------------------


def _back_to(
    collection: Collection, item: CollectionItem | None = None
) -> HttpResponse:
    anchor = f"#item-{item.pk}" if item else "#images"
    return redirect(reverse("collection-detail", args=[collection.pk]) + anchor)


@require_POST
def collection_item_remove(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """An editor, or the image's own author, takes an image out (it is not deleted)."""
    collection, access = _collection(request, pk)
    item = _item(collection, item_pk)
    if access < Access.EDITOR and item.image.image_request.user_id != request.user.pk:
        raise PermissionDenied("Only the collection's editors may take images out.")
    services.collection_item_remove(item=item)
    return _back_to(collection)


@require_POST
def collection_item_move(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """Moves an image earlier (direction=earlier) or later (direction=later)."""
    collection, _ = _collection(request, pk, Access.EDITOR)
    item = _item(collection, item_pk)
    offset = {"earlier": -1, "later": 1}.get(request.POST.get("direction", ""))
    if offset is None:
        return HttpResponseBadRequest("direction is earlier or later.")
    services.collection_item_move(item=item, offset=offset)
    return _back_to(collection, item)


@require_POST
def collection_item_cover(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    collection, _ = _collection(request, pk, Access.EDITOR)
    services.collection_cover_set(item=_item(collection, item_pk))
    return _back_to(collection)


# --- Adding images: from a card, a detail page or the history's selection ------------------


def _chosen_images(request: HttpRequest, values) -> tuple[list[GeneratedImage], str]:
    """The images named by ?images= (image ids) and ?ids= (request ids, from the
    history's selection), in that order, or why there are none. One the user may
    not see is a 404."""
    image_ids = history.selected_ids(values.getlist("images"))
    request_ids = history.selected_ids(values.getlist("ids"))
    if image_ids is None or request_ids is None:
        return [], f"Choose at most {history.SELECTION_MAX} images, by their numbers."
    visible = selectors.images_visible_to(request.user).select_related("image_request")
    by_pk = visible.in_bulk(image_ids)
    if len(by_pk) != len(image_ids):
        raise Http404("One of these images is not one you can see.")
    seen_requests = selectors.requests_visible_to(request.user).filter(
        pk__in=request_ids
    )
    if seen_requests.count() != len(request_ids):
        raise Http404("One of these requests is not one you can see.")
    of_requests = sorted(
        visible.filter(image_request__in=request_ids),
        key=lambda image: (request_ids.index(image.image_request_id), image.position),
    )
    images = list(dict.fromkeys([*(by_pk[pk] for pk in image_ids), *of_requests]))
    if not images:
        return [], (
            "Nothing to add: tick the “Select” box of finished images in your "
            "history first."
            if not image_ids and not request_ids
            else "None of the selected requests has an image yet."
        )
    return images, ""


def _add_page(
    request: HttpRequest,
    images: list[GeneratedImage],
    form: AddToCollectionForm,
    *,
    status: int = 200,
    **context,
) -> HttpResponse:
    editable = (
        Collection.objects.editable_by(request.user)
        .annotate(member_count=Count("members"))
        .recently_changed_first()
    )
    context = {"images": images, "form": form, "collections": editable, **context}
    return render(request, "team/add.html", context, status=status)


@require_http_methods(["GET", "POST"])
def collection_add(request: HttpRequest) -> HttpResponse:
    """GET: which collection the chosen images go to; POST: add them, first asking
    before private images are shown to a collection's members."""
    posted = request.method == "POST"
    images, problem = _chosen_images(request, request.POST if posted else request.GET)
    if problem:
        context = {"title": "Nothing to add", "problem": problem}
        return render(request, "requests/selection.html", context, status=400)
    if not posted:
        return _add_page(request, images, AddToCollectionForm())
    form = AddToCollectionForm(request.POST)
    if not form.is_valid():
        return _add_page(request, images, form, status=422)
    try:
        if form.cleaned_data["collection"] is None:
            collection = services.collection_create(
                owner=request.user, name=form.cleaned_data["name"], images=images
            )
            added = len(images)
        else:
            collection, _ = _collection(
                request, form.cleaned_data["collection"], Access.EDITOR
            )
            added = services.collection_images_add(
                collection=collection,
                images=images,
                user=request.user,
                consent=form.cleaned_data["consent"],
            )
    except services.ConsentNeeded as exc:
        context = {"consent_for": collection, "private_images": exc.images}
        return _add_page(request, images, form, **context)
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _add_page(request, images, form, status=422)
    already = len(images) - added
    message = f"Added {added} image{pluralize(added)} to “{collection.name}”."
    if already:
        message += f" {already} {pluralize(already, 'was,were')} in it already."
    messages.success(request, message)
    return redirect("collection-detail", pk=collection.pk)


# --- Share links: made and revoked by their creators ----------------------------------------


def _share_target(
    request: HttpRequest, values
) -> tuple[Collection | None, GeneratedImage | None]:
    """The collection (its owner shares it) or the image (its author shares it)
    that ?collection= or ?image= names; anything else is a 404."""
    collection_pk, image_pk = values.get("collection", ""), values.get("image", "")
    if collection_pk.isdigit() and len(collection_pk) < 19 and not image_pk:
        collection, _ = _collection(request, int(collection_pk), Access.OWNER)
        return collection, None
    if image_pk.isdigit() and len(image_pk) < 19 and not collection_pk:
        image = get_object_or_404(
            GeneratedImage.objects.for_user(request.user).select_related(
                "image_request"
            ),
            pk=int(image_pk),
        )
        return None, image
    raise Http404("Name one collection or one image to share.")


def _share_links_page(
    request: HttpRequest, *, status: int = 200, **context
) -> HttpResponse:
    share_links = selectors.share_links_for(user=request.user)
    return render(
        request,
        "team/share_links.html",
        {"share_links": share_links, **context},
        status=status,
    )


@require_GET
def share_links(request: HttpRequest) -> HttpResponse:
    """Every share link the user made, with its expiry and a revoke button."""
    return _share_links_page(request)


@require_http_methods(["GET", "POST"])
@never_cache  # the POST's answer holds the new link: never stored by anyone
def share_link_create(request: HttpRequest) -> HttpResponse:
    """GET: what to show and for how long; POST: make the link and show it, once."""
    posted = request.method == "POST"
    collection, image = _share_target(request, request.POST if posted else request.GET)
    form = ShareLinkForm(request.POST if posted else None, collection=bool(collection))
    if form.is_valid():
        share_link, raw = services.share_link_create(
            user=request.user,
            collection=collection,
            image=image,
            days=form.cleaned_data["days"],
            show_prompts=form.cleaned_data["show_prompts"],
            show_details=form.cleaned_data.get("show_details", False),
        )
        url = request.build_absolute_uri(reverse("share-page", args=[raw]))
        context = {"new_share_link": share_link, "new_url": url}
        return _share_links_page(request, status=201, **context)
    context = {"form": form, "collection": collection, "image": image}
    return render(
        request, "team/share_link_new.html", context, status=422 if posted else 200
    )


@require_POST
def share_link_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    share_link = get_object_or_404(ShareLink.objects.for_user(request.user), pk=pk)
    if services.share_link_revoke(share_link=share_link):
        messages.success(request, "Revoked: the link no longer opens anything.")
    return redirect("share-links")


# --- The pages a share link opens, to anyone ------------------------------------------------


def _public(response: HttpResponse) -> HttpResponse:
    """Never kept by a shared cache, never indexed, never sent on as a referrer."""
    patch_cache_control(response, private=True, no_store=True)
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _shared(token: str) -> tuple[ShareLink, list[GeneratedImage]] | None:
    share_link = selectors.share_link_for_token(token)
    if share_link is None:
        return None
    return share_link, selectors.share_link_images(share_link)


def _link_not_valid(request: HttpRequest) -> HttpResponse:
    return _public(render(request, "team/share_gone.html", status=404))


@login_not_required
@require_GET
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    """The images a link shows and, if its creator chose, their prompts (and a
    collection's name and description): nothing else, no names, no ids."""
    shared = _shared(token)
    if shared is None:
        return _link_not_valid(request)
    share_link, images = shared
    context = {
        "share_link": share_link,
        "token": token,
        "images": images,
        "title": share_link.collection.name
        if share_link.show_details
        else "Shared images"
        if share_link.collection_id
        else "A shared image",
    }
    return _public(render(request, "team/share.html", context))


def _shared_file(
    request: HttpRequest, token: str, n: int, *, thumbnail: bool
) -> HttpResponse:
    shared = _shared(token)
    if shared is None or not 1 <= n <= len(shared[1]):
        return _link_not_valid(request)
    image = shared[1][n - 1]
    file = image.thumbnail if thumbnail else image.file
    content_type = "image/webp" if thumbnail else image.content_type
    suffix = ".webp" if thumbnail else PurePosixPath(image.file.name).suffix.lower()
    # A name of its own: the stored path says whose it is.
    response = media.file_response(
        file, content_type=content_type, filename=f"image-{n}{suffix}"
    )
    return _public(response)


@login_not_required
@require_GET
def share_image(request: HttpRequest, token: str, n: int) -> HttpResponse:
    """The link's n-th image (from 1), at full size."""
    return _shared_file(request, token, n, thumbnail=False)


@login_not_required
@require_GET
def share_thumbnail(request: HttpRequest, token: str, n: int) -> HttpResponse:
    return _shared_file(request, token, n, thumbnail=True)
