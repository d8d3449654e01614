"""The cache every process shares (issue 14): Redis from REDIS_URL or CACHE_URL,
the database's otherwise, never one per process. The API's rate limit counts in it,
so two processes together get no more than one."""

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache

from bananaweb.gateway.auth import RATE_WINDOW_SECONDS
from tests.stack_helpers import clean_environ

ROOT = Path(__file__).resolve().parents[1]
REDIS = ("127.0.0.1", 6379)

# One process of a deployment: `calls` API requests of one user through the
# gateway's rate limit; prints the cache's backend and which calls were refused.
CALLS = """
import json, sys, types, django
django.setup()
from django.core.cache import caches
from bananaweb.gateway.auth import ApiError, check_rate_limit
token = types.SimpleNamespace(user_id=int(sys.argv[1]))
refused = []
for call in range(int(sys.argv[2])):
    try:
        check_rate_limit(token)
    except ApiError:
        refused.append(call)
print(json.dumps({"backend": type(caches["default"]).__name__, "refused": refused}))
"""


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


def process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_environ() | {
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
        "BANANAWEB_DEV": "1",
        "BANANAWEB_VAR_DIR": str(tmp_path / "var"),
        "BANANAWEB_API_RATE_LIMIT": "5",
        **extra,
    }


def run_calls(env: dict[str, str], user_id: int, calls: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CALLS, str(user_id), str(calls)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["REDIS_URL", "CACHE_URL"])
def test_with_redis_the_rate_limit_counts_across_two_processes(tmp_path, variable):
    if not redis_reachable():
        pytest.skip(
            "!!! No Redis at 127.0.0.1:6379: the shared-cache test did not run."
        )
    env = process_env(tmp_path, **{variable: "redis://127.0.0.1:6379/0"})
    # A user id no other run has counted for.
    user_id = uuid.uuid4().int % 10**12
    # Both processes inside one fixed window: each takes seconds to start, and
    # one across the window's end would count afresh.
    left = RATE_WINDOW_SECONDS - time.time() % RATE_WINDOW_SECONDS
    if left < 30:
        time.sleep(left + 0.1)
    first = run_calls(env, user_id, 3)
    second = run_calls(env, user_id, 3)
    assert first == {"backend": "RedisCache", "refused": []}
    # 3 + 2 make the limit of 5: the second process's third call is the sixth.
    assert second == {"backend": "RedisCache", "refused": [2]}


def test_without_a_cache_url_the_cache_is_the_databases():
    # The suite's settings, like production's without REDIS_URL: a shared table.
    assert isinstance(caches["default"], DatabaseCache)


def test_a_cache_url_that_is_not_redis_stops_the_start(tmp_path):
    env = process_env(tmp_path, CACHE_URL="memcached://127.0.0.1:11211")
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "must name a Redis server" in done.stderr
