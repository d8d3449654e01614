"""The history's reads: the filters a query string asks for, parsed strictly, and
the requests, cards and pages they select, of the user's own ("Mine") or of
everything shared with the team ("Team", with a filter by person).

Search is full-text on PostgreSQL (ranked, served by the GIN index of migration
0007) and a plain containment match elsewhere. Every query-string value is
checked: numbers are ASCII digits, choices are known ones, dates are real; what
can't be used is left out, with a note saying so, never an error.
"""

import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Exists, Min, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.http import urlencode

from bananaweb import options
from bananaweb.models import GeneratedImage, ImageRequest, RequestStatus

SEARCH_CONFIG = "english"
QUERY_MAX_LENGTH = 200
# A page's worth of ticked boxes, at most: compare, download, delete.
SELECTION_MAX = 100
COMPARE_MIN, COMPARE_MAX = 2, 4
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


class View:
    CARDS = "cards"
    GALLERY = "gallery"
    ALL = (CARDS, GALLERY)


class Scope:
    """Whose requests: the user's own, or everyone's shared with the team."""

    MINE = "mine"
    TEAM = "team"
    ALL = (MINE, TEAM)


# field -> (its name in the query string, what it is in a note, its choices). The
# action is "kind": ?action= belongs to the forms ("Edit this image" links).
CHOICES: dict[str, tuple[str, str, type]] = {
    "status": ("status", "status", RequestStatus),
    "model": ("model", "model", options.Model),
    "action": ("kind", "kind of request", options.Action),
    "source": ("source", "source", ImageRequest.Source),
}
# For the filter form's menus.
FILTER_CHOICES = {field: choices.choices for field, (_, _, choices) in CHOICES.items()}


@dataclass(frozen=True)
class HistoryFilters:
    """What the history is narrowed to, as parsed from a query string."""

    q: str = ""
    status: str = ""
    model: str = ""
    action: str = ""
    source: str = ""
    starred: bool = False
    date_from: date | None = None
    date_to: date | None = None
    person: str = ""  # a username, in the Team view
    view: str = View.CARDS
    scope: str = Scope.MINE
    page: int = 1
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def narrowed(self) -> bool:
        """Whether anything but the scope, the view and the page is asked for."""
        return replace(self, view=View.CARDS, scope=Scope.MINE, page=1) != (
            HistoryFilters()
        )

    @property
    def has_filters(self) -> bool:
        """Whether anything beyond the search words narrows the history."""
        return replace(self, q="", view=View.CARDS, scope=Scope.MINE, page=1) != (
            HistoryFilters()
        )

    @property
    def gallery(self) -> bool:
        return self.view == View.GALLERY

    @property
    def team(self) -> bool:
        return self.scope == Scope.TEAM

    def params(self, **changes) -> dict[str, str]:
        """The query string's values, defaults left out (shareable, and tidy)."""
        chosen = replace(self, **changes)
        values = {
            "scope": "" if chosen.scope == Scope.MINE else chosen.scope,
            "q": chosen.q,
            "status": chosen.status,
            "model": chosen.model,
            "kind": chosen.action,
            "source": chosen.source,
            "starred": "1" if chosen.starred else "",
            "person": chosen.person,
            "from": chosen.date_from.isoformat() if chosen.date_from else "",
            "to": chosen.date_to.isoformat() if chosen.date_to else "",
            "view": "" if chosen.view == View.CARDS else chosen.view,
            "page": str(chosen.page) if chosen.page > 1 else "",
        }
        return {name: value for name, value in values.items() if value}

    def querystring(self, **changes) -> str:
        """ "?q=…&page=2", or "" for the plain history."""
        params = self.params(**changes)
        return f"?{urlencode(params)}" if params else ""

    @property
    def cleared(self) -> str:
        """The same view of the same requests (mine or the team's), with no filters."""
        return HistoryFilters(view=self.view, scope=self.scope).querystring()


def _shown(value: str) -> str:
    return value if len(value) <= 40 else value[:39] + "…"


def _digits(value: str, max_length: int = 9) -> int | None:
    """A number written in ASCII digits, or None."""
    if value.isascii() and value.isdigit() and len(value) <= max_length:
        return int(value)
    return None


def _day(value: str, label: str, notes: list[str]) -> date | None:
    if not value:
        return None
    try:
        # fromisoformat alone takes "20240301" and other shapes; a date field sends this one.
        if not (value.isascii() and len(value) == 10 and value[4] == value[7] == "-"):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        notes.append(
            f"“{_shown(value)}” is not a date (YYYY-MM-DD): {label} was ignored."
        )
        return None
    if not EARLIEST <= day <= LATEST:
        notes.append(
            f"{day.isoformat()} is out of range ({EARLIEST.year}–{LATEST.year}): "
            f"{label} was ignored."
        )
        return None
    return day


def _search_text(value: str, notes: list[str]) -> str:
    """The search words: control characters (a NUL breaks PostgreSQL) out, spaces
    collapsed, at most QUERY_MAX_LENGTH characters."""
    text = "".join(
        " " if unicodedata.category(char).startswith("C") else char for char in value
    )
    text = " ".join(text.split())
    if len(text) > QUERY_MAX_LENGTH:
        notes.append(f"The search was cut to its first {QUERY_MAX_LENGTH} characters.")
        text = text[:QUERY_MAX_LENGTH].rstrip()
    return text


def history_filters(
    params: Mapping[str, str], *, people: Collection[str] = ()
) -> HistoryFilters:
    """The filters a query string asks for (a QueryDict's last value of each name).
    `people`: the usernames the Team view's person filter may name (team_people)."""
    notes: list[str] = []
    chosen: dict[str, str] = {}
    for field_name, (name, label, choices) in CHOICES.items():
        value = params.get(name, "")
        if value in choices.values:
            chosen[field_name] = value
        elif value:
            notes.append(f"“{_shown(value)}” is not a known {label}; it was ignored.")

    starred = params.get("starred", "")
    if starred not in ("", "1"):
        notes.append(
            f"“{_shown(starred)}” is not a choice for starred; it was ignored."
        )

    view = params.get("view", "")
    if view and view not in View.ALL:
        notes.append(f"“{_shown(view)}” is not a view; showing the cards.")

    scope = params.get("scope", "")
    if scope and scope not in Scope.ALL:
        notes.append(f"“{_shown(scope)}” is not a choice of images; showing yours.")
    scope = scope if scope in Scope.ALL else Scope.MINE

    person = params.get("person", "")
    if person and scope != Scope.TEAM:
        notes.append("Choosing a person applies to the Team view; it was ignored.")
        person = ""
    elif person and person not in people:
        notes.append(
            f"“{_shown(person)}” has shared no images with the team; "
            "the person was ignored."
        )
        person = ""

    date_from = _day(params.get("from", ""), "the start date", notes)
    date_to = _day(params.get("to", ""), "the end date", notes)
    if date_from and date_to and date_to < date_from:
        notes.append("The end date is before the start date: nothing can match.")

    # Anything but a page number shows the first page, as it always did.
    page = _digits(params.get("page", "")) or 1

    return HistoryFilters(
        q=_search_text(params.get("q", ""), notes),
        starred=starred == "1",
        date_from=date_from,
        date_to=date_to,
        person=person,
        view=view if view in View.ALL else View.CARDS,
        scope=scope,
        page=page,
        notes=tuple(notes),
        **chosen,
    )


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def _full_text() -> bool:
    return connection.vendor == "postgresql"


def _search_vector() -> SearchVector:
    # The very expression migration 0007 indexes: change both or neither.
    return SearchVector("prompt", config=SEARCH_CONFIG)


def _search_query(text: str) -> SearchQuery:
    # websearch: what people type into a search box ("quoted words", -not, or).
    return SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")


def team_people() -> list[str]:
    """The usernames of everyone with a request shared with the team: the Team
    view's person filter."""
    User = get_user_model()
    shared = ImageRequest.objects.team().filter(user=OuterRef("pk"))
    return list(
        User.objects.filter(Exists(shared))
        .order_by(User.USERNAME_FIELD)
        .values_list(User.USERNAME_FIELD, flat=True)
    )


def _filtered(*, user, filters: HistoryFilters) -> QuerySet[ImageRequest]:
    """The requests the filters select (the user's own, or the team's), in no
    particular order."""
    if filters.team:
        requests_ = ImageRequest.objects.team()
        if filters.person:
            username = get_user_model().USERNAME_FIELD
            requests_ = requests_.filter(**{f"user__{username}": filters.person})
    else:
        requests_ = ImageRequest.objects.for_user(user)
    exact = {name: getattr(filters, name) for name in CHOICES if getattr(filters, name)}
    requests_ = requests_.filter(**exact)
    if filters.starred:
        # The user's own stars, whoever's the request (one star each at most).
        requests_ = requests_.filter(stars__user=user)
    if filters.date_from:
        requests_ = requests_.filter(created_at__gte=_local_midnight(filters.date_from))
    if filters.date_to:
        requests_ = requests_.filter(
            created_at__lt=_local_midnight(filters.date_to + timedelta(days=1))
        )
    if filters.q:
        if _full_text():
            requests_ = requests_.annotate(search=_search_vector()).filter(
                search=_search_query(filters.q)
            )
        else:
            for word in filters.q.split():
                requests_ = requests_.filter(prompt__icontains=word)
    return requests_


def _ordered(
    requests_: QuerySet[ImageRequest], filters: HistoryFilters
) -> QuerySet[ImageRequest]:
    """The best match first when searching full text; otherwise the newest first."""
    if filters.q and _full_text():
        rank = SearchRank(_search_vector(), _search_query(filters.q))
        return requests_.annotate(rank=rank).order_by("-rank", "-created_at", "-pk")
    return requests_.newest_first()


def history_for(*, user, filters: HistoryFilters) -> QuerySet[ImageRequest]:
    """The requests the filters select, best match or newest first."""
    return _ordered(_filtered(user=user, filters=filters), filters)


def _for_cards(requests_: QuerySet[ImageRequest], user) -> QuerySet[ImageRequest]:
    """What a card shows beyond the request: its images, its author, and whether
    this user starred it; joined or prefetched, never a query a card."""
    return requests_.with_images().with_starred(user).select_related("user")


# --- Cards and groups -------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One card of the history: a request, or a group of requests made together
    (variations of a prompt, a prompt on every model), shown as one card with a
    tile each."""

    image_request: ImageRequest  # the card's request, or the group's first
    members: tuple[ImageRequest, ...] = ()  # a group's requests, oldest first

    @property
    def is_group(self) -> bool:
        return len(self.members) > 1

    @property
    def kind_text(self) -> str:
        if self.image_request.group_kind == ImageRequest.GroupKind.MODELS:
            return "Every model"
        return f"{len(self.members)} variations"

    @property
    def has_images(self) -> bool:
        return any(member.images.all() for member in self.members)


def group_entry(image_requests: Iterable[ImageRequest]) -> HistoryEntry:
    """The card of requests made together (e.g. just created), oldest first."""
    members = tuple(sorted(image_requests, key=lambda r: r.pk))
    return HistoryEntry(image_request=members[0], members=members)


@dataclass(frozen=True)
class HistoryPage:
    filters: HistoryFilters
    page: Page
    entries: list  # HistoryEntry for the cards; ImageRequest for the gallery

    @property
    def previous_query(self) -> str:
        return self.filters.querystring(page=self.page.previous_page_number())

    @property
    def next_query(self) -> str:
        return self.filters.querystring(page=self.page.next_page_number())


def history_page(*, user, filters: HistoryFilters) -> HistoryPage:
    """One page of the history, as cards (a group is one) or as a gallery of the
    requests with an image. Its images are prefetched: a few queries, whatever
    the length of the history."""
    if filters.gallery:
        with_image = GeneratedImage.objects.filter(image_request=OuterRef("pk"))
        requests_ = history_for(user=user, filters=filters).filter(Exists(with_image))
        page = Paginator(
            _for_cards(requests_, user), settings.BANANAWEB_GALLERY_PAGE_SIZE
        ).get_page(filters.page)
        return HistoryPage(filters=filters, page=page, entries=list(page))

    matching = _filtered(user=user, filters=filters)
    # A group is listed once, at its first request among those that match.
    firsts = (
        matching.filter(group__isnull=False)
        .order_by()
        .values("group")
        .annotate(first=Min("pk"))
        .values("first")
    )
    cards = _for_cards(
        _ordered(matching.filter(Q(group__isnull=True) | Q(pk__in=firsts)), filters),
        user,
    )
    page = Paginator(cards, settings.BANANAWEB_HISTORY_PAGE_SIZE).get_page(filters.page)
    groups = {r.group for r in page if r.group is not None}
    members: dict = {group: [] for group in groups}
    if groups:
        in_groups = matching.filter(group__in=groups).order_by("pk")
        for member in _for_cards(in_groups, user):
            members[member.group].append(member)
    entries = [
        HistoryEntry(r, tuple(members[r.group])) if r.group else HistoryEntry(r)
        for r in page
    ]
    return HistoryPage(filters=filters, page=page, entries=entries)


# --- Selections: compare, download, delete ------------------------------------------


def selected_ids(values: Iterable[str]) -> list[int] | None:
    """Request ids from ticked boxes (?ids=1&ids=2), each once, in their order; None
    when one is not a number or there are more than SELECTION_MAX."""
    ids = []
    for value in values:
        number = _digits(value)
        if number is None:
            return None
        ids.append(number)
    ids = list(dict.fromkeys(ids))
    return ids if len(ids) <= SELECTION_MAX else None


def selection_for(
    *, user, ids: list[int], mine_only: bool = False, deleted_too: bool = False
) -> list[ImageRequest] | None:
    """The requests with these ids the user may see (compare, download) or, with
    `mine_only`, their own (delete), in that order, with their images; None
    unless every id is one of those (one they can't see is never told apart from
    one that doesn't exist). Those they deleted count only with `deleted_too`."""
    if mine_only:
        allowed = (
            ImageRequest.objects.filter(user=user)
            if deleted_too
            else ImageRequest.objects.for_user(user)
        )
    else:
        allowed = ImageRequest.objects.visible_to(user)
    found = _for_cards(allowed.filter(pk__in=ids), user)
    by_id = {image_request.pk: image_request for image_request in found}
    if len(by_id) != len(ids):
        return None
    return [by_id[pk] for pk in ids]


def group_for(*, user, group) -> list[ImageRequest]:
    """The requests made together as `group` that the user may see, oldest first,
    with their images."""
    return list(
        ImageRequest.objects.visible_to(user)
        .filter(group=group)
        .order_by("pk")
        .with_images()
    )
