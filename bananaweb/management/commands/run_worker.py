"""`manage.py run_worker`: django-tasks-db's `db_worker`, outliving database outages.

`db_worker` ends with an OperationalError as soon as the database refuses a
connection or drops one. This worker closes its connections instead, says so in
one line, waits for the database with backoff and carries on. A task that was
running when the connection went stays as the database last saw it; the
reconciler reschedules its request's step.

While it runs, a thread records a heartbeat every few seconds (health.py), so
that /readyz can tell that some worker is taking tasks.
"""

import logging
import os
import threading
import time

from django.core.management.base import CommandError
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from bananaweb import health

logger = logging.getLogger("bananaweb.worker")

FIRST_DELAY = 0.5
MAX_DELAY = 10.0
# A run that lasted this long was a recovery: the next outage starts the backoff over.
STABLE_SECONDS = 30.0
DATABASE_ERRORS = (OperationalError, InterfaceError)


def close_connections() -> None:
    """Drop every connection, broken ones included, without raising."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except DATABASE_ERRORS:
            pass  # close() forgets a broken connection even when closing it fails


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class Worker(db_worker.Worker):
    """db_worker's loop, re-entered after the database comes back."""

    def run(self) -> None:
        stop_beating = threading.Event()
        heartbeat = threading.Thread(
            target=self.beat, args=(stop_beating,), name="heartbeat", daemon=True
        )
        heartbeat.start()
        try:
            self.run_until_stopped()
        finally:
            stop_beating.set()
            heartbeat.join(timeout=5)

    def beat(self, stop: threading.Event) -> None:
        """Record a heartbeat every few seconds, on this thread's own connection,
        through database outages; take it back when the worker stops."""
        while True:
            try:
                health.worker_heartbeat(worker_id=self.worker_id)
            except DatabaseError as error:
                # An outage (the main loop says so), or no table yet before migrate.
                logger.debug("Heartbeat not recorded: %s", one_line(error))
            close_connections()  # this thread's only: nothing held between beats
            if stop.wait(health.HEARTBEAT_SECONDS):
                break
        try:
            health.worker_gone(worker_id=self.worker_id)
        except DatabaseError:
            pass  # its row ages out of /readyz's minute anyway
        close_connections()

    def run_until_stopped(self) -> None:
        delay = FIRST_DELAY
        while self.running:
            started = time.monotonic()
            try:
                super().run()
                return
            except DATABASE_ERRORS as error:
                close_connections()
                if time.monotonic() - started >= STABLE_SECONDS:
                    delay = FIRST_DELAY
                logger.warning(
                    "Database unavailable (%s): waiting for it, retrying from %.1f s "
                    "up to %.0f s apart.",
                    one_line(error),
                    delay,
                    MAX_DELAY,
                )
            # Once it is back, db_worker's startup delay (up to 1 s, random) spreads
            # out the workers that all waited for it.
            delay = self.wait_for_database(delay)

    def wait_for_database(self, delay: float) -> float:
        """Sleep with backoff until a connection opens; the next delay to use."""
        connection = connections[DBTaskResult.objects.db]
        while self.running:
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            try:
                connection.ensure_connection()
            except DATABASE_ERRORS as error:
                close_connections()
                logger.debug("Database still unavailable: %s", one_line(error))
            else:
                logger.warning("Database reachable again: carrying on.")
                break
        return delay


class Command(db_worker.Command):
    help = (
        "Run a database background worker that waits out database outages "
        "(db_worker's options)."
    )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options,
    ) -> None:
        # db_worker.Command.handle, building this module's Worker.
        self.configure_logging(verbosity)
        if reload and batch:
            logger.warning("--reload and --batch cannot be combined: not reloading.")
            reload = False
        queue_names = queue_name.split(",")
        excluded_queue_names = exclude_queues.split(",") if exclude_queues else []
        if excluded_queue_names and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = Worker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded_queue_names,
        )
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
