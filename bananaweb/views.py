"""The pages: one main page with the forms and the history (the user's own, or the
team's), a detail page, their fragments, and the user's settings.

Reads go through `visible_to(user)` (the owner's, the team's, staff see all);
writes to a request (delete, visibility, resubmit) through `for_user(user)`.
Starring, running again and using as a reference or template are for anyone
who can see it, each for themselves."""

import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import (
    content_disposition_header,
    url_has_allowed_host_and_scheme,
)
from django.utils.text import slugify
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HTMX_STOP_POLLING, push_url, replace_url, reswap, retarget
from django_htmx.middleware import HtmxDetails

from bananaweb import (
    compiled,
    downloads,
    fragments,
    history,
    lookups,
    media,
    options,
    pages,
    polling,
    public_links,
    services,
)
from bananaweb.forms import (
    NOT_YOURS,
    VISIBILITY_CHOICES,
    ImageRequestForm,
    PreferencesForm,
    parse_reference,
    reference_token,
    uploads_refused,
)
from bananaweb.models import (
    GeneratedImage,
    ImageRequest,
    Reference,
    Upload,
    UserPreference,
)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _forms(request: HtmxHttpRequest, bound: ImageRequestForm | None = None) -> dict:
    prefill = _prefill(request)
    quota, visibility = services.quota_and_default_visibility(user=request.user)
    if bound is None and not prefill:
        # Blank forms, as most pages show them: their HTML is remembered.
        html = fragments.request_forms_html(request, visibility=visibility)
        return {
            "generate_form_html": html[options.Action.GENERATE],
            "edit_form_html": html[options.Action.EDIT],
            "quota": quota,
        }
    forms = {}
    for action in options.Action.values:
        initial = prefill if prefill.get("action") == action else {}
        references = initial.pop("references", [])
        prefilled = bool(initial)
        form = ImageRequestForm(
            action=action, initial={"visibility": visibility, **initial}
        )
        # Only images the user may see; anything else is left out.
        form.chosen_references, _ = _usable_references(request, references)
        form.prefilled = prefilled
        forms[action] = form
    if bound is not None:
        forms[bound.kind] = bound
    return {
        "generate_form": forms[options.Action.GENERATE],
        "edit_form": forms[options.Action.EDIT],
        # Beside the forms, on the whole page only (not in the history's fragment).
        "quota": quota,
    }


PREFILLED = ("prompt", "model", "aspect_ratio", "resolution")
# What fills a form from the address; "model" is left: the history filters by it too.
PREFILL_PARAMETERS = (
    "action",
    "template",
    "references",
    "image_urls",
    "prompt",
    "aspect_ratio",
    "resolution",
)


def _without_prefill(request: HtmxHttpRequest, response: HttpResponse) -> HttpResponse:
    """Once sent, the address no longer fills the form ("Edit this image" links):
    a reload must not offer the same pictures again. The history's filters stay."""
    current = urlsplit(request.htmx.current_url or "")
    pairs = parse_qsl(current.query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name not in PREFILL_PARAMETERS]
    if current.path and len(kept) < len(pairs):
        replace_url(response, current.path + (f"?{urlencode(kept)}" if kept else ""))
    return response


def _prefill(request: HtmxHttpRequest) -> dict:
    """Initial values for one of the forms (its "action") from the query string:
    "Edit this image" and "Use as reference" links (?action=edit&references=12),
    or "Use as template" (?template=<the id of a request the user may see>)."""
    if "template" in request.GET:
        pk = request.GET["template"]
        template = (
            ImageRequest.objects.visible_to(request.user).filter(pk=pk).first()
            if pk.isascii() and pk.isdigit() and len(pk) <= 12
            else None
        )
        if template is None:
            return {}
        references = template.references.select_related("upload", "image")
        return {
            "action": template.action,
            **{name: getattr(template, name) for name in PREFILLED},
            "image_urls": template.image_urls,
            "references": [reference_token(r.source) for r in references if r.source],
        }
    if not any(name in request.GET for name in ("prompt", "image_urls", "references")):
        return {}  # nothing to start from: "action" and "model" alone filter the history
    initial = {
        name: request.GET[name]
        for name in ("action", *PREFILLED, "image_urls", "references")
        if name in request.GET
    }
    for name in ("image_urls", "references"):
        if name in initial:
            initial[name] = request.GET.getlist(name)
    return initial


def _usable_references(
    request: HtmxHttpRequest, tokens: list[str]
) -> tuple[list[tuple[str, Upload | GeneratedImage]], bool]:
    """The images references tokens name that the user may use (theirs, the
    team's), in their order (each once), and whether every token named one."""
    if not tokens:
        return [], True  # the forms of most pages: no querysets to build
    wanted = [(token, parse_reference(token)) for token in dict.fromkeys(tokens)]
    ids = {model: [] for model in (Upload, GeneratedImage)}
    for _, parsed in wanted:
        if parsed:
            ids[parsed[0]].append(parsed[1])
    found = {
        Upload: Upload.objects.visible_to(request.user).in_bulk(ids[Upload]),
        GeneratedImage: GeneratedImage.objects.visible_to(request.user).in_bulk(
            ids[GeneratedImage]
        ),
    }
    chosen = [
        (reference_token(source), source)
        for _, parsed in wanted
        if parsed and (source := found[parsed[0]].get(parsed[1]))
    ]
    return chosen, len(chosen) == len(wanted)


def _history(request: HtmxHttpRequest) -> dict:
    """The history as the query string narrows it (mine or the team's, search,
    filters, view, page)."""
    team = request.GET.get("scope") == history.Scope.TEAM
    people = history.team_people(request.user) if team else []
    filters = history.history_filters(request.GET, people=people)
    # Cards and tiles come from the cache, rendered once (fragments.py):
    # those cached are never built as ImageRequests.
    page = history.history_page(
        user=request.user,
        filters=filters,
        cached=fragments.cached_cards(request, tiles=filters.gallery),
    )
    # The page's cached cards came as CardRows; the rest missed.
    fragments.attach(
        request,
        page.entries
        if filters.gallery
        else [
            m for entry in page.entries for m in entry.members or (entry.image_request,)
        ],
        tiles=filters.gallery,
        looked_up=True,
    )
    return {
        # The search form, on whole pages only (rendered once per filters).
        "filters_html": ""
        if _history_fragment(request)
        else fragments.filters_html(filters, people),
        "filters": filters,
        "filter_choices": history.FILTER_CHOICES,
        "people": people,
        "history": page,
        "polling": _any_in_flight(page),
    }


def _any_in_flight(page: history.HistoryPage) -> bool:
    """Whether the page's poller starts: a card (or a group's tile) is in flight."""
    if page.filters.gallery:
        return False  # finished images only
    return any(
        member.in_flight
        for entry in page.entries
        for member in (entry.members or (entry.image_request,))
    )


def _on_team_view(request: HtmxHttpRequest) -> bool:
    """Whether htmx sent this from the history's Team view."""
    url = request.htmx.current_url or ""
    return QueryDict(urlsplit(url).query).get("scope") == history.Scope.TEAM


def _history_fragment(request: HtmxHttpRequest) -> bool:
    """Whether htmx asks for the history alone: the search form and the pager do;
    restoring the page for the back button needs all of it."""
    return bool(
        request.htmx
        and not request.htmx.history_restore_request
        and (request.htmx.target == "history" or "page" in request.GET)
    )


# --- The main page ------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request", "HX-Target", "HX-History-Restore-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    # The page's queries in one round trip: what follows takes their rows, and
    # the page is rendered once for what they read (bananaweb.pages).
    with compiled.together(*_page_queries(request)):
        if _history_fragment(request):
            html, understood = pages.remembered(request, lambda: _history_html(request))
            # The address bar shows what was understood (bad values left out), and
            # a search that changed nothing adds no step to the back button.
            url = reverse("index") + understood["query"]
            response = HttpResponse(html)
            return push_url(response, url != request.htmx.current_url_abs_path and url)
        html, _ = pages.remembered(request, lambda: _page_html(request))
        return HttpResponse(html)


def _history_html(request: HtmxHttpRequest) -> tuple[str, dict]:
    context = _history(request)
    html = render_to_string("requests/index.html#history", context, request)
    return html, {"query": context["filters"].querystring()}


def _page_html(request: HtmxHttpRequest) -> tuple[str, dict]:
    context = _forms(request) | _history(request)
    return render_to_string("requests/index.html", context, request), {}


def _page_queries(request: HtmxHttpRequest) -> list[compiled.Query]:
    """The queries the main page (or its history alone) will ask, known before
    it is built: the Team view's people, the history's page, the quota and the
    template menu of the forms."""
    user = request.user
    team = request.GET.get("scope") == history.Scope.TEAM
    queries = [history.team_people_query(user)] if team else []
    # The filters need the people only to check a person asked for.
    if not (team and request.GET.get("person")):
        filters = history.history_filters(request.GET)
        queries.append(history.page_query(user, filters))
    if not _history_fragment(request):
        queries += [services.quota_query(user), fragments.menu_query(user)]
    return queries


@require_POST
def request_create(request: HtmxHttpRequest) -> HttpResponse:
    action = request.POST.get("action")
    form = ImageRequestForm(
        request.POST,
        request.FILES,
        action=action if action in options.Action.values else options.Action.GENERATE,
    )
    quota_error = ""
    chosen, all_own = _usable_references(request, request.POST.getlist("references"))
    form.chosen_references = chosen
    if form.is_valid() and not all_own:
        form.add_error("references", NOT_YOURS)
    if form.is_valid():
        data = form.cleaned_data
        same = {
            "user": request.user,
            "data": data,
            "idempotency_key": data["idempotency_key"],
            "uploads": data["uploads"],
            "references": [source for _, source in chosen],
            "visibility": data["visibility"] or None,  # None: the user's default
        }
        try:
            if form.kind == options.Action.GENERATE and "every_model" in request.POST:
                created = services.image_request_every_model(**same)
            elif data.get("count", 1) > 1:
                created = services.image_request_variations(count=data["count"], **same)
            else:
                created = [services.image_request_create(**same)]
        except services.QuotaExceeded as exc:
            quota_error = str(exc)
        except services.IdempotencyConflict as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if not request.htmx:
                return redirect("index")
            # The new card joins the history; the form comes back empty, keeping the model's choices.
            kept = {
                "model": form.cleaned_data["model"],
                "aspect_ratio": form.cleaned_data["aspect_ratio"],
                "resolution": form.cleaned_data["resolution"],
                "visibility": created[0].visibility,
            }
            # The model's defaults kept: a blank form, whose HTML is remembered.
            blank = (
                kept["model"] in ("", options.DEFAULT_MODEL)
                and not kept["aspect_ratio"]
                and not kept["resolution"]
            )
            # The Team view, where the form was sent from, lists only what the
            # team can see.
            listed = (
                []
                if _on_team_view(request)
                and created[0].visibility != ImageRequest.Visibility.TEAM
                else created
            )
            response = render(
                request,
                "requests/index.html#created",
                {
                    # Newest first, as the history lists them.
                    "created_requests": sorted(listed, key=lambda r: -r.pk),
                    # Several made together: one card, as the history shows them.
                    "created_group": history.group_entry(listed)
                    if len(listed) > 1
                    else None,
                    "form_html": fragments.request_forms_html(
                        request, visibility=kept["visibility"]
                    )[form.kind]
                    if blank
                    else "",
                    "form": None
                    if blank
                    else ImageRequestForm(action=form.kind, initial=kept),
                    # Told by the service, unless the key's first answer was replayed.
                    "quota": getattr(created[0], "quota_left", None)
                    or services.quota_usage(user=request.user),
                    # The page's poller (re)starts: the new cards join its poll.
                    "polling": any(r.in_flight for r in listed),
                },
            )
            return _without_prefill(request, response)

    context = {"form": form, "quota_error": quota_error}
    if request.htmx:
        response = render(
            request,
            "requests/index.html#request-form",
            context,
            status=422 if not quota_error else 429,
        )
        return reswap(retarget(response, f"#{form.kind}-form"), "outerHTML")
    return render(
        request,
        "requests/index.html",
        _forms(request, form) | _history(request) | context,
        status=422 if not quota_error else 429,
    )


@require_GET
def request_options(request: HtmxHttpRequest) -> HttpResponse:
    """The aspect-ratio and resolution fields for the chosen model."""
    action = request.GET.get("action")
    form = ImageRequestForm(
        action=action if action in options.Action.values else options.Action.GENERATE,
        initial={
            name: request.GET.get(name, "")
            for name in ("model", "aspect_ratio", "resolution")
        },
    )
    return render(request, "requests/index.html#option-fields", {"form": form})


# --- One request ----------------------------------------------------------------------


def _own_request(request: HtmxHttpRequest, pk: int) -> ImageRequest:
    """One of the user's requests, to change: anyone else's is a 404."""
    return get_object_or_404(
        ImageRequest.objects.for_user(request.user)
        .with_images()
        .with_starred(request.user),
        pk=pk,
    )


def _visible_by_pk(user, pks, shape, own=None) -> list[ImageRequest]:
    """The requests among `pks` the user may see, each `shape`d (a QuerySet's
    joins and columns): their own first (`own` if already read, as shaped), in a
    query PostgreSQL plans in a tenth of a millisecond; only those not found go
    through visible_to, whose team and collection clauses cost it about 2 ms to
    plan on every call. The same rows either way: the owner's live requests are
    a part of visible_to's."""
    if own is None:
        own = shape(ImageRequest.objects.for_user(user).filter(pk__in=pks))
    found = list(own)
    if missing := set(pks) - {r.pk for r in found}:
        others = ImageRequest.objects.visible_to(user).filter(pk__in=missing)
        found += shape(others)
    return found


def _visible_request(
    request: HtmxHttpRequest, pk: int, own: list | None = None
) -> ImageRequest:
    """A request the user may see (theirs, the team's; staff any): a private one
    of someone else is a 404. `own`: as _visible_by_pk's."""
    found = _visible_by_pk(
        request.user,
        [pk],
        lambda requests: (
            requests.with_images().with_starred(request.user).select_related("user")
        ),
        own,
    )
    if not found:
        raise Http404("No such request.")
    return found[0]


def _back(request: HtmxHttpRequest, default: str) -> HttpResponse:
    """Back where a plain form was sent from (its `next`, one of our paths)."""
    next_url = request.POST.get("next", "")
    if next_url.startswith("/") and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(next_url)
    return redirect(default)


@require_GET
def request_card(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """One card's current state, 286 once it is final. The page no longer polls it
    (request_updates does, once for all its cards); kept for what watches a single
    request: the load, concurrency and production-path tests."""
    image_request = _visible_request(request, pk)
    response = render(
        request, "requests/index.html#request-card", {"image_request": image_request}
    )
    if not image_request.in_flight:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_GET
def request_updates(request: HtmxHttpRequest) -> HttpResponse:
    """The page's one poll: of the cards it names (`ids`), those whose state moved
    on from the version it shows (`since`), swapped out of band, and the poller
    again; 286 and a poller that stops once none of them is in flight. Whatever
    the number of ids: one query of the columns a card's version reads (two with
    a teammate's cards), and only when some changed, theirs in full and their
    images; requests the user may not see are left out as if they did not exist."""
    try:
        poll = polling.parse_poll(request.GET)
    except polling.BadPoll as exc:
        return HttpResponseBadRequest(str(exc))
    found = sorted(
        _visible_by_pk(
            request.user,
            poll.ids,
            lambda requests: requests.only(*polling.VERSION_FIELDS).order_by(),
            # The viewer's own, its SQL built once per process.
            own=lookups.own_requests_only(
                request.user, poll.ids, polling.VERSION_FIELDS
            ),
        )
        if poll.ids
        else [],
        key=lambda r: r.pk,
    )
    in_flight = [r.pk for r in found if r.in_flight]
    # An unchanged card costs no more: no columns, images or template work.
    changed = [r.pk for r in found if poll.changed(r)]
    if changed:
        context = {
            # Those the query above found visible, and only those.
            "changed": list(
                ImageRequest.objects.filter(pk__in=changed, deleted_at__isnull=True)
                .with_images()
                .with_starred(request.user)
                .select_related("user")
                .order_by("pk")
            ),
            "polling": bool(in_flight),
            "polling_ids": in_flight,
        }
        response = render(request, fragments.UPDATES_TEMPLATE, context)
    else:
        # The poller alone, the same for everyone with these cards in flight.
        response = HttpResponse(fragments.poller_html(in_flight))
    if not in_flight:
        response.status_code = HTMX_STOP_POLLING
    return response


def _detail(
    request: HtmxHttpRequest, image_request: ImageRequest, status: int = 200, **extra
) -> HttpResponse:
    """The detail page, with its lineage: the images it was made from, and the
    requests made from its images, as far as the user may see them."""
    # Both ways in one query: its own references, and those to its images (the
    # requests made from them); visibility is asked only of the requests found.
    own_images = {image.pk for image in image_request.images.all()}
    lineage = (
        list(
            Reference.objects.filter(
                Q(image_request=image_request) | Q(image__in=own_images)
            ).select_related("upload", "image__image_request")
        )
        if lookups.has_lineage(request.user, image_request.pk)
        else []
    )
    made_from = [r for r in lineage if r.image_request_id == image_request.pk]
    children = {r.image_request_id for r in lineage if r.image_id in own_images}
    parents = {r.image.image_request_id for r in made_from if r.image}
    visible_parents = {
        r.pk
        for r in (
            _visible_by_pk(request.user, parents, lambda requests: requests.only("pk"))
            if parents
            else ()
        )
    }
    for reference in made_from:
        reference.hidden = bool(
            reference.image and reference.image.image_request_id not in visible_parents
        )
    made_from_this = (
        sorted(
            _visible_by_pk(request.user, children, lambda requests: requests),
            key=lambda r: r.pk,
        )
        if children
        else []
    )
    context = {
        "image_request": image_request,
        "is_owner": image_request.user_id == request.user.pk,
        "made_from": made_from,
        "made_from_this": made_from_this,
        "visibility_choices": VISIBILITY_CHOICES,
        **extra,
    }
    return render(request, "requests/detail.html", context, status=status)


@require_GET
def request_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    # Most often the viewer's own: asked first, with its images and whether it
    # has a lineage, in one round trip.
    with compiled.together(*lookups.detail_queries(request.user, pk)):
        html, _ = pages.remembered(request, lambda: _detail_html(request, pk))
        return HttpResponse(html)


def _detail_html(request: HtmxHttpRequest, pk: int) -> tuple[str, dict]:
    own = lookups.own_request(request.user, pk)
    # False: not the viewer's own (asked already), only the team's side is left.
    found = own or _visible_request(request, pk, own=[] if own is False else None)
    return _detail(request, found).content.decode(), {}


@require_POST
def request_run_again(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The same parameters and images, as a new request, whatever became of this one:
    the user's own, counted against their quota, even when it was a teammate's."""
    image_request = _visible_request(request, pk)
    if image_request.references.exists() and (refused := uploads_refused()):
        return _detail(request, image_request, status=409, run_again_error=refused)
    try:
        new_request = services.image_request_run_again(
            image_request=image_request, user=request.user
        )
    except services.QuotaExceeded as exc:
        return _detail(request, image_request, status=429, run_again_error=str(exc))
    except ValidationError as exc:
        message = " ".join(exc.messages)
        return _detail(request, image_request, status=409, run_again_error=message)
    return redirect("request-detail", pk=new_request.pk)


@require_POST
def request_resubmit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    image_request = _own_request(request, pk)
    if not image_request.can_resubmit:
        message = "Only a failed request, or one whose outcome is unknown, can be resubmitted."
        return _detail(request, image_request, status=409, resubmit_error=message)
    try:
        new_request = services.image_request_resubmit(image_request=image_request)
    except (services.QuotaExceeded, ValidationError) as exc:
        message = (
            str(exc)
            if isinstance(exc, services.QuotaExceeded)
            else " ".join(exc.messages)
        )
        return _detail(request, image_request, status=429, resubmit_error=message)
    return redirect("request-detail", pk=new_request.pk)


@require_GET
@cache_control(private=True, max_age=31536000, immutable=True)
def image_file(
    request: HtmxHttpRequest, pk: int, image_pk: int, variant: str
) -> FileResponse:
    """An image or its thumbnail, to whoever may see its request."""
    if variant not in ("full", "thumbnail"):
        raise Http404
    # The owner's first, in a query PostgreSQL plans in a tenth of a millisecond
    # (visible_to costs it about 2 ms to plan), its SQL built once per process;
    # then anyone else's it may see.
    image = lookups.own_image(request.user, pk, image_pk)
    if not image:
        images = GeneratedImage.objects.filter(pk=image_pk, image_request_id=pk)
        if image is None:  # no compiled SQL here
            image = images.for_user(request.user).order_by().first()
        image = image or get_object_or_404(images.visible_to(request.user).order_by())
    file = image.thumbnail if variant == "thumbnail" else image.file
    content_type = "image/webp" if variant == "thumbnail" else image.content_type
    return media.file_response(file, content_type=content_type)


@require_GET
@cache_control(private=True, max_age=31536000, immutable=True)
def upload_file(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """A picture someone brought, to them and to whoever may see a request made
    from it (shown as a reference)."""
    upload = get_object_or_404(Upload.objects.visible_to(request.user), pk=pk)
    return media.file_response(upload.file, content_type=upload.content_type)


# --- Finding, comparing and taking images out ---------------------------------------


@require_POST
def request_star(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Star or unstar a request the user can see, for themselves alone."""
    image_request = _visible_request(request, pk)
    starred = request.POST.get("starred", "")
    if starred not in ("0", "1"):
        return HttpResponseBadRequest("starred is 1 (star it) or 0 (unstar it).")
    services.image_request_star(
        image_request=image_request, starred=starred == "1", user=request.user
    )
    if not request.htmx:
        return _back(request, f"{reverse('index')}#request-{pk}")
    # The card again (a card in flight goes on polling).
    return render(
        request, "requests/index.html#request-card", {"image_request": image_request}
    )


@require_POST
def request_visibility(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Who sees one of the user's requests: only them (private) or the team."""
    image_request = _own_request(request, pk)
    visibility = request.POST.get("visibility", "")
    if visibility not in ImageRequest.Visibility.values:
        return HttpResponseBadRequest("visibility is private or team.")
    services.image_request_set_visibility(
        image_request=image_request, visibility=visibility
    )
    if not request.htmx:
        return _back(request, f"{reverse('index')}#request-{pk}")
    return render(
        request, "requests/index.html#request-card", {"image_request": image_request}
    )


@require_GET
def request_download(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """The original file, named after its prompt and its request."""
    image = (
        GeneratedImage.objects.visible_to(request.user)
        .filter(image_request_id=pk)
        .select_related("image_request")
        .first()
    )
    if image is None:
        raise Http404("This request has no image to download.")
    return media.file_response(
        image.file,
        as_attachment=True,
        filename=downloads.download_name(image),
        content_type=image.content_type,
    )


def _zip_response(image_requests: list[ImageRequest], filename: str) -> HttpResponse:
    """The requests' images as one ZIP, written while it is sent."""
    images = [image for r in image_requests for image in r.images.all()]
    if not images:
        raise Http404("None of these requests has an image yet.")
    files = [(downloads.download_name(image), image.file) for image in images]
    return StreamingHttpResponse(
        downloads.zip_stream(files),
        content_type="application/zip",
        headers={"Content-Disposition": content_disposition_header(True, filename)},
    )


@require_GET
def group_download(request: HtmxHttpRequest, group: uuid.UUID) -> HttpResponse:
    """A group's images (variations, every model) as one ZIP."""
    members = history.group_for(user=request.user, group=group)
    if not members:
        raise Http404
    first = members[0]
    slug = slugify(first.prompt)[: downloads.SLUG_MAX_LENGTH].strip("-") or "images"
    return _zip_response(
        members, f"{slug}-{first.group_kind or 'group'}-{first.pk}.zip"
    )


def _selection(
    request: HtmxHttpRequest,
    values: list[str],
    *,
    mine_only: bool = False,
    deleted_too: bool = False,
) -> tuple[list[ImageRequest], str]:
    """The requests ticked in the history (?ids=1&ids=2), or why there are none to
    act on. One the user can't see (or, `mine_only`, not theirs), or one that
    doesn't exist, is a 404."""
    ids = history.selected_ids(values)
    if ids is None:
        return [], (
            f"Choose at most {history.SELECTION_MAX} requests, by their numbers."
        )
    if not ids:
        return [], (
            "Nothing was selected: tick the “Select” box of each image in your "
            "history first."
        )
    selected = history.selection_for(
        user=request.user, ids=ids, mine_only=mine_only, deleted_too=deleted_too
    )
    if selected is None:
        raise Http404(
            "One of these requests is not one of yours."
            if mine_only
            else "One of these requests is not one you can see."
        )
    return selected, ""


def _selection_problem(
    request: HtmxHttpRequest, title: str, problem: str
) -> HttpResponse:
    context = {"title": title, "problem": problem}
    return render(request, "requests/selection.html", context, status=400)


@require_GET
def selection_download(request: HtmxHttpRequest) -> HttpResponse:
    """The selected requests' images as one ZIP."""
    selected, problem = _selection(request, request.GET.getlist("ids"))
    if problem:
        return _selection_problem(request, "Nothing to download", problem)
    return _zip_response(selected, f"bananaweb-{len(selected)}-images.zip")


@require_GET
def compare(request: HtmxHttpRequest) -> HttpResponse:
    """Two to four results side by side, at full size, with their parameters."""
    selected, problem = _selection(request, request.GET.getlist("ids"))
    if not problem and not (
        history.COMPARE_MIN <= len(selected) <= history.COMPARE_MAX
    ):
        problem = (
            f"Compare takes {history.COMPARE_MIN} to {history.COMPARE_MAX} images; "
            f"{len(selected)} {'was' if len(selected) == 1 else 'were'} selected."
        )
    if problem:
        return _selection_problem(request, "Nothing to compare", problem)
    return render(request, "requests/compare.html", {"selected": selected})


@require_http_methods(["GET", "POST"])
def requests_delete(request: HtmxHttpRequest) -> HttpResponse:
    """GET: what would be deleted, to confirm; POST: delete it."""
    posted = request.method == "POST"
    values = request.POST if posted else request.GET
    # Sent twice (a double click), the second finds them deleted already: no 404.
    selected, problem = _selection(
        request, values.getlist("ids"), mine_only=True, deleted_too=posted
    )
    if problem:
        return _selection_problem(request, "Nothing to delete", problem)
    in_flight = [r for r in selected if r.in_flight]
    if not posted:
        deletable = [r for r in selected if not r.in_flight]
        context = {"deletable": deletable, "in_flight": in_flight}
        return render(request, "requests/delete.html", context)
    deleted = services.image_requests_delete(
        user=request.user, ids=[r.pk for r in selected]
    )
    message = f"Deleted {deleted} request{pluralize(deleted)}."
    if left := len(in_flight):
        message += (
            f" {left} still being made {pluralize(left, 'was,were')} left: delete "
            f"{pluralize(left, 'it,them')} once finished."
        )
    messages.success(request, message)
    return redirect("index")


# --- The user's settings -------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def user_settings(request: HtmxHttpRequest) -> HttpResponse:
    """What the user chose for themselves: who sees their new images by default."""
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            services.user_preference_set(
                user=request.user,
                default_visibility=form.cleaned_data["default_visibility"],
            )
            messages.success(request, "Your settings were saved.")
            return redirect("user-settings")
        status = 422
    else:
        current = services.default_visibility(user=request.user)
        form = PreferencesForm(initial={"default_visibility": current})
        status = 200
    context = {
        "form": form,
        "chosen": UserPreference.objects.filter(user=request.user)
        .exclude(default_visibility="")
        .exists(),
        "site_default": ImageRequest.Visibility(
            settings.BANANAWEB_DEFAULT_VISIBILITY
        ).label,
    }
    return render(request, "account/settings.html", context, status=status)


# --- Signing in -----------------------------------------------------------------------


def signin_locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict
) -> HttpResponse:
    """django-axes' answer (AXES_LOCKOUT_CALLABLE) to a sign-in past the failure
    limit, on the site's form and the admin's."""
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return render(
        request, "registration/locked_out.html", {"minutes": minutes}, status=429
    )


# --- Signed links for the upstream ----------------------------------------------------


@login_not_required
@require_GET
@cache_control(private=True, max_age=300)
def public_file(request: HttpRequest, token: str) -> FileResponse:
    """The one stored image a signed, unexpired link names (public_links.py), so
    that the upstream can fetch a reference; nothing else is served this way."""
    ref = public_links.resolve(token)
    if ref is None:
        raise Http404("This link is not valid, or it has expired.")
    if ref.kind == public_links.UPLOAD:
        stored = get_object_or_404(Upload, pk=ref.pk)
    else:
        stored = get_object_or_404(
            GeneratedImage, pk=ref.pk, image_request__deleted_at__isnull=True
        )
    return media.file_response(stored.file, content_type=stored.content_type)
