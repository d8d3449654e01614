from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from bananaweb.per_response import csp_nonce, csrf_token


def upstream(request: HttpRequest) -> dict:
    return {"upstream_simulated": settings.MOUNTSEA_SIMULATED}


def per_response_values(request: HttpRequest) -> dict:
    """Django's csrf_token and csp_nonce for templates, as bananaweb.per_response
    gives them: the token masked once per response, and both left as placeholders
    in a page to be remembered."""
    return {
        "csrf_token": SimpleLazyObject(lambda: csrf_token(request)),
        "csp_nonce": csp_nonce(request),
    }
