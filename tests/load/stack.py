"""A whole bananaweb on loopback, for the load and scale-out runs and the
concurrency tests.

A throwaway database (SQLite in a temporary folder, or a PostgreSQL database made
for the run and dropped after it), the bundled simulator, one or more gunicorn
processes (each on its own port, as behind a load balancer) and task workers,
each a child process in its own session that `Stack.stop()` ends. Media in local
files, or in an S3 bucket when `env` names one (tests/s3_helpers.py's `s3_env`).
Nothing listens anywhere but 127.0.0.1.
"""

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql

from tests.stack_helpers import clean_environ

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# Never the suite's own databases, nor PostgreSQL's maintenance one, for a run: those
# are only connected to, briefly, to create and drop the run's own database.
MAINTENANCE_DB = "postgres"
START_TIMEOUT = 60
TASK_TABLE = "django_tasks_database_dbtaskresult"
STOP_TIMEOUT = 10
# gunicorn's access log, one line a response: time, status, method, path, milliseconds.
ACCESS_LOG_FORMAT = "%(t)s %(s)s %(m)s %(U)s %(M)s"
# The periodic jobs' settings, old and new names: a short cycle, so that a request
# whose task died is picked up again within seconds.
FAST_BACKGROUND = {
    "BANANAWEB_RECONCILE_INTERVAL": "2",
    "BANANAWEB_LOST_TASK_GRACE": "5",
    # A send cut off by the SIGKILL is marked "outcome unknown" within the run's
    # drain: the client's timeouts plus the margin, instead of about a minute.
    "MOUNTSEA_READ_TIMEOUT": "10",
    "BANANAWEB_SEND_MARGIN": "2",
    "BANANAWEB_POLL_FIRST_DELAY": "1",
    "BANANAWEB_POLL_MAX_DELAY": "2",
}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:
        return None  # a 3xx is raised as an HTTPError, to be reported


# No proxy between us and loopback, whatever the environment says; no redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(method: str, url: str, body: object = None, timeout: float = 5) -> object:
    """A JSON request to a loopback URL, its parsed answer (an HTTPError on 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


# --- The database ---------------------------------------------------------------------


@dataclass
class Database:
    url: str
    vendor: str  # "sqlite" or "postgresql"
    drop: Callable[[], None]


def postgres_admin_url(database_url: str | None = None) -> str | None:
    """The maintenance database of the PostgreSQL server DATABASE_URL names, if any."""
    url = database_url if database_url is not None else os.environ.get("DATABASE_URL")
    if not url or urlsplit(url).scheme not in ("postgres", "postgresql", "pgsql"):
        return None
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, "/" + MAINTENANCE_DB, "", ""))


def postgres_reachable(admin_url: str) -> bool:
    try:
        with psycopg.connect(admin_url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def throwaway_database(
    vendor: str, folder: Path, *, label: str, admin_url: str = ""
) -> Database:
    """A new, empty database for one run; `drop()` removes it."""
    if vendor == "sqlite":
        path = folder / "db.sqlite3"
        return Database(f"sqlite:///{path}", vendor, lambda: None)
    name = f"bananaweb_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        # template0: nobody else is ever connected to it, unlike template1.
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )

    parts = urlsplit(admin_url)
    return Database(
        urlunsplit(("postgres", parts.netloc, "/" + name, "", "")), vendor, drop
    )


# --- The stack ------------------------------------------------------------------------


def run_python(
    env: dict[str, str],
    *args: str,
    timeout: float,
    error: type[Exception] = RuntimeError,
) -> str:
    """Python (manage.py, a module) in the repository with `env`; its stdout, or
    `error` with the tails of its output when it fails."""
    done = subprocess.run(
        [PYTHON, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        raise error(
            f"{' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def spawn_logged(
    command: list[str],
    env: dict[str, str],
    log: Path,
    *,
    own_session: bool = True,
    cwd: Path = ROOT,
) -> subprocess.Popen:
    """`command` started in `cwd` (the repository) with `env`, its output
    appended to `log`; in a session of its own (so that a signal to its group
    stops all it started) unless told otherwise."""
    with log.open("a") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )


class StackError(RuntimeError):
    pass


class Stack:
    """Simulator, web server, task workers and the background jobs, on one database."""

    def __init__(
        self,
        folder: Path,
        database_url: str,
        *,
        web_workers: int = 3,
        web_threads: int = 4,
        task_workers: int = 2,
        web_processes: int = 1,
        debug: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.logs = folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        # One port per gunicorn process; `url` is the first one's.
        self.web_ports = [free_port() for _ in range(web_processes)]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.web_ports]
        self.web_port = self.web_ports[0] if self.web_ports else 0
        self.simulator_port = free_port()
        self.url = self.urls[0] if self.urls else ""
        self.simulator_url = f"http://127.0.0.1:{self.simulator_port}"
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.task_workers = task_workers
        self.debug = debug
        self.env = self._environment(database_url, env or {})
        self.children: dict[str, subprocess.Popen] = {}
        self.database_url = database_url
        self.worker_starts = Counter()
        self.worker_ids: dict[int, str] = {}

    def _environment(self, database_url: str, extra: dict[str, str]) -> dict[str, str]:
        env = clean_environ()  # nothing from outside
        env.update(
            DJANGO_SETTINGS_MODULE="bananaweb.settings",
            DATABASE_URL=database_url,
            BANANAWEB_VAR_DIR=str(self.folder / "var"),
            MEDIA_ROOT=str(self.folder / "var" / "media"),
            DEBUG="1" if self.debug else "0",
            SECRET_KEY="load-" + secrets.token_urlsafe(32),
            BANANAWEB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            # Production settings, but plain HTTP: there is no TLS proxy on loopback.
            BANANAWEB_HTTPS="0",
            MOUNTSEA_SIMULATOR_URL=self.simulator_url,
            MOUNTSEA_API_TOKEN="sim-load-token",
            MOUNTSEA_SIMULATOR_DELAY="1",
            BANANAWEB_DEFAULT_DAILY_QUOTA="100000",
            BANANAWEB_API_RATE_LIMIT="100000",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            **FAST_BACKGROUND,
        )
        env.update(extra)
        return env

    # Starting and stopping

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        if not self.debug:
            self.manage("collectstatic", "--noinput")
        self._spawn(
            "simulator",
            [PYTHON, "-m", "bananaweb.simulator", "--port", str(self.simulator_port)],
        )
        self._wait_for(f"{self.simulator_url}/_simulator/config", "simulator")
        self.manage("start_background")
        for index in range(self.task_workers):
            self.start_worker(index)
        for index, port in enumerate(self.web_ports):
            self.start_web(index, port)
        for url in self.urls:
            self._wait_ready(url)

    def start_web(self, index: int, port: int) -> None:
        """gunicorn process `index`: "web" (its access log access.log), then
        "web-1" (access-1.log) and so on."""
        suffix = f"-{index}" if index else ""
        self._spawn(
            f"web{suffix}",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "bananaweb.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(self.web_workers),
                "--threads",
                str(self.web_threads),
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                # Longer than the 2 s between a card's polls: with gunicorn's default
                # (2 s) the server closes an idle connection just as the client
                # reuses it, and the client sees no answer.
                "--keep-alive",
                "5",
                "--access-logfile",
                str(self.logs / f"access{suffix}.log"),
                "--access-logformat",
                ACCESS_LOG_FORMAT,
            ],
        )

    def _wait_ready(self, url: str) -> None:
        """/readyz answering 200 (database, storage, a task worker seen, migrations
        applied); the sign-in page where there is no /readyz, or no task worker."""
        if not self.task_workers:
            self._wait_for(f"{url}/accounts/login/", "web server")
            return
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with _OPENER.open(f"{url}/readyz", timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    self._wait_for(f"{url}/accounts/login/", "web server")
                    return
                last = f"{exc.code} {exc.read(2000).decode(errors='replace')}"
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise StackError(
            f"{url}/readyz did not answer 200 within {START_TIMEOUT} s: {last}"
        )

    def stop(self) -> None:
        """SIGTERM to every child's process group; SIGKILL to what is left."""
        running = [child for child in self.children.values() if child.poll() is None]
        for child in running:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in running:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait(5)
        self.children.clear()

    def worker_command(self) -> list[str]:
        """`run_worker` (keeps going through a database outage) once it exists."""
        commands = ROOT / "bananaweb" / "management" / "commands"
        name = "run_worker" if (commands / "run_worker.py").exists() else "db_worker"
        return [PYTHON, "manage.py", name, "--interval", "0.2"]

    def start_worker(self, index: int) -> None:
        self.worker_starts[index] += 1
        worker_id = f"load-worker-{index}-{self.worker_starts[index]}"
        self.worker_ids[index] = worker_id
        self._spawn(
            f"worker-{index}", [*self.worker_command(), "--worker-id", worker_id]
        )

    def kill_worker(self, index: int) -> None:
        """SIGKILL, as a crash or an out-of-memory kill: no chance to finish a task."""
        child = self.children[f"worker-{index}"]
        _signal_group(child, signal.SIGKILL)
        child.wait(5)

    def kill_worker_mid_task(self, index: int, *, within: float = 5) -> str | None:
        """SIGKILL worker `index` as soon as it is seen running a task (at the latest
        after `within` seconds, idle then); the name of the task it cut off, if any."""
        worker_id = self.worker_ids[index]
        deadline = time.monotonic() + within
        with _running_tasks(self.database_url) as running:
            while time.monotonic() < deadline and not running(worker_id):
                time.sleep(0.005)
            self.kill_worker(index)
            # Still RUNNING once the worker is gone: it died in the middle of it.
            cut_off = running(worker_id)
        return cut_off[0].rsplit(".", 1)[-1] if cut_off else None

    def _spawn(self, name: str, command: list[str]) -> None:
        self.children[name] = spawn_logged(command, self.env, self.logs / f"{name}.log")

    def _wait_for(self, url: str, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with _OPENER.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                raise StackError(
                    f"The {what} answered {url} with {exc.code} "
                    f"{exc.headers.get('Location', '')}"
                ) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise StackError(f"The {what} did not answer {url} within {START_TIMEOUT} s.")

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if child.poll() is not None:
                raise StackError(
                    f"The {name} exited ({child.returncode}):\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # Talking to it

    def manage(self, *args: str, timeout: float = 180) -> str:
        return self.python("manage.py", *args, timeout=timeout)

    def python(self, *args: str, timeout: float = 180) -> str:
        """Python (manage.py, a module) against the stack's database; its stdout."""
        return run_python(self.env, *args, timeout=timeout, error=StackError)

    def simulator(self, method: str, path: str, body: object = None) -> object:
        return http_json(method, self.simulator_url + path, body)

    def simulator_knobs(self) -> dict:
        return self.simulator("GET", "/_simulator/config")

    def simulator_stats(self) -> dict | None:
        """GET /_simulator/stats; None from a simulator without it."""
        try:
            return self.simulator("GET", "/_simulator/stats")
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 405):
                return None
            raise

    def access_log(self) -> list[tuple[int, str, str, int]]:
        """(status, method, path, milliseconds) of every response gunicorn logged,
        every process's."""
        entries = []
        for path in sorted(self.logs.glob("access*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if match := re.fullmatch(
                    r"\[.*\] (\d{3}) (\S+) (\S+) (\d+)", line.strip()
                ):
                    status, method, url_path, ms = match.groups()
                    entries.append((int(status), method, url_path, int(ms)))
        return entries

    def responses_by_process(self) -> dict[str, int]:
        """How many responses each gunicorn process logged: {"web": n, "web-1": m}."""
        return {
            "web" + path.stem.removeprefix("access"): sum(
                1 for line in path.read_text(errors="replace").splitlines() if line
            )
            for path in sorted(self.logs.glob("access*.log"))
        }

    def server_errors(self) -> list[tuple[int, str, str, int]]:
        return [entry for entry in self.access_log() if entry[0] >= 500]

    def requests_in_db(self) -> list[dict]:
        """Every ImageRequest: {"prompt", "status", "error_code", "source"}."""
        return json.loads(self.python("-m", "tests.load.dbtool", "requests"))

    def images_in_db(self) -> list[dict]:
        """Every GeneratedImage: {"request", "file", "thumbnail"} (storage names)."""
        return json.loads(self.python("-m", "tests.load.dbtool", "images"))

    def task_runs(self) -> dict:
        """django-tasks-db's task runs: {"by_status", "running", "failed"}."""
        return json.loads(self.python("-m", "tests.load.dbtool", "tasks"))

    def seed_users(self, count: int, *, with_tokens: int, password: str) -> list[dict]:
        """`count` users; the first `with_tokens` get a personal API token."""
        out = self.python(
            "-m",
            "tests.load.dbtool",
            "users",
            "--count",
            str(count),
            "--tokens",
            str(with_tokens),
            # One argument: a random password may start with "-".
            f"--password={password}",
        )
        return json.loads(out)


@contextmanager
def _running_tasks(database_url: str) -> Iterator[Callable[[str], list[str]]]:
    """A function giving the task paths a worker is running, straight from the
    database: fast enough to catch a worker in the middle of a task."""
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        path = database_url.removeprefix("sqlite:///")
        connection = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=5, isolation_level=None
        )
        query = (
            f"SELECT task_path FROM {TASK_TABLE} WHERE status = ? AND worker_ids LIKE ?"
        )
    else:
        connection = psycopg.connect(database_url, autocommit=True, connect_timeout=5)
        query = (
            f"SELECT task_path FROM {TASK_TABLE} "
            "WHERE status = %s AND worker_ids::text LIKE %s"
        )
    try:
        yield lambda worker_id: [
            row[0] for row in connection.execute(query, ("RUNNING", f'%"{worker_id}"%'))
        ]
    finally:
        connection.close()


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass
