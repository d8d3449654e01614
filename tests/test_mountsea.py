import dataclasses
import email.utils
import json
import logging
import re
import socket
import struct
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
import urllib3.util.connection

from bananaweb import mountsea
from bananaweb.mountsea import (
    Accepted,
    AuthFailed,
    Malformed,
    MountseaClient,
    NetworkError,
    OutOfCredit,
    RateLimited,
    Rejected,
    TaskState,
    TokenOk,
    UpstreamError,
)

TOKEN = "tok-S3CRET-4f9a"
BASE = "https://upstream.test"
GENERATE_URL = BASE + "/gemini/image/generate"
RESULT_URL = BASE + "/gemini/task/result"
PAYLOAD = {
    "prompt": "A fluffy orange cat",
    "action": "generate",
    "num_images": 1,
    "model": "nano-banana-fast",
}


def make_client(base_url: str = BASE, **kwargs) -> MountseaClient:
    kwargs = {"token": TOKEN, "connect_timeout": 4, "read_timeout": 25} | kwargs
    return MountseaClient(base_url=base_url, **kwargs)


@pytest.fixture
def upstream():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def mountsea_client() -> MountseaClient:
    return make_client()


# Both endpoints, so every error outcome is checked for each.
ENDPOINTS = {
    "generate": (responses.POST, GENERATE_URL, lambda c: c.generate(PAYLOAD)),
    "task_result": (responses.GET, RESULT_URL, lambda c: c.task_result("task-1")),
}


@pytest.fixture(params=ENDPOINTS)
def endpoint(request):
    """(method, url, call) for each endpoint."""
    return ENDPOINTS[request.param]


def assert_token_hidden(outcome, *texts: str) -> None:
    for text in (outcome.message, repr(outcome), *texts):
        assert TOKEN not in text
        assert "S3CRET" not in text


# --- The request sent ---------------------------------------------------------


def test_generate_posts_the_payload_as_json_with_bearer_token_and_timeouts(
    upstream, mountsea_client
):
    upstream.post(GENERATE_URL, status=201, json={"taskId": "t-1"})

    mountsea_client.generate(PAYLOAD)

    (call,) = upstream.calls
    assert call.request.method == "POST"
    assert call.request.url == GENERATE_URL
    assert json.loads(call.request.body) == PAYLOAD
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["User-Agent"] == "bananaweb/0.1"
    assert call.request.req_kwargs["timeout"] == (4, 25)


def test_task_result_gets_the_task_id_as_a_query_parameter(upstream, mountsea_client):
    upstream.get(RESULT_URL, json={"taskId": "a b/c&d", "status": "pending"})

    mountsea_client.task_result("a b/c&d")

    (call,) = upstream.calls
    assert call.request.method == "GET"
    assert call.request.url == RESULT_URL + "?taskId=a+b%2Fc%26d"
    assert call.request.params == {"taskId": "a b/c&d"}
    assert call.request.body is None
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.req_kwargs["timeout"] == (4, 25)


def test_check_token_asks_for_a_task_that_cannot_exist(upstream, mountsea_client):
    upstream.get(RESULT_URL, status=404, json={"message": "Task not found"})

    mountsea_client.check_token()

    (call,) = upstream.calls
    assert call.request.params == {"taskId": "bananaweb-token-check"}
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_base_url_trailing_slash_is_ignored(upstream):
    upstream.post(GENERATE_URL, status=201, json={"taskId": "t-1"})

    make_client(BASE + "/").generate(PAYLOAD)

    assert upstream.calls[0].request.url == GENERATE_URL


def test_token_surrounding_whitespace_is_not_sent(upstream):
    upstream.post(GENERATE_URL, status=201, json={"taskId": "t-1"})

    make_client(token=f"  {TOKEN}\n").generate(PAYLOAD)

    assert upstream.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_redirects_are_not_followed(upstream, endpoint):
    method, url, call = endpoint
    upstream.add(
        method, url, status=301, headers={"Location": "https://elsewhere.test/"}
    )

    outcome = call(make_client())

    assert isinstance(outcome, Malformed)
    assert outcome.status_code == 301
    assert "redirect" in outcome.message
    assert "MOUNTSEA_BASE_URL" in outcome.message
    assert len(upstream.calls) == 1


# --- generate -----------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202])
def test_generate_2xx_with_task_id_is_accepted(upstream, mountsea_client, status):
    upstream.post(GENERATE_URL, status=status, json={"taskId": "7f3c2a9e"})

    assert mountsea_client.generate(PAYLOAD) == Accepted(upstream_task_id="7f3c2a9e")


@pytest.mark.parametrize(
    "body, upstream_task_id",
    [
        ({"taskId": 12345}, "12345"),
        ({"code": 200, "data": {"taskId": "in-envelope"}}, "in-envelope"),
        ({"taskId": " padded "}, "padded"),
    ],
)
def test_generate_tolerates_task_id_variants(
    upstream, mountsea_client, body, upstream_task_id
):
    upstream.post(GENERATE_URL, status=201, json=body)

    assert mountsea_client.generate(PAYLOAD) == Accepted(
        upstream_task_id=upstream_task_id
    )


@pytest.mark.parametrize(
    "body, content_type, problem",
    [
        ("<html><title>Welcome</title></html>", "text/html", "not a JSON object"),
        ("not json at all", "text/plain", "not a JSON object"),
        ('["taskId", "t-1"]', "application/json", "not a JSON object"),
        ('"t-1"', "application/json", "not a JSON object"),
        ("", "application/json", "it is empty"),
        ("{}", "application/json", "no task id"),
        ('{"taskId": ""}', "application/json", "no task id"),
        ('{"taskId": "   "}', "application/json", "no task id"),
        ('{"taskId": null}', "application/json", "no task id"),
        ('{"taskId": true}', "application/json", "no task id"),
        ('{"id": "t-1", "message": "ok"}', "application/json", "no task id"),
    ],
)
def test_generate_unusable_2xx_is_malformed(
    upstream, mountsea_client, body, content_type, problem
):
    upstream.post(GENERATE_URL, status=201, body=body, content_type=content_type)

    outcome = mountsea_client.generate(PAYLOAD)

    assert isinstance(outcome, Malformed)
    assert outcome.status_code == 201
    assert problem in outcome.message


def test_malformed_message_quotes_what_the_upstream_said(upstream, mountsea_client):
    upstream.post(
        GENERATE_URL, status=200, json={"code": 500, "msg": "engine warming up"}
    )

    outcome = mountsea_client.generate(PAYLOAD)

    assert outcome == Malformed(
        200,
        "The image service sent an answer we could not use (HTTP 200): "
        "it has no task id (engine warming up).",
    )


def test_generate_body_is_sent_as_utf8(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=201, json={"taskId": "t-1"})

    mountsea_client.generate(PAYLOAD | {"prompt": "Un chat roux — très doux 🐱"})

    body = upstream.calls[0].request.body
    assert json.loads(body.decode("utf-8"))["prompt"] == "Un chat roux — très doux 🐱"


# --- Errors, for both endpoints -----------------------------------------------


@pytest.mark.parametrize(
    "status, outcome_type",
    [
        (400, Rejected),
        (401, AuthFailed),
        (402, OutOfCredit),
        (403, AuthFailed),
        (404, Rejected),
        (409, Rejected),
        (413, Rejected),
        (422, Rejected),
        (429, RateLimited),
        (500, UpstreamError),
        (502, UpstreamError),
        (503, UpstreamError),
        (504, UpstreamError),
    ],
)
def test_error_statuses_map_to_outcomes(upstream, endpoint, status, outcome_type):
    method, url, call = endpoint
    upstream.add(method, url, status=status, json={"message": "something"})

    outcome = call(make_client())

    assert type(outcome) is outcome_type
    if outcome_type is not RateLimited:
        assert outcome.status_code == status


def test_generate_401_is_auth_failed(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=401, json={"message": "Unauthorized"})

    assert mountsea_client.generate(PAYLOAD) == AuthFailed(
        401, "The image service rejected our API token (HTTP 401): Unauthorized"
    )


def test_auth_failed_without_upstream_words_still_names_the_status(
    upstream, mountsea_client
):
    upstream.get(RESULT_URL, status=403, body="")

    assert mountsea_client.task_result("t-1") == AuthFailed(
        403, "The image service rejected our API token (HTTP 403)."
    )


def test_generate_402_is_out_of_credit(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=402, json={"message": "Payment Required"})

    assert mountsea_client.generate(PAYLOAD) == OutOfCredit(
        402,
        "The image service says our account is out of credit (HTTP 402): "
        "Payment Required",
    )


@pytest.mark.parametrize(
    "status, text",
    [
        (400, "Insufficient credits"),
        (400, "Your balance is insufficient"),
        (403, "insufficient balance, please top up"),
        (422, "Not enough points to run this task"),
        (400, "Monthly quota exceeded"),
        (403, "You exceeded your current quota"),
        (400, "余额不足"),
        (429, "Insufficient balance"),
    ],
)
def test_4xx_that_mentions_credit_is_out_of_credit(
    upstream, mountsea_client, status, text
):
    upstream.post(GENERATE_URL, status=status, json={"message": text})

    outcome = mountsea_client.generate(PAYLOAD)

    assert outcome == OutOfCredit(
        status,
        f"The image service says our account is out of credit (HTTP {status}): {text}",
    )


def test_429_quota_wording_is_still_a_rate_limit(upstream, mountsea_client):
    upstream.post(
        GENERATE_URL,
        status=429,
        json={"message": "Rate limit quota exceeded"},
        headers={"Retry-After": "5"},
    )

    assert mountsea_client.generate(PAYLOAD) == RateLimited(
        5.0, "The image service is busy; it asked us to wait 5 seconds."
    )


def test_401_stays_auth_failed_even_when_it_mentions_credit(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=401, json={"message": "insufficient balance"})

    assert isinstance(mountsea_client.generate(PAYLOAD), AuthFailed)


def test_generate_400_is_rejected_with_the_upstream_body(upstream, mountsea_client):
    body = {
        "statusCode": 400,
        "message": [
            "prompt should not be empty",
            "action must be one of edit, generate",
        ],
        "error": "Bad Request",
    }
    upstream.post(GENERATE_URL, status=400, json=body)

    assert mountsea_client.generate(PAYLOAD) == Rejected(
        400,
        "The image service refused the request (HTTP 400): prompt should not be "
        "empty; action must be one of edit, generate",
        body,
    )


def test_task_result_404_is_rejected(upstream, mountsea_client):
    upstream.get(RESULT_URL, status=404, json={"message": "Task not found"})

    assert mountsea_client.task_result("nope") == Rejected(
        404,
        "The image service refused the request (HTTP 404): Task not found",
        {"message": "Task not found"},
    )


def test_rejected_without_json_body_has_no_errors(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=413, body="Request Entity Too Large")

    outcome = mountsea_client.generate(PAYLOAD)

    assert outcome == Rejected(
        413,
        "The image service refused the request (HTTP 413): Request Entity Too Large",
        {},
    )


def test_5xx_is_upstream_error(upstream, mountsea_client):
    upstream.get(
        RESULT_URL,
        status=502,
        body="<html><head><title>502 Bad Gateway</title></head><body>x</body></html>",
        content_type="text/html",
    )

    assert mountsea_client.task_result("t-1") == UpstreamError(
        502, "The image service is having trouble (HTTP 502): 502 Bad Gateway"
    )


@pytest.mark.parametrize(
    "body, content_type, detail",
    [
        ('{"message": "plain message"}', "application/json", "plain message"),
        ('{"message": ["first", "second"]}', "application/json", "first; second"),
        ('{"error": "just an error"}', "application/json", "just an error"),
        ('{"error": {"message": "nested", "code": 7}}', "application/json", "nested"),
        ('{"detail": "django style"}', "application/json", "django style"),
        ('{"message": "", "error": "Bad Request"}', "application/json", "Bad Request"),
        (
            '{"message": "  spread\\n over\\tlines "}',
            "application/json",
            "spread over lines",
        ),
        ('"a JSON string"', "application/json", "a JSON string"),
        ("  plain text\nanswer ", "text/plain", "plain text answer"),
        ("<html><body><h1>Nope</h1></body></html>", "text/html", "Nope"),
    ],
)
def test_upstream_message_is_extracted_from_every_shape(
    upstream, mountsea_client, body, content_type, detail
):
    upstream.post(GENERATE_URL, status=400, body=body, content_type=content_type)

    outcome = mountsea_client.generate(PAYLOAD)

    assert (
        outcome.message == f"The image service refused the request (HTTP 400): {detail}"
    )


def test_upstream_message_without_words_ends_at_the_status(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=400, json={"statusCode": 400})

    assert mountsea_client.generate(PAYLOAD).message == (
        "The image service refused the request (HTTP 400)."
    )


def test_long_upstream_message_is_truncated(upstream, mountsea_client):
    upstream.post(GENERATE_URL, status=400, json={"message": "x" * 5000})

    outcome = mountsea_client.generate(PAYLOAD)

    detail = outcome.message.split(": ", 1)[1]
    assert len(detail) == 500
    assert detail.endswith("…")


# --- Retry-After --------------------------------------------------------------


def http_date(delta: timedelta) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    "header, retry_after, wait",
    [
        ("12", 12.0, "to wait 12 seconds"),
        ("1", 1.0, "to wait 1 second"),
        ("0.5", 0.5, "to wait 0.5 seconds"),
        ("0", 0.0, "to wait 0 seconds"),
        ("-3", 0.0, "to wait 0 seconds"),
        ("300", 300.0, "to wait 5 minutes"),
        ("86400", 3600.0, "to wait 60 minutes"),
        ("soon", None, "to slow down"),
        ("nan", None, "to slow down"),
        ("", None, "to slow down"),
        (None, None, "to slow down"),
    ],
)
def test_429_retry_after_in_seconds(upstream, endpoint, header, retry_after, wait):
    method, url, call = endpoint
    headers = {} if header is None else {"Retry-After": header}
    upstream.add(method, url, status=429, json={"message": "Too many"}, headers=headers)

    outcome = call(make_client())

    assert outcome == RateLimited(
        retry_after, f"The image service is busy; it asked us {wait}."
    )


def test_429_retry_after_as_http_date(upstream, mountsea_client):
    upstream.post(
        GENERATE_URL,
        status=429,
        headers={"Retry-After": http_date(timedelta(seconds=90))},
    )

    outcome = mountsea_client.generate(PAYLOAD)

    assert isinstance(outcome, RateLimited)
    assert 85 <= outcome.retry_after <= 90
    assert re.fullmatch(
        r"The image service is busy; it asked us to wait (8[5-9]|90) seconds\.",
        outcome.message,
    )


@pytest.mark.parametrize(
    "delta, retry_after",
    [(timedelta(hours=-1), 0.0), (timedelta(days=2), 3600.0)],
)
def test_429_retry_after_http_date_is_clamped(
    upstream, mountsea_client, delta, retry_after
):
    upstream.post(GENERATE_URL, status=429, headers={"Retry-After": http_date(delta)})

    assert mountsea_client.generate(PAYLOAD).retry_after == retry_after


# --- task_result --------------------------------------------------------------


def test_task_result_in_flight_is_task_state_without_result(upstream, mountsea_client):
    body = {"taskId": "t-1", "status": "processing", "result": None}
    upstream.get(RESULT_URL, json=body)

    outcome = mountsea_client.task_result("t-1")

    assert outcome == TaskState(
        upstream_task_id="t-1",
        status="processing",
        result=None,
        error_message="",
        error_code=None,
        finished_at=None,
        raw=body,
    )
    assert not outcome.terminal
    assert outcome.message == "The image service reports the task as processing."


def test_task_result_completed_carries_result_and_finish_time(
    upstream, mountsea_client
):
    body = {
        "taskId": "t-1",
        "status": "completed",
        "result": {"images": [{"url": "https://cdn.test/a.png"}]},
        "finishedAt": "2026-01-02T03:04:05Z",
        "createdAt": "2026-01-02T03:03:00Z",
        "traceId": "tr-9",
    }
    upstream.get(RESULT_URL, json=body)

    outcome = mountsea_client.task_result("t-1")

    assert outcome.terminal
    assert outcome.result == {"images": [{"url": "https://cdn.test/a.png"}]}
    assert outcome.finished_at == "2026-01-02T03:04:05Z"
    assert outcome.raw == body


def test_task_result_failed_carries_the_error(upstream, mountsea_client):
    upstream.get(
        RESULT_URL,
        json={
            "taskId": "t-1",
            "status": "failed",
            "errorMessage": "Content policy violation",
            "errorCode": 4001,
        },
    )

    outcome = mountsea_client.task_result("t-1")

    assert outcome.terminal
    assert outcome.error_message == "Content policy violation"
    assert outcome.error_code == 4001
    assert outcome.message == (
        "The image service reports the task as failed: Content policy violation."
    )


def test_task_result_without_result_key_has_none(upstream, mountsea_client):
    upstream.get(RESULT_URL, json={"taskId": "t-1", "status": "pending"})

    assert mountsea_client.task_result("t-1").result is None


@pytest.mark.parametrize(
    "status, terminal",
    [
        ("pending", False),
        ("ready", False),
        ("assigned", False),
        ("processing", False),
        ("completed", True),
        ("failed", True),
        ("cancelled", True),
        ("timeout", True),
        ("COMPLETED", False),
        ("queued_on_gpu", False),
        ("done", False),
    ],
)
def test_terminal_follows_the_contract_and_unknown_status_is_in_flight(
    upstream, mountsea_client, status, terminal
):
    upstream.get(RESULT_URL, json={"taskId": "t-1", "status": status})

    outcome = mountsea_client.task_result("t-1")

    assert outcome.status == status
    assert outcome.terminal is terminal


@pytest.mark.parametrize(
    "result, expected",
    [
        ([{"url": "https://cdn.test/a.png"}], [{"url": "https://cdn.test/a.png"}]),
        ('{"url": "https://cdn.test/a.png"}', {"url": "https://cdn.test/a.png"}),
        ("https://cdn.test/a.png", ["https://cdn.test/a.png"]),
        ("", None),
        (42, None),
    ],
)
def test_task_result_result_shapes(upstream, mountsea_client, result, expected):
    upstream.get(RESULT_URL, json={"status": "completed", "result": result})

    assert mountsea_client.task_result("t-1").result == expected


@pytest.mark.parametrize(
    "error_code, expected",
    [(500, 500), (3.0, 3), ("17", 17), ("E17", None), (None, None), (True, None)],
)
def test_task_result_error_code_is_an_int_or_none(
    upstream, mountsea_client, error_code, expected
):
    upstream.get(RESULT_URL, json={"status": "failed", "errorCode": error_code})

    assert mountsea_client.task_result("t-1").error_code == expected


def test_task_result_in_a_data_envelope_is_read(upstream, mountsea_client):
    body = {"code": 200, "data": {"taskId": "t-1", "status": "processing"}}
    upstream.get(RESULT_URL, json=body)

    outcome = mountsea_client.task_result("t-1")

    assert outcome.status == "processing"
    assert outcome.raw == body


@pytest.mark.parametrize(
    "body, content_type, problem",
    [
        ("<html>oops</html>", "text/html", "not a JSON object"),
        ('[{"status": "completed"}]', "application/json", "not a JSON object"),
        ("", "application/json", "it is empty"),
        ('{"taskId": "t-1"}', "application/json", "no task status"),
        ('{"taskId": "t-1", "status": ""}', "application/json", "no task status"),
        ('{"taskId": "t-1", "status": 3}', "application/json", "no task status"),
        ('{"taskId": "t-1", "status": null}', "application/json", "no task status"),
    ],
)
def test_task_result_unusable_200_is_malformed(
    upstream, mountsea_client, body, content_type, problem
):
    upstream.get(RESULT_URL, body=body, content_type=content_type)

    outcome = mountsea_client.task_result("t-1")

    assert isinstance(outcome, Malformed)
    assert outcome.status_code == 200
    assert problem in outcome.message


# --- check_token --------------------------------------------------------------


@pytest.mark.parametrize(
    "status, outcome_type",
    [
        (200, TokenOk),
        (400, TokenOk),
        (404, TokenOk),
        (422, TokenOk),
        (401, AuthFailed),
        (403, AuthFailed),
        (402, OutOfCredit),
        (429, RateLimited),
        (500, UpstreamError),
        (503, UpstreamError),
    ],
)
def test_check_token_outcomes(upstream, mountsea_client, status, outcome_type):
    upstream.get(RESULT_URL, status=status, json={"message": "whatever"})

    assert type(mountsea_client.check_token()) is outcome_type


def test_check_token_ok_says_the_token_works(upstream, mountsea_client):
    upstream.get(RESULT_URL, status=404, json={"message": "Task not found"})

    assert mountsea_client.check_token() == TokenOk()
    assert TokenOk().message == "The token works."


def test_check_token_that_cannot_connect_is_a_network_error():
    outcome = make_client(f"http://127.0.0.1:{closed_port()}").check_token()

    assert outcome == NetworkError(
        "Could not reach the image service: connection refused.", sent=False
    )


def test_check_token_with_no_token_fails_without_calling(upstream):
    assert make_client(token="").check_token() == AuthFailed(
        0, "No API token is set for the image service."
    )
    assert len(upstream.calls) == 0


# --- Network errors (real sockets) --------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_whole_request(conn: socket.socket) -> None:
    # All of it: closing with unread bytes sends a reset, which would race the answer.
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    while length and len(body) < int(length.group(1)) and (chunk := conn.recv(65536)):
        body += chunk


@pytest.fixture
def serve_once():
    """Serve one connection on 127.0.0.1: read the request, then `handler(conn)`."""
    listeners = []

    def serve(handler) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def run():
            conn, _ = listener.accept()
            with conn:
                read_whole_request(conn)
                handler(conn)

        threading.Thread(target=run, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield serve
    for listener in listeners:
        listener.close()


def test_connection_refused_is_not_sent(endpoint):
    _, _, call = endpoint

    outcome = call(make_client(f"http://127.0.0.1:{closed_port()}"))

    assert outcome == NetworkError(
        "Could not reach the image service: connection refused.", sent=False
    )


def test_read_timeout_counts_as_sent(endpoint):
    _, _, call = endpoint
    # Listening but never accepting: the kernel completes the connection and
    # takes the request, and no answer ever comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        base_url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        outcome = call(make_client(base_url, read_timeout=0.2))

    assert outcome == NetworkError(
        "The image service did not answer within 0.2 seconds.", sent=True
    )


def test_server_closing_without_answering_counts_as_sent(serve_once):
    base_url = serve_once(lambda conn: None)

    outcome = make_client(base_url).generate(PAYLOAD)

    assert outcome == NetworkError(
        "The image service closed the connection without answering.", sent=True
    )


def test_connection_reset_after_connecting_counts_as_sent(serve_once):
    def reset(conn):
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    outcome = make_client(serve_once(reset)).generate(PAYLOAD)

    assert isinstance(outcome, NetworkError)
    assert outcome.sent is True
    assert "connection" in outcome.message


def test_answer_cut_short_counts_as_sent(serve_once):
    def cut_short(conn):
        conn.sendall(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"taskId": '
        )

    outcome = make_client(serve_once(cut_short)).generate(PAYLOAD)

    assert outcome == NetworkError(
        "The connection to the image service broke while it was answering.", sent=True
    )


def test_answer_stalling_mid_body_is_a_read_timeout_and_sent(serve_once):
    stalled = threading.Event()

    def stall(conn):
        conn.sendall(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"taskId": '
        )
        stalled.wait(5)

    try:
        outcome = make_client(serve_once(stall), read_timeout=0.2).generate(PAYLOAD)
    finally:
        stalled.set()

    assert outcome == NetworkError(
        "The image service did not answer within 0.2 seconds.", sent=True
    )


def test_real_answer_from_a_socket_is_accepted(serve_once):
    def answer(conn):
        body = b'{"taskId": "from-socket"}'
        conn.sendall(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    assert make_client(serve_once(answer)).generate(PAYLOAD) == Accepted("from-socket")


def test_connect_timeout_is_not_sent(monkeypatch, endpoint):
    _, _, call = endpoint

    def times_out(*args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", times_out)

    outcome = call(make_client("http://upstream.test", connect_timeout=1))

    assert outcome == NetworkError(
        "Could not reach the image service: it did not accept a connection within "
        "1 second.",
        sent=False,
    )


def test_dns_failure_is_not_sent(monkeypatch, endpoint):
    _, _, call = endpoint

    def unknown_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", unknown_name)

    outcome = call(make_client("http://upstream.test"))

    assert outcome == NetworkError(
        "Could not reach the image service: its address upstream.test could not be "
        "looked up (DNS).",
        sent=False,
    )


def test_other_failure_to_connect_is_not_sent(monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", unreachable)

    outcome = make_client("http://upstream.test").generate(PAYLOAD)

    assert outcome == NetworkError(
        "Could not reach the image service: network is unreachable.", sent=False
    )


@pytest.mark.parametrize(
    "base_url", ["upstream.test", "ftp://upstream.test", "http://"]
)
def test_invalid_base_url_is_not_sent(base_url):
    outcome = make_client(base_url).generate(PAYLOAD)

    assert isinstance(outcome, NetworkError)
    assert outcome.sent is False
    assert "address is not valid" in outcome.message


@pytest.mark.parametrize(
    "exc, sent",
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), False),
        (requests.exceptions.ReadTimeout("read timed out"), True),
        (requests.exceptions.ChunkedEncodingError("broken"), True),
        (requests.exceptions.ConnectionError("something odd"), True),
        (requests.exceptions.SSLError("bad record mac"), True),
        (requests.exceptions.RequestException("unknown"), True),
    ],
)
def test_requests_exceptions_map_to_network_errors(
    upstream, mountsea_client, exc, sent
):
    upstream.post(GENERATE_URL, body=exc)

    outcome = mountsea_client.generate(PAYLOAD)

    assert isinstance(outcome, NetworkError)
    assert outcome.sent is sent


# --- The token stays secret ---------------------------------------------------


def test_client_repr_hides_the_token(mountsea_client):
    assert TOKEN not in repr(mountsea_client)
    assert TOKEN not in str(mountsea_client)
    assert repr(mountsea_client) == (
        "MountseaClient(base_url='https://upstream.test', connect_timeout=4, "
        "read_timeout=25)"
    )


@pytest.mark.parametrize(
    "status, body",
    [
        (401, {"message": f"Invalid token {TOKEN}"}),
        (403, {"error": f"token {TOKEN} is not allowed"}),
        (400, {"message": [f"bad header Bearer {TOKEN}"]}),
        (402, {"message": f"account of {TOKEN} is empty"}),
        (429, {"message": f"slow down {TOKEN}"}),
        (500, {"message": f"crash while checking {TOKEN}"}),
        (301, {"message": f"moved {TOKEN}"}),
    ],
)
def test_token_echoed_by_the_upstream_is_scrubbed(
    upstream, mountsea_client, caplog, formatted_logs, status, body
):
    caplog.set_level(logging.DEBUG)
    upstream.post(
        GENERATE_URL,
        status=status,
        json=body,
        headers={"Location": f"https://x.test/?t={TOKEN}"},
    )

    outcome = mountsea_client.generate(PAYLOAD)

    assert_token_hidden(outcome, caplog.text + formatted_logs.getvalue())
    assert TOKEN not in json.dumps(getattr(outcome, "errors", {}))


def test_token_echoed_in_a_task_error_is_scrubbed(upstream, mountsea_client):
    upstream.get(
        RESULT_URL, json={"status": "failed", "errorMessage": f"token {TOKEN} revoked"}
    )

    outcome = mountsea_client.task_result("t-1")

    assert outcome.error_message == "token **** revoked"
    assert TOKEN not in outcome.message


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError(f"refused for Bearer {TOKEN}"),
        requests.exceptions.ReadTimeout(
            f"timeout, headers={{'Authorization': '{TOKEN}'}}"
        ),
        requests.exceptions.RequestException(f"weird {TOKEN!r}"),
        requests.exceptions.SSLError(f"ssl {TOKEN}"),
    ],
)
def test_token_in_an_exception_text_is_scrubbed(
    upstream, mountsea_client, caplog, formatted_logs, exc
):
    caplog.set_level(logging.DEBUG)
    upstream.post(GENERATE_URL, body=exc)

    outcome = mountsea_client.generate(PAYLOAD)

    assert isinstance(outcome, NetworkError)
    assert_token_hidden(outcome, caplog.text + formatted_logs.getvalue())


def test_token_in_a_socket_error_is_scrubbed(monkeypatch, caplog, formatted_logs):
    caplog.set_level(logging.DEBUG)

    def fails(*args, **kwargs):
        raise OSError(113, f"No route to host for {TOKEN}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", fails)

    outcome = make_client("http://upstream.test").generate(PAYLOAD)

    assert outcome == NetworkError(
        "Could not reach the image service: no route to host for ****.", sent=False
    )
    assert_token_hidden(outcome, caplog.text + formatted_logs.getvalue())


def test_token_never_reaches_the_logs_on_a_real_exchange(
    serve_once, caplog, formatted_logs
):
    caplog.set_level(logging.DEBUG)

    def answer(conn):
        body = b'{"message": "no"}'
        conn.sendall(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    outcome = make_client(serve_once(answer)).generate(PAYLOAD)

    assert isinstance(outcome, AuthFailed)
    assert_token_hidden(outcome, caplog.text + formatted_logs.getvalue())
    assert "Bearer" not in caplog.text + formatted_logs.getvalue()


@pytest.mark.parametrize(
    "token", [f"{TOKEN}\r\nX-Injected: 1", "tok en", "tøken", "tok\x00en"]
)
def test_unsendable_token_fails_without_calling(upstream, token):
    outcome = make_client(token=token).generate(PAYLOAD)

    assert outcome == AuthFailed(
        0,
        "Our API token contains characters that cannot be sent to the image service "
        "(spaces, line breaks or non-ASCII); paste it again.",
    )
    assert len(upstream.calls) == 0


@pytest.mark.parametrize("token", ["", "   "])
def test_missing_token_fails_without_calling(upstream, token):
    outcome = make_client(token=token).task_result("t-1")

    assert outcome == AuthFailed(0, "No API token is set for the image service.")
    assert len(upstream.calls) == 0


# --- Logging ------------------------------------------------------------------


def test_each_call_logs_one_info_line(upstream, mountsea_client, caplog):
    caplog.set_level(logging.INFO, logger="bananaweb.mountsea")
    upstream.post(GENERATE_URL, status=201, json={"taskId": "t-1"})
    upstream.get(RESULT_URL, status=200, json={"status": "pending"})

    mountsea_client.generate(PAYLOAD)
    mountsea_client.task_result("t-1")

    records = [r for r in caplog.records if r.name == "bananaweb.mountsea"]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert re.fullmatch(
        r"POST /gemini/image/generate -> 201 in \d+ ms", records[0].getMessage()
    )
    assert re.fullmatch(
        r"GET /gemini/task/result\?taskId=t-1 -> 200 in \d+ ms", records[1].getMessage()
    )
    assert PAYLOAD["prompt"] not in caplog.text


def test_network_error_logs_one_line_with_the_reason(caplog):
    caplog.set_level(logging.INFO, logger="bananaweb.mountsea")

    make_client(f"http://127.0.0.1:{closed_port()}").generate(PAYLOAD)

    (record,) = [r for r in caplog.records if r.name == "bananaweb.mountsea"]
    assert re.fullmatch(
        r"POST /gemini/image/generate -> network error, Could not reach the image "
        r"service: connection refused\. in \d+ ms",
        record.getMessage(),
    )


# --- Outcomes and the shared session ------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        Accepted("t-1"),
        TaskState("t-1", "pending", None, "", None, None, {}),
        TokenOk(),
        Rejected(400, "no", {}),
        AuthFailed(401, "no"),
        OutOfCredit(402, "no"),
        RateLimited(1.0, "no"),
        UpstreamError(500, "no"),
        NetworkError("no", sent=True),
        Malformed(200, "no"),
    ],
)
def test_outcomes_are_frozen_slotted_and_have_a_message(outcome):
    assert isinstance(outcome, mountsea.Outcome)
    assert isinstance(outcome.message, str) and outcome.message
    assert not hasattr(outcome, "__dict__")
    field_name = dataclasses.fields(outcome)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(outcome, field_name, "changed")


def test_rejected_errors_default_to_empty():
    assert Rejected(400, "no").errors == {}


def test_client_for_reads_settings_and_shares_one_session(settings, upstream):
    settings.MOUNTSEA_BASE_URL = "https://configured.test/"
    settings.MOUNTSEA_CONNECT_TIMEOUT = 2.5
    settings.MOUNTSEA_READ_TIMEOUT = 12
    upstream.post("https://configured.test/gemini/image/generate", json={"taskId": "t"})

    first = mountsea.client_for(TOKEN)
    second = mountsea.client_for("another-token")
    first.generate(PAYLOAD)

    assert first.base_url == "https://configured.test"
    assert (first.connect_timeout, first.read_timeout) == (2.5, 12)
    assert first._session is second._session is mountsea._session
    assert upstream.calls[0].request.req_kwargs["timeout"] == (2.5, 12)
    assert upstream.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_shared_session_never_retries_and_pools_connections():
    for prefix in ("https://", "http://"):
        adapter = mountsea._session.get_adapter(prefix + "upstream.test")
        assert adapter.max_retries.total == 0
        assert adapter._pool_maxsize >= 10


def test_shared_session_never_keeps_cookies_between_tokens(upstream):
    upstream.post(
        GENERATE_URL,
        json={"taskId": "t-1"},
        headers={"Set-Cookie": "session=for-first-token; Path=/"},
    )
    upstream.post(GENERATE_URL, json={"taskId": "t-2"})

    mountsea.client_for("first-token").generate(PAYLOAD)
    mountsea.client_for("second-token").generate(PAYLOAD)

    assert "Cookie" not in upstream.calls[1].request.headers
    assert len(mountsea._session.cookies) == 0


def test_netrc_credentials_never_replace_the_bearer_token(
    upstream, monkeypatch, tmp_path
):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine upstream.test login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    upstream.post(GENERATE_URL, status=201, json={"taskId": "t-1"})

    make_client().generate(PAYLOAD)

    assert upstream.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
