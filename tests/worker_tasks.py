"""A task for test_worker_scale.py, importable by the real workers it starts: it
appends one line per run to the file WORKER_SCALE_RECORD names."""

import os
import time

from django.tasks import task


@task()
def record_run_task(number: int) -> None:
    time.sleep(0.02)  # long enough for the workers to overlap
    # One short O_APPEND write per run: lines from several processes never mix.
    with open(os.environ["WORKER_SCALE_RECORD"], "a") as record:
        record.write(f"{number} {os.getpid()}\n")
