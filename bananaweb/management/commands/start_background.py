"""Prepare a fresh start: the first upstream token and the periodic jobs.

Run before the workers on every start (`make run` through runstack, the
Procfile's release step); running it twice changes nothing.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from bananaweb import tokens
from bananaweb.followups import FollowUp, Step
from bananaweb.tasks import TASKS, schedule

PERIODIC = (Step.RECONCILE, Step.PRUNE_TASK_RESULTS)


class Command(BaseCommand):
    help = (
        "Seed the first upstream token from MOUNTSEA_API_TOKEN and schedule the "
        "periodic jobs, unless already done."
    )

    def handle(self, *args, **options) -> None:
        if token := tokens.token_seed_from_environment():
            self.stdout.write(f"Added the upstream token “{token.name}”.")
        with transaction.atomic():
            for step in PERIODIC:
                task = TASKS[step]
                path = f"{task.func.__module__}.{task.func.__qualname__}"
                # A job waiting for its next round counts, however far off that
                # is: each run books the next, so one waiting row is the schedule.
                waiting = DBTaskResult.objects.filter(
                    task_path=path, status=TaskResultStatus.READY
                )
                if not waiting.exists():
                    schedule(FollowUp(step))
                    self.stdout.write(f"Scheduled {task.name}.")
