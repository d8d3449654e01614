"""`run_worker` outlives a database outage; `runstack` restarts a child that dies."""

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from django_tasks_db.models import DBTaskResult
from psycopg import sql

from bananaweb.management.commands.runstack import Supervisor
from tests.stack_helpers import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    Process,
    connect,
    database_url,
    free_port,
    manage,
    require_postgres,
    stack_env,
    throwaway_database,
    wait_until,
)
from tests.tcp_proxy import TcpProxy

OUTAGE_SECONDS = 6
# A task that exists and does nothing: there is no token 0 to re-check.
ENQUEUE_NOOP = (
    "from bananaweb.tasks import token_recheck_task; "
    "print(token_recheck_task.enqueue(0).id)"
)


@pytest.fixture
def database(tmp_path: Path):
    require_postgres()
    with throwaway_database(stack_env(tmp_path)) as name:
        yield name


@pytest.fixture
def proxy():
    with TcpProxy(POSTGRES_HOST, POSTGRES_PORT) as proxy:
        yield proxy


def enqueue_noop(env: dict[str, str]) -> str:
    return manage(["shell", "-c", ENQUEUE_NOOP], env).stdout.split()[-1]


def task_status(database: str, task_id: str) -> str:
    with connect(database) as connection:
        query = sql.SQL("SELECT status FROM {} WHERE id = %s").format(
            sql.Identifier(DBTaskResult._meta.db_table)
        )
        (status,) = connection.execute(query, [task_id]).fetchone()
    return status


def start_worker(env: dict[str, str], tmp_path: Path) -> Process:
    command = [sys.executable, "manage.py", "run_worker", "--interval", "0.2"]
    command += ["--no-reload", "--no-startup-delay", "--worker-id", "test-worker"]
    return Process("worker", command, env, tmp_path)


# --- run_worker ---------------------------------------------------------------------


@pytest.mark.slow
def test_worker_lives_through_a_database_outage_and_runs_what_was_queued(
    tmp_path, database, proxy
):
    direct = stack_env(tmp_path, DATABASE_URL=database_url(database))
    through_proxy = stack_env(tmp_path, DATABASE_URL=database_url(database, proxy.port))
    worker = start_worker(through_proxy, tmp_path)
    try:
        before = enqueue_noop(direct)
        wait_until(
            lambda: task_status(database, before) == "SUCCESSFUL",
            15,
            f"the first task to run; worker said:\n{worker.output()}",
        )

        proxy.close()
        cut_at = time.monotonic()
        wait_until(
            lambda: "Database unavailable" in worker.output(),
            5,
            f"the worker to notice the outage; it said:\n{worker.output()}",
        )
        during = enqueue_noop(direct)
        time.sleep(max(OUTAGE_SECONDS - (time.monotonic() - cut_at), 0))
        assert worker.alive(), f"The worker died in the outage:\n{worker.output()}"
        assert task_status(database, during) == "READY"

        proxy.open()
        wait_until(
            lambda: task_status(database, during) == "SUCCESSFUL",
            20,
            f"the task queued in the outage to run; worker said:\n{worker.output()}",
        )
        after = enqueue_noop(direct)
        wait_until(
            lambda: task_status(database, after) == "SUCCESSFUL",
            10,
            f"a task queued after the outage to run; worker said:\n{worker.output()}",
        )
        output = worker.output()
        assert output.count("Database unavailable") == 1, output
        assert "Database reachable again" in output, output
        assert worker.stop() == 0, worker.output()
    finally:
        worker.stop()


@pytest.mark.slow
def test_worker_started_without_a_database_waits_and_stops_cleanly_on_sigterm(
    tmp_path, database, proxy
):
    proxy.close()
    worker = start_worker(
        stack_env(tmp_path, DATABASE_URL=database_url(database, proxy.port)), tmp_path
    )
    try:
        wait_until(
            lambda: "Database unavailable" in worker.output() or not worker.alive(),
            15,
            f"the worker to report the refused connection:\n{worker.output()}",
        )
        assert worker.alive(), worker.output()
        assert "connection refused" in worker.output().lower(), worker.output()
        worker.signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=5) == 0, worker.output()
    finally:
        worker.stop()


# --- runstack's supervisor ----------------------------------------------------------


def group_alive(group: int) -> bool:
    """Whether a process of this group still runs (a zombie, dead, does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...", and comm may hold spaces.
            state, _, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue
        if int(pgrp) == group and state != "Z":
            return True
    return False


SLEEPER = "import time; print('up', flush=True); time.sleep(60)"


def quick_supervisor(lines: list[str]) -> Supervisor:
    return Supervisor(os.environ.copy(), lines.append, first_delay=0.1, max_delay=0.4)


def watch_until(supervisor: Supervisor, condition, what: str) -> None:
    def looked() -> bool:
        supervisor.watch()
        return condition()

    wait_until(looked, 10, what, poll=0.02)


def test_supervisor_restarts_a_killed_child():
    lines: list[str] = []
    supervisor = quick_supervisor(lines)
    try:
        child = supervisor.start("worker", [sys.executable, "-c", SLEEPER], ready="up")
        killed = child.process.pid
        os.kill(killed, signal.SIGKILL)

        watch_until(
            supervisor,
            lambda: child.process.pid != killed and lines.count("[worker] up") == 2,
            f"the worker to be back: {lines}",
        )
        assert "[worker] exited (code -9); restarting in 0.1 s" in lines
        assert child.process.poll() is None
    finally:
        supervisor.stop()
    assert child.process.poll() is not None


def test_supervisor_doubles_the_pause_while_a_child_keeps_dying():
    lines: list[str] = []
    supervisor = quick_supervisor(lines)
    try:
        supervisor.start("web", [sys.executable, "-c", "raise SystemExit(3)"])
        watch_until(
            supervisor,
            lambda: sum("restarting" in line for line in lines) >= 4,
            f"four restarts: {lines}",
        )
    finally:
        supervisor.stop()
    pauses = [line for line in lines if "restarting" in line][:4]
    assert pauses == [
        "[web] exited (code 3); restarting in 0.1 s",
        "[web] exited (code 3); restarting in 0.2 s",
        "[web] exited (code 3); restarting in 0.4 s",
        "[web] exited (code 3); restarting in 0.4 s",
    ]


def test_supervisor_stop_ends_every_child_and_its_group():
    lines: list[str] = []
    supervisor = quick_supervisor(lines)
    # A parent and a grandchild in one group, like the worker under its reloader.
    family = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); time.sleep(60)"
    )
    child = supervisor.start("worker", [sys.executable, "-c", family])
    wait_until(lambda: "[worker] up" in lines, 10, f"the grandchild: {lines}")
    supervisor.stop()
    assert child.process.poll() is not None
    # Killed, though a signal takes a moment to land.
    wait_until(lambda: not group_alive(child.process.pid), 5, "the grandchild to end")


# --- runstack as a whole -------------------------------------------------------------


@pytest.mark.slow
def test_runstack_restarts_its_killed_worker_and_stops_on_sigterm(tmp_path):
    env = stack_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    del env["DEBUG"]
    manage(["migrate", "--noinput", "-v0"], env)
    command = [sys.executable, "manage.py", "runstack"]
    command += ["--port", str(free_port()), "--simulator-port", str(free_port())]
    stack = Process("runstack", command, env, tmp_path)
    try:
        wait_until(
            lambda: "bananaweb is running" in stack.output() or not stack.alive(),
            30,
            f"the stack to start:\n{stack.output()}",
        )
        assert stack.alive(), stack.output()

        def worker_pids() -> list[int]:
            return [
                int(pid)
                for pid in re.findall(
                    r"\[worker\] started \(pid (\d+)\)", stack.output()
                )
            ]

        (first,) = worker_pids()
        cmdline = Path(f"/proc/{first}/cmdline").read_bytes().split(b"\0")
        assert b"run_worker" in cmdline
        os.kill(first, signal.SIGKILL)

        wait_until(
            lambda: len(worker_pids()) == 2,
            10,
            f"the worker to be restarted:\n{stack.output()}",
        )
        assert "[worker] exited (code -9); restarting in 1 s" in stack.output()
        assert not group_alive(first), "the killed worker's reloaded child outlived it"
        started = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", stack.output())]

        stack.signal(signal.SIGTERM)
        assert stack.popen.wait(timeout=20) == 0, stack.output()
        wait_until(
            lambda: not any(group_alive(pid) for pid in started),
            5,
            f"every child to end:\n{stack.output()}",
        )
    finally:
        stack.stop()
