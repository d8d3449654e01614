"""Background tasks: each loads by id, calls one service and schedules what it
returns. schedule() is the one way anything is enqueued."""

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.tasks import Task, task
from django.utils import timezone

from bananaweb import pipeline, tokens
from bananaweb.followups import FollowUp, Step


@task()
def image_request_submit_task(image_request_id: int) -> None:
    schedule(*pipeline.image_request_submit(image_request_id=image_request_id))


@task()
def image_request_poll_task(image_request_id: int) -> None:
    schedule(*pipeline.image_request_poll(image_request_id=image_request_id))


@task()
def image_request_fetch_images_task(image_request_id: int) -> None:
    schedule(*pipeline.image_request_fetch_images(image_request_id=image_request_id))


@task()
def image_request_reconcile_task() -> None:
    """Its own job on its own schedule: the next run is booked before this one works."""
    schedule(FollowUp(Step.RECONCILE, delay=settings.BANANAWEB_RECONCILE_INTERVAL))
    schedule(*pipeline.image_request_reconcile())


@task()
def task_results_prune_task() -> None:
    """Its own job on its own schedule, like the reconciler."""
    schedule(
        FollowUp(Step.PRUNE_TASK_RESULTS, delay=settings.BANANAWEB_TASK_PRUNE_INTERVAL)
    )
    schedule(*pipeline.task_results_prune())


@task()
def token_check_task(token_id: int, actor_id: int | None = None) -> None:
    schedule(*tokens.token_check(token_id=token_id, actor_id=actor_id))


@task()
def token_recheck_task(token_id: int) -> None:
    schedule(*tokens.token_recheck(token_id=token_id))


TASKS: dict[Step, Task] = {
    Step.SUBMIT: image_request_submit_task,
    Step.POLL: image_request_poll_task,
    Step.FETCH_IMAGES: image_request_fetch_images_task,
    Step.RECONCILE: image_request_reconcile_task,
    Step.CHECK_TOKEN: token_check_task,
    Step.RECHECK_TOKEN: token_recheck_task,
    Step.PRUNE_TASK_RESULTS: task_results_prune_task,
}


def schedule(*follow_ups: FollowUp) -> None:
    """Enqueue each follow-up once the current transaction commits, after its delay."""
    for follow_up in follow_ups:
        task_ = TASKS[follow_up.step]
        if follow_up.delay > 0:
            run_after = timezone.now() + timedelta(seconds=follow_up.delay)
            task_ = task_.using(run_after=run_after)
        transaction.on_commit(partial(task_.enqueue, *follow_up.args))
