"""Twenty submissions at once, through the web form (as htmx posts it) and the API,
against a real gunicorn with real task workers and the simulator, which answers
the first one it is sent with a 429: none is answered with a 5xx, all complete,
none is sent upstream twice.

On SQLite always, and on PostgreSQL when DATABASE_URL names a server (as in CI),
each on a throwaway database of its own (tests/load/stack.py).
"""

import re
import threading
import time
import uuid

import pytest
import requests

from tests.load.stack import (
    Stack,
    postgres_admin_url,
    postgres_reachable,
    throwaway_database,
)

pytestmark = pytest.mark.slow

PASSWORD = "concurrency-pw-1"
SUBMISSIONS = 20
FINISH_TIMEOUT = 45  # seconds for all of them to complete
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CARD_ID = re.compile(r'id="request-(\d+)"')


def _postgres_admin_url() -> str | None:
    admin_url = postgres_admin_url()
    return admin_url if admin_url and postgres_reachable(admin_url) else None


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                _postgres_admin_url() is None,
                reason="DATABASE_URL names no reachable PostgreSQL server",
            ),
        ),
    ]
)
def stack(request, tmp_path):
    vendor = request.param
    database = throwaway_database(
        vendor, tmp_path, label="concurrency", admin_url=_postgres_admin_url() or ""
    )
    try:
        with Stack(
            tmp_path,
            database.url,
            web_workers=2,
            web_threads=4,
            task_workers=2,
            env={"MOUNTSEA_SIMULATOR_DELAY": "0.5"},
        ) as running:
            yield running
    finally:
        database.drop()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy
    return session


def _signed_in(stack: Stack, username: str) -> requests.Session:
    session = _session()
    page = session.get(f"{stack.url}/accounts/login/", timeout=10)
    response = session.post(
        f"{stack.url}/accounts/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": CSRF_INPUT.search(page.text)[1],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:500]
    return session


def _submit_web(stack: Stack, signed_in: requests.Session, prompt: str) -> dict:
    session = _session()
    session.cookies.update(signed_in.cookies)
    response = session.post(
        f"{stack.url}/requests/",
        data={
            "action": "generate",
            "prompt": prompt,
            "model": "nano-banana-fast",
            "aspect_ratio": "1:1",
            "resolution": "",
            "image_urls": "",
            "idempotency_key": str(uuid.uuid4()),
        },
        headers={
            "HX-Request": "true",
            "X-CSRFToken": signed_in.cookies["csrftoken"],
        },
        timeout=30,
    )
    card = CARD_ID.search(response.text)
    return {
        "via": "web",
        "status": response.status_code,
        "poll": card and f"{stack.url}/requests/{card[1]}/card/",
        "session": session,
        "headers": {"HX-Request": "true"},
    }


def _submit_api(stack: Stack, token: str, prompt: str) -> dict:
    session = _session()
    headers = {"Authorization": f"Bearer {token}"}
    response = session.post(
        f"{stack.url}/api/gemini/image/generate",
        json={
            "prompt": prompt,
            "action": "generate",
            "num_images": 1,
            "aspect_ratio": "1:1",
            "model": "nano-banana-fast",
        },
        headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
        timeout=30,
    )
    task_id = response.json().get("taskId") if response.status_code == 201 else None
    return {
        "via": "api",
        "status": response.status_code,
        "poll": task_id and f"{stack.url}/api/gemini/task/result?taskId={task_id}",
        "session": session,
        "headers": headers,
    }


def test_twenty_submissions_at_once_all_complete_with_a_429_among_them(stack):
    stack.simulator(
        "POST",
        "/_simulator/config",
        {"submit_fault": "429", "fault_count": 1, "retry_after": 1},
    )
    accounts = stack.seed_users(4, with_tokens=2, password=PASSWORD)
    tokens = [account["token"] for account in accounts if account["token"]]
    web_sessions = [
        _signed_in(stack, account["username"])
        for account in accounts
        if not account["token"]
    ]
    prompts = [f"Concurrency {index}: a pear on a pogo stick" for index in range(20)]

    # All twenty leave together.
    start = threading.Barrier(SUBMISSIONS)
    answers: list[dict | Exception] = [None] * SUBMISSIONS

    def submit(index: int) -> None:
        start.wait(10)
        try:
            if index % 2:
                token = tokens[index % len(tokens)]
                answers[index] = _submit_api(stack, token, prompts[index])
            else:
                session = web_sessions[index % len(web_sessions)]
                answers[index] = _submit_web(stack, session, prompts[index])
        except requests.RequestException as exc:  # reported below, with the others
            answers[index] = exc

    threads = [
        threading.Thread(target=submit, args=(index,)) for index in range(SUBMISSIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [
        (answer["via"], answer["status"]) if isinstance(answer, dict) else answer
        for answer in answers
    ] == [("web", 200) if index % 2 == 0 else ("api", 201) for index in range(20)]
    assert all(answer["poll"] for answer in answers)

    # Watched as the page and a script would, until every one is finished.
    deadline = time.monotonic() + FINISH_TIMEOUT
    rows = stack.requests_in_db()
    while time.monotonic() < deadline and any(
        row["status"] not in ("completed", "failed", "unknown") for row in rows
    ):
        for answer in answers:
            polled = answer["session"].get(
                answer["poll"], headers=answer["headers"], timeout=10
            )
            assert polled.status_code < 500, polled.text[:500]
        time.sleep(1)
        rows = stack.requests_in_db()

    assert sorted((row["prompt"], row["status"]) for row in rows) == sorted(
        (prompt, "completed") for prompt in prompts
    )
    assert stack.server_errors() == []
    upstream = stack.simulator_stats()
    assert upstream["generate_calls"] == SUBMISSIONS + 1  # the 429, then all twenty
    assert upstream["accepted_by_prompt"] == {prompt: 1 for prompt in prompts}
