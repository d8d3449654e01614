"""Prepare a fresh start: the first upstream token and the periodic jobs.

Run before the workers on every start (`make run` through runstack, the
Procfile's release step); running it twice changes nothing.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from bananaweb import tokens
from bananaweb.followups import FollowUp, Step
from bananaweb.tasks import TASKS, schedule

PERIODIC = (Step.RECONCILE,)


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
                if not DBTaskResult.objects.ready().filter(task_path=path).exists():
                    schedule(FollowUp(step))
                    self.stdout.write(f"Scheduled {task.name}.")
