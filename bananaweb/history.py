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
from typing import ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.search import (
    SearchQuery,
    SearchRank,
    SearchVector,
    SearchVectorField,
)
from django.core.paginator import Page, Paginator
from django.db import connection, router
from django.db.models import (
    Count,
    Exists,
    Expression,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Window,
)
from django.db.models.functions import JSONArray
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from bananaweb import compiled, options
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
    # The very expression migration 0007 indexes and 0011 stores: change all three
    # or none.
    return SearchVector("prompt", config=SEARCH_CONFIG)


class _StoredSearchVector(Expression):
    """The prompt's search vector as migration 0011 stores it (PostgreSQL only):
    ranking reads it instead of parsing each matching prompt again."""

    output_field = SearchVectorField()

    def as_sql(self, compiler, connection):
        alias = compiler.quote_name(compiler.query.base_table)
        return f"{alias}.{connection.ops.quote_name('prompt_search')}", []


def _search_query(text: str) -> SearchQuery:
    # websearch: what people type into a search box ("quoted words", -not, or).
    return SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")


def _people(_viewer) -> QuerySet:
    User = get_user_model()
    shared = ImageRequest.objects.team().filter(user=OuterRef("pk"))
    return (
        User.objects.filter(Exists(shared))
        .order_by(User.USERNAME_FIELD)
        .values_list(User.USERNAME_FIELD)
    )


def team_people_query(viewer) -> compiled.Query:
    """The query of team_people (the same for every viewer)."""
    return compiled.query(
        ("team-people",), _people, model=get_user_model(), prepare=True, user=viewer
    )


def team_people(viewer) -> list[str]:
    """The usernames of everyone with a request shared with the team: the Team
    view's person filter."""
    rows = compiled.rows(team_people_query(viewer))
    return [name for (name,) in (_people(viewer) if rows is None else rows)]


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
        rank = SearchRank(_StoredSearchVector(), _search_query(filters.q))
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
        return any(
            member.first_image if isinstance(member, CardRow) else member.images.all()
            for member in self.members
        )


# What a cached card's key (fragments.card_key) and the page around it read of a
# request: fetched as plain rows, no model instance, no prefetch.
CARD_COLUMNS = (
    "pk",
    "status",
    "upstream_status",
    "prompt",
    "action",
    "model",
    "aspect_ratio",
    "resolution",
    "error_code",
    "error_message",
    "visibility",
    "created_at",
    "finished_at",
    "user_id",
    "group",
    "group_kind",
    "starred",
)
_DISPLAYS = {
    name: dict(ImageRequest._meta.get_field(name).flatchoices)
    for name in ("action", "model")
}


@dataclass
class CardRow:
    """A request as a cached card needs it: the columns of CARD_COLUMNS, its
    author's name and its first image as (id, width, height). `card_html` is set
    when its HTML came from the cache."""

    COLUMNS: ClassVar[tuple[str, ...]] = CARD_COLUMNS

    pk: int
    status: str
    upstream_status: str
    prompt: str
    action: str
    model: str
    aspect_ratio: str
    resolution: str
    error_code: str
    error_message: str
    visibility: str
    created_at: datetime
    finished_at: datetime | None
    user_id: int
    group: object
    group_kind: str
    starred: bool
    author: str = ""
    first_image: tuple[int, int, int] | None = None
    card_html: str = ""

    @property
    def in_flight(self) -> bool:
        return self.status in ImageRequest.IN_FLIGHT

    # As Django's get_FOO_display: the choice's label, or the value itself.
    def get_action_display(self) -> str:
        return str(_DISPLAYS["action"].get(self.action, self.action))

    def get_model_display(self) -> str:
        return str(_DISPLAYS["model"].get(self.model, self.model))


# What a gallery tile shows (fragments.tile_key): 4 of a card's 17 columns, so a
# gallery page reads, converts and digests far less of each request.
TILE_COLUMNS = ("pk", "prompt", "user_id", "starred")


@dataclass
class TileRow:
    """A request as a cached gallery tile needs it: TILE_COLUMNS, its author's
    name and its first image as (id, width, height). `tile_html` is set when its
    HTML came from the cache."""

    COLUMNS: ClassVar[tuple[str, ...]] = TILE_COLUMNS

    pk: int
    prompt: str
    user_id: int
    starred: bool
    author: str = ""
    first_image: tuple[int, int, int] | None = None
    tile_html: str = ""


# A request read as a plain row, for a card or for a tile.
Row = CardRow | TileRow


def _row_type(filters: HistoryFilters) -> type[Row]:
    return TileRow if filters.gallery else CardRow


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
    def cached_html(self) -> SafeString:
        """Every entry's HTML in one, when each has it from the cache (a card, a
        tile: fragments.py), for the template to show without a loop; "" when
        one has to be rendered (a group, a card missing)."""
        parts = []
        for entry in self.entries:
            if self.filters.gallery:
                html = entry.tile_html
            else:
                html = "" if entry.is_group else entry.image_request.card_html
            if not html:
                return SafeString("")
            parts.append(html)
        return SafeString("".join(parts))

    @property
    def previous_query(self) -> str:
        return self.filters.querystring(page=self.page.previous_page_number())

    @property
    def next_query(self) -> str:
        return self.filters.querystring(page=self.page.next_page_number())


class WindowPage(Page):
    """A page read with one row more than it shows: whether a next page exists,
    without counting them all (`uncounted`: the pager shows no total)."""

    uncounted = True

    def __init__(self, rows: list, number: int, paginator: Paginator, size: int):
        super().__init__(rows[:size], number, paginator)
        self._has_next = len(rows) > size

    def has_next(self) -> bool:
        return self._has_next

    def has_previous(self) -> bool:
        return self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1

    def start_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + 1


def _window_page(listed, size: int, number: int, rows: list | None = None) -> Page:
    """Page `number` without a COUNT(*): its rows (unless given) and one more.
    Past the end (an old link), the last page, as Paginator.get_page gives it.
    `listed()`: the QuerySet, built only when needed."""
    offset = (number - 1) * size
    if rows is None:
        rows = list(listed()[offset : offset + size + 1])
    if not rows and number > 1:
        return Paginator(listed(), size).get_page(number)
    # Never counted (an uncounted page shows no total).
    return WindowPage(rows, number, Paginator(ImageRequest.objects.none(), size), size)


def _uncounted_query(user, filters: HistoryFilters, size: int, listing):
    """The page's ids (the offset walking the index alone) and their rows, one
    more than it shows, in one query (see _uncounted_page)."""
    offset = (filters.page - 1) * size
    return compiled.query(
        ("uncounted", replace(filters, page=1), size, offset),
        lambda viewer: _card_rows(
            ImageRequest.objects.filter(
                pk__in=listing(viewer, filters).values("pk")[offset : offset + size + 1]
            ).newest_first(),
            viewer,
            row=_row_type(filters),
        ),
        model=ImageRequest,
        # A history walks its index (the user's, or the team's partial one)
        # whoever asks: one plan serves. Not a search's (see _counted_query).
        prepare=True,
        user=user,
    )


def _uncounted_page(user, filters: HistoryFilters, size: int, listing) -> Page:
    """A page of the whole history (or gallery) as CardRows' tuples, without a
    COUNT(*), which would cost more than the page: its pager says "Page 7" and
    links the next when there is one. Its SQL built once per process
    (bananaweb.compiled). `listing(user, filters)`: the requests, newest first."""
    return _window_page(
        lambda: _card_rows(listing(user, filters), user, row=_row_type(filters)),
        size,
        filters.page,
        compiled.rows(_uncounted_query(user, filters, size, listing)),
    )


def _counted_query(user, filters: HistoryFilters, size: int, listing):
    """The page's rows and how many match (see _counted_page); its rows_for(user)
    is the QuerySet itself, for where there is no compiled SQL."""
    offset = (filters.page - 1) * size

    def rows_for(viewer, text: str = filters.q):
        counted = listing(viewer, replace(filters, q=text)).annotate(
            matches=Window(Count("pk"))
        )
        return _card_rows(counted, viewer, "matches", row=_row_type(filters))[
            offset : offset + size
        ]

    # Planned each time, not prepared: how many requests a search's words match
    # changes the best plan.
    return compiled.query(
        ("counted", replace(filters, q="…" if filters.q else "", page=1), size, offset),
        rows_for,
        model=ImageRequest,
        user=user,
        text=filters.q or None,
    )


def _counted_page(
    user, filters: HistoryFilters, size: int, listing
) -> tuple[Page, list[CardRow]]:
    """A page of what the filters narrow the history (or gallery) to, and how
    many match, in one query: the count is a window over the rows the page is cut
    from (a search ranks them all anyway). Its SQL is built once per process, the
    search words a stand-in (bananaweb.compiled). Past the end (an old link), the
    last page. `listing(user, filters)`: the requests, in order."""
    asked = _counted_query(user, filters, size, listing)
    tuples = compiled.rows(asked)
    if tuples is None:
        tuples = list(asked.rows_for(user))
    if not tuples and filters.page > 1:
        matches = listing(user, filters).count()
        last = max(1, -(-matches // size))
        earlier = replace(filters, page=min(last, filters.page - 1))
        return _counted_page(user, earlier, size, listing)
    paginator = Paginator(ImageRequest.objects.none(), size)
    paginator.count = tuples[0][-1] if tuples else 0  # a cached_property
    page = paginator.page(filters.page)
    rows = _as_card_rows((values[:-1] for values in tuples), _row_type(filters))
    page.object_list = rows
    return page, rows


def _page_shape(filters: HistoryFilters) -> tuple[int, object]:
    """A page's size and what lists its requests: the gallery's or the cards'."""
    if filters.gallery:
        return settings.BANANAWEB_GALLERY_PAGE_SIZE, _gallery
    return settings.BANANAWEB_HISTORY_PAGE_SIZE, _card_listing


def page_query(user, filters: HistoryFilters) -> compiled.Query:
    """The query history_page runs for its page's rows: to run it together with
    the page's others (bananaweb.compiled.together)."""
    size, listing = _page_shape(filters)
    make = _counted_query if filters.narrowed else _uncounted_query
    return make(user, filters, size, listing)


def _card_rows(
    requests_: QuerySet[ImageRequest], user, *extra: str, row: type[Row] = CardRow
) -> QuerySet:
    """The requests as tuples: the `row` type's COLUMNS (a card's or a tile's), the
    author's name and the first image's [id, width, height] (one subquery on its
    index: no second query; one array rather than a subquery each took a tenth
    off a page's query), then the `extra` columns."""
    username = get_user_model().USERNAME_FIELD
    first = GeneratedImage.objects.filter(image_request=OuterRef("pk")).order_by(
        *GeneratedImage._meta.ordering
    )
    return (
        requests_.with_starred(user)
        .annotate(
            first_image=Subquery(
                first.values(first=JSONArray("pk", "width", "height"))[:1]
            )
        )
        .values_list(*row.COLUMNS, f"user__{username}", "first_image", *extra)
    )


def _as_card_rows(tuples: Iterable[tuple], row: type[Row] = CardRow) -> list[Row]:
    return [
        row(*values[:-1], first_image=tuple(values[-1]) if values[-1] else None)
        for values in tuples
    ]


def _as_request(row: Row) -> ImageRequest:
    """The ImageRequest of a row, built without a query: the row's columns are
    all a card reads; any other field is deferred (read on use, never wrong)."""
    db = router.db_for_read(ImageRequest)
    known = {
        "id": row.pk,
        # Not "starred": not a field.
        **{name: getattr(row, name) for name in row.COLUMNS[1:-1]},
    }
    fields = [
        f.attname for f in ImageRequest._meta.concrete_fields if f.attname in known
    ]
    image_request = ImageRequest.from_db(db, fields, [known[f] for f in fields])
    image_request.starred = row.starred
    User = get_user_model()
    image_request.user = User.from_db(
        db, ["id", User.USERNAME_FIELD], [row.user_id, row.author]
    )
    return image_request


def _full_cards(
    rows: list[CardRow], cached, *, tiles: bool = False
) -> dict[int, object]:
    """Each row, with its card's (or gallery tile's) cached HTML on it, or, for
    those whose HTML `cached(rows)` ({pk: html}) doesn't hold, an ImageRequest
    built from it with its first image, to be rendered: no query."""
    found = cached(rows) if cached else {}
    cards: dict[int, object] = {}
    rows_by_pk = {row.pk: row for row in rows}
    for row in rows:
        if row.pk in found:
            setattr(row, "tile_html" if tiles else "card_html", found[row.pk])
            cards[row.pk] = row
        else:
            cards[row.pk] = _as_request(row)
    for card in cards.values():
        if isinstance(card, ImageRequest):
            _with_first_image(card, rows_by_pk[card.pk].first_image)
    return cards


def _with_first_image(image_request: ImageRequest, first: tuple | None) -> None:
    """Give `image_request.images.all()` its first image alone (or none), as read
    with its row: all a card or a tile shows of its images (their id, width and
    height; any other field is deferred). No query, as a prefetch would make."""
    if first is None:
        image_request.know_images([])
        return
    db = router.db_for_read(GeneratedImage)
    fields = ["id", "image_request_id", "width", "height"]
    pk, width, height = first
    image_request.know_images(
        [GeneratedImage.from_db(db, fields, [pk, image_request.pk, width, height])]
    )


def _gallery(user, filters: HistoryFilters) -> QuerySet[ImageRequest]:
    """The requests the filters select that have an image."""
    with_image = GeneratedImage.objects.filter(image_request=OuterRef("pk"))
    return history_for(user=user, filters=filters).filter(Exists(with_image))


def _card_listing(user, filters: HistoryFilters) -> QuerySet[ImageRequest]:
    """The requests listed: a group once, at its first request among those that
    match."""
    matching = _filtered(user=user, filters=filters)
    firsts = (
        matching.filter(group__isnull=False)
        .order_by()
        .values("group")
        .annotate(first=Min("pk"))
        .values("first")
    )
    listed = _ordered(
        matching.filter(Q(group__isnull=True) | Q(pk__in=firsts)), filters
    )
    return listed


def history_page(*, user, filters: HistoryFilters, cached=None) -> HistoryPage:
    """One page of the history, as cards (a group is one) or as a gallery of the
    requests with an image: a few queries, whatever the length of the history.
    The cards are read as CardRows; `cached(rows)` ({pk: html}, see
    fragments.cached_cards) gives those whose HTML is cached, and only the others
    are loaded as ImageRequests (their images prefetched) to be rendered."""
    size, listing = _page_shape(filters)
    if filters.narrowed:
        # The summary says how many match.
        page, listed_rows = _counted_page(user, filters, size, listing)
    else:
        page = _uncounted_page(user, filters, size, listing)
        listed_rows = _as_card_rows(page.object_list, _row_type(filters))
    if filters.gallery:
        tiles = _full_cards(listed_rows, cached, tiles=True)
        page.object_list = [tiles[row.pk] for row in listed_rows]
        return HistoryPage(filters=filters, page=page, entries=page.object_list)
    groups = {row.group for row in listed_rows if row.group is not None}
    members: dict = {group: [] for group in groups}
    if groups:
        matching = _filtered(user=user, filters=filters)
        in_groups = matching.filter(group__in=groups).order_by("pk")
        for member in _as_card_rows(_card_rows(in_groups, user)):
            members[member.group].append(member)
    every = [*listed_rows, *(m for ms in members.values() for m in ms)]
    # A listed group's first request is one of its members: one row each.
    unique = list({row.pk: row for row in every}.values())
    cards = _full_cards(unique, cached)
    entries = []
    for row in listed_rows:
        if row.pk not in cards:
            continue  # gone since it was listed
        if row.group is None:
            entries.append(HistoryEntry(cards[row.pk]))
        else:
            shown = tuple(cards[m.pk] for m in members[row.group] if m.pk in cards)
            entries.append(HistoryEntry(shown[0] if shown else cards[row.pk], shown))
    page.object_list = [entry.image_request for entry in entries]
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
