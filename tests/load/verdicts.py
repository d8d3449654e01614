"""What `make loadtest` (tests/load/run.py) and `make scaletest` (tests/scale/run.py)
do alike: find PostgreSQL, SIGKILL a task worker mid-task, wait until every request
has ended, judge the run (PASS/FAIL lines, a diagnosis kept on failure), tidy up;
and the bodies a user posts to make an image, which the load run's Locust users
(tests/load/locustfile.py) send too.

The stack (tests/load/stack.py) is imported only inside the functions that need it:
the locustfile imports this module for the bodies, and the stack would bring pytest
and psycopg into every Locust process.
"""

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from tests.load.stack import Stack

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
# A request's statuses in the database once it has ended, one way or another.
TERMINAL = {"completed", "failed", "unknown"}
KILL_TRIES = 3

Checks = list[tuple[str, bool]]
Say = Callable[[str], None]


# --- What a user posts ----------------------------------------------------------------


def web_form(prompt: str, aspect_ratio: str, idempotency_key: str) -> dict:
    """The generate form's fields, as htmx posts them to /requests/."""
    return {
        "action": "generate",
        "prompt": prompt,
        "model": "nano-banana-fast",
        "aspect_ratio": aspect_ratio,
        "resolution": "",
        "image_urls": "",
        "idempotency_key": idempotency_key,
    }


def api_body(prompt: str, aspect_ratio: str) -> dict:
    """The JSON a script posts to /api/gemini/image/generate."""
    return {
        "prompt": prompt,
        "action": "generate",
        "num_images": 1,
        "aspect_ratio": aspect_ratio,
        "model": "nano-banana-fast",
    }


# --- Around the run -------------------------------------------------------------------


def postgres_server(say: Say, advice: str) -> str | None:
    """The maintenance URL of a reachable PostgreSQL server (DATABASE_URL's, or
    127.0.0.1:5432), or None once `advice` on what to do has been said."""
    from tests.load.stack import postgres_admin_url, postgres_reachable

    admin_url = postgres_admin_url() or postgres_admin_url(DEFAULT_POSTGRES)
    if postgres_reachable(admin_url):
        return admin_url
    say(f"PostgreSQL is not reachable at {admin_url.rsplit('/', 1)[0]}: {advice}")
    return None


def tidy_up(folder: Path, remove: bool, say: Say) -> None:
    """The run's folder goes after a success; otherwise its logs stay, for a look."""
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        say(f"Logs kept in {folder}/logs")


def exit_with(main: Callable[[], int], say: Say) -> NoReturn:
    """Exit with main()'s code; a stack that failed is one line and exit 1, not a
    traceback."""
    from tests.load.stack import StackError

    try:
        sys.exit(main())
    except StackError as exc:
        say(f"The stack failed: {exc}")
        sys.exit(1)


# --- During the run -------------------------------------------------------------------


def kill_worker_mid_task(
    stack: "Stack", say: Say, started: float | None = None
) -> tuple[float | None, str | None]:
    """SIGKILL task worker 0 in the middle of a task, and start it again: up to
    KILL_TRIES times, while a kill finds it idle or the task ends first. With
    `started`, says (and returns) when, in seconds since then; and what it cut off."""
    for _ in range(KILL_TRIES):
        cut_off = stack.kill_worker_mid_task(0)
        killed_at = None if started is None else time.monotonic() - started
        say(
            "SIGKILLed task worker 0 "
            + ("" if killed_at is None else f"at {killed_at:.0f} s, ")
            + (f"in the middle of {cut_off}" if cut_off else "idle")
            + "; starting it again."
        )
        time.sleep(1)
        stack.start_worker(0)
        if cut_off:
            break
    return killed_at, cut_off


def drain(stack: "Stack", seconds: int) -> tuple[list[dict], float]:
    """Wait up to `seconds` until every request in the database has ended, checking
    that the stack's processes are still alive. (The rows, the seconds waited.)"""
    started = time.monotonic()
    rows = stack.requests_in_db()
    while time.monotonic() - started < seconds:
        if all(row["status"] in TERMINAL for row in rows):
            break
        time.sleep(2)
        stack.check_alive()
        rows = stack.requests_in_db()
    return rows, time.monotonic() - started


# --- The verdict ----------------------------------------------------------------------


def passed(checks: Checks) -> bool:
    return all(ok for _, ok in checks)


def keep_diagnosis(stack: "Stack", folder: Path, say: Say) -> None:
    """Before the database is dropped: what was left in flight, for a failed run."""
    diagnosis = folder / "logs" / "diagnosis.json"
    diagnosis.write_text(stack.python("-m", "tests.load.dbtool", "diagnose"))
    say(f"Requests in flight and unfinished task runs: {diagnosis}")


def figure_table(rows: list[tuple[str, object]]) -> list[str]:
    """The report's figures, as a Markdown table."""
    return [
        "| figure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
    ]


def check_lines(checks: Checks) -> list[str]:
    """One line a check: "- PASS: no 5xx answer" or "- FAIL: …"."""
    return [f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks]
