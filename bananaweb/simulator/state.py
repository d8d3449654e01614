"""The simulator's memory: knobs, tasks and their lifecycle, drawn images and the
requests received. One `Simulator` is shared by every request thread.

A task's status is not stored: it follows from the time since submit, the knobs
the task was created with and, for edits, whether its sources were downloaded.
`stats()` counts the calls received and the tasks accepted, by prompt too, so
tests can check that nothing was sent twice.
"""

import base64
import random
import re
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

from PIL import Image

from bananaweb import options
from bananaweb.simulator import drawing, knobs, sources

Status = options.UpstreamStatus
UNKNOWN_STATUS = "queued-for-gpu"  # outside the contract, on purpose
PNG_CACHE_SIZE = 64
MAX_TASKS = 10_000  # then the oldest are forgotten, as are old records
OWN_IMAGE_PATH = re.compile(r"/images/([0-9a-f-]{36})\.png")

TERMINAL = {
    "completed": (Status.COMPLETED, None, None),
    "completed_no_image": (Status.COMPLETED, None, None),
    "unknown_status": (Status.COMPLETED, None, None),
    "failed": (
        Status.FAILED,
        "The model refused to draw this prompt (simulated failure)",
        500,
    ),
    "cancelled": (Status.CANCELLED, "The task was cancelled (simulated)", None),
    "timeout": (Status.TIMEOUT, "The task timed out (simulated)", 504),
}


class ReceivedRequest(NamedTuple):
    method: str
    path: str
    body: object  # the parsed JSON body, None without one


class KnobError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Sources:
    """What downloading an edit's image_urls gave: a background or an error."""

    at: float  # time.monotonic()
    background: Image.Image | None = None
    error: str | None = None


@dataclass
class Task:
    task_id: str
    prompt: str
    text: str  # the prompt without its [sim:...] tags
    action: str
    model: str
    aspect_ratio: str
    resolution: str
    image_urls: list[str]
    delay: float
    outcome: str
    shape: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    tagged: dict = field(default_factory=dict)  # knobs set by its prompt's tags
    sources: Sources | None = None  # set once, by the download thread

    @property
    def size(self) -> tuple[int, int]:
        return drawing.image_size(self.aspect_ratio, self.resolution)

    def status_at(self, now: float) -> tuple[str, float | None]:
        """The status at monotonic time `now`, and when the task finished if it has."""
        if self.sources is not None and self.sources.error is not None:
            return Status.FAILED, self.sources.at
        elapsed = now - self.started
        if elapsed < self.delay / 4:
            return Status.PENDING, None
        downloading = self.action == options.Action.EDIT and self.sources is None
        if elapsed < self.delay or downloading:
            if self.outcome == "unknown_status" and elapsed < self.delay / 2:
                return UNKNOWN_STATUS, None
            return Status.PROCESSING, None
        finished = self.started + self.delay
        if self.sources is not None:
            finished = max(finished, self.sources.at)
        return TERMINAL[self.outcome][0], finished


class Simulator:
    """Everything the simulator remembers, shared by the request threads."""

    def __init__(self, config: dict | None = None) -> None:
        config = {**knobs.DEFAULTS, **(config or {})}
        if errors := knobs.knob_errors(config):
            raise KnobError(errors)
        self._defaults = config
        self._config = dict(config)
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._pngs: OrderedDict[str, bytes] = OrderedDict()
        self._requests: deque[ReceivedRequest] = deque(maxlen=MAX_TASKS)
        self._faults_served: Counter[str] = Counter()  # per fault knob
        self._calls: Counter[str] = Counter()
        self._generate_calls_by_prompt: Counter[str] = Counter()
        self._accepted_by_prompt: Counter[str] = Counter()
        self._random = random.Random()
        self.stopping = threading.Event()

    # Knobs and records

    @property
    def config(self) -> dict:
        with self._lock:
            return dict(self._config)

    def configure(self, **values: object) -> dict:
        """Merge `values` into the knobs; KnobError if any is invalid."""
        if errors := knobs.knob_errors(values):
            raise KnobError(errors)
        with self._lock:
            self._config.update(values)
            # A fault set anew starts its count again.
            if {"fault_count", "fault_rate"} & values.keys():
                self._faults_served.clear()
            for name in knobs.FAULT_KNOBS:
                if name in values:
                    self._faults_served.pop(name, None)
            return dict(self._config)

    def reset(self) -> None:
        """Back to the knobs it started with, with no tasks, images or records."""
        with self._lock:
            self._config = dict(self._defaults)
            self._tasks.clear()
            self._pngs.clear()
            self._requests.clear()
            self._faults_served.clear()
            self._calls.clear()
            self._generate_calls_by_prompt.clear()
            self._accepted_by_prompt.clear()

    def record(self, method: str, path: str, body: object) -> None:
        with self._lock:
            self._requests.append(ReceivedRequest(method, path, body))

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def count_call(self, kind: str, prompt: str | None = None) -> None:
        """Count a generate, result or image call (`prompt` without its tags)."""
        with self._lock:
            self._calls[kind] += 1
            if kind == "generate" and prompt is not None:
                self._generate_calls_by_prompt[prompt] += 1

    def stats(self) -> dict:
        """Calls received and tasks accepted since the start or the last reset."""
        with self._lock:
            return {
                "generate_calls": self._calls["generate"],
                "generate_calls_by_prompt": dict(self._generate_calls_by_prompt),
                "accepted": self._accepted_by_prompt.total(),
                "accepted_by_prompt": dict(self._accepted_by_prompt),
                "result_calls": self._calls["result"],
                "image_calls": self._calls["image"],
            }

    def take_fault(self, knob: str, config: dict) -> str | None:
        """The fault this call should act out under `knob`, if any, counted
        against fault_count; None when the call should succeed."""
        fault = config[knob]
        if fault is None:
            return None
        with self._lock:
            rate = config["fault_rate"]
            if rate is not None and self._random.random() >= rate:
                return None
            limit = config["fault_count"]
            if limit is not None and self._faults_served[knob] >= limit:
                return None
            self._faults_served[knob] += 1
        return fault

    def tagged(self, task_id: str) -> dict:
        """The knobs a task's prompt tags set; empty for an unknown task."""
        with self._lock:
            task = self._tasks.get(task_id)
        return dict(task.tagged) if task is not None else {}

    # Tasks

    def create_task(
        self, body: dict, text: str, config: dict, tagged: dict | None = None
    ) -> Task:
        """A new task for a valid request body, with the knobs in `config`
        (`tagged`: those its prompt's tags set, kept for its polls and image)."""
        task = Task(
            task_id=str(uuid.uuid4()),
            prompt=body["prompt"],
            text=text,
            action=body["action"],
            model=body.get("model") or options.DEFAULT_MODEL,
            aspect_ratio=body.get("aspect_ratio") or drawing.DEFAULT_ASPECT_RATIO,
            resolution=body.get("resolution") or "",
            image_urls=list(body.get("image_urls") or []),
            delay=config["delay"],
            outcome=config["task_outcome"],
            shape=config["result_shape"],
            tagged=dict(tagged or {}),
        )
        with self._lock:
            self._tasks[task.task_id] = task
            self._accepted_by_prompt[text] += 1
            if len(self._tasks) > MAX_TASKS:
                del self._tasks[next(iter(self._tasks))]
        if task.action == options.Action.EDIT:
            threading.Thread(
                target=self._download_sources, args=(task,), daemon=True
            ).start()
        return task

    def task_result(self, task_id: str, base_url: str) -> dict | None:
        """The TaskResult body for a task, None for an unknown one."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            return None
        status, finished = task.status_at(time.monotonic())
        body: dict = {
            "taskId": task.task_id,
            "status": status,
            "result": None,
            "createdAt": _iso(task.created_at),
        }
        if finished is not None:
            body["finishedAt"] = _iso(
                task.created_at + timedelta(seconds=finished - task.started)
            )
        if status == Status.COMPLETED:
            body["result"] = self._result(task, base_url)
        elif task.sources is not None and task.sources.error is not None:
            body.update(errorMessage=task.sources.error, errorCode=400)
        elif finished is not None:
            _, message, code = TERMINAL[task.outcome]
            body["errorMessage"] = message
            if code is not None:
                body["errorCode"] = code
        body["traceId"] = uuid.uuid4().hex
        return body

    def image_png(self, task_id: str) -> bytes | None:
        """The PNG of a completed task, drawn on first use; None for any other."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task_id in self._pngs:
                self._pngs.move_to_end(task_id)
                return self._pngs[task_id]
        if task is None or task.outcome == "completed_no_image":
            return None
        if task.status_at(time.monotonic())[0] != Status.COMPLETED:
            return None
        png = drawing.draw_png(
            text=task.text,
            model=task.model,
            aspect_ratio=task.aspect_ratio,
            resolution=task.resolution,
            source=task.sources.background if task.sources else None,
        )
        with self._lock:
            self._pngs[task_id] = png
            while len(self._pngs) > PNG_CACHE_SIZE:
                self._pngs.popitem(last=False)
        return png

    def _result(self, task: Task, base_url: str) -> dict:
        url = f"{base_url}/images/{task.task_id}.png"
        width, height = task.size
        about = {"model": task.model, "prompt": task.prompt}
        if task.outcome == "completed_no_image":
            return {"images": [], **about}
        match task.shape:
            case "nested":
                image = {"uri": url, "width": width, "height": height}
                return {"data": {"outputs": [{"image": image}]}, **about}
            case "url_string":
                return {"imageUrl": url, **about}
            case "base64":
                encoded = base64.b64encode(self.image_png(task.task_id)).decode()
                return {
                    "images": [{"b64_json": encoded, "mime_type": "image/png"}],
                    **about,
                }
        return {"images": [{"url": url, "width": width, "height": height}], **about}

    def _download_sources(self, task: Task) -> None:
        """Fetch and decode every image_urls entry once the task starts processing."""
        if self.stopping.wait(task.delay / 4):
            return
        first = None
        for index, url in enumerate(task.image_urls):
            try:
                image = drawing.decode(self._source_bytes(url))
            except (sources.SourceError, ValueError) as exc:
                error = f"Could not download image_urls[{index}]: {exc}"
                task.sources = Sources(at=time.monotonic(), error=error)
                return
            if first is None:
                first = image
        background = drawing.background(first, task.size)
        task.sources = Sources(at=time.monotonic(), background=background)

    def _source_bytes(self, url: str) -> bytes:
        # Our own images are read from memory, whatever host name the URL uses.
        if match := OWN_IMAGE_PATH.fullmatch(urlsplit(url).path):
            with self._lock:
                own = match[1] in self._tasks
            if own:
                if (png := self.image_png(match[1])) is None:
                    raise sources.SourceError("the server answered 404")
                return png
        return sources.download(url)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
