"""Crashes: the worker killed while it sends, polls and downloads, the web process
killed mid-request; after a restart every request ends, none is lost, none is
sent twice, and an unknown outcome is marked and never resent.

The real pieces run as processes on a throwaway PostgreSQL database: the
simulator, `run_worker`, gunicorn, with the reconciler (scheduled by
`start_background`) acting within seconds. Every kill is a SIGKILL.
"""

import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from django_tasks_db.models import DBTaskResult
from psycopg import sql
from psycopg.rows import dict_row

from bananaweb.models import ImageRequest
from tests.stack_helpers import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    Process,
    database_url,
    free_port,
    manage,
    require_postgres,
    stack_env,
    throwaway_database,
    wait_until,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

Status = ImageRequest.Status
USER = "crash-tester"
# Upstream calls give up quickly, so a worker is killed mid-call within that time,
# and the reconciler may call a send unknown CONNECT + READ + 30 s after it began.
CONNECT_TIMEOUT, READ_TIMEOUT = 1, 2
SLOW_SECONDS = 8  # the simulator's slow answers, longer than READ_TIMEOUT
SEND_MARGIN = 2
SEND_GIVEN_UP_AFTER = CONNECT_TIMEOUT + READ_TIMEOUT + SEND_MARGIN


@dataclass
class Row:
    prompt: str
    status: str
    error_code: str
    sending_started_at: object
    idempotency_key: str


class Stack:
    """Simulator, worker and web server (its database reached through a proxy)."""

    def __init__(self, tmp_path: Path, database: str, proxy: TcpProxy) -> None:
        self.tmp_path = tmp_path
        self.database = database
        self.proxy = proxy
        simulator_port, self.web_port = free_port(), free_port()
        self.simulator_url = f"http://127.0.0.1:{simulator_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.env = stack_env(
            tmp_path,
            DATABASE_URL=database_url(database),
            MOUNTSEA_SIMULATOR_URL=self.simulator_url,
            MOUNTSEA_API_TOKEN="sim-crash-token",
            MOUNTSEA_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
            MOUNTSEA_READ_TIMEOUT=str(READ_TIMEOUT),
            BANANAWEB_RECONCILE_INTERVAL="1",
            BANANAWEB_LOST_TASK_GRACE="2",
            BANANAWEB_SEND_MARGIN=str(SEND_MARGIN),
            BANANAWEB_POLL_FIRST_DELAY="0.5",
            BANANAWEB_POLL_MAX_DELAY="1",
            BANANAWEB_FETCH_TIMEOUT="2",
            BANANAWEB_API_RATE_LIMIT="10000",
            BANANAWEB_DEFAULT_DAILY_QUOTA="1000",
            BANANAWEB_ADMIN_USER=USER,
            BANANAWEB_ADMIN_PASSWORD=uuid.uuid4().hex,
        )
        self.simulator = Process(
            "simulator",
            [sys.executable, "-m", "bananaweb.simulator", "--port", str(simulator_port)]
            + ["--delay", "1", "--slow-seconds", str(SLOW_SECONDS)],
            self.env,
            tmp_path,
        )
        self.processes = [self.simulator]
        try:
            wait_until(
                lambda: "Simulator listening" in self.simulator.output(),
                15,
                f"the simulator:\n{self.simulator.output()}",
            )
            manage(["start_background"], self.env)
            manage(["ensure_signin"], self.env)
            self.api_token = manage(["issue_api_token", USER], self.env).stdout.strip()
            self.worker = self.start_worker()
            self.web = self.start_web()
        except BaseException:
            self.stop()
            raise

    # The processes

    def start_worker(self) -> Process:
        self.worker = Process(
            "worker",
            [sys.executable, "manage.py", "run_worker", "--interval", "0.2"]
            + ["--no-reload", "--no-startup-delay"],
            self.env,
            self.tmp_path,
        )
        self.processes.append(self.worker)
        return self.worker

    def start_web(self) -> Process:
        """gunicorn as in the Procfile, its database through the proxy; one process
        with one thread, so that every create goes down the same single database
        connection and the n-th write of one create is the n-th of the next."""
        self.web = Process(
            "web",
            [sys.executable, "-m", "gunicorn", "bananaweb.wsgi"]
            + ["--bind", f"127.0.0.1:{self.web_port}", "--access-logfile", "-"],
            self.env
            | {
                "DATABASE_URL": database_url(self.database, self.proxy.port),
                "WEB_CONCURRENCY": "1",
                "GUNICORN_THREADS": "1",
            },
            self.tmp_path,
        )
        self.processes.append(self.web)
        # A wrong method is answered before any token or database is looked at.
        wait_until(
            lambda: self._answers(f"{self.web_url}/api/gemini/task/result"),
            20,
            f"gunicorn to serve:\n{self.web.output()}",
        )
        return self.web

    def _answers(self, url: str) -> bool:
        assert self.web.alive(), self.web.output()
        try:
            return requests.post(url, timeout=2).status_code == 405
        except requests.RequestException:  # not listening yet, or still loading
            return False

    def stop(self) -> None:
        for process in self.processes:
            process.stop(timeout=5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {process.name} ({process.log.name}) ---\n{process.output()[-3000:]}"
            for process in self.processes
        )

    # The simulator

    def configure(self, **knobs: object) -> None:
        response = requests.post(
            f"{self.simulator_url}/_simulator/config", json=knobs, timeout=5
        )
        assert response.status_code == 200, response.text

    def stats(self) -> dict:
        return requests.get(f"{self.simulator_url}/_simulator/stats", timeout=5).json()

    # The gateway

    def generate(self, prompt: str, key: str, timeout: float = 10) -> str:
        """The taskId of a new request (or the first one, for a known key)."""
        response = self.post_generate(prompt, key, timeout)
        assert response.status_code == 201, response.text
        return response.json()["taskId"]

    def post_generate(self, prompt: str, key: str, timeout: float = 10):
        return requests.post(
            f"{self.web_url}/api/gemini/image/generate",
            json={"prompt": prompt, "action": "generate", "model": "nano-banana-fast"},
            headers={
                "Authorization": f"Bearer {self.api_token}",
                "Idempotency-Key": key,
            },
            timeout=timeout,
        )

    # The database

    def rows(self) -> list[Row]:
        query = sql.SQL(
            "SELECT prompt, status, error_code, sending_started_at, idempotency_key "
            "FROM {} ORDER BY id"
        ).format(sql.Identifier(ImageRequest._meta.db_table))
        with psycopg.connect(
            database_url(self.database), autocommit=True, row_factory=dict_row
        ) as connection:
            return [Row(**row) for row in connection.execute(query)]

    def row(self, prompt: str) -> Row | None:
        matching = [row for row in self.rows() if row.prompt == prompt]
        assert len(matching) <= 1, f"{prompt!r} was saved {len(matching)} times"
        return matching[0] if matching else None

    def wait_for_status(self, prompt: str, status: str, timeout: float) -> Row:
        def reached() -> Row | None:
            row = self.row(prompt)
            return row if row is not None and row.status == status else None

        return wait_until(
            reached,
            timeout,
            f"{prompt!r} to be {status} (it is {self.row(prompt)});\n{self.logs()}",
            poll=0.2,
        )

    def assert_settled(self) -> None:
        """Nothing in flight; nothing accepted upstream twice."""
        rows = self.rows()
        in_flight = [row for row in rows if row.status in ImageRequest.IN_FLIGHT]
        assert not in_flight, f"still in flight: {in_flight}\n{self.logs()}"
        accepted = self.stats()["accepted_by_prompt"]
        assert all(count <= 1 for count in accepted.values()), accepted


@pytest.fixture
def stack(tmp_path: Path):
    require_postgres()
    with (
        throwaway_database(stack_env(tmp_path)) as database,
        TcpProxy(POSTGRES_HOST, POSTGRES_PORT) as proxy,
    ):
        stack = Stack(tmp_path, database, proxy)
        try:
            yield stack
        finally:
            stack.stop()


def kill_when(stack: Stack, condition, what: str, process: Process) -> None:
    """SIGKILL `process` as soon as the condition holds (polled every 20 ms)."""
    wait_until(condition, 15, f"{what};\n{stack.logs()}", poll=0.02)
    process.kill()


# --- The worker -----------------------------------------------------------------------


def test_worker_killed_mid_send_ends_unknown_and_is_never_resent(stack):
    prompt = "Killed while sending"
    stack.configure(submit_fault="slow")
    stack.generate(prompt, "send-1")
    kill_when(
        stack,
        lambda: stack.stats()["generate_calls_by_prompt"].get(prompt),
        "the send to reach the upstream",
        stack.worker,
    )
    stack.configure(submit_fault=None)
    killed = stack.row(prompt)
    assert killed.status == Status.SUBMITTING and killed.sending_started_at, killed

    stack.start_worker()
    row = stack.wait_for_status(prompt, Status.UNKNOWN, SEND_GIVEN_UP_AFTER + 10)
    assert row.error_code == "unknown_outcome"
    # A few more rounds of the reconciler: still one call, and the task the slow
    # answer created upstream counted once.
    time.sleep(3)
    stats = stack.stats()
    assert stats["generate_calls_by_prompt"][prompt] == 1, stats
    assert stats["accepted_by_prompt"].get(prompt, 0) <= 1, stats
    assert stack.row(prompt).status == Status.UNKNOWN
    stack.assert_settled()


def test_worker_killed_mid_poll_is_polled_again_and_completes(stack):
    prompt = "Killed while polling"
    stack.configure(result_fault="slow")
    stack.generate(prompt, "poll-1")
    kill_when(
        stack,
        lambda: stack.stats()["result_calls"],
        "the first poll to reach the upstream",
        stack.worker,
    )
    stack.configure(result_fault=None)
    assert stack.row(prompt).status == Status.IN_PROGRESS

    stack.start_worker()
    stack.wait_for_status(prompt, Status.COMPLETED, 25)
    stats = stack.stats()
    assert stats["generate_calls_by_prompt"][prompt] == 1, stats
    assert stats["accepted_by_prompt"][prompt] == 1, stats
    stack.assert_settled()


def test_worker_killed_mid_download_downloads_again_and_completes(stack):
    prompt = "Killed while downloading"
    stack.configure(image_fault="slow")
    stack.generate(prompt, "download-1")
    kill_when(
        stack,
        lambda: stack.stats()["image_calls"],
        "the image download to reach the upstream",
        stack.worker,
    )
    stack.configure(image_fault=None)
    assert stack.row(prompt).status == Status.IN_PROGRESS

    stack.start_worker()
    stack.wait_for_status(prompt, Status.COMPLETED, 25)
    stats = stack.stats()
    assert stats["accepted_by_prompt"][prompt] == 1, stats
    stack.assert_settled()


# --- The web process ------------------------------------------------------------------


def test_web_killed_mid_create_loses_nothing_and_saves_once(stack):
    """The web process is frozen at its n-th database write of a create (reading
    the token, saving, committing, enqueueing the submit...) and killed there, for
    writes spread over the whole create; the client, which got no answer, sends
    the same request again with the same Idempotency-Key once the web is back."""
    prompts = {"web-warm": "Warm-up", "web-counted": "Counted"}
    stack.generate(prompts["web-warm"], "web-warm")  # connects
    before = stack.proxy.client_writes
    stack.generate(prompts["web-counted"], "web-counted")
    writes = stack.proxy.client_writes - before
    spread = (0, 1, 2, writes // 4, writes // 2, 3 * writes // 4)
    held: dict[int, str] = {}
    for point in sorted({*spread, *range(writes - 4, writes)}):
        prompt, key = f"Web killed at write {point}", f"web-{point}"
        prompts[key] = prompt
        stack.proxy.freeze_after(point)
        client = Client(stack, prompt, key)
        wait_until(
            lambda client=client: stack.proxy.frozen.is_set() or client.answer,
            10,
            f"the create to freeze or finish;\n{stack.logs()}",
            poll=0.01,
        )
        if not stack.proxy.frozen.is_set():
            assert client.answer == 201, client.answer  # it wrote less this time
            continue
        held[point] = _query(stack.proxy.held)
        stack.web.kill()
        stack.proxy.close()
        stack.proxy.open()
        client.join(timeout=10)
        assert client.answer != 201, f"answered though frozen at {held[point]}"
        stack.start_web()
        stack.generate(prompt, key)

    # The kills hit the commit, and the enqueue of the submit after it.
    enqueue = f'INSERT INTO "{DBTaskResult._meta.db_table}"'
    assert any(query.startswith("COMMIT") for query in held.values()), held
    assert any(query.startswith(enqueue) for query in held.values()), held
    for prompt in prompts.values():
        stack.wait_for_status(prompt, Status.COMPLETED, 20)
    assert sorted(row.idempotency_key for row in stack.rows()) == sorted(prompts)
    stats = stack.stats()
    for prompt in prompts.values():
        assert stats["generate_calls_by_prompt"][prompt] == 1, (prompt, stats)
        assert stats["accepted_by_prompt"][prompt] == 1, (prompt, stats)
    stack.assert_settled()


def _query(write: bytes) -> str:
    """The SQL of a PostgreSQL simple-query message ('Q', length, text, NUL)."""
    return write[5:].split(b"\0")[0].decode(errors="replace")


class Client(threading.Thread):
    """One create sent in the background; answer: its status code or error name."""

    def __init__(self, stack: Stack, prompt: str, key: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.prompt, self.key = stack, prompt, key
        self.answer: int | str | None = None
        self.start()

    def run(self) -> None:
        try:
            response = self.stack.post_generate(self.prompt, self.key, timeout=15)
            self.answer = response.status_code
        except requests.RequestException as error:
            self.answer = type(error).__name__
