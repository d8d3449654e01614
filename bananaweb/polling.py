"""The page's one poll: which cards it asks about, and how it tells a changed card.

A page shows its cards in flight; each carries its id and the version it shows
(hidden inputs of the poller form, `templates/requests/index.html#request-poller`).
Every 2 s the poller sends them all (`?ids=3,7,9&since=3:1a2b3c4d,...`); the
answer holds only the cards whose version moved on. Nothing here reads the
database: the view does, in one query whatever the number of ids.
"""

import hashlib
from dataclasses import dataclass, field

# A page shows at most a few dozen cards; more ids than this is not a page.
MAX_IDS = 100
MAX_ID_DIGITS = 12
VERSION_LENGTH = 8


class BadPoll(ValueError):
    """The query does not describe a page's cards; its message says why."""


@dataclass(frozen=True)
class Poll:
    ids: tuple[int, ...]
    seen: dict[int, str] = field(default_factory=dict)  # id -> the version shown

    def changed(self, image_request) -> bool:
        return self.seen.get(image_request.pk) != card_version(image_request)


# What a card's version reads (the poll loads only these to tell a changed card).
VERSION_FIELDS = ("status", "upstream_status", "error_code", "error_message")


def card_version(image_request) -> str:
    """Changes whenever what a card in flight shows changes (its status, the
    upstream's, a note); not with the time passing."""
    shown = "\x1f".join(getattr(image_request, name) for name in VERSION_FIELDS)
    return hashlib.blake2b(shown.encode(), digest_size=8).hexdigest()[:VERSION_LENGTH]


def _values(query, name: str) -> list[str]:
    """A parameter given as a list (`ids=3,7`), repeated (`ids=3&ids=7`) or both."""
    return [part for value in query.getlist(name) for part in value.split(",") if part]


def _id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS):
        raise BadPoll(
            f"ids are request numbers separated by commas, not {text[:20]!r}."
        )
    return int(text)


def parse_poll(query) -> Poll:
    """The ids and versions a page sent (a QueryDict); BadPoll if they are not.
    No ids at all is a page with nothing in flight (its poll stops), not an error."""
    ids = tuple(dict.fromkeys(_id(text) for text in _values(query, "ids")))
    pairs = _values(query, "since")
    if len(ids) > MAX_IDS or len(pairs) > MAX_IDS:
        raise BadPoll(f"At most {MAX_IDS} ids at once.")
    seen = {}
    for pair in pairs:
        pk, _, version = pair.partition(":")
        if not (
            len(version) == VERSION_LENGTH and version.isascii() and version.isalnum()
        ):
            raise BadPoll("since lists id:version pairs, as the page was given them.")
        seen[_id(pk)] = version
    return Poll(ids=ids, seen=seen)
