"""The only code that speaks HTTP to the Mountsea Nano Banana API.

Every call returns a typed outcome (a frozen dataclass with a `message` a person
understands) instead of raising, and never retries: a re-sent generate costs
money, so the service layer decides. The API token never reaches a log line, an
exception text, a repr or an outcome's message.
"""

import email.utils
import http.client
import http.cookiejar
import json
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.exceptions import InvalidSchema, InvalidURL, MissingSchema

from bananaweb.options import TERMINAL_STATUSES

logger = logging.getLogger("bananaweb.mountsea")

USER_AGENT = "bananaweb/0.1"
GENERATE_PATH = "/gemini/image/generate"
TASK_RESULT_PATH = "/gemini/task/result"
TOKEN_CHECK_TASK_ID = "bananaweb-token-check"  # no real task has this id
MAX_RETRY_AFTER = 3600.0
MAX_DETAIL_LENGTH = 500


# --- Outcomes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    upstream_task_id: str

    @property
    def message(self) -> str:
        return "The image service accepted the request."


@dataclass(frozen=True, slots=True)
class TaskState:
    upstream_task_id: str
    status: str  # as the upstream sent it
    result: dict | list | None
    error_message: str
    error_code: int | None
    finished_at: str | None
    raw: dict

    @property
    def terminal(self) -> bool:
        # Unknown statuses are still in flight (contract x-rules).
        return self.status in TERMINAL_STATUSES

    @property
    def message(self) -> str:
        text = f"The image service reports the task as {self.status}"
        if self.error_message:
            text += f": {self.error_message}"
        return text.rstrip(".") + "."


@dataclass(frozen=True, slots=True)
class TokenOk:
    message: str = "The token works."


@dataclass(frozen=True, slots=True)
class Rejected:
    status_code: int
    message: str
    errors: dict = field(default_factory=dict)  # the upstream's JSON object body


@dataclass(frozen=True, slots=True)
class AuthFailed:
    status_code: int  # 0 when the token is unusable and nothing was sent
    message: str


@dataclass(frozen=True, slots=True)
class OutOfCredit:
    status_code: int
    message: str


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after: float | None  # seconds, at most MAX_RETRY_AFTER
    message: str


@dataclass(frozen=True, slots=True)
class UpstreamError:
    status_code: int
    message: str
    retry_after: float | None = None  # seconds, from a Retry-After header (e.g. 503)


@dataclass(frozen=True, slots=True)
class NetworkError:
    message: str
    sent: bool  # False only when the request certainly never reached the server


@dataclass(frozen=True, slots=True)
class Malformed:
    status_code: int
    message: str


Outcome = (
    Accepted
    | TaskState
    | TokenOk
    | Rejected
    | AuthFailed
    | OutOfCredit
    | RateLimited
    | UpstreamError
    | NetworkError
    | Malformed
)


# --- The shared session -------------------------------------------------------


def _new_session() -> requests.Session:
    session = requests.Session()
    # max_retries=0: urllib3 never re-sends anything on its own.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # The session is shared by every user's token: a cookie set for one must
    # never ride along with another's requests.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


_session = _new_session()


class _BearerAuth(AuthBase):
    # An auth object (rather than a plain header) also keeps requests from
    # replacing it with credentials from ~/.netrc.
    @sensitive_variables("token")
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth(****)"


# --- The client ----------------------------------------------------------------


class MountseaClient:
    @sensitive_variables("token")  # hidden on Django's error pages and reports
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._token = (token or "").strip()
        self._session = session if session is not None else _session

    def __repr__(self) -> str:
        return (
            f"MountseaClient(base_url={self.base_url!r}, "
            f"connect_timeout={self.connect_timeout!r}, "
            f"read_timeout={self.read_timeout!r})"
        )

    def generate(self, payload: dict) -> Outcome:
        """POST the payload to start a task; its id comes back as Accepted."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        sent = self._send("POST", GENERATE_PATH, data=body)
        if not isinstance(sent, requests.Response):
            return sent
        if not _is_success(sent):
            return self._failure(sent)
        data = _json_object(sent)
        if data is None:
            return self._malformed(sent)
        upstream_task_id = _task_id(data)
        if upstream_task_id is None:
            return self._malformed(sent, "it has no task id")
        return Accepted(upstream_task_id=upstream_task_id)

    def task_result(self, upstream_task_id: str) -> Outcome:
        """GET the state of a task (result may be None while it runs)."""
        sent = self._send("GET", TASK_RESULT_PATH, params={"taskId": upstream_task_id})
        if not isinstance(sent, requests.Response):
            return sent
        if not _is_success(sent):
            return self._failure(sent)
        data = _json_object(sent)
        if data is None:
            return self._malformed(sent)
        state = _unwrap(data, "status")
        status = state.get("status")
        if not isinstance(status, str) or not status.strip():
            return self._malformed(sent, "it has no task status")
        return TaskState(
            upstream_task_id=upstream_task_id,
            status=status,
            result=_result(state.get("result")),
            error_message=self._scrub(_text(state.get("errorMessage"))),
            error_code=_int_or_none(state.get("errorCode")),
            finished_at=_text(state.get("finishedAt")) or None,
            raw=data,
        )

    def check_token(self) -> Outcome:
        """An authenticated call that spends no credit: asks for a made-up task."""
        sent = self._send(
            "GET", TASK_RESULT_PATH, params={"taskId": TOKEN_CHECK_TASK_ID}
        )
        if not isinstance(sent, requests.Response):
            return sent
        if _is_success(sent):
            return TokenOk()
        failure = self._failure(sent)
        if isinstance(failure, Rejected):
            # Not found / bad request for a made-up task: the token got us in.
            return TokenOk()
        return failure

    # --- Sending ---------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs) -> requests.Response | Outcome:
        if not self._token:
            return AuthFailed(0, "No API token is set for the image service.")
        if not _TOKEN_SHAPE.fullmatch(self._token):
            return AuthFailed(
                0,
                "Our API token contains characters that cannot be sent to the image "
                "service (spaces, line breaks or non-ASCII); paste it again.",
            )
        headers = {"Accept": "application/json"}
        if "data" in kwargs:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                headers=headers,
                auth=_BearerAuth(self._token),
                timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as exc:
            outcome = self._network_error(exc)
            self._log(
                method, path, kwargs, started, "network error, " + outcome.message
            )
            return outcome
        self._log(method, path, kwargs, started, str(response.status_code))
        return response

    def _log(
        self, method: str, path: str, kwargs: dict, started: float, result: str
    ) -> None:
        params = kwargs.get("params")
        if params:
            path += "?" + "&".join(
                f"{k}={quote(str(v), safe='')}" for k, v in params.items()
            )
        elapsed_ms = round((time.monotonic() - started) * 1000)
        result = self._scrub(result)
        # The fields again for the structured line (bananaweb/logs.py), which also
        # adds the request id a background step bound.
        logger.info(
            "%s %s -> %s in %d ms",
            method,
            path,
            result,
            elapsed_ms,
            extra={
                "method": method,
                "path": path,
                "status": result,
                "duration_ms": elapsed_ms,
            },
        )

    def _scrub(self, text: str) -> str:
        """The text with the token, however it got spelled, replaced by ****."""
        if self._token:
            for form in {
                self._token,
                repr(self._token)[1:-1],
                quote(self._token, safe=""),
            }:
                text = text.replace(form, "****")
        return text

    # --- Reading answers -------------------------------------------------------

    def _failure(self, response: requests.Response) -> Outcome:
        """The outcome of a non-2xx answer."""
        code = response.status_code
        detail = self._scrub(_detail(response))
        suffix = f" (HTTP {code})" + (f": {detail}" if detail else ".")
        if code == 401:
            return AuthFailed(code, "The image service rejected our API token" + suffix)
        # "Quota exceeded" on a 429 is a rate limit; on another 4xx, a spent account.
        credit_words = _NO_CREDIT if code == 429 else _OUT_OF_CREDIT
        if code == 402 or (400 <= code < 500 and credit_words.search(detail)):
            return OutOfCredit(
                code, "The image service says our account is out of credit" + suffix
            )
        if code == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                wait = "to slow down"
            else:
                wait = f"to wait {_duration(retry_after)}"
            return RateLimited(
                retry_after, f"The image service is busy; it asked us {wait}."
            )
        if code == 403:
            return AuthFailed(code, "The image service rejected our API token" + suffix)
        if 400 <= code < 500:
            data = _json_object(response)
            errors = self._scrub_json(data) if data is not None else {}
            return Rejected(
                code, "The image service refused the request" + suffix, errors
            )
        if code >= 500:
            return UpstreamError(
                code,
                "The image service is having trouble" + suffix,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= code < 400:
            location = self._scrub(response.headers.get("Location", ""))[
                :MAX_DETAIL_LENGTH
            ]
            return Malformed(
                code,
                f"The image service answered with a redirect (HTTP {code})"
                + (f" to {location}" if location else "")
                + "; check MOUNTSEA_BASE_URL.",
            )
        return Malformed(
            code, f"The image service sent an unexpected answer (HTTP {code})."
        )

    def _malformed(
        self, response: requests.Response, problem: str | None = None
    ) -> Malformed:
        code = response.status_code
        if problem is None:
            problem = "it is not a JSON object" if response.content else "it is empty"
        detail = self._scrub(_detail(response))
        text = f"The image service sent an answer we could not use (HTTP {code})"
        return Malformed(
            code, f"{text}: {problem}" + (f" ({detail})." if detail else ".")
        )

    def _scrub_json(self, value):
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {self._scrub(str(k)): self._scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub_json(v) for v in value]
        return value

    # --- Network errors --------------------------------------------------------

    def _network_error(self, exc: requests.RequestException) -> NetworkError:
        chain = list(_causes(exc))

        def find(*types: type) -> BaseException | None:
            return next((e for e in chain if isinstance(e, types)), None)

        # Read timeouts first: the request went out and no answer came in time.
        if find(requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
            within = _duration(self.read_timeout)
            return NetworkError(
                f"The image service did not answer within {within}.", sent=True
            )
        # urllib3 connect failures: the request was never written.
        if find(requests.exceptions.ConnectTimeout) or (
            (e := find(urllib3.exceptions.ConnectTimeoutError))
            and not isinstance(e, urllib3.exceptions.NewConnectionError)
        ):
            return NetworkError(
                "Could not reach the image service: it did not accept a connection "
                f"within {_duration(self.connect_timeout)}.",
                sent=False,
            )
        if find(urllib3.exceptions.NameResolutionError, socket.gaierror):
            host = urlsplit(self.base_url).hostname or self.base_url
            return NetworkError(
                f"Could not reach the image service: its address {host} could not be "
                "looked up (DNS).",
                sent=False,
            )
        if find(ConnectionRefusedError):
            return NetworkError(
                "Could not reach the image service: connection refused.", sent=False
            )
        if find(urllib3.exceptions.NewConnectionError):
            os_errors = (
                e
                for e in chain
                if isinstance(e, OSError)
                and not isinstance(e, requests.RequestException)
            )
            reason = next(os_errors, None) or find(
                urllib3.exceptions.NewConnectionError
            )
            return NetworkError(
                f"Could not reach the image service: {self._reason(reason)}.",
                sent=False,
            )
        if find(ssl.SSLCertVerificationError, ssl.CertificateError):
            return NetworkError(
                "Could not reach the image service safely: its TLS certificate could "
                "not be verified.",
                sent=False,
            )
        if isinstance(exc, (InvalidURL, MissingSchema, InvalidSchema)):
            address = self._scrub(self.base_url)
            return NetworkError(
                f"The image service address is not valid ({address}).", sent=False
            )
        # From here on the request may have reached the server.
        if find(http.client.RemoteDisconnected):
            message = "The image service closed the connection without answering."
        elif find(ConnectionResetError):
            message = (
                "The connection to the image service was reset before it answered."
            )
        elif find(
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError,
            http.client.IncompleteRead,
        ):
            message = (
                "The connection to the image service broke while it was answering."
            )
        else:
            message = f"Could not talk to the image service: {self._reason(exc)}."
        return NetworkError(message, sent=True)

    def _reason(self, exc: BaseException | None) -> str:
        if isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
        else:
            text = str(exc) if exc is not None else ""
        text = self._scrub(text).strip().rstrip(".")
        return _truncate(text[:1].lower() + text[1:]) or "unknown error"


# --- Helpers ---------------------------------------------------------------------

# What an API token can be: printable ASCII without spaces. Anything else would
# either be rejected by http.client with the header (token included) in the
# exception text, or smuggle a header in.
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")

_NO_CREDIT = re.compile(
    r"(insufficient|not\s+enough)\s+(credit|balance|fund|point)"
    r"|out\s+of\s+credit"
    r"|(credit|balance)s?\s+(is\s+)?(insufficient|exhausted|too\s+low)"
    r"|余额不足|积分不足",
    re.IGNORECASE,
)
_OUT_OF_CREDIT = re.compile(
    _NO_CREDIT.pattern
    + r"|quota\s+(has\s+been\s+)?exceeded|exceeded\s+(your|the)?\s*\w*\s*quota",
    re.IGNORECASE,
)


@sensitive_variables("token")
def client_for(token: str) -> MountseaClient:
    """A client for this token, configured from settings, on the shared session."""
    from django.conf import settings

    return MountseaClient(
        base_url=settings.MOUNTSEA_BASE_URL,
        token=token,
        connect_timeout=settings.MOUNTSEA_CONNECT_TIMEOUT,
        read_timeout=settings.MOUNTSEA_READ_TIMEOUT,
        session=_session,
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: args, urllib3's `reason`, causes."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            wrapped.append(reason)
        if current.__cause__ is not None:
            wrapped.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            wrapped.append(current.__context__)
        stack.extend(wrapped)


def _is_success(response: requests.Response) -> bool:
    return 200 <= response.status_code < 300


def _json_object(response: requests.Response) -> dict | None:
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _unwrap(data: dict, key: str) -> dict:
    # The contract's answers are flat; tolerate a {"data": {...}} envelope too.
    inner = data.get("data")
    if key not in data and isinstance(inner, dict) and key in inner:
        return inner
    return data


def _task_id(data: dict) -> str | None:
    value = _unwrap(data, "taskId").get("taskId")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _result(value) -> dict | list | None:
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, str) and value.strip():
        # The provider's result passes through untouched: sometimes JSON in a
        # string, sometimes a bare URL. Keep the URL findable in a list.
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return parsed if isinstance(parsed, (dict, list)) else [value]
    return None


def _text(value) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    return str(value)


def _int_or_none(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _detail(response: requests.Response) -> str:
    """The upstream's own words for what went wrong, short and on one line."""
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "msg", "errorMessage"):
            text = _words(data.get(key))
            if text:
                return _truncate(text)
        return ""
    if isinstance(data, str):
        return _truncate(" ".join(data.split()))
    if data is not None:
        return _truncate(_words(data))
    text = response.text
    if "html" in response.headers.get(
        "Content-Type", ""
    ).lower() or text.lstrip().startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
    return _truncate(" ".join(text.split()))


def _words(value) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return "; ".join(w for w in (_words(v) for v in value) if w)
    if isinstance(value, dict):
        return _words(value.get("message") or value.get("msg"))
    return ""


def _truncate(text: str) -> str:
    if len(text) <= MAX_DETAIL_LENGTH:
        return text
    return text[: MAX_DETAIL_LENGTH - 1].rstrip() + "…"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now, from delay-seconds or an HTTP-date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _duration(seconds: float) -> str:
    if seconds >= 120:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minutes"
    if seconds != int(seconds) and seconds < 10:
        return f"{seconds:g} seconds"
    whole = math.ceil(seconds)
    return "1 second" if whole == 1 else f"{whole} seconds"
