from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from bananaweb.prompts.models import PromptTemplate


def prompt_template_menu(request: HttpRequest) -> dict:
    """The templates the request forms' menu offers, wherever a request form is
    rendered (the page, its fragments). Lazy: no query, nor even a QuerySet built
    (a cost on every page), unless a menu is rendered."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "prompt_template_menu": SimpleLazyObject(
            lambda: PromptTemplate.objects.menu_for(user)
        )
    }
