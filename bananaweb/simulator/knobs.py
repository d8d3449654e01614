"""The simulator's fault knobs: their defaults, their valid values and prompt tags.

Knobs are set at start (flags, environment), through `/_simulator/config`, or for
one request by a tag in the prompt: `[sim:fail]`, `[sim:503]` (submit fault),
`[sim:result-503]` (fault on polls of that task), `[sim:image-503]` (fault on
downloads of its image). Tags are listed in `PROMPT_TAGS`.

Faults, on submit (S), poll (R) and image download (I):

- `500` `502` `503` `504` `401` `403` (S, R, I): that status, a JSON error body.
- `429`, `503_retry_after` (S, R, I): 429 or 503 with `Retry-After: <retry_after>`
  (the plain `503` sends none).
- `slow` (S, R, I): wait `slow_seconds` first, then answer normally; a submit's
  task is created even though the client gave up.
- `malformed` (S, R): an HTML body with the success status; `no_task_id` (S, R):
  an empty JSON object.
- `cutoff` (S, R, I): the success status with a Content-Length larger than the
  body sent, then the connection closes; a submit's task is created.
- `reset` (S, R, I): the request is read, then the connection is reset with no
  answer; a submit creates no task.
- `500_after_create` (S): the task is created (and counted as accepted), then 500.
- `oversized` (I): an `image/png` body of 10 MB + 1 byte; `not_image` (I): HTML.

`fault_count` N makes a fault apply to the first N calls it matches (counted per
knob: submit, result, image; restarted when that knob or `fault_count` is set),
then calls succeed; `fault_rate` p applies it to each call with probability p.
"""

import json
import re

STATUS_FAULTS = ("500", "502", "503", "504", "429", "401", "403", "503_retry_after")
FAULTS = (*STATUS_FAULTS, "slow", "malformed", "no_task_id", "cutoff", "reset")
SUBMIT_FAULTS = (*FAULTS, "500_after_create")
RESULT_FAULTS = FAULTS
IMAGE_FAULTS = (*STATUS_FAULTS, "slow", "cutoff", "reset", "oversized", "not_image")
FAULT_KNOBS = ("submit_fault", "result_fault", "image_fault")
OUTCOMES = (
    "completed",
    "failed",
    "cancelled",
    "timeout",
    "unknown_status",
    "completed_no_image",
)
SHAPES = ("images_list", "nested", "url_string", "base64")

DEFAULTS: dict[str, object] = {
    "delay": 4.0,  # seconds from submit to a terminal status
    "submit_fault": None,
    "result_fault": None,
    "image_fault": None,
    "fault_count": None,  # None: every matching call
    "fault_rate": None,  # None: always
    "task_outcome": "completed",
    "result_shape": "images_list",
    "retry_after": 2,  # seconds, sent with the 429 fault
    "slow_seconds": 40.0,  # past the client's read timeout
}
HELP: dict[str, str] = {
    "delay": "seconds from submit to a terminal status",
    "submit_fault": "fault on POST /gemini/image/generate",
    "result_fault": "fault on GET /gemini/task/result",
    "image_fault": "fault on GET /images/<task>.png",
    "fault_count": "faults apply to the first N matching calls only (per knob)",
    "fault_rate": "faults apply with this probability, 0 to 1",
    "task_outcome": "how tasks end",
    "result_shape": "where the image sits in a completed result",
    "retry_after": "seconds sent in Retry-After with the 429 fault",
    "slow_seconds": "how long the slow fault waits",
}
CHOICES: dict[str, tuple] = {
    "submit_fault": (None, *SUBMIT_FAULTS),
    "result_fault": (None, *RESULT_FAULTS),
    "image_fault": (None, *IMAGE_FAULTS),
    "task_outcome": OUTCOMES,
    "result_shape": SHAPES,
}
SECONDS = ("delay", "retry_after", "slow_seconds")

PROMPT_TAGS: dict[str, dict[str, object]] = {
    "fail": {"task_outcome": "failed"},
    "cancel": {"task_outcome": "cancelled"},
    "timeout": {"task_outcome": "timeout"},
    "unknown_status": {"task_outcome": "unknown_status"},
    "no_image": {"task_outcome": "completed_no_image"},
    **{fault: {"submit_fault": fault} for fault in SUBMIT_FAULTS},
    **{f"result-{fault}": {"result_fault": fault} for fault in RESULT_FAULTS},
    **{f"image-{fault}": {"image_fault": fault} for fault in IMAGE_FAULTS},
    **{shape: {"result_shape": shape} for shape in SHAPES},
    "fast": {"delay": 0.5},
}
TAG = re.compile(r"\[sim:([\w-]+)\]")


def knob_errors(values: dict) -> dict[str, str]:
    """What is wrong with these knob values, as {knob: message}; empty if nothing."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if name in CHOICES:
            if value not in CHOICES[name]:
                allowed = ", ".join(json.dumps(choice) for choice in CHOICES[name])
                errors[name] = f"{name} must be one of: {allowed}."
        elif name in SECONDS:
            if not number:
                errors[name] = f"{name} must be a number of seconds."
            elif value < 0:
                errors[name] = f"{name} can't be negative."
        elif name == "fault_count":
            whole = number and float(value).is_integer() and value >= 0
            if value is not None and not whole:
                errors[name] = "fault_count must be null or a whole number, 0 or more."
        elif name == "fault_rate":
            if value is not None and not (number and 0 <= value <= 1):
                errors[name] = "fault_rate must be null or a number from 0 to 1."
        else:
            errors[name] = f"{name} is not a simulator knob."
    return errors


def from_text(name: str, text: str) -> object:
    """A knob's value from a command-line flag or environment variable."""
    if text.lower() in ("", "none", "null") and name not in SECONDS:
        return None
    if name in (*SECONDS, "fault_count", "fault_rate"):
        try:
            return int(text) if name == "fault_count" else float(text)
        except ValueError:
            return text  # left for knob_errors to report
    return text


def prompt_tags(prompt: str) -> tuple[str, dict[str, object]]:
    """The prompt without its `[sim:...]` tags, and the knobs those tags set."""
    overrides: dict[str, object] = {}
    for name in TAG.findall(prompt):
        overrides.update(PROMPT_TAGS.get(name.lower(), {}))
    return " ".join(TAG.sub(" ", prompt).split()), overrides
