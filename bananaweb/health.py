"""/healthz and /readyz for load balancers and process managers, and the task
workers' heartbeat that /readyz reads.

JSON, no sign-in, never cached, nothing secret: a check that fails says which and
in a few words; its exception goes to the log only. Served over plain HTTP too
(settings.SECURE_REDIRECT_EXEMPT): probes come from inside the network.
"""

import uuid
from datetime import timedelta

import structlog
from django.contrib.auth.decorators import login_not_required
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from bananaweb.models import WorkerHeartbeat

logger = structlog.get_logger(__name__)

# A worker beats this often, and counts as running while its last beat is this recent.
HEARTBEAT_SECONDS = 15
WORKER_SEEN_WITHIN = timedelta(minutes=1)
# Rows of workers gone this long are removed by the next beat.
HEARTBEAT_KEPT = timedelta(days=1)

# Once every migration was seen applied, this process need not look again: a
# deploy that brings new ones starts new processes.
_migrations_seen_applied = False


class CheckFailed(Exception):
    """A check's answer in a few words, safe to show."""


# --- The heartbeat -----------------------------------------------------------------


def worker_heartbeat(*, worker_id: str) -> None:
    """Record that this worker is running (run_worker calls it every few seconds)."""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id[:64], defaults={"seen_at": now}
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - HEARTBEAT_KEPT).delete()


def worker_gone(*, worker_id: str) -> None:
    """A worker that stops says so at once, rather than after a minute."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id[:64]).delete()


# --- The checks ---------------------------------------------------------------------


def check_database() -> dict:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise CheckFailed("SELECT 1 did not answer 1")
    return {}


def check_migrations() -> dict:
    global _migrations_seen_applied
    if not _migrations_seen_applied:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise CheckFailed(f"{len(pending)} migrations not applied")
        _migrations_seen_applied = True
    return {}


def check_storage() -> dict:
    """Write and delete a small file through the media storage (local or S3)."""
    name = default_storage.save(
        f"health/readyz-{uuid.uuid4().hex}.txt", ContentFile(b"ok")
    )
    default_storage.delete(name)
    return {}


def check_worker() -> dict:
    """Any one worker seen within the last minute will do."""
    now = timezone.now()
    seen = WorkerHeartbeat.objects.filter(
        seen_at__gte=now - WORKER_SEEN_WITHIN
    ).values_list("seen_at", flat=True)
    ages = sorted(round((now - seen_at).total_seconds()) for seen_at in seen)
    if not ages:
        raise CheckFailed("no task worker seen in the last minute")
    return {"workers": len(ages), "seen_seconds_ago": ages}


# The database's first: the others need it.
CHECKS = {
    "database": check_database,
    "migrations": check_migrations,
    "storage": check_storage,
    "worker": check_worker,
}
NEEDS_DATABASE = frozenset({"migrations", "worker"})


def run_checks() -> dict[str, dict]:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        if name in NEEDS_DATABASE and not results["database"]["ok"]:
            results[name] = {"ok": False, "error": "the database is unreachable"}
            continue
        try:
            results[name] = {"ok": True, **check()}
        except CheckFailed as failure:
            results[name] = {"ok": False, "error": str(failure)}
            logger.warning("readiness check failed", check=name, error=str(failure))
        except Exception as exc:
            # The exception's text may name hosts or buckets: the log has it, the
            # public answer only its kind.
            results[name] = {"ok": False, "error": f"failed ({type(exc).__name__})"}
            logger.warning("readiness check failed", check=name, exc_info=True)
    return results


# --- The views ----------------------------------------------------------------------


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is looked at (no database)."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: database, migrations, media storage and a task worker."""
    checks = run_checks()
    failed = [name for name, result in checks.items() if not result["ok"]]
    return JsonResponse(
        {
            "status": "unavailable" if failed else "ok",
            "failed": failed,
            "checks": checks,
        },
        status=503 if failed else 200,
    )
