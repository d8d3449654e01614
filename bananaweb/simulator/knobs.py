"""The simulator's fault knobs: their defaults, their valid values and prompt tags.

Knobs are set at start (flags, environment), through `/_simulator/config`, or for
one request by a tag such as `[sim:fail]` in the prompt.
"""

import json
import re

FAULTS = ("500", "503", "429", "slow", "malformed", "no_task_id")
OUTCOMES = ("completed", "failed", "cancelled", "timeout", "unknown_status")
SHAPES = ("images_list", "nested", "url_string", "base64")

DEFAULTS: dict[str, object] = {
    "delay": 4.0,  # seconds from submit to a terminal status
    "submit_fault": None,
    "result_fault": None,
    "task_outcome": "completed",
    "result_shape": "images_list",
    "retry_after": 2,  # seconds, sent with the 429 fault
    "slow_seconds": 40.0,  # past the client's read timeout
}
CHOICES: dict[str, tuple] = {
    "submit_fault": (None, *FAULTS),
    "result_fault": (None, *FAULTS),
    "task_outcome": OUTCOMES,
    "result_shape": SHAPES,
}
SECONDS = ("delay", "retry_after", "slow_seconds")

PROMPT_TAGS: dict[str, dict[str, object]] = {
    "fail": {"task_outcome": "failed"},
    "cancel": {"task_outcome": "cancelled"},
    "timeout": {"task_outcome": "timeout"},
    "unknown_status": {"task_outcome": "unknown_status"},
    **{fault: {"submit_fault": fault} for fault in FAULTS},
    **{shape: {"result_shape": shape} for shape in SHAPES},
    "fast": {"delay": 0.5},
}
TAG = re.compile(r"\[sim:([\w-]+)\]")


def knob_errors(values: dict) -> dict[str, str]:
    """What is wrong with these knob values, as {knob: message}; empty if nothing."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name in CHOICES:
            if value not in CHOICES[name]:
                allowed = ", ".join(json.dumps(choice) for choice in CHOICES[name])
                errors[name] = f"{name} must be one of: {allowed}."
        elif name in SECONDS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors[name] = f"{name} must be a number of seconds."
            elif value < 0:
                errors[name] = f"{name} can't be negative."
        else:
            errors[name] = f"{name} is not a simulator knob."
    return errors


def from_text(name: str, text: str) -> object:
    """A knob's value from a command-line flag or environment variable."""
    if name in SECONDS:
        try:
            return float(text)
        except ValueError:
            return text  # left for knob_errors to report
    return None if text.lower() in ("", "none", "null") else text


def prompt_tags(prompt: str) -> tuple[str, dict[str, object]]:
    """The prompt without its `[sim:...]` tags, and the knobs those tags set."""
    overrides: dict[str, object] = {}
    for name in TAG.findall(prompt):
        overrides.update(PROMPT_TAGS.get(name.lower(), {}))
    return " ".join(TAG.sub(" ", prompt).split()), overrides
