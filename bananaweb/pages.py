"""Whole pages remembered by each process: the main page, a history page, the
gallery, a search, a request's own detail page. Such a page shows only what its
queries read, all of them run first in one round trip (compiled.together), and
who asks: so its HTML is keyed by exactly that (the rows read, the address, the
htmx headers, the viewer), and a page whose rows are the same is the same page.
Nothing is ever invalidated: a star, a finished request, a new template or a
day's quota changes the rows, hence the key.

What differs in every response (the CSRF token, the forms' idempotency keys, the
CSP nonce, a card in flight's time so far) is kept as placeholders and filled on
the way out (bananaweb.per_response). A page that asked anything else while it
was rendered (a group's members, a cache of cards not yet in this process, a
prefilled form's template, a teammate's request, a lineage) is not remembered:
its key would not cover it. Nor is one with messages to show, nor anything in
development (templates change under it) or off PostgreSQL (no rows read first).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest

from bananaweb import compiled, per_response
from bananaweb.remembered import Remembered, digest

# The htmx headers a page's HTML depends on (what index varies on).
HTMX_HEADERS = ("HX-Request", "HX-Target", "HX-History-Restore-Request")
# (HTML, what the view keeps beside it) by key: a whole page is ~60 KB.
_pages = Remembered(128)


def remembered(
    request: HttpRequest, render: Callable[[], tuple[str, dict]]
) -> tuple[str, dict]:
    """`render()`'s (HTML, extras) for this request, rendered once per key and
    remembered (the extras too: what the view needs of the page besides its
    HTML), the HTML filled for this response."""
    key = _key(request)
    if key is None:
        return render()
    found = _pages.get(key)
    if found is None:
        per_response.keep_placeholders(request, True)
        try:
            with _asked_anything() as asked:
                found = render()
        finally:
            per_response.keep_placeholders(request, False)
        if not asked:
            _pages.put(key, found)
    html, extras = found
    return per_response.filled(request, html), extras


def forget() -> None:
    _pages.clear()


@receiver(setting_changed)
def _forget_on_new_settings(**kwargs) -> None:
    """A page reads settings (the upstream's label, the forms' limits): a test
    that overrides one must not be shown a page rendered before."""
    forget()


def _key(request: HttpRequest) -> str | None:
    ran = compiled.ran_together()
    if ran is None or settings.DEBUG or request.method != "GET":
        return None
    if len(get_messages(request)):  # counted, not read: they stay to be shown
        return None
    user = request.user
    shown = (
        request.path,
        sorted(request.GET.lists()),
        [request.headers.get(name) for name in HTMX_HEADERS],
        (user.pk, user.get_username(), user.is_staff, user.is_superuser),
        ran,
    )
    return digest(shown)


@contextmanager
def _asked_anything() -> Iterator[list]:
    """A list that is not empty once the database was asked anything inside."""
    asked = []

    def note(execute, sql, params, many, context):
        asked.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(note):
        yield asked
