"""Structured logs (bananaweb/logs.py): one line per request and per background
job, a request id that follows a submission from the web request into its jobs
and upstream calls, JSON or console lines, and never a secret."""

import io
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from django.tasks import default_task_backend
from django.urls import reverse
from django.utils import timezone

from bananaweb import logs, pipeline
from bananaweb.models import ImageRequest
from bananaweb.simulator import start_simulator
from tests.factories import ImageRequestFactory, UpstreamTokenFactory
from tests.gateway_helpers import bearer, issue_token

Status = ImageRequest.Status


@pytest.fixture
def json_logs(caplog):
    """The lines as BANANAWEB_LOG_FORMAT=json writes them, parsed. Written as they
    happen, as in production: a standard-library line gets the ids bound then."""
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    logging.getLogger().addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    logging.getLogger().removeHandler(handler)


def request_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["event"] == "request"]


# --- the request line -------------------------------------------------------------------


def test_one_line_per_request_with_its_id_echoed(client_logged_in, user, json_logs):
    response = client_logged_in.get("/?page=2&secret=sk-in-a-query")
    (line,) = request_lines(json_logs())
    assert line["method"] == "GET"
    assert line["path"] == "/"  # never the query string
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int)
    assert line["user_id"] == user.pk
    assert line["level"] == "info"
    assert line["request_id"] == response["X-Request-ID"]
    assert len(response["X-Request-ID"]) == 32
    assert "sk-in-a-query" not in json.dumps(json_logs())


def test_a_sane_incoming_request_id_is_kept(client, db, json_logs):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2_b-9"})
    assert response["X-Request-ID"] == "lb-7f3a.2_b-9"
    assert request_lines(json_logs())[0]["request_id"] == "lb-7f3a.2_b-9"


@pytest.mark.parametrize(
    "incoming", ["x" * 65, "two words", "evil\nINFO forged line", "ü-nicode", ""]
)
def test_an_odd_incoming_request_id_is_replaced(client, db, json_logs, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response["X-Request-ID"] != incoming
    assert logs.REQUEST_ID_SHAPE.fullmatch(response["X-Request-ID"])
    assert request_lines(json_logs())[0]["request_id"] == response["X-Request-ID"]


@pytest.mark.parametrize(
    "path, logged",
    [
        ("/files/SIGNED-LINK-TOKEN/", "/files/<token>/"),
        ("/s/SHARE-LINK-TOKEN/", "/s/<token>/"),
        ("/s/SHARE-LINK-TOKEN/images/2/", "/s/<token>/images/2/"),
        ("/s/SHARE-LINK-TOKEN", "/s/…"),  # no such URL: the slash redirect
        ("/requests/12345/", "/requests/12345/"),
        ("/admin/bananaweb/", "/admin/bananaweb/"),  # a regular expression route
    ],
)
def test_link_tokens_in_a_path_are_never_logged(
    client_logged_in, json_logs, path, logged
):
    client_logged_in.get(path)
    (line,) = request_lines(json_logs())
    assert line["path"] == logged
    assert "LINK-TOKEN" not in json.dumps(json_logs())


def test_a_lookup_of_the_user_costs_no_query_for_the_line(
    client, db, django_assert_num_queries, json_logs
):
    with django_assert_num_queries(0):
        client.get("/healthz")
    assert request_lines(json_logs())[0]["user_id"] is None


def test_a_server_error_line_is_an_error(client, db, json_logs, settings):
    settings.SECURE_SSL_REDIRECT = False
    client.raise_request_exception = False
    response = client.get("/readyz")  # no worker seen: 503
    assert request_lines(json_logs())[0]["level"] == "error"
    # Django's own line for it, written after the middleware, has the id too.
    (django_line,) = [
        line for line in json_logs() if line["logger"] == "django.request"
    ]
    assert django_line["request_id"] == response["X-Request-ID"]


# --- never a secret, in either format ----------------------------------------------------


def test_no_credential_of_a_request_reaches_a_line(
    client, user, formatted_logs, caplog
):
    """Session cookie, CSRF token, a personal API token in the Authorization
    header, a password: none in any line, JSON or console."""
    caplog.set_level(logging.DEBUG)
    user.set_password("correct horse battery staple")
    user.save()
    personal = issue_token(user, "logs")
    client.post(
        reverse("login"),
        {"username": user.username, "password": "correct horse battery staple"},
    )
    session = client.cookies["sessionid"].value
    csrf = str(client.get(reverse("index")).context["csrf_token"])
    client.get("/api/gemini/task/result?taskId=t-1", headers=bearer(personal))
    client.get(f"/api/gemini/task/result?taskId=t-1&token={personal}")
    written = formatted_logs.getvalue()
    assert written.count("request") >= 4
    for secret in (session, csrf, personal, "correct horse battery staple"):
        assert secret not in written
        assert secret not in caplog.text


def test_an_api_submission_keeps_its_request_id_and_never_logs_the_token(
    client, user, clear_tasks, formatted_logs, caplog
):
    caplog.set_level(logging.DEBUG)
    personal = issue_token(user, "script")
    response = client.post(
        "/api/gemini/image/generate",
        {"action": "generate", "prompt": "A banana by API", "model": "nano-banana-2"},
        content_type="application/json",
        headers={**bearer(personal), "X-Request-ID": "script-run-9"},
    )
    assert response.status_code == 201
    assert ImageRequest.objects.get().trace_id == "script-run-9"
    assert "script-run-9" in formatted_logs.getvalue()
    assert personal not in formatted_logs.getvalue() + caplog.text


# --- a submission's id, from the web request to its last job ------------------------------


@pytest.fixture
def simulator():
    handle = start_simulator(delay=0.2)
    yield handle
    handle.stop()


def test_a_submission_logs_one_request_id_from_the_form_to_the_stored_image(
    client_logged_in,
    simulator,
    settings,
    clear_tasks,
    json_logs,
    django_capture_on_commit_callbacks,
):
    settings.MOUNTSEA_BASE_URL = simulator.url
    settings.MOUNTSEA_READ_TIMEOUT = 2
    UpstreamTokenFactory(name="sim", secret_value="sim-team-token-0001")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(
            reverse("request-create"),
            {
                "action": "generate",
                "prompt": "A traced banana",
                "model": "nano-banana-2",
            },
            headers={"X-Request-ID": "trace-me-42"},
        )
    assert response["X-Request-ID"] == "trace-me-42"
    image_request = ImageRequest.objects.get()
    assert image_request.trace_id == "trace-me-42"

    # Run the jobs as a worker would, with nothing bound from the web request.
    deadline = time.monotonic() + 15
    while default_task_backend.results and time.monotonic() < deadline:
        result = default_task_backend.results.pop(0)
        if not result.task.name.startswith("image_request_"):
            continue
        time.sleep(0.05)
        with django_capture_on_commit_callbacks(execute=True):
            result.task.call(*result.args, **result.kwargs)
    image_request.refresh_from_db()
    assert image_request.status == Status.COMPLETED, image_request.error_message

    lines = json_logs()
    assert "sim-team-token-0001" not in json.dumps(lines)
    traced = [line for line in lines if line.get("request_id") == "trace-me-42"]
    (web,) = request_lines(traced)
    assert (web["method"], web["path"], web["status"]) == ("POST", "/requests/", 302)
    jobs = [line for line in traced if line["event"] == "job"]
    assert jobs[0]["task"] == "submit"
    assert {job["task"] for job in jobs} == {"submit", "poll", "fetch images"}
    assert jobs[-1]["task"] == "fetch images"
    assert jobs[-1]["outcome"] == Status.COMPLETED
    assert all(job["image_request_id"] == image_request.pk for job in jobs)
    assert all(isinstance(job["duration_ms"], int) for job in jobs)
    upstream = [line for line in traced if line["logger"] == "bananaweb.mountsea"]
    assert upstream[0]["method"] == "POST"
    assert upstream[0]["path"] == "/gemini/image/generate"
    assert upstream[0]["status"] in ("200", "201")
    assert any(line["path"].startswith("/gemini/task/result") for line in upstream)
    # Nothing from the pipeline went out without the id.
    untraced = [
        line
        for line in lines
        if line["logger"] in ("bananaweb.jobs", "bananaweb.mountsea")
        and line.get("request_id") != "trace-me-42"
    ]
    assert untraced == []


def test_the_reconcilers_actions_carry_the_requests_id(db, json_logs, settings):
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    stuck = ImageRequestFactory(
        status=Status.SUBMITTING,
        sending_started_at=long_ago,
        due_at=long_ago,
        trace_id="from-the-form-1",
    )
    lost = ImageRequestFactory(
        status=Status.IN_PROGRESS,
        upstream_task_id="up-1",
        due_at=long_ago,
        trace_id="from-the-api-2",
    )
    pipeline.image_request_reconcile()
    lines = json_logs()
    by_id = {line.get("request_id"): line for line in lines if line.get("request_id")}
    assert by_id["from-the-form-1"]["image_request_id"] == stuck.pk
    assert by_id["from-the-form-1"]["action"].startswith("marked outcome unknown")
    assert by_id["from-the-api-2"]["image_request_id"] == lost.pk
    (run,) = [line for line in lines if line.get("task") == "reconcile"]
    assert run["event"] == "job"


def test_a_job_that_raises_says_so_under_the_requests_id(db, json_logs, monkeypatch):
    image_request = ImageRequestFactory(trace_id="doomed-3")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline.ImageRequest.objects, "select_related", broken)
    with pytest.raises(RuntimeError):
        pipeline.image_request_submit(image_request_id=image_request.pk)
    (job,) = [line for line in json_logs() if line["event"] == "job"]
    assert (job["request_id"], job["outcome"], job["error"]) == (
        "doomed-3",
        "raised",
        "RuntimeError",
    )


def test_a_request_made_outside_a_web_request_has_no_id(db):
    assert ImageRequestFactory().trace_id == ""


# --- BANANAWEB_LOG_FORMAT, in a process of its own ------------------------------------------


def run_with_log_format(log_format: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "BANANAWEB_DEV": "1",
        "BANANAWEB_LOG_FORMAT": log_format,
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
    }
    code = (
        "import logging, django; django.setup(); "
        "logging.getLogger('bananaweb.worker').warning('Database %s again', 'up')"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_json_format_writes_one_json_object_a_line():
    finished = run_with_log_format("json")
    assert finished.returncode == 0, finished.stderr
    (line,) = [json.loads(text) for text in finished.stderr.splitlines()]
    assert line["event"] == "Database up again"
    assert (line["level"], line["logger"]) == ("warning", "bananaweb.worker")


def test_the_console_format_is_the_default():
    finished = run_with_log_format("")
    assert finished.returncode == 0, finished.stderr
    assert "[warning  ] Database up again" in finished.stderr
    assert "[bananaweb.worker]" in finished.stderr


def test_an_unknown_log_format_stops_the_start():
    finished = run_with_log_format("xml")
    assert finished.returncode != 0
    assert "BANANAWEB_LOG_FORMAT is 'xml'" in finished.stderr
