"""Running the real stack's pieces as processes, on a throwaway PostgreSQL database.

For the tests that kill workers and cut the database (test_worker.py,
test_crashes.py). PostgreSQL is the one at 127.0.0.1:5432 (user postgres, trust
auth), as in CI; without it those tests skip.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

REPOSITORY = Path(__file__).resolve().parents[1]
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if not postgres_reachable():
        pytest.skip(
            f"!!! No PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT}: "
            "the worker and crash tests did not run."
        )


def database_url(name: str, port: int = POSTGRES_PORT) -> str:
    return f"postgres://{POSTGRES_USER}@{POSTGRES_HOST}:{port}/{name}"


def connect(name: str) -> psycopg.Connection:
    return psycopg.connect(database_url(name), autocommit=True, connect_timeout=5)


@contextmanager
def throwaway_database(env: dict[str, str]) -> Iterator[str]:
    """A new, migrated database with a unique name; dropped afterwards."""
    name = f"bw_test_{uuid.uuid4().hex[:12]}"
    # template0: nobody is ever connected to it, unlike template1.
    with connect("postgres") as maintenance:
        maintenance.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )
    try:
        manage(["migrate", "--noinput"], {**env, "DATABASE_URL": database_url(name)})
        yield name
    finally:
        with connect("postgres") as maintenance:
            maintenance.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


# What a stack started by a test must not inherit: CI's DATABASE_URL
# (PostgreSQL, for the rest of the suite), pytest-django's settings module, a
# real upstream, the development machine's own settings.
DROPPED = (
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "MEDIA_ROOT",
    "HOST",
    "PORT",
    "SIMULATOR_PORT",
    "TIME_ZONE",
    "WEB_CONCURRENCY",
    "GUNICORN_CMD_ARGS",
)
DROPPED_PREFIXES = ("MOUNTSEA_", "BANANAWEB_", "PYTEST_", "AWS_")


def clean_environ() -> dict[str, str]:
    """This process's environment, less anything that would configure bananaweb."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in DROPPED and not name.startswith(DROPPED_PREFIXES)
    }


def stack_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A production-like process's environment: bananaweb.settings, files in tmp."""
    env = clean_environ()
    env |= {
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
        # Development keys and plain HTTP; DEBUG stays off, as in production.
        "BANANAWEB_DEV": "1",
        "BANANAWEB_VAR_DIR": str(tmp_path / "var"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "0",
    }
    return env | extra


def manage(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


class Process:
    """A child in its own process group, its output in a file (no pipe to fill)."""

    def __init__(self, name: str, command: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("w") as output:
            self.popen = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash or the OOM killer does."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, poll: float = 0.1
) -> object:
    """condition()'s first truthy value, polled; fails saying `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Waited {timeout:g} s for {what}.")
        time.sleep(poll)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
