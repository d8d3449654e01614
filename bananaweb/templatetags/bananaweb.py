from django import template

from bananaweb import polling
from bananaweb.per_response import (
    duration,
    elapsed_placeholder,
    elapsed_seconds_text,
)

register = template.Library()

register.filter(duration)


@register.filter
def card_version(image_request) -> str:
    """What the page's poller says a card in flight shows (bananaweb.polling)."""
    return polling.card_version(image_request)


@register.simple_tag(takes_context=True)
def elapsed_seconds(context) -> str:
    """The card's time in flight in seconds, or, in a card rendered to be cached
    (`elapsed_placeholders` in its context), the placeholder filled per page."""
    image_request = context["image_request"]
    if context.get("elapsed_placeholders"):
        return elapsed_placeholder("seconds", image_request.created_at)
    return elapsed_seconds_text(image_request.elapsed)


@register.simple_tag(takes_context=True)
def elapsed_text(context) -> str:
    """The card's time in flight in words (see elapsed_seconds)."""
    image_request = context["image_request"]
    if context.get("elapsed_placeholders"):
        return elapsed_placeholder("text", image_request.created_at)
    return duration(image_request.elapsed)
