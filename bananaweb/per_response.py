"""What a page shows differently in every response, kept out of HTML that is
rendered once and reused (cards and tiles, the request forms, whole pages) as
placeholders, and filled on the way out:

- the CSRF token, masked anew for each response (and once per response: each
  masking costs 32 random characters, and a page shows it in many forms);
- each blank request form's idempotency key, new for every form shown (sending
  one form twice must make one request);
- the CSP nonce (on htmx's script tag);
- a card in flight's time so far, from its creation time, which its
  placeholder holds.

The CSRF and elapsed placeholders hold "<", which escaped text (a prompt, a
name) can't; the idempotency and nonce placeholders sit in attributes, escaped,
so they are random per process instead: no prompt, template name or username
holds them. HTML kept in a shared cache names FORMAT in its key: a release that
changes a placeholder never fills another release's.
"""

import re
import secrets
import uuid
from datetime import datetime, timedelta

from django.http import HttpRequest
from django.middleware.csp import get_nonce
from django.middleware.csrf import get_token
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

FORMAT = 2
CSRF_PLACEHOLDER = mark_safe("<csrf-token>")
IDEMPOTENCY_PLACEHOLDER = f"idempotency-{secrets.token_hex(16)}"
NONCE_PLACEHOLDER = f"nonce-{secrets.token_hex(16)}"
_ELAPSED = re.compile(r"<elapsed-(seconds|text) ([0-9T:.+-]+)>")

# Set on a request while what it renders is to be remembered (bananaweb.pages):
# then even its own CSRF token and forms' keys stay placeholders.
_KEEPING = "_bananaweb_keeping_placeholders"


def duration(value: timedelta | None) -> str:
    """A short, readable duration: "4 s", "2 min 05 s", "1 h 03 min"."""
    if value is None:
        return ""
    seconds = max(int(value.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def elapsed_seconds_text(elapsed: timedelta) -> str:
    """A card's time in flight for its script (data-elapsed), in whole seconds."""
    return str(max(int(elapsed.total_seconds() + 0.5), 0))


def elapsed_placeholder(kind: str, created_at: datetime) -> SafeString:
    """Where a card in flight's time so far goes ("seconds" or "text")."""
    return mark_safe(f"<elapsed-{kind} {created_at.isoformat()}>")


def with_elapsed(html: str) -> str:
    """The HTML with each card in flight's time so far in its placeholders."""
    if "<elapsed-" not in html:
        return html
    now = timezone.now()

    def elapsed(match: re.Match) -> str:
        since = now - datetime.fromisoformat(match[2])
        return elapsed_seconds_text(since) if match[1] == "seconds" else duration(since)

    return _ELAPSED.sub(elapsed, html)


def keep_placeholders(request: HttpRequest, keep: bool) -> None:
    setattr(request, _KEEPING, keep)


def keeping_placeholders(request: HttpRequest) -> bool:
    return getattr(request, _KEEPING, False)


def page_token(request: HttpRequest) -> str:
    """The CSRF token of this response, masked once however many forms show it;
    a new secret (sign-in rotates it) gets a new token."""
    secret = request.META.get("CSRF_COOKIE")
    remembered = getattr(request, "_bananaweb_csrf", None)
    if remembered is None or remembered[0] != secret:
        token = get_token(request)
        remembered = request._bananaweb_csrf = (request.META["CSRF_COOKIE"], token)
    return remembered[1]


def csrf_token(request: HttpRequest) -> str:
    """The token a form rendered now shows: the page's, or, while what it
    renders is to be remembered, the placeholder."""
    return CSRF_PLACEHOLDER if keeping_placeholders(request) else page_token(request)


def csp_nonce(request: HttpRequest):
    """The nonce a tag rendered now shows: Django's for this response (None
    without its middleware), or, while what it renders is to be remembered, the
    placeholder."""
    if keeping_placeholders(request):
        return NONCE_PLACEHOLDER
    return get_nonce(request)


def new_keys(html: str) -> str:
    """Each idempotency placeholder replaced by a key of its own."""
    if IDEMPOTENCY_PLACEHOLDER not in html:
        return html
    parts = html.split(IDEMPOTENCY_PLACEHOLDER)
    keyed = [parts[0]]
    for part in parts[1:]:
        keyed += [uuid.uuid4().hex, part]
    return "".join(keyed)


def filled(request: HttpRequest, html: str) -> SafeString:
    """HTML rendered with placeholders, as this response shows it."""
    html = html.replace(CSRF_PLACEHOLDER, page_token(request))
    if NONCE_PLACEHOLDER in html:
        html = html.replace(NONCE_PLACEHOLDER, str(get_nonce(request)))
    return SafeString(with_elapsed(new_keys(html)))
