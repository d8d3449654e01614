"""Browser tests: Debian's Chromium, driven by Playwright, uses the real stack over HTTP.

The stack is `manage.py runstack --server gunicorn` (web server, task worker and
the bundled simulator) in a fresh folder with its own SQLite database, run like
production: DEBUG off, static files collected and served compressed by WhiteNoise.

Without Chromium, Playwright or axe-core the browser tests skip, and say so in one
line after collection and one in the summary; `make test` installs them where it can.
BANANAWEB_REQUIRE_BROWSER=1 turns that skip into a failure.
"""

import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.browser.helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
    ROOT,
    browser_problem,
    sign_in,
    write_axe_log,
)
from tests.stack_helpers import clean_environ

# One user per test, so every test starts from an empty history.
USER_NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yasmin",
    "zoe",
    # The composer's journeys (tests/browser/test_composer.py).
    "amara",
    "bruno",
    "chidi",
    "dagny",
    "emeka",
    "fumiko",
    # The team's journeys (tests/browser/test_team.py): two users, then one.
    "gideon",
    "hana",
    "ingrid",
]


def require_browser() -> None:
    if problem := browser_problem():
        if os.environ.get("BANANAWEB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Browser tests can't run: {problem}.", pytrace=False)
        pytest.skip(f"BROWSER TESTS SKIPPED: {problem}")


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if not browser_items:
        return
    # Last: once Playwright's event loop runs, Django refuses database access from
    # the rest of the suite ("You cannot call this from an async context").
    items[:] = [
        item for item in items if not item.get_closest_marker("browser")
    ] + browser_items
    if (problem := browser_problem()) and (
        reporter := config.pluginmanager.get_plugin("terminalreporter")
    ):
        reporter.write_line(
            f"!!! THE {len(browser_items)} BROWSER TESTS WILL SKIP: {problem}.",
            red=True,
            bold=True,
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Skipped from here rather than from a fixture, so pytest's summary folds them into one line.
    if item.get_closest_marker("browser"):
        require_browser()


def pytest_sessionfinish(session: pytest.Session) -> None:
    write_axe_log()


# --- The stack ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    url: str
    simulator_url: str
    env: dict
    _users: itertools.count = field(default_factory=itertools.count)

    def run(self, *args: str) -> str:
        """Run Python (manage.py, the seed module) against the stack's database."""
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if done.returncode:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def seed(self, *args: str) -> None:
        self.run("-m", "tests.browser.seed", *args)

    def next_user(self) -> str:
        index = next(self._users)
        if index >= len(USER_NAMES):
            raise RuntimeError(
                "More browser tests than users: add names to USER_NAMES."
            )
        return USER_NAMES[index]


def _stack_env(var_dir: Path) -> dict:
    env = clean_environ()  # nothing from outside
    env.update(
        DJANGO_SETTINGS_MODULE="bananaweb.settings",
        BANANAWEB_VAR_DIR=str(var_dir),
        # Development keys and plain HTTP (settings fail closed without them); DEBUG
        # stays off, as in production.
        BANANAWEB_DEV="1",
        DEBUG="0",
        SECRET_KEY="browser-tests-" + secrets.token_hex(16),
        BANANAWEB_ADMIN_USER="admin",
        BANANAWEB_ADMIN_PASSWORD=PASSWORD,
        BANANAWEB_TEST_PASSWORD=PASSWORD,
        # A result in about three seconds: long enough to watch a request in flight.
        MOUNTSEA_SIMULATOR_DELAY="3",
        BANANAWEB_POLL_FIRST_DELAY="0.5",
        BANANAWEB_POLL_MAX_DELAY="1",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _wait_until_up(
    url: str, process: subprocess.Popen, log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"The stack exited ({process.returncode}):\n{log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"The stack did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-4000:]}"
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    require_browser()
    var_dir = tmp_path_factory.mktemp("stack")
    port, simulator_port = _free_port(), _free_port()
    stack = Stack(
        url=f"http://127.0.0.1:{port}",
        simulator_url=f"http://127.0.0.1:{simulator_port}",
        env=_stack_env(var_dir),
    )
    stack.run("manage.py", "collectstatic", "--noinput", "-v0")
    stack.run("manage.py", "migrate", "--noinput", "-v0")
    stack.run("manage.py", "ensure_signin")
    stack.seed("users", *USER_NAMES)

    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "stack.log"
    with log.open("w") as log_file:
        # A process group of its own; on SIGTERM runstack stops its children.
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runstack",
                "--server",
                "gunicorn",
                "--port",
                str(port),
                "--simulator-port",
                str(simulator_port),
            ],
            cwd=ROOT,
            env=stack.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(f"{stack.url}/accounts/login/", process, log)
        yield stack
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


# --- The browser ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    require_browser()
    # Playwright gives every launch a fresh, empty user-data-dir.
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    return stack.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {
        **browser_context_args,
        "viewport": DESKTOP,
        "locale": "en-GB",
        "timezone_id": "UTC",
    }


@pytest.fixture
def page(page):
    """Playwright's page, failing the test on a script error or anything the CSP blocked."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    assert not problems, problems


@pytest.fixture
def username(stack: Stack) -> str:
    """This test's own user, with an empty history."""
    return stack.next_user()


@pytest.fixture
def signed_in(page, username: str):
    """The page, signed in as this test's user, on the main page."""
    sign_in(page, username)
    return page
