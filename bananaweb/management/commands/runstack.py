"""Run everything bananaweb needs on one machine: simulator, task worker and web server."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


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
        self.children: list[subprocess.Popen] = []
        for needed in [port] + (
            [] if os.environ.get("MOUNTSEA_BASE_URL") else [simulator_port]
        ):
            if not _port_free("127.0.0.1", needed):
                raise CommandError(
                    f"Port {needed} is already in use: stop what runs there, or set PORT / SIMULATOR_PORT."
                )

        signal.signal(signal.SIGTERM, lambda *_: self._stop(0))
        try:
            if os.environ.get("MOUNTSEA_BASE_URL"):
                self.stdout.write(
                    f"Using the upstream at {settings.MOUNTSEA_BASE_URL} (no simulator)."
                )
            else:
                env["MOUNTSEA_SIMULATOR_URL"] = f"http://127.0.0.1:{simulator_port}"
                # The simulator accepts any token starting with "sim-".
                env.setdefault("MOUNTSEA_API_TOKEN", "sim-dev-token")
                self._start(
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
                    env,
                    ready="Simulator listening",
                )
            # The first token (from MOUNTSEA_API_TOKEN) and the periodic jobs, with the
            # stack's own environment.
            subprocess.run(
                [python, "manage.py", "start_background"], env=env, check=True
            )
            self._start(
                "worker", [python, "manage.py", "db_worker", "--interval", "0.5"], env
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
            self._start("web", web, env)
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nbananaweb is running at http://{shown_host}:{port}/  (Ctrl+C stops it)\n"
                )
            )
            while all(child.poll() is None for child in self.children):
                time.sleep(0.5)
            failed = next(child for child in self.children if child.poll() is not None)
            self.stderr.write(
                f"{failed.args[2] if len(failed.args) > 2 else failed.args} stopped (exit {failed.returncode}); stopping the rest."
            )
            self._stop(1)
        except KeyboardInterrupt:
            self._stop(0)

    def _start(self, name: str, command: list[str], env: dict, ready: str = "") -> None:
        child = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.children.append(child)
        is_ready = threading.Event()

        def relay() -> None:
            for line in child.stdout:
                if ready and ready in line:
                    is_ready.set()
                self.stdout.write(f"[{name}] {line.rstrip()}")
            is_ready.set()

        threading.Thread(target=relay, daemon=True).start()
        if ready and not is_ready.wait(15):
            self._stop(1, f"The {name} did not start within 15 seconds.")
        if child.poll() is not None:
            self._stop(1, f"The {name} exited at once (exit {child.returncode}).")

    def _stop(self, code: int, message: str = "") -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        if message:
            self.stderr.write(message)
        sys.exit(code)
