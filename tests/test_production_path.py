"""The production path as a new user takes it (issue 14): a fresh copy of the
repository, exactly the Procfile's commands, the documented environment only.

The copy is the working tree's files that git knows or would add (committed,
changed and new; nothing ignored, so no var/, no .venv, no collected static
files), in a temporary folder; only .venv's Python (and its gunicorn) is shared.
Behind a TLS-terminating proxy as README documents: BANANAWEB_PROXY_SSL_HEADER,
and every request carries the header the proxy would set.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.load.stack import (
    free_port,
    postgres_admin_url,
    spawn_logged,
    throwaway_database,
)
from tests.stack_helpers import (
    REPOSITORY,
    clean_environ,
    require_postgres,
    wait_until,
)

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PROCFILE_LINE = re.compile(r"^(\w+):\s*(.+)$")
STATIC_REF = re.compile(r'(?:src|href)="(/static/[^"]+)"')
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CARD_ID = re.compile(r'id="request-(\d+)"')
CARD_STATUS = re.compile(r'data-status="([a-z_]+)"')
THUMBNAIL = re.compile(r'<img src="(/requests/\d+/images/\d+/thumbnail/)"')
PASSWORD = "prod-" + secrets.token_urlsafe(12)


def fresh_copy(into: Path) -> Path:
    """The files git tracks or would add, as a fresh clone with today's changes."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = REPOSITORY / name
        if source.is_file():  # a tracked file deleted in the working tree is gone
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def procfile(folder: Path) -> dict[str, str]:
    """{process: command}, with `python` meaning .venv's Python."""
    commands = {}
    for line in (folder / "Procfile").read_text().splitlines():
        if match := PROCFILE_LINE.match(line.strip()):
            commands[match[1]] = re.sub(
                r"(?<![\w/.-])python(?=\s)", str(VENV_BIN / "python"), match[2]
            )
    return commands


def production_environment(database_url: str, port: int, simulator: str) -> dict:
    """README's documented production environment, and nothing from outside."""
    env = clean_environ()
    env.pop("PYTHONPATH", None)
    env |= {
        "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "PORT": str(port),
        # Loopback only, through gunicorn's own variable: the Procfile stays as is.
        "GUNICORN_CMD_ARGS": f"--bind=127.0.0.1:{port}",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "BANANAWEB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "BANANAWEB_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        # The bundled simulator in place of the real upstream, and its first token.
        "MOUNTSEA_SIMULATOR_URL": simulator,
        "MOUNTSEA_API_TOKEN": "sim-production-path",
        "PYTHONUNBUFFERED": "1",
    }
    return env


class Spawned:
    def __init__(self, name: str, command: str, folder: Path, env: dict, logs: Path):
        self.name = name
        self.log = logs / f"{name}.log"
        self.popen = spawn_logged(["bash", "-c", command], env, self.log, cwd=folder)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for signum, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


class BehindProxy:
    """A browser behind the TLS proxy: the scheme header on every request, and the
    Secure cookies sent (requests would keep them back over plain HTTP)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.origin = f"https://127.0.0.1:{port}"
        self.cookies: dict[str, str] = {}
        self.session = requests.Session()
        self.session.trust_env = False

    def request(self, method: str, path: str, headers=None, **kwargs):
        sent = {
            "X-Forwarded-Proto": "https",
            "Origin": self.origin,
            "Referer": self.origin + "/",
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
        } | (headers or {})
        response = self.session.request(
            method,
            self.base + path,
            headers=sent,
            allow_redirects=False,
            timeout=30,
            **kwargs,
        )
        for cookie in response.cookies:
            self.cookies[cookie.name] = cookie.value
        self.session.cookies.clear()
        return response

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.request("POST", path, **kwargs)


@pytest.fixture
def production(tmp_path):
    require_postgres()
    folder = fresh_copy(tmp_path / "bananaweb")
    logs = tmp_path / "logs"
    logs.mkdir()
    database = throwaway_database(
        "postgresql",
        tmp_path,
        label="prodpath",
        admin_url=postgres_admin_url(ADMIN_URL),
    )
    port, simulator_port = free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    env = production_environment(database.url, port, simulator_url)
    started: list[Spawned] = []
    try:
        started.append(
            Spawned(
                "simulator",
                f"exec {VENV_BIN / 'python'} -m bananaweb.simulator "
                f"--port {simulator_port} --delay 1",
                folder,
                env,
                logs,
            )
        )
        commands = procfile(folder)
        release = subprocess.run(
            ["bash", "-c", commands["release"]],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert release.returncode == 0, (
            f"release failed:\n{release.stdout[-3000:]}\n{release.stderr[-3000:]}"
        )
        subprocess.run(
            [VENV_BIN / "python", "manage.py", "createsuperuser", "--noinput"],
            cwd=folder,
            env=env
            | {
                "DJANGO_SUPERUSER_USERNAME": "owner",
                "DJANGO_SUPERUSER_EMAIL": "owner@example.com",
                "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            },
            check=True,
            capture_output=True,
            timeout=120,
        )
        for name in ("web", "worker"):
            started.append(Spawned(name, commands[name], folder, env, logs))
        client = BehindProxy(port)

        def answering() -> bool:
            for process in started:
                assert process.popen.poll() is None, (
                    f"{process.name} exited:\n{process.output()}"
                )
            try:
                client.get("/accounts/login/")
                return True
            except requests.ConnectionError:
                return False

        wait_until(answering, 60, "gunicorn to answer")
        yield client, started, release
    finally:
        for process in reversed(started):
            process.stop()
        database.drop()


def sign_in(client: BehindProxy) -> None:
    page = client.get("/accounts/login/")
    assert page.status_code == 200, page.text[:2000]
    answer = client.post(
        "/accounts/login/",
        data={
            "username": "owner",
            "password": PASSWORD,
            "csrfmiddlewaretoken": CSRF_INPUT.search(page.text)[1],
            "next": "/",
        },
    )
    assert answer.status_code == 302, answer.text[:2000]


def submit_and_wait(client: BehindProxy) -> int:
    """A request through the web form, finished by the worker: its id."""
    answer = client.post(
        "/requests/",
        data={
            "action": "generate",
            "prompt": "A banana on a fresh production server",
            "model": "nano-banana-fast",
            "aspect_ratio": "1:1",
            "resolution": "",
            "image_urls": "",
            "idempotency_key": secrets.token_hex(16),
        },
        headers={"HX-Request": "true", "X-CSRFToken": client.cookies["csrftoken"]},
    )
    assert answer.status_code == 200, answer.text[:2000]
    pk = int(CARD_ID.search(answer.text)[1])

    def finished() -> str | None:
        card = client.get(f"/requests/{pk}/card/", headers={"HX-Request": "true"})
        assert card.status_code in (200, 286), card.text[:2000]
        status = CARD_STATUS.search(card.text)[1]
        return card.text if status in ("completed", "failed", "unknown") else None

    card = wait_until(finished, 90, "the worker to finish the request", poll=1)
    thumbnail = THUMBNAIL.search(card)
    assert thumbnail, f"the request did not complete:\n{card[:3000]}"
    image = client.get(thumbnail[1])
    assert image.status_code == 200 and image.content[:4] in (
        b"\x89PNG",
        b"RIFF",
        b"\xff\xd8\xff\xe0",
        b"\xff\xd8\xff\xe1",
        b"\xff\xd8\xff\xdb",
    )
    return pk


def test_a_fresh_copy_started_by_the_procfile_serves_every_page(production):
    client, processes, release = production
    sign_in(client)
    pk = submit_and_wait(client)

    pages = [
        "/",
        f"/requests/{pk}/",
        "/settings/",
        "/settings/tokens/",
        "/settings/share-links/",
        "/collections/",
        "/templates/",
        "/admin/",
        "/admin/usage/",
        "/admin/bananaweb/imagerequest/",
        "/api/openapi.json",
    ]
    static: set[str] = set()
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, (
            f"{path}: {page.status_code}\n{page.text[:2000]}"
        )
        static |= set(STATIC_REF.findall(page.text))
    assert any(url.endswith(".css") for url in static)
    assert any(url.endswith(".js") for url in static)
    for url in sorted(static):
        asset = client.get(url)
        assert asset.status_code == 200, f"{url}: {asset.status_code}"
        # Collected and hashed by the release step, so cached for good.
        assert "immutable" in asset.headers.get("Cache-Control", ""), url
    # Plain HTTP from outside the proxy is sent to HTTPS, never served.
    plain = client.get("/", headers={"X-Forwarded-Proto": "http"})
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://")

    # The release step checked the deployment itself, and found nothing to say.
    assert "System check identified no issues" in release.stdout + release.stderr
    for process in processes:
        assert process.popen.poll() is None, f"{process.name}:\n{process.output()}"
    logs = "".join(process.output() for process in processes)
    assert "sim-production-path" not in logs
    assert "Traceback" not in logs
