"""What a load or concurrency run asks of its stack's database, as JSON on stdout.

    python -m tests.load.dbtool users --count 50 --tokens 25 --password PW
    python -m tests.load.dbtool requests
    python -m tests.load.dbtool tasks
    python -m tests.load.dbtool images
    python -m tests.load.dbtool diagnose

Run by `Stack` with the stack's environment (bananaweb.settings, its DATABASE_URL),
never inside the test process, whose Django is configured for the suite.
"""

import argparse
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bananaweb.settings")
django.setup()

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Count
from django_tasks_db.models import DBTaskResult

from bananaweb.gateway import services as gateway_services
from bananaweb.models import GeneratedImage, ImageRequest


def users(count: int, tokens: int, password: str) -> list[dict]:
    """Users load000…; the first `tokens` of them with a personal API token."""
    User = get_user_model()
    # One hash for all: hashing is slow on purpose, and 50 of them would take a minute.
    hashed = make_password(password)
    names = [f"load{index:03d}" for index in range(count)]
    with transaction.atomic():
        User.objects.bulk_create(
            [User(username=name, password=hashed) for name in names]
        )
        accounts = []
        for index, user in enumerate(
            User.objects.filter(username__in=names).order_by("username")
        ):
            raw = None
            if index < tokens:
                _, raw = gateway_services.api_token_create(user=user, name="load run")
            accounts.append({"username": user.username, "token": raw})
    return sorted(accounts, key=lambda account: account["username"])


def requests() -> list[dict]:
    return list(
        ImageRequest.objects.order_by("pk").values(
            "pk",
            "prompt",
            "status",
            "error_code",
            "error_message",
            "source",
            "upstream_task_id",
            "due_at",
        )
    )


def images() -> list[dict]:
    """Every stored image: its request, and the names of its file and thumbnail in
    the media storage (a bucket's keys, less AWS_LOCATION)."""
    return [
        {"request": request_pk, "file": file, "thumbnail": thumbnail}
        for request_pk, file, thumbnail in GeneratedImage.objects.order_by(
            "pk"
        ).values_list("image_request_id", "file", "thumbnail")
    ]


def tasks() -> dict:
    """Task runs by status, and the running or failed ones by task (and exception)."""
    by_status = dict(
        DBTaskResult.objects.values_list("status").annotate(n=Count("id")).order_by()
    )
    running = DBTaskResult.objects.running().values_list("task_path", flat=True)
    failed = DBTaskResult.objects.failed().values_list(
        "task_path", "exception_class_path"
    )
    return {
        "by_status": by_status,
        "running": sorted(path.rsplit(".", 1)[-1] for path in running),
        "failed": sorted(
            f"{path.rsplit('.', 1)[-1]}: {exception}" for path, exception in failed
        ),
    }


def diagnose() -> dict:
    """For a failed run: the requests still in flight, with everything about their
    next step, and the task runs not yet finished or recently run."""
    fields = [field.name for field in ImageRequest._meta.concrete_fields]
    stuck = list(
        ImageRequest.objects.filter(status__in=ImageRequest.IN_FLIGHT)
        .order_by("pk")
        .values(*(name for name in fields if name not in ("result",)))[:20]
    )
    task_fields = (
        "task_path",
        "status",
        "args_kwargs",
        "enqueued_at",
        "run_after",
        "started_at",
        "finished_at",
        "worker_ids",
        "exception_class_path",
    )
    unfinished = DBTaskResult.objects.exclude(status__in=["SUCCESSFUL"]).order_by(
        "enqueued_at"
    )
    recent = DBTaskResult.objects.order_by("-enqueued_at")[:30]
    return {
        "stuck_requests": stuck,
        "unfinished_task_runs": list(unfinished.values(*task_fields)[:50]),
        "latest_task_runs": list(recent.values(*task_fields)),
        "by_task": list(
            DBTaskResult.objects.values("task_path", "status")
            .annotate(n=Count("id"))
            .order_by("task_path", "status")
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.load.dbtool")
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser("users")
    seed.add_argument("--count", type=int, required=True)
    seed.add_argument("--tokens", type=int, default=0)
    seed.add_argument("--password", required=True)
    commands.add_parser("requests")
    commands.add_parser("tasks")
    commands.add_parser("images")
    commands.add_parser("diagnose")
    args = parser.parse_args(argv)
    if args.command == "users":
        result = users(args.count, args.tokens, args.password)
    elif args.command == "requests":
        result = requests()
    elif args.command == "tasks":
        result = tasks()
    elif args.command == "images":
        result = images()
    else:
        result = diagnose()
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main()
