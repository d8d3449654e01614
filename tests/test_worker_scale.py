"""The task workers at scale (issue 14): several `run_worker` processes on one
PostgreSQL share the queue without taking a task twice (django-tasks-db claims a
row with SELECT … FOR UPDATE SKIP LOCKED), a killed worker's request is finished
by another, and the queue's table is pruned by a periodic job."""

import base64
import json
import time
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from bananaweb import pipeline
from bananaweb.management.commands.start_background import PERIODIC
from bananaweb.models import ImageRequest
from bananaweb.tasks import TASKS, task_results_prune_task
from tests.factories import ImageRequestFactory, png_bytes
from tests.load.stack import (
    Stack,
    _running_tasks,
    postgres_admin_url,
    throwaway_database,
)
from tests.stack_helpers import require_postgres, wait_until

DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TASK_COUNT = 60


def task_path(step) -> str:
    task = TASKS[step]
    return f"{task.func.__module__}.{task.func.__qualname__}"


def task_row(status: str, *, age: timedelta, path: str = "some.task") -> DBTaskResult:
    then = timezone.now() - age
    finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    return DBTaskResult.objects.create(
        task_path=path,
        status=status,
        args_kwargs={"args": [], "kwargs": {}},
        backend_name="default",
        run_after=then,
        started_at=None if status == TaskResultStatus.READY else then,
        finished_at=then if finished else None,
        exception_class_path="",
        traceback="",
    )


# --- The periodic jobs ----------------------------------------------------------------


@override_settings(TASKS=DATABASE_BACKEND)
def test_start_background_keeps_one_run_of_each_periodic_job_however_far_off(
    transactional_db,
):
    call_command("start_background")
    # Each job has run and booked its next round, not due yet; a release now
    # must not start a second chain of it.
    DBTaskResult.objects.update(run_after=timezone.now() + timedelta(minutes=30))
    call_command("start_background")
    waiting = Counter(
        DBTaskResult.objects.filter(status=TaskResultStatus.READY).values_list(
            "task_path", flat=True
        )
    )
    assert waiting == {task_path(step): 1 for step in PERIODIC}


@override_settings(TASKS=DATABASE_BACKEND, BANANAWEB_TASK_RESULT_RETENTION_DAYS=7)
def test_pruning_deletes_only_long_finished_and_long_abandoned_rows(
    transactional_db, django_capture_on_commit_callbacks
):
    kept = [
        task_row(TaskResultStatus.SUCCESSFUL, age=timedelta(days=6)),
        task_row(TaskResultStatus.FAILED, age=timedelta(days=6)),
        task_row(TaskResultStatus.RUNNING, age=timedelta(days=6)),
        # Waiting, however long: a task not run yet is never lost to pruning.
        task_row(TaskResultStatus.READY, age=timedelta(days=30)),
    ]
    pruned = [
        task_row(TaskResultStatus.SUCCESSFUL, age=timedelta(days=8)),
        task_row(TaskResultStatus.FAILED, age=timedelta(days=8)),
        # Left running by a worker killed a week ago.
        task_row(TaskResultStatus.RUNNING, age=timedelta(days=8)),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        task_results_prune_task.call()
    remaining = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert {row.pk for row in kept} <= remaining
    assert not {row.pk for row in pruned} & remaining
    # It booked its own next round, an hour on.
    [next_run] = DBTaskResult.objects.filter(
        task_path=task_path(PERIODIC[1]), status=TaskResultStatus.READY
    )
    assert next_run.run_after > timezone.now() + timedelta(minutes=59)


# --- Two runs of one step -------------------------------------------------------------


def stored_files(folder: str) -> list[str]:
    _, names = default_storage.listdir(folder)
    return sorted(f"{folder}/{name}" for name in names)


def test_a_download_run_that_loses_the_race_leaves_no_file_behind(
    user, upstream_token, monkeypatch, settings, tmp_path
):
    """A step the reconciler scheduled again while the first run was only slow: both
    download, one saves. The other's files must not stay in the bucket unnamed."""
    settings.MEDIA_ROOT = str(tmp_path)  # only this test's files
    image_request = ImageRequestFactory(
        user=user,
        upstream_token=upstream_token,
        status=ImageRequest.Status.IN_PROGRESS,
        upstream_task_id="up-1",
        upstream_status="completed",
        submitted_at=timezone.now(),
        result={"images": [{"b64_json": base64.b64encode(png_bytes()).decode()}]},
    )
    build = pipeline._image_build
    raced = []

    def other_run_finishes_first(*args, **kwargs):
        if not raced:
            raced.append(True)
            pipeline.image_request_fetch_images(image_request_id=image_request.pk)
        return build(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_image_build", other_run_finishes_first)
    pipeline.image_request_fetch_images(image_request_id=image_request.pk)

    image_request.refresh_from_db()
    assert image_request.status == ImageRequest.Status.COMPLETED
    image = image_request.images.get()
    folder = f"images/{user.pk}/{image_request.pk}"
    assert stored_files(folder) == sorted([image.file.name, image.thumbnail.name])


# --- Several workers on one PostgreSQL ------------------------------------------------


@pytest.fixture
def postgres_stack(tmp_path):
    """Start a Stack on a throwaway PostgreSQL database: `start(**options)`."""
    require_postgres()
    database = throwaway_database(
        "postgresql",
        tmp_path,
        label="workers",
        admin_url=postgres_admin_url(ADMIN_URL),
    )
    started: list[Stack] = []

    def start(**options) -> Stack:
        stack = Stack(tmp_path, database.url, **options)
        started.append(stack)
        stack.start()
        return stack

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()
        database.drop()


@pytest.mark.slow
def test_three_workers_run_each_of_sixty_tasks_exactly_once(postgres_stack, tmp_path):
    record = tmp_path / "runs.txt"
    record.touch()
    stack = postgres_stack(
        web_processes=0, task_workers=3, env={"WORKER_SCALE_RECORD": str(record)}
    )
    # All at once, in one transaction: the three workers race for every row.
    stack.python(
        "-c",
        "import django; django.setup()\n"
        "from django.db import transaction\n"
        "from tests.worker_tasks import record_run_task\n"
        "with transaction.atomic():\n"
        f"    for n in range({TASK_COUNT}): record_run_task.enqueue(n)\n",
    )

    def runs() -> list[tuple[int, int]]:
        return [
            (int(number), int(pid))
            for number, pid in (
                line.split() for line in record.read_text().split("\n") if line
            )
        ]

    wait_until(lambda: len(runs()) >= TASK_COUNT, 60, "the workers to run the tasks")
    time.sleep(1)  # a task taken twice would show up now
    stack.check_alive()
    times_run = Counter(number for number, _ in runs())
    assert times_run == {n: 1 for n in range(TASK_COUNT)}
    # Shared: more than one worker took tasks.
    assert len({pid for _, pid in runs()}) >= 2, Counter(pid for _, pid in runs())
    rows = json.loads(
        stack.python(
            "-c",
            "import django, json; django.setup()\n"
            "from django_tasks_db.models import DBTaskResult\n"
            "print(json.dumps(list(DBTaskResult.objects.filter(\n"
            "    task_path='tests.worker_tasks.record_run_task'\n"
            ").values_list('status', 'worker_ids'))))\n",
        )
    )
    assert len(rows) == TASK_COUNT
    # Each row claimed by one worker, once.
    assert all(status == "SUCCESSFUL" and len(ids) == 1 for status, ids in rows), rows


@pytest.mark.slow
def test_a_killed_workers_download_is_finished_by_another_worker(postgres_stack):
    stack = postgres_stack(
        web_processes=1, web_workers=1, web_threads=2, task_workers=2
    )
    [account] = stack.seed_users(1, with_tokens=1, password="scale-test-pw-123")
    headers = {"Authorization": f"Bearer {account['token']}"}
    stack.simulator("POST", "/_simulator/config", {"image_fault": "slow"})
    prompt = "Downloaded by the worker that was not killed"
    answer = requests.post(
        f"{stack.url}/api/gemini/image/generate",
        json={
            "prompt": prompt,
            "action": "generate",
            "num_images": 1,
            "aspect_ratio": "1:1",
            "model": "nano-banana-fast",
        },
        headers=headers,
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    task_id = answer.json()["taskId"]

    # Find the worker in the middle of the download, and SIGKILL it.
    with _running_tasks(stack.database_url) as running:

        def downloading() -> int | None:
            for index, worker_id in stack.worker_ids.items():
                if any(
                    path.endswith("fetch_images_task") for path in running(worker_id)
                ):
                    return index + 1  # truthy for wait_until
            return None

        killed = wait_until(downloading, 60, "a worker to start the download") - 1
        wait_until(
            lambda: (stack.simulator_stats() or {}).get("image_calls"),
            30,
            "the download to reach the simulator",
        )
        stack.kill_worker(killed)
    stack.simulator("POST", "/_simulator/config", {"image_fault": None})
    survivor = stack.worker_ids[1 - killed]

    def result() -> dict | None:
        body = requests.get(
            f"{stack.url}/api/gemini/task/result",
            params={"taskId": task_id},
            headers=headers,
            timeout=30,
        ).json()
        return (
            body
            if body.get("status") in ("completed", "failed", "cancelled", "timeout")
            else None
        )

    body = wait_until(result, 60, "the other worker to finish the request", poll=0.5)
    assert body["status"] == "completed", body
    # Never restarted: the one left did it, and the upstream saw one submission.
    assert stack.worker_starts[killed] == 1
    fetches = json.loads(
        stack.python(
            "-c",
            "import django, json; django.setup()\n"
            "from django_tasks_db.models import DBTaskResult\n"
            "print(json.dumps(list(DBTaskResult.objects.filter(\n"
            "    task_path__endswith='fetch_images_task', status='SUCCESSFUL'\n"
            ").values_list('worker_ids', flat=True))))\n",
        )
    )
    assert fetches == [[survivor]]
    assert stack.simulator_stats()["accepted_by_prompt"] == {prompt: 1}
    rows = stack.requests_in_db()
    assert [(row["prompt"], row["status"]) for row in rows] == [(prompt, "completed")]
