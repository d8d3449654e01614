"""Background tasks: each loads by id and calls one service, which schedules what comes next."""

from datetime import timedelta

from django.tasks import task
from django.utils import timezone

from bananaweb import services, tokens


@task()
def image_request_submit_task(image_request_id: int) -> None:
    services.image_request_sweep_stale()
    services.image_request_submit(image_request_id=image_request_id)


@task()
def image_request_poll_task(image_request_id: int) -> None:
    services.image_request_poll(image_request_id=image_request_id)


@task()
def image_request_fetch_images_task(image_request_id: int) -> None:
    services.image_request_fetch_images(image_request_id=image_request_id)


@task()
def token_recheck_task(token_id: int) -> None:
    if (delay := tokens.token_recheck(token_id=token_id)) is not None:
        token_recheck_task.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue(token_id)
