"""Logs: structlog over the standard library, one format for every line, and the
request id that follows a submission.

settings.LOGGING builds its one formatter with `formatter()`, which also
configures structlog: our structlog lines and every standard-library line
(Django's, gunicorn's, the task worker's, `logging.getLogger` in our modules) go
through the same renderer, JSON when BANANAWEB_LOG_FORMAT=json, plain console
lines otherwise. Values bound with structlog's contextvars (the request id, the
image request being worked on) are added to every line, whichever logger wrote it.

`RequestLogMiddleware` picks the request id (a sane incoming X-Request-ID, else a
new one), binds it for the request, echoes it in the response and writes one line
per request. Models read `current_request_id()` to keep it on what the request
creates, so that background steps can bind it again.

Never a secret: no query string, no headers, no cookies; URL arguments named
`token` (signed file links, share links) are replaced by `<token>`; extra fields
of standard-library records are added only from an allow list.
"""

import logging
import re
import time
import uuid

import structlog
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it is short and plain: it goes into every line.
REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# URL arguments that are secrets themselves (tokens of signed and share links).
SECRET_URL_ARGUMENTS = frozenset({"token"})
# The `extra=` fields of standard-library records that may reach a line; anything
# else (Django passes the whole request object, query string included) is left out.
EXTRA_FIELDS = ("method", "path", "status", "duration_ms", "upstream_task_id")

# BANANAWEB_LOG_FORMAT's values, the default first.
LOG_FORMATS = ("console", "json")

requests_logger = structlog.get_logger("bananaweb.requests")


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(log_format: str = "console") -> structlog.stdlib.ProcessorFormatter:
    """The one formatter (settings.LOGGING's); configures structlog on the way."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    if log_format == "json":
        rendering = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        # Plain tracebacks: rich's (the default when it is installed) print every
        # frame's local variables, tokens included.
        rendering = [
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(allow=EXTRA_FIELDS),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta]
        + rendering,
    )


def current_request_id() -> str:
    """The id of the request being served (or of the request a background step
    works for), "" outside both."""
    return structlog.contextvars.get_contextvars().get("request_id", "")


def request_id_for(request: HttpRequest) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if REQUEST_ID_SHAPE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def loggable_path(request: HttpRequest) -> str:
    """The path without its query string, secret URL arguments replaced."""
    match = request.resolver_match
    if match is None:
        # Not one of our URLs (a static file, a 404, a slash redirect): its first
        # segment only, since a mistyped link may still carry a token.
        first, _, rest = request.path.lstrip("/").partition("/")
        return f"/{first}/…" if rest else request.path
    if "(?P" in match.route:
        return request.path  # a regular expression of the admin's: no tokens there

    def argument(found: re.Match) -> str:
        name = found.group(1)
        if name in SECRET_URL_ARGUMENTS or name not in match.kwargs:
            return f"<{name}>"
        return str(match.kwargs[name])

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", argument, match.route)


def _user_id(request: HttpRequest) -> int | None:
    """The signed-in user's id, if something already looked the user up: looking
    it up here would cost a query (and /healthz makes none)."""
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return getattr(user, "pk", None)


def _forget_request(**kwargs) -> None:
    structlog.contextvars.clear_contextvars()


class RequestLogMiddleware:
    """The request id and one line per request (first in MIDDLEWARE, so that
    redirects and refusals by the other middleware are logged too)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        # The id stays bound until the answer is sent (Django logs a 5xx after
        # the middleware, a streamed download runs after it too).
        request_finished.connect(_forget_request, dispatch_uid="bananaweb.logs")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_for(request)
        # A thread serves many requests: nothing bound by an earlier one stays.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.monotonic()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        status = response.status_code
        requests_logger.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "request",
            method=request.method,
            path=loggable_path(request),
            status=status,
            duration_ms=round((time.monotonic() - started) * 1000),
            user_id=_user_id(request),
        )
        return response
