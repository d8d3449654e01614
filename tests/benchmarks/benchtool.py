"""What `make bench` asks of its site's code, as JSON on stdout: the paths of
the lines and the upstream-poll budget, by the product's own URL names and schedule.

    python -m tests.benchmarks.benchtool facts --request 7 --image 7 --in-flight 9

Run by tests/benchmarks/run.py with the bench site's environment (its settings and
DATABASE_URL), never inside the runner, which configures no Django.
"""

import argparse
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.benchmarks.settings")
django.setup()

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from bananaweb import pipeline

PAGE_POLL = "request-updates"


def paths(*, request: int, image: int, in_flight: int) -> dict:
    """The URLs the lines drive, by their names; `page_poll` is None until the
    page's one poll exists (then each card in flight polls its own)."""
    try:
        page_poll = reverse(PAGE_POLL)
    except NoReverseMatch:
        page_poll = None
    return {
        "login": reverse("login"),
        "floor": reverse("bench-floor"),
        "detail": reverse("request-detail", args=[request]),
        "thumbnail": reverse("image-file", args=[request, image, "thumbnail"]),
        "card": reverse("request-card", args=[in_flight]),
        "gateway": reverse("gateway-task-result"),
        "submit": reverse("request-create"),
        "page_poll": page_poll,
    }


def poll_budget(seconds: float) -> dict:
    """The result polls of a task the upstream finishes after `seconds`, by the
    pipeline's own schedule: the first poll when it is accepted
    (BANANAWEB_POLL_FIRST_DELAY), then each after pipeline._next_poll_delay of the
    polls so far; the first poll at or past `seconds` sees it finished."""
    at = [settings.BANANAWEB_POLL_FIRST_DELAY]
    while at[-1] < seconds:
        at.append(at[-1] + pipeline._next_poll_delay(len(at)))
    return {"polls": len(at), "at": [round(moment, 2) for moment in at]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.benchtool")
    commands = parser.add_subparsers(dest="command", required=True)
    facts = commands.add_parser("facts", help="the lines' paths and the poll budget")
    facts.add_argument("--request", type=int, required=True)
    facts.add_argument("--image", type=int, required=True)
    facts.add_argument("--in-flight", type=int, required=True)
    facts.add_argument("--seconds", type=float, default=60, help="the task's length")
    args = parser.parse_args(argv)
    result = {
        "paths": paths(
            request=args.request, image=args.image, in_flight=args.in_flight
        ),
        "poll_budget": poll_budget(args.seconds),
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
