"""The simulator over HTTP: Mountsea's two Nano Banana endpoints, the image URLs
they hand out, the `/_simulator/` control endpoints, and `start_simulator()`.

Control endpoints: `GET|POST /_simulator/config` (show, merge knobs),
`POST /_simulator/reset` (start knobs, no tasks, no counts) and
`GET /_simulator/stats` (calls received and tasks accepted, see `Simulator.stats`).

Request bodies are validated by `options.option_errors`, like everything else that
checks options. Tokens are compared and never logged or echoed.
"""

import json
import math
import re
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from bananaweb import options
from bananaweb.simulator import knobs
from bananaweb.simulator.state import KnobError, ReceivedRequest, Simulator

MAX_BODY_BYTES = 1024 * 1024
OPTION_FIELDS = (
    "prompt",
    "action",
    "model",
    "aspect_ratio",
    "resolution",
    "image_urls",
    "num_images",
)
ERROR_FAULTS = {
    "500": "Internal server error (simulated)",
    "502": "Bad gateway (simulated)",
    "503": "Service temporarily unavailable (simulated)",
    "504": "Gateway timeout (simulated)",
    "429": "Too many requests (simulated)",
    "401": "Unauthorized (simulated)",
    "403": "Forbidden (simulated)",
}
OVERSIZED_BYTES = options.MAX_IMAGE_BYTES + 1
IMAGE_PATH = re.compile(r"/images/([^/]+)\.png")
NO_POST = ("/gemini/task/result", "/_simulator/stats")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def body_errors(body: object) -> dict[str, str]:
    """Every rule a generate request body breaks, in option_errors' words."""
    if not isinstance(body, dict):
        return {"body": "The request body must be a JSON object."}
    return options.option_errors(
        **{name: body[name] for name in OPTION_FIELDS if name in body}
    )


def token_problem(
    token: str | None, tokens: tuple[str, ...] | None
) -> tuple[int, str] | None:
    """The (status, message) refusing this token, or None if it is accepted."""
    if token is None or not (token in tokens if tokens else token.startswith("sim-")):
        return 401, "Unauthorized"
    if token.startswith("sim-") and "revoked" in token:
        return 403, "Forbidden: token revoked"
    return None


class SimulatorServer(ThreadingHTTPServer):
    block_on_close = False  # a "slow" answer must not hold up stopping

    def __init__(
        self,
        address: tuple[str, int],
        simulator: Simulator,
        *,
        tokens: list[str] | None = None,
        quiet: bool = False,
    ) -> None:
        super().__init__(address, Handler)
        self.simulator = simulator
        self.tokens = tuple(tokens) if tokens else None
        self.quiet = quiet

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: SimulatorServer
    server_version = "MountseaSimulator/1.0"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/_simulator/"):
            self.server.simulator.record("GET", self.path, None)
        if path == "/gemini/task/result":
            self._task_result()
        elif match := IMAGE_PATH.fullmatch(path):
            self._image(match[1])
        elif path == "/_simulator/config":
            self._send_json(200, self.server.simulator.config)
        elif path == "/_simulator/stats":
            self._send_json(200, self.server.simulator.stats())
        elif path in ("/gemini/image/generate", "/_simulator/reset"):
            self._send_error(405, "Method not allowed")
        else:
            self._send_error(404, "Not found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self.rfile.read(min(self._content_length(), MAX_BODY_BYTES + 1))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not path.startswith("/_simulator/"):
            self.server.simulator.record("POST", self.path, body)
        if len(raw) > MAX_BODY_BYTES:
            self._send_error(413, "Request body too large")
        elif path == "/gemini/image/generate":
            self._generate(body)
        elif path == "/_simulator/config":
            self._configure(body)
        elif path == "/_simulator/reset":
            self.server.simulator.reset()
            self._send_json(200, self.server.simulator.config)
        elif path in NO_POST or IMAGE_PATH.fullmatch(path):
            self._send_error(405, "Method not allowed")
        else:
            self._send_error(404, "Not found")

    # Endpoints

    def _generate(self, body: object) -> None:
        simulator = self.server.simulator
        prompt = body.get("prompt") if isinstance(body, dict) else None
        text, tagged = knobs.prompt_tags(prompt if isinstance(prompt, str) else "")
        simulator.count_call("generate", text if isinstance(prompt, str) else None)
        token = self._accepted_token()
        if token is None:
            return
        config = {**simulator.config, **tagged}
        fault = simulator.take_fault("submit_fault", config)
        if fault == "slow":
            # Then carry on: the task exists though the client gave up waiting.
            simulator.stopping.wait(config["slow_seconds"])
        elif fault not in (None, "cutoff", "500_after_create"):
            self._act_out(fault, config, ok_status=201)
            return
        if errors := body_errors(body):
            message = next(iter(errors.values()))
            self._send_error(400, message, errors=errors, error="Bad Request")
        elif "nocredit" in token:
            self._send_error(402, "Insufficient credits")
        else:
            task = simulator.create_task(body, text, config, tagged)
            answer = json.dumps({"taskId": task.task_id}).encode()
            if fault == "500_after_create":
                self._send_error(500, ERROR_FAULTS["500"])
            elif fault == "cutoff":
                self._send_cut_off(201, answer, "application/json")
            else:
                self._send(201, answer, "application/json")

    def _task_result(self) -> None:
        simulator = self.server.simulator
        simulator.count_call("result")
        if self._accepted_token() is None:
            return
        task_id = parse_qs(urlsplit(self.path).query).get("taskId", [""])[0]
        config = {**simulator.config, **simulator.tagged(task_id)}
        fault = simulator.take_fault("result_fault", config)
        if fault == "slow":
            simulator.stopping.wait(config["slow_seconds"])
        elif fault not in (None, "cutoff"):
            self._act_out(fault, config, ok_status=200)
            return
        if not task_id:
            self._send_error(400, "taskId is required", error="Bad Request")
        elif result := simulator.task_result(task_id, self._base_url()):
            answer = json.dumps(result).encode()
            if fault == "cutoff":
                self._send_cut_off(200, answer, "application/json")
            else:
                self._send(200, answer, "application/json")
        else:
            self._send_error(404, "Task not found")

    def _image(self, task_id: str) -> None:
        # No token, like the CDN URLs the real API hands out.
        simulator = self.server.simulator
        simulator.count_call("image")
        config = {**simulator.config, **simulator.tagged(task_id)}
        fault = simulator.take_fault("image_fault", config)
        match fault:
            case "slow":
                simulator.stopping.wait(config["slow_seconds"])
            case "oversized":
                padding = bytes(OVERSIZED_BYTES - len(PNG_SIGNATURE))
                self._send(200, PNG_SIGNATURE + padding, "image/png")
                return
            case "not_image":
                page = b"<html><body>Not an image (simulated)</body></html>"
                self._send(200, page, "text/html; charset=utf-8")
                return
            case None | "cutoff":
                pass
            case _:
                self._act_out(fault, config, ok_status=200)
                return
        if (png := simulator.image_png(task_id)) is None:
            self._send_error(404, "Not found")
        elif fault == "cutoff":
            self._send_cut_off(200, png, "image/png")
        else:
            self._send(200, png, "image/png")

    def _configure(self, body: object) -> None:
        if not isinstance(body, dict):
            self._send_error(400, "Send the knobs as a JSON object.")
            return
        try:
            self._send_json(200, self.server.simulator.configure(**body))
        except KnobError as exc:
            message = next(iter(exc.errors.values()))
            self._send_error(400, message, errors=exc.errors, error="Bad Request")

    # Helpers

    def _accepted_token(self) -> str | None:
        """The caller's token; None, having answered 401 or 403, if it is refused."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            token = None
        if problem := token_problem(token, self.server.tokens):
            self._send_error(*problem)
            return None
        return token

    def _act_out(self, fault: str, config: dict, *, ok_status: int) -> None:
        """Answer in place of the real answer, as `fault` says."""
        match fault:
            case "malformed":
                self._send(ok_status, b"<html>oops", "text/html")
            case "no_task_id":
                self._send_json(ok_status, {})
            case "reset":
                self._reset_connection()
            case "429" | "503_retry_after":
                retry_after = str(math.ceil(config["retry_after"]))
                self._send_error(
                    int(fault[:3]),
                    ERROR_FAULTS[fault[:3]],
                    headers={"Retry-After": retry_after},
                )
            case _:
                self._send_error(int(fault), ERROR_FAULTS[fault])

    def _reset_connection(self) -> None:
        """Close the connection with a TCP reset, having answered nothing."""
        self.log_request("reset")
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
        except OSError:
            pass

    def _send_cut_off(self, status: int, body: bytes, content_type: str) -> None:
        """Promise the whole body, send half of it, then close the connection."""
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _content_length(self) -> int:
        length = self.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def _base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _send_error(
        self, status: int, message: str, headers: dict | None = None, **extra: object
    ) -> None:
        body = {"statusCode": status, "message": message, **extra}
        self._send_json(status, body, headers)

    def _send_json(
        self, status: int, body: object, headers: dict | None = None
    ) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, e.g. on a "slow" or oversized answer

    def log_request(self, code: object = "-", size: object = "-") -> None:
        if not self.server.quiet:
            status = getattr(code, "value", code)
            print(f"{self.command} {self.path} {status}", file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: object) -> None:
        if not self.server.quiet:
            print(format % args, file=sys.stderr, flush=True)


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tokens: list[str] | None = None,
    quiet: bool = False,
    **config: object,
) -> SimulatorServer:
    """A simulator bound to host:port (0 picks a free port), not yet serving."""
    return SimulatorServer((host, port), Simulator(config), tokens=tokens, quiet=quiet)


class SimulatorHandle:
    """A simulator serving from a daemon thread, as tests use it."""

    def __init__(self, server: SimulatorServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def config(self) -> dict:
        return self._server.simulator.config

    @property
    def requests(self) -> list[ReceivedRequest]:
        """(method, path, JSON body) of every API and image request, oldest first."""
        return self._server.simulator.requests

    @property
    def stats(self) -> dict:
        """What `GET /_simulator/stats` answers."""
        return self._server.simulator.stats()

    def configure(self, **knob_values: object) -> dict:
        return self._server.simulator.configure(**knob_values)

    def reset(self) -> None:
        self._server.simulator.reset()

    def stop(self) -> None:
        self._server.simulator.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tokens: list[str] | None = None,
    quiet: bool = True,
    **config: object,
) -> SimulatorHandle:
    """Start a simulator in a daemon thread; `config` sets knobs (knobs.DEFAULTS)."""
    return SimulatorHandle(
        make_server(host, port, tokens=tokens, quiet=quiet, **config)
    )
