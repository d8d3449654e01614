"""What a background step asks to run next.

The pipeline and the token services return follow-ups instead of enqueueing, so
that they need not import tasks.py (which imports them); tasks.schedule() is the
one place that turns a follow-up into an enqueued task.
"""

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    SUBMIT = "submit"
    POLL = "poll"
    FETCH_IMAGES = "fetch images"
    RECONCILE = "reconcile"
    CHECK_TOKEN = "check token"
    RECHECK_TOKEN = "recheck token"
    PRUNE_TASK_RESULTS = "prune task results"


@dataclass(frozen=True)
class FollowUp:
    step: Step
    args: tuple[int, ...] = ()  # ids only: task arguments round-trip through JSON
    delay: float = 0  # seconds from now
