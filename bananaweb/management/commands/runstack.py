"""Run everything bananaweb needs on one machine: simulator, task worker and web server.

A child that dies is started again after a pause that doubles while it keeps
dying (1 s up to 30 s); Ctrl+C or SIGTERM stops them all.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

READY_SECONDS = 15
STOP_SECONDS = 10
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A child that ran this long before dying was healthy: its next restart is quick again.
HEALTHY_SECONDS = 60.0


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_exits: int = 0  # in a row, each within HEALTHY_SECONDS of its start
    restart_at: float | None = None


class Supervisor:
    """Starts children in process groups of their own, relays their output as
    `[name] line`, restarts the ones that die, and stops them all."""

    def __init__(
        self,
        env: dict[str, str],
        write: Callable[[str], None],
        *,
        first_delay: float = FIRST_RESTART_DELAY,
        max_delay: float = MAX_RESTART_DELAY,
    ) -> None:
        self.env = env
        self.write = write
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.children: list[Child] = []

    def start(self, name: str, command: list[str], ready: str = "") -> Child:
        """Start a child; with `ready`, wait for that line or raise CommandError."""
        child = Child(name, command)
        self.children.append(child)
        is_ready = self._spawn(child, ready)
        if ready and not is_ready.wait(READY_SECONDS):
            raise CommandError(f"The {name} did not start within {READY_SECONDS} s.")
        if child.process.poll() is not None:
            raise CommandError(
                f"The {name} exited at once (code {child.process.returncode})."
            )
        return child

    def watch(self) -> None:
        """One look at every child: note the dead, restart the ones whose time came."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            # Whatever it left behind in its group (e.g. a reloader's child) goes too.
            _kill_group(child.process.pid, signal.SIGKILL)
            if now - child.started_at >= HEALTHY_SECONDS:
                child.quick_exits = 0
            delay = min(self.first_delay * 2**child.quick_exits, self.max_delay)
            child.quick_exits += 1
            child.restart_at = now + delay
            self.write(
                f"[{child.name}] exited (code {code}); restarting in {delay:g} s"
            )

    def stop(self) -> None:
        """SIGTERM every child's group; SIGKILL what is left after STOP_SECONDS."""
        running = [
            child.process
            for child in self.children
            if child.process and child.process.poll() is None
        ]
        for process in running:
            _kill_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _kill_group(process.pid, signal.SIGKILL)
                process.wait()
            # Whatever the child left behind in its group goes with it.
            _kill_group(process.pid, signal.SIGKILL)

    def _spawn(self, child: Child, ready: str = "") -> threading.Event:
        process = subprocess.Popen(
            child.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        child.process = process
        child.started_at = time.monotonic()
        self.write(f"[{child.name}] started (pid {process.pid})")
        is_ready = threading.Event()

        def relay() -> None:
            for line in process.stdout:
                if ready and ready in line:
                    is_ready.set()
                self.write(f"[{child.name}] {line.rstrip()}")
            is_ready.set()

        threading.Thread(target=relay, daemon=True).start()
        return is_ready


def _kill_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class Command(BaseCommand):
    help = "Start the bundled simulator (unless MOUNTSEA_BASE_URL names a real upstream), a task worker and the web server."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("PORT") or 8000)
        )
        parser.add_argument(
            "--simulator-port",
            type=int,
            default=int(os.environ.get("SIMULATOR_PORT") or 8001),
        )
        parser.add_argument(
            "--server",
            choices=("runserver", "gunicorn"),
            default="runserver",
            help="runserver (the default, for development) or gunicorn (as in production; run collectstatic first "
            "when DEBUG is off).",
        )

    def handle(
        self, *args, host: str, port: int, simulator_port: int, server: str, **options
    ) -> None:
        env = os.environ.copy()
        env.setdefault("DEBUG", "1")
        python = sys.executable
        simulated = not os.environ.get("MOUNTSEA_BASE_URL")
        for needed in [port] + ([simulator_port] if simulated else []):
            if not _port_free("127.0.0.1", needed):
                raise CommandError(
                    f"Port {needed} is already in use: stop what runs there, or set PORT / SIMULATOR_PORT."
                )

        if simulated:
            env["MOUNTSEA_SIMULATOR_URL"] = f"http://127.0.0.1:{simulator_port}"
            # The simulator accepts any token starting with "sim-".
            env.setdefault("MOUNTSEA_API_TOKEN", "sim-dev-token")
            # The simulator fetches references from this machine's web server.
            env.setdefault("BANANAWEB_PUBLIC_URL", f"http://127.0.0.1:{port}")
        supervisor = Supervisor(env, self.stdout.write)
        signal.signal(signal.SIGTERM, lambda *_: self._stop(supervisor, 0))
        try:
            if not simulated:
                self.stdout.write(
                    f"Using the upstream at {settings.MOUNTSEA_BASE_URL} (no simulator)."
                )
            else:
                supervisor.start(
                    "sim",
                    [
                        python,
                        "-m",
                        "bananaweb.simulator",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(simulator_port),
                    ],
                    ready="Simulator listening",
                )
            # The first token (from MOUNTSEA_API_TOKEN) and the periodic jobs, with the
            # stack's own environment.
            subprocess.run(
                [python, "manage.py", "start_background"], env=env, check=True
            )
            supervisor.start(
                "worker", [python, "manage.py", "run_worker", "--interval", "0.5"]
            )
            if server == "gunicorn":
                # Threads, so a page load isn't queued behind the history's polling.
                web = [
                    python,
                    "-m",
                    "gunicorn",
                    "bananaweb.wsgi",
                    "--bind",
                    f"{host}:{port}",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ]
            else:
                web = [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
            supervisor.start("web", web)
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nbananaweb is running at http://{shown_host}:{port}/  (Ctrl+C stops it)\n"
                )
            )
            while True:
                supervisor.watch()
                time.sleep(0.5)
        except KeyboardInterrupt:
            self._stop(supervisor, 0)
        except (CommandError, subprocess.CalledProcessError) as error:
            self._stop(supervisor, 1, str(error))

    def _stop(self, supervisor: Supervisor, code: int, message: str = "") -> None:
        supervisor.stop()
        if message:
            self.stderr.write(message)
        sys.exit(code)
