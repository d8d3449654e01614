from datetime import timedelta

from django import template
from django.utils.safestring import mark_safe

from bananaweb import polling

register = template.Library()

# In a card rendered to be cached (fragments.py), where its time in flight goes:
# filled on every page. Each holds "<", which escaped text can't.
ELAPSED_SECONDS_PLACEHOLDER = "<elapsed-seconds>"
ELAPSED_TEXT_PLACEHOLDER = "<elapsed-text>"


@register.filter
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


@register.filter
def card_version(image_request) -> str:
    """What the page's poller says a card in flight shows (bananaweb.polling)."""
    return polling.card_version(image_request)


def elapsed_seconds_text(elapsed: timedelta) -> str:
    """A card's time in flight for its script (data-elapsed), in whole seconds."""
    return str(max(int(elapsed.total_seconds() + 0.5), 0))


@register.simple_tag(takes_context=True)
def elapsed_seconds(context) -> str:
    """The card's time in flight in seconds, or, in a card rendered to be cached
    (`elapsed_placeholders` in its context), the placeholder filled per page."""
    if context.get("elapsed_placeholders"):
        return mark_safe(ELAPSED_SECONDS_PLACEHOLDER)
    return elapsed_seconds_text(context["image_request"].elapsed)


@register.simple_tag(takes_context=True)
def elapsed_text(context) -> str:
    """The card's time in flight in words (see elapsed_seconds)."""
    if context.get("elapsed_placeholders"):
        return mark_safe(ELAPSED_TEXT_PLACEHOLDER)
    return duration(context["image_request"].elapsed)
