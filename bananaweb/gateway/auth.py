"""Bearer-token authentication, rate limiting and JSON errors for the gateway API views."""

import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Literal

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bananaweb.gateway import services
from bananaweb.gateway.models import ApiToken

MAX_BODY_BYTES = 64 * 1024
Auth = Literal["token", "token_or_session", "public"]
RATE_WINDOW_SECONDS = 60


class ApiRequest(HttpRequest):
    api_token: ApiToken | None


class ApiError(Exception):
    """An error answered as {"message": ..., "errors": {field: message}}."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse(
            {"message": self.message, "errors": self.errors}, status=self.status
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401, message, headers={"WWW-Authenticate": 'Bearer realm="bananaweb"'}
    )


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an "Authorization: Bearer ..." header; "" for a malformed one, None when absent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, raw = header.strip().partition(" ")
    return raw.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: HttpRequest, *, auth: Auth) -> ApiToken | None:
    """Sets request.user from the bearer token (or, if allowed, keeps the session's user)."""
    raw = bearer_token(request)
    if raw is None:
        if auth == "token_or_session" and request.user.is_authenticated:
            return None
        raise unauthorized(
            "Send your bananaweb API token as “Authorization: Bearer <token>”."
        )
    api_token = services.api_token_authenticate(raw=raw) if raw else None
    if api_token is None:
        raise unauthorized(
            "This API token is not valid: it may be mistyped or revoked."
        )
    request.user = api_token.user
    return api_token


def _count_hit(key: str, *, timeout: int) -> int:
    """One more hit at `key`, and the count: in one statement on bananaweb's
    database cache (bananaweb.cache.DatabaseCache.count_hit); add then incr on
    another cache."""
    count_hit = getattr(cache, "count_hit", None)
    if count_hit is not None:
        return count_hit(key, timeout)
    cache.add(key, 0, timeout=timeout)
    return cache.incr(key)


def check_rate_limit(api_token: ApiToken) -> None:
    """A fixed one-minute window per user (more tokens buy no more), counted in the
    shared cache."""
    limit = settings.BANANAWEB_API_RATE_LIMIT
    now = time.time()
    window = int(now // RATE_WINDOW_SECONDS)
    key = f"gateway:rate:user:{api_token.user_id}:{window}"
    count = _count_hit(key, timeout=RATE_WINDOW_SECONDS * 2)
    if count > limit:
        retry_after = max(math.ceil((window + 1) * RATE_WINDOW_SECONDS - now), 1)
        raise ApiError(
            429,
            f"Too many requests: you may make {limit} a minute, all your tokens "
            "together. "
            f"Try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )


def check_body_size(request: HttpRequest) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        raise ApiError(
            413,
            f"The request body is too large: the limit is {MAX_BODY_BYTES // 1024} KB.",
        )


def api_view(*methods: str, auth: Auth = "token") -> Callable:
    """A JSON API view: never a redirect to the login page, never CSRF.

    auth is "token" (a bearer token), "token_or_session" (also a signed-in
    browser, for URLs a person may open) or "public".
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # no cookies count for these views' writes: only the bearer token does
        @login_not_required
        @wraps(view)
        def wrapper(request: ApiRequest, *args, **kwargs) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise ApiError(
                        405,
                        f"Method {request.method} is not allowed here; use {' or '.join(methods)}.",
                        headers={"Allow": ", ".join(methods)},
                    )
                request.api_token = (
                    None if auth == "public" else authenticate(request, auth=auth)
                )
                if request.api_token is not None:
                    check_rate_limit(request.api_token)
                check_body_size(request)
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except Http404:
                return ApiError(404, "Not found.").response()

        return wrapper

    return decorator
