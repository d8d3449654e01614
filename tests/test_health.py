"""/healthz and /readyz: JSON for load balancers, no sign-in, no secrets, each of
readyz's checks failing and passing; and the worker's heartbeat they read."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from bananaweb import health
from bananaweb.management.commands import run_worker
from bananaweb.models import WorkerHeartbeat


@pytest.fixture
def worker_seen(db):
    return WorkerHeartbeat.objects.create(
        worker_id="w-1", seen_at=timezone.now() - timedelta(seconds=5)
    )


@pytest.fixture
def database_down(monkeypatch):
    def refuse(self):
        raise OperationalError('connection to server at "db.internal" failed')

    # Undone before the test database's own teardown, which needs a connection.
    with monkeypatch.context() as patch:
        patch.setattr(BaseDatabaseWrapper, "ensure_connection", refuse)
        yield


# --- /healthz -------------------------------------------------------------------------


def test_healthz_answers_signed_out_without_a_query(
    client, db, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert "Set-Cookie" not in response


@pytest.mark.django_db
def test_healthz_is_ok_while_the_database_is_down(client, database_down):
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200


def test_healthz_takes_no_post(client):
    assert client.post("/healthz").status_code == 405


# --- /readyz --------------------------------------------------------------------------


def test_readyz_is_ok_with_everything_up(client, worker_seen):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "migrations": True,
        "storage": True,
        "worker": True,
    }
    assert body["checks"]["worker"]["workers"] == 1
    assert 4 <= body["checks"]["worker"]["seen_seconds_ago"][0] <= 7


def test_readyz_fails_on_the_database_and_what_needs_it(client, db, database_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database", "migrations", "worker"]
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "failed (OperationalError)",
    }
    assert body["checks"]["storage"]["ok"] is True
    assert b"db.internal" not in response.content  # the log has it, not the answer


def test_readyz_fails_without_a_worker_seen_in_the_last_minute(client, worker_seen):
    worker_seen.seen_at = timezone.now() - timedelta(seconds=61)
    worker_seen.save()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]
    assert response.json()["checks"]["worker"] == {
        "ok": False,
        "error": "no task worker seen in the last minute",
    }


def test_readyz_counts_every_worker_seen(client, worker_seen):
    WorkerHeartbeat.objects.create(worker_id="w-2", seen_at=timezone.now())
    WorkerHeartbeat.objects.create(
        worker_id="gone", seen_at=timezone.now() - timedelta(minutes=5)
    )
    worker = client.get("/readyz").json()["checks"]["worker"]
    assert worker["workers"] == 2
    assert len(worker["seen_seconds_ago"]) == 2


def test_readyz_fails_when_the_storage_refuses_a_write(
    client, worker_seen, monkeypatch
):
    def refuse(*args, **kwargs):
        raise PermissionError("/srv/secret-bucket/health is read-only")

    monkeypatch.setattr(default_storage, "save", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["storage"]
    assert b"secret-bucket" not in response.content


def test_readyz_leaves_no_file_behind(client, worker_seen, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    assert client.get("/readyz").status_code == 200
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]


def test_readyz_fails_while_migrations_are_pending(client, worker_seen, monkeypatch):
    monkeypatch.setattr(health, "_migrations_seen_applied", False)
    monkeypatch.setattr(
        MigrationExecutor, "migration_plan", lambda self, targets: [("m", False)]
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False,
        "error": "1 migrations not applied",
    }


def test_readyz_needs_no_sign_in_even_with_login_required_everywhere(
    client, worker_seen
):
    assert client.get("/").status_code == 302  # any other page sends to sign in
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_over_plain_http_are_not_redirected_to_https(
    client, worker_seen, settings, path
):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(path).status_code == 200
    # Only these two: every other page still goes to HTTPS.
    assert client.get("/accounts/login/").status_code == 301
    assert client.get(path + "/").status_code == 301


# --- the heartbeat --------------------------------------------------------------------


def test_a_heartbeat_keeps_one_row_a_worker_and_drops_old_ones(db):
    WorkerHeartbeat.objects.create(
        worker_id="long-gone", seen_at=timezone.now() - timedelta(days=2)
    )
    health.worker_heartbeat(worker_id="w-1")
    health.worker_heartbeat(worker_id="w-1")
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["w-1"]
    health.worker_gone(worker_id="w-1")
    assert not WorkerHeartbeat.objects.exists()


def test_the_worker_beats_while_it_runs_and_says_when_it_stops(monkeypatch):
    calls = []
    # db_worker's loop has its tests (tests/test_worker.py, real processes): here it
    # ends at once, and the heartbeat must have started and stopped around it.
    monkeypatch.setattr(
        run_worker.Worker, "run_until_stopped", lambda self: calls.append("loop")
    )
    monkeypatch.setattr(
        health,
        "worker_heartbeat",
        lambda *, worker_id: calls.append(("beat", worker_id)),
    )
    monkeypatch.setattr(
        health, "worker_gone", lambda *, worker_id: calls.append(("gone", worker_id))
    )
    worker = run_worker.Worker(
        queue_names=["default"],
        interval=0.05,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="w-7",
        excluded_queue_names=[],
    )
    worker.run()
    assert calls[-1] == ("gone", "w-7")
    assert ("beat", "w-7") in calls
    assert calls.index(("beat", "w-7")) < calls.index(("gone", "w-7"))
    assert "loop" in calls
