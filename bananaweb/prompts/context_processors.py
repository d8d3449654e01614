from django.http import HttpRequest

from bananaweb.prompts.models import PromptTemplate


def prompt_template_menu(request: HttpRequest) -> dict:
    """The templates the request forms' menu offers, wherever a request form is
    rendered (the page, its fragments). A QuerySet: no query unless it is shown."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"prompt_template_menu": PromptTemplate.objects.menu_for(user)}
