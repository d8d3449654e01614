from datetime import timedelta

from django import template

from bananaweb import polling

register = template.Library()


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
