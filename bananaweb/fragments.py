"""HTML rendered once and reused: cards and gallery tiles (in the default
cache, shared by every process, and each process's last ones), the main page's
two blank request forms and the history's filters form (remembered by each
process).

A request's card changes only when something it shows changes, so its key is
a digest of exactly what the card template reads: the request's fields,
its first image, its author's name, and the viewer's side of it (their star,
whether it is theirs, whether they are staff), plus the template's own source.
Anything that changes the card (a star, a new visibility, a renamed author, a new
template) changes the key: nothing is ever invalidated, and a key names one HTML
whoever asks for it. A card in flight also shows its time so far: cached with a
placeholder there, filled for every page.

A page costs one `get_many` and, for the cards missing, one `set_many`; none
when this process served its cards lately (it keeps the last ones). The CSRF
token is per request: cards are stored with a placeholder, replaced on the way
out (bananaweb.per_response has every placeholder).

The forms (see `request_forms_html`) differ between people only by the default
visibility and the prompt-template menu; the rest is code and settings, which a
process keeps until it ends. So each process remembers their HTML (no cache
query) keyed by those, with the CSRF token and the idempotency key left as
placeholders and filled for every page. The filters form shows only the filters
and the Team view's people: keyed by those.

A key never covers the URL prefix (SCRIPT_NAME): one process serves one site.
"""

import hashlib
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.loader import get_template
from django.utils.safestring import SafeString

from bananaweb import compiled, history, options, pages, per_response
from bananaweb.forms import ImageRequestForm
from bananaweb.models import ImageRequest
from bananaweb.per_response import (
    CSRF_PLACEHOLDER,
    IDEMPOTENCY_PLACEHOLDER,
    csrf_token,
    keeping_placeholders,
    new_keys,
    with_elapsed,
)
from bananaweb.prompts.models import PromptTemplate
from bananaweb.remembered import Remembered, digest

CARD_TEMPLATE = "requests/index.html#request-card"
# The card's template and what it includes: their source is part of every key.
TEMPLATES = ("requests/index.html", "team/_add_to_collection.html")
# A day: changed cards get new keys, so old ones only wait to expire.
TIMEOUT = 24 * 60 * 60


# Each process also keeps the cards and tiles it served last (~2 KB each): a key
# names one HTML forever, so a copy is never stale.
_cards_seen = Remembered(2000)

_template_digests: dict[tuple[str, ...], str] = {}


def _template_version(names: tuple[str, ...] = TEMPLATES) -> str:
    """A digest of templates' source (the card's by default): a deploy that changes
    the card, or the placeholders in it, changes every key (computed once per
    process in production)."""
    # Read again at every page in development, where templates change under it.
    if names not in _template_digests or settings.DEBUG:
        # And the placeholders' format: another release's are not ours to fill.
        source = f"{per_response.FORMAT}" + "".join(
            get_template(name).template.source for name in names
        )
        _template_digests[names] = hashlib.blake2b(
            source.encode(), digest_size=8
        ).hexdigest()
    return _template_digests[names]


def _first_image(image_request) -> tuple[int, int, int] | None:
    """(id, width, height) of a request's first image: a row holds it."""
    if isinstance(image_request, history.Row):
        return image_request.first_image
    image = next(iter(image_request.images.all()), None)
    return (image.pk, image.width, image.height) if image else None


def _author(image_request) -> str:
    if isinstance(image_request, history.Row):
        return image_request.author
    return image_request.user.get_username()


def _key(kind: str, pk: int, shown: tuple) -> str:
    """A cache key naming one HTML: its kind, the request, a digest of all shown."""
    return f"{kind}:{pk}:{digest(shown)}"


def card_key(image_request: ImageRequest | history.CardRow, viewer) -> str:
    """The cache key of a card as `viewer` sees it: everything it shows (but the
    time a card in flight has taken so far).
    The same key from an ImageRequest and from a CardRow of the same request."""
    shown = (
        _template_version(),
        image_request.pk,
        image_request.status,
        image_request.upstream_status,
        image_request.prompt,
        image_request.action,
        image_request.get_action_display(),
        image_request.model,
        image_request.get_model_display(),
        image_request.aspect_ratio,
        image_request.resolution,
        image_request.error_code,
        image_request.error_message,
        image_request.visibility,
        image_request.created_at.isoformat(),
        image_request.finished_at.isoformat() if image_request.finished_at else "",
        image_request.user_id,
        _author(image_request) if image_request.user_id != viewer.pk else "",
        _first_image(image_request),
        # The viewer's side.
        image_request.starred,
        image_request.user_id == viewer.pk,
        viewer.is_staff,
    )
    return _key("card", image_request.pk, shown)


def _render_card(image_request: ImageRequest, viewer) -> str:
    # A plain context: the card reads only these (and its key covers them).
    return get_template(CARD_TEMPLATE).render(
        {
            "image_request": image_request,
            "user": viewer,
            "csrf_token": CSRF_PLACEHOLDER,
            "elapsed_placeholders": True,
        }
    )


def _filled(html: str, request) -> SafeString:
    """A cached card as this page shows it: its CSRF token, and, in flight, its
    time so far (unless the page is to be remembered: bananaweb.pages)."""
    html = html.replace(CSRF_PLACEHOLDER, csrf_token(request))
    return SafeString(html if keeping_placeholders(request) else with_elapsed(html))


def _kept(keys: Iterable[str]) -> dict[str, str]:
    """The HTML of each key found: this process's copy (no query), else the
    shared cache's (one query for all)."""
    found = {key: html for key in keys if (html := _cards_seen.get(key)) is not None}
    if missing := [key for key in keys if key not in found]:
        found |= cache.get_many(missing)
    return found


def _html_for(keyed: dict, render, *, look: bool = True) -> dict[str, str]:
    """Each key's HTML: kept (_kept), else `render(item)` (then kept in both).
    Not `look`: known to be in neither."""
    found = _kept(keyed) if look else {}
    missing = {
        key: str(render(item)) for key, item in keyed.items() if key not in found
    }
    if missing:
        cache.set_many(missing, timeout=TIMEOUT)
    found |= missing
    for key in keyed:
        _cards_seen.put(key, found[key])
    return found


def attach(
    request,
    image_requests: Iterable[ImageRequest],
    *,
    tiles: bool = False,
    looked_up: bool = False,
) -> None:
    """Set `card_html` (or, in the gallery, `tile_html`) on each request, from
    the cache or rendered (and then cached); the history's template shows it
    instead of rendering it. `looked_up`: cached_cards found none of them,
    render them all."""
    viewer = request.user
    key_for, render = (tile_key, _render_tile) if tiles else (card_key, _render_card)
    keyed = {
        key_for(r, viewer): r for r in image_requests if not isinstance(r, history.Row)
    }
    if not keyed:
        return
    found = _html_for(keyed, lambda r: render(r, viewer), look=not looked_up)
    for key, image_request in keyed.items():
        html = _filled(found[key], request)
        setattr(image_request, "tile_html" if tiles else "card_html", html)


def cached_cards(request, *, tiles: bool = False):
    """For history.history_page: the cached HTML of the cards (or the gallery's
    tiles) among CardRows it is given that a cache holds, {pk: html}, filled for
    this page; no model instance is built for them."""
    viewer = request.user
    key_for = tile_key if tiles else card_key

    def cached(rows) -> dict[int, SafeString]:
        keyed = {key_for(row, viewer): row for row in rows}
        if not (found := _kept(keyed)):
            return {}
        html_by_pk = {}
        for key, html in found.items():
            _cards_seen.put(key, html)
            html_by_pk[keyed[key].pk] = _filled(html, request)
        return html_by_pk

    return cached


# --- The gallery's tiles ------------------------------------------------------------

TILE_TEMPLATE = "requests/index.html#gallery-tile"


def tile_key(image_request: ImageRequest | history.Row, viewer) -> str:
    """The cache key of a gallery tile as `viewer` sees it: everything it shows.
    The same key from an ImageRequest and from a TileRow of the same request."""
    shown = (
        _template_version(),
        image_request.pk,
        image_request.prompt,
        image_request.starred,
        image_request.user_id == viewer.pk,
        _author(image_request) if image_request.user_id != viewer.pk else "",
        _first_image(image_request),
    )
    return _key("tile", image_request.pk, shown)


def _render_tile(image_request: ImageRequest, viewer) -> str:
    # A plain context: the tile reads only these (and its key covers them).
    context = {"image_request": image_request, "user": viewer}
    return get_template(TILE_TEMPLATE).render(context)


# --- The request forms ----------------------------------------------------------

FORM_TEMPLATE = "requests/index.html#request-form"
FORM_TEMPLATES = ("requests/index.html", "prompts/menu.html", "forms/field.html")
# Two forms for each (person, visibility, menu) recently seen; ~15 KB each.
_forms_html = Remembered(256)


def forget_remembered() -> None:
    """Drop this process's copies (forms, cards, whole pages); the shared cache
    stays."""
    _forms_html.clear()
    _cards_seen.clear()
    _filters_html.clear()
    _pollers_html.clear()
    pages.forget()


@receiver(setting_changed)
def _forget_forms(**kwargs) -> None:
    """The forms read settings (uploads, variations, limits): a test that overrides
    one must not be shown forms rendered before. Django's own caches do the same."""
    _forms_html.clear()


def _menu_rows(viewer):
    username = get_user_model().USERNAME_FIELD
    return PromptTemplate.objects.menu_for(viewer).values_list(
        "pk", "name", "user_id", f"user__{username}"
    )


def menu_query(user) -> compiled.Query:
    """The query of the forms' template menu (its SQL built once per process: it
    depends on the user's id alone; so does its plan)."""
    return compiled.query(
        ("menu",), _menu_rows, model=PromptTemplate, prepare=True, user=user
    )


def _menu_for(user) -> tuple[tuple[int, str, int, str], ...]:
    """The menu's templates as (id, name, owner's id, owner's name): all it shows,
    read without building a model instance each."""
    rows = compiled.rows(menu_query(user))
    return tuple(tuple(row) for row in (_menu_rows(user) if rows is None else rows))


def _render_forms(user, visibility: str, menu_rows: tuple) -> dict[str, str]:
    # Rendered from the very rows of the key: what is remembered is what it names.
    User = get_user_model()
    menu = [
        PromptTemplate(
            pk=pk, name=name, user=User(pk=owner, **{User.USERNAME_FIELD: owner_name})
        )
        for pk, name, owner, owner_name in menu_rows
    ]
    rendered = {}
    for action in options.Action.values:
        form = ImageRequestForm(action=action, initial={"visibility": visibility})
        form.fields["idempotency_key"].initial = IDEMPOTENCY_PLACEHOLDER
        context = {
            "form": form,
            "user": user,
            "prompt_template_menu": menu,
            "csrf_token": CSRF_PLACEHOLDER,
        }
        rendered[action] = str(get_template(FORM_TEMPLATE).render(context))
    return rendered


def request_forms_html(request, *, visibility: str) -> dict[str, SafeString]:
    """The blank Generate and Edit forms' HTML by action, as `request.user` sees
    them: rendered once per process for what they show (the user, the default
    visibility, the menu's templates), then only the CSRF token and a new
    idempotency key per form (sending one form twice must make one request)."""
    user = request.user
    menu = _menu_for(user)
    key = (
        _template_version(FORM_TEMPLATES) if settings.DEBUG else "",
        user.pk,
        user.get_username(),
        visibility,
        menu,
    )
    rendered = _forms_html.get(key)
    if rendered is None:
        rendered = _render_forms(user, visibility, menu)
        _forms_html.put(key, rendered)
    if keeping_placeholders(request):
        return {action: SafeString(html) for action, html in rendered.items()}
    token = csrf_token(request)
    return {
        action: SafeString(new_keys(html.replace(CSRF_PLACEHOLDER, token)))
        for action, html in rendered.items()
    }


# --- The history's search and filters form ---------------------------------------

FILTERS_TEMPLATE = "requests/index.html#history-filters"
_filters_html = Remembered(512)


def _plain_html(
    store: Remembered, template: str, shown: tuple, context: Callable[[], dict]
) -> SafeString:
    """`template` rendered with a plain `context()` (no request: no token, no
    context processors) once per `shown` in this process, which must name all
    the context holds; in development, once per source of the template too."""
    key = (
        _template_version(("requests/index.html",)) if settings.DEBUG else "",
        *shown,
    )
    html = store.get(key)
    if html is None:
        html = str(get_template(template).render(context()))
        store.put(key, html)
    return SafeString(html)


def filters_html(filters: history.HistoryFilters, people: list[str]) -> SafeString:
    """The search and filters form: the same for everyone with the same filters
    (and, in the Team view, the same people to choose from); no token in it."""
    return _plain_html(
        _filters_html,
        FILTERS_TEMPLATE,
        (filters, tuple(people)),
        lambda: {
            "filters": filters,
            "people": people,
            "filter_choices": history.FILTER_CHOICES,
        },
    )


# --- The page's poller ---------------------------------------------------------

UPDATES_TEMPLATE = "requests/index.html#request-updates"
# By the cards in flight: a page polls every 2 s, mostly to hear that nothing moved.
_pollers_html = Remembered(512)


def poller_html(in_flight: list[int]) -> SafeString:
    """The poll's answer when no card changed: the poller alone, which shows only
    the ids still in flight (and polls on while there are some); no token in it."""
    return _plain_html(
        _pollers_html,
        UPDATES_TEMPLATE,
        (tuple(in_flight),),
        lambda: {"changed": [], "polling": bool(in_flight), "polling_ids": in_flight},
    )
