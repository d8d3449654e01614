"""`make scaletest`: bananaweb scaled out on standard parts, checked end to end.

    python -m tests.scale.run [--requests 200] [--users 20] [--drain 120] [--keep]

Two gunicorn processes on their own ports (no proxy: the client spreads its
requests over both, round-robin), three task workers, one PostgreSQL database
(a throwaway one on DATABASE_URL's server, or 127.0.0.1:5432), media in a bucket
of moto's S3 server (a real process on loopback), the simulator upstream. Users
(half of them with an API token) submit the requests through the web form and
the API; half-way one task worker is SIGKILLed (in the middle of a task when one
is caught) and started again. Once every request has ended, each is read back
through the other web process, images included. It prints the counts and exits
1 unless:

- every submission was acknowledged, and no answer was a 5xx;
- both web processes served requests;
- every request is in the database once, and ended (nothing lost);
- every request was sent upstream exactly once (the simulator counts);
- each image is stored once in the bucket: its objects are exactly the stored
  images' files and thumbnails, one image per completed request;
- every completed image reads back through bananaweb.
"""

import argparse
import itertools
import json
import random
import re
import secrets
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.load import verdicts
from tests.load.stack import Stack, StackError, throwaway_database
from tests.s3_helpers import bucket_keys, create_bucket, s3_env, start_moto_server

API_TERMINAL = {"completed", "failed", "cancelled", "timeout"}
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CARD_ID = re.compile(r'id="request-(\d+)"')
IMAGE_URL = re.compile(r'"(/requests/\d+/images/\d+/[a-z]+/)"')
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3")
TIMEOUT = 30  # seconds for any one HTTP request
# Signing in hashes the password on purpose slowly (over a second of CPU each): the
# users sign in a few at a time before the run, and keep their sessions.
SIGN_IN_TIMEOUT = 120
SIGN_IN_AT_ONCE = 4


def say(message: str) -> None:
    print(f"[scaletest] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.scale.run")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument(
        "--drain",
        type=int,
        default=120,
        help="seconds after the last submission for every request to end",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args(argv)
    if not 2 <= args.users <= args.requests <= 2000:
        parser.error("need 2 <= --users <= --requests <= 2000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin_url = verdicts.postgres_server(
        say, "start it, or point DATABASE_URL at a server."
    )
    if admin_url is None:
        return 2
    folder = Path(tempfile.mkdtemp(prefix="bananaweb-scale-"))
    (folder / "logs").mkdir()
    moto = start_moto_server(folder / "logs")
    database = throwaway_database(
        "postgresql", folder, label="scale", admin_url=admin_url
    )
    ok = False
    try:
        bucket = create_bucket(moto.endpoint_url)
        ok = run(args, folder, database.url, moto.endpoint_url, bucket)
    finally:
        database.drop()
        moto.stop()
        verdicts.tidy_up(folder, ok and not args.keep, say)
    return 0 if ok else 1


# --- The users ------------------------------------------------------------------------


class Run:
    """What every user thread shares: the servers in turn, and the record."""

    def __init__(self, urls: list[str], total: int, run_id: str) -> None:
        self.urls = urls
        self.total = total
        self.run_id = run_id
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.submissions: list[dict] = []
        self.half_way = threading.Event()
        self.errors: Counter[str] = Counter()

    def next_url(self) -> str:
        with self._lock:
            return self.urls[next(self._turn) % len(self.urls)]

    def other_url(self, url: str) -> str:
        return self.urls[(self.urls.index(url) + 1) % len(self.urls)]

    def record(self, submission: dict) -> None:
        with self._lock:
            self.submissions.append(submission)
            if len(self.submissions) >= self.total / 2:
                self.half_way.set()


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: never through a proxy
    return session


def sign_in(session: requests.Session, base: str, username: str, password: str) -> None:
    page = session.get(f"{base}/accounts/login/", timeout=TIMEOUT)
    answer = session.post(
        f"{base}/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": CSRF_INPUT.search(page.text)[1],
            "next": "/",
        },
        allow_redirects=False,
        timeout=SIGN_IN_TIMEOUT,
    )
    if answer.status_code != 302:
        raise StackError(f"{username} could not sign in: {answer.status_code}")


def submit_web(session: requests.Session, base: str, prompt: str, key: str) -> dict:
    answer = session.post(
        f"{base}/requests/",
        data=verdicts.web_form(prompt, random.choice(ASPECT_RATIOS), key),
        headers={
            "HX-Request": "true",
            "X-CSRFToken": session.cookies.get("csrftoken", ""),
        },
        timeout=TIMEOUT,
    )
    card = CARD_ID.search(answer.text) if answer.status_code == 200 else None
    return {"status": answer.status_code, "id": card and int(card[1])}


def submit_api(
    session: requests.Session, base: str, prompt: str, key: str, token: str
) -> dict:
    answer = session.post(
        f"{base}/api/gemini/image/generate",
        json=verdicts.api_body(prompt, random.choice(ASPECT_RATIOS)),
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
        },
        timeout=TIMEOUT,
    )
    try:
        task_id = answer.json().get("taskId")
    except ValueError:
        task_id = None
    return {"status": answer.status_code, "id": task_id}


def signed_in(run: Run, account: dict, password: str) -> requests.Session:
    session = new_session()
    sign_in(session, run.next_url(), account["username"], password)
    return session


def user(run: Run, account: dict, session: requests.Session, count: int) -> None:
    """One person, signed in: submits `count` requests, alternating between the
    form and the API when they hold a token, each to the next server."""
    for index in range(count):
        via = "api" if account["token"] and index % 2 else "web"
        base = run.next_url()
        prompt = f"Scale {run.run_id} {account['username']} #{index} ({via})"
        submission = {"prompt": prompt, "via": via, "server": base, "status": None}
        key = secrets.token_hex(16)
        # As a browser does when a kept-alive connection is closed under it: once
        # more, with the same idempotency key, so the site keeps one request.
        for attempt in (1, 2):
            try:
                if via == "web":
                    submission |= submit_web(session, base, prompt, key)
                else:
                    submission |= submit_api(
                        session, base, prompt, key, account["token"]
                    )
                break
            except requests.ConnectionError as exc:
                if attempt == 2:
                    run.errors[f"submit: {type(exc).__name__}: {exc}"[:300]] += 1
                else:
                    run.errors["retried after a connection error (same key)"] += 1
            except requests.RequestException as exc:
                run.errors[f"submit: {type(exc).__name__}: {exc}"[:300]] += 1
                break
        run.record(submission)
        time.sleep(random.uniform(0.05, 0.3))


def read_back(session: requests.Session, run: Run, submission: dict, account: dict):
    """The request's result through the other web process; its image(s) if done.
    (status seen, images read, images that failed to read)."""
    base = run.other_url(submission["server"])
    if submission["via"] == "api":
        headers = {"Authorization": f"Bearer {account['token']}"}
        body = session.get(
            f"{base}/api/gemini/task/result",
            params={"taskId": submission["id"]},
            headers=headers,
            timeout=TIMEOUT,
        ).json()
        urls = [
            image["url"] for image in (body.get("result") or {}).get("images") or []
        ]
        status = body.get("status")
    else:
        page = session.get(f"{base}/requests/{submission['id']}/", timeout=TIMEOUT)
        urls = [base + path for path in sorted(set(IMAGE_URL.findall(page.text)))]
        status = page.status_code
        headers = {}
    read = failed = 0
    for url in urls:
        image = session.get(url, headers=headers, timeout=TIMEOUT)
        if image.status_code == 200 and len(image.content) > 100:
            read += 1
        else:
            failed += 1
    return status, read, failed


# --- The run --------------------------------------------------------------------------


def run(
    args: argparse.Namespace,
    folder: Path,
    database_url: str,
    endpoint: str,
    bucket: str,
) -> bool:
    say(
        "Starting PostgreSQL (throwaway database), moto S3, the simulator, 2 gunicorn "
        "processes and 3 task workers …"
    )
    starting = time.monotonic()
    with Stack(
        folder,
        database_url,
        web_processes=2,
        web_workers=2,
        web_threads=4,
        task_workers=3,
        env=s3_env(endpoint, bucket),
    ) as stack:
        say(
            f"Ready after {time.monotonic() - starting:.0f} s (/readyz): web "
            f"{', '.join(stack.urls)}; simulator {stack.simulator_url}; bucket "
            f"{bucket} at {endpoint}"
        )
        stack.simulator("POST", "/_simulator/config", {"delay": 1.0})
        password = secrets.token_urlsafe(12)
        accounts = stack.seed_users(
            args.users, with_tokens=args.users // 2, password=password
        )
        by_name = {account["username"]: account for account in accounts}
        run_ = Run(stack.urls, args.requests, secrets.token_hex(3))
        counts = [
            args.requests // args.users + (index < args.requests % args.users)
            for index in range(args.users)
        ]
        say(f"Signing {args.users} users in, {SIGN_IN_AT_ONCE} at a time …")
        with ThreadPoolExecutor(max_workers=SIGN_IN_AT_ONCE) as pool:
            sessions = dict(
                zip(
                    by_name,
                    pool.map(lambda a: signed_in(run_, a, password), accounts),
                    strict=True,
                )
            )
        say(f"{args.requests} requests from {args.users} users, web and API …")
        killer = threading.Thread(target=kill_half_way, args=(stack, run_), daemon=True)
        killer.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.users) as pool:
            for future in [
                pool.submit(user, run_, account, sessions[account["username"]], count)
                for account, count in zip(accounts, counts, strict=True)
            ]:
                future.result()
        submit_seconds = time.monotonic() - started
        killer.join(60)

        say(
            f"Submitted in {submit_seconds:.0f} s; waiting up to {args.drain} s for "
            "every request to end …"
        )
        rows, drain_seconds = verdicts.drain(stack, args.drain)

        say("Reading every request back through the other web process …")
        read_statuses: Counter[str] = Counter()
        images_read = images_failed = 0
        for submission in run_.submissions:
            if submission.get("id") is None:
                continue
            username = submission["prompt"].split()[2]
            status, read, failed = read_back(
                sessions[username], run_, submission, by_name[username]
            )
            read_statuses[f"{submission['via']} {status}"] += 1
            images_read += read
            images_failed += failed

        figures = measure(
            stack=stack,
            run=run_,
            rows=rows,
            keys=bucket_keys(endpoint, bucket),
            images=stack.images_in_db(),
        )
        figures |= {
            "submit_seconds": submit_seconds,
            "drain_seconds": drain_seconds,
            "read_statuses": dict(read_statuses),
            "images_read": images_read,
            "images_failed": images_failed,
            "kills": sum(stack.worker_starts.values()) - stack.task_workers,
            "task_runs": stack.task_runs(),
        }
        checks = verdict(figures, args.requests)
        if not verdicts.passed(checks):
            verdicts.keep_diagnosis(stack, folder, say)
    print(report(figures, checks), flush=True)
    return verdicts.passed(checks)


def kill_half_way(stack: Stack, run: Run) -> None:
    """SIGKILL task worker 0 once half the requests are in, in the middle of a task
    when one is caught, and start it again."""
    run.half_way.wait(600)
    verdicts.kill_worker_mid_task(stack, say)


def measure(
    *, stack: Stack, run: Run, rows: list[dict], keys: list[str], images: list[dict]
) -> dict:
    submissions = run.submissions
    acknowledged = [s for s in submissions if s["status"] in (200, 201) and s.get("id")]
    upstream = stack.simulator_stats() or {}
    sent = upstream.get("generate_calls_by_prompt", {})
    accepted = upstream.get("accepted_by_prompt", {})
    in_db = Counter(row["prompt"] for row in rows)
    ours = {s["prompt"] for s in submissions}
    statuses = Counter(row["status"] for row in rows)
    status_of = {row["prompt"]: row["status"] for row in rows}
    completed = {row["pk"] for row in rows if row["status"] == "completed"}
    stored = [name for image in images for name in (image["file"], image["thumbnail"])]
    images_per_request = Counter(image["request"] for image in images)
    return {
        "submissions": len(submissions),
        "web": sum(1 for s in submissions if s["via"] == "web"),
        "api": sum(1 for s in submissions if s["via"] == "api"),
        "acknowledged": len(acknowledged),
        "refused": dict(
            Counter(s["status"] for s in submissions if s not in acknowledged)
        ),
        "client_errors": dict(run.errors),
        "by_server": dict(Counter(s["server"] for s in submissions)),
        "responses_by_process": stack.responses_by_process(),
        "server_errors": Counter(
            f"{status} {method} {path}"
            for status, method, path, _ in stack.server_errors()
        ),
        "rows": len(rows),
        "missing": sorted(ours - set(in_db)),
        "saved_twice": sorted(prompt for prompt, n in in_db.items() if n > 1),
        "not_terminal": sum(
            1 for row in rows if row["status"] not in verdicts.TERMINAL
        ),
        "statuses": dict(statuses),
        "error_codes": dict(
            Counter(row["error_code"] for row in rows if row["status"] != "completed")
        ),
        "sent_upstream": sum(sent.get(prompt, 0) for prompt in ours),
        # A worker killed between marking a send begun and the send itself leaves
        # a request "outcome unknown", never resent: sent at most once, maybe not.
        "sent_not_once": {
            prompt: sent.get(prompt, 0)
            for prompt in ours
            if sent.get(prompt, 0) > 1
            or (sent.get(prompt, 0) == 0 and status_of.get(prompt) != "unknown")
        },
        "accepted_upstream": sum(accepted.get(prompt, 0) for prompt in ours),
        "accepted_twice": {prompt: n for prompt, n in accepted.items() if n > 1},
        "completed": len(completed),
        "images": len(images),
        "bucket_objects": len(keys),
        "stored_names": len(stored),
        "stored_twice": sorted(name for name, n in Counter(stored).items() if n > 1),
        "orphans": sorted(set(keys) - set(stored)),
        "absent": sorted(set(stored) - set(keys)),
        "image_counts_wrong": sorted(
            pk for pk in completed if images_per_request.get(pk) != 1
        )
        + sorted(pk for pk in images_per_request if pk not in completed),
    }


def verdict(figures: dict, total: int) -> list[tuple[str, bool]]:
    spread = figures["responses_by_process"].values()
    return [
        (
            f"all {total} submissions acknowledged",
            figures["submissions"] == total and figures["acknowledged"] == total,
        ),
        ("no 5xx answer", not figures["server_errors"]),
        ("both web processes served requests", len(spread) == 2 and min(spread) > 0),
        (
            "every request saved once and ended (nothing lost)",
            not figures["missing"]
            and not figures["saved_twice"]
            and figures["rows"] == total
            and figures["not_terminal"] == 0,
        ),
        (
            "every request sent upstream exactly once (outcome unknown: at most once)",
            not figures["sent_not_once"],
        ),
        ("no request accepted upstream twice", not figures["accepted_twice"]),
        (
            "each image stored once in the bucket, one per completed request",
            figures["bucket_objects"] == figures["stored_names"]
            and not figures["stored_twice"]
            and not figures["orphans"]
            and not figures["absent"]
            and not figures["image_counts_wrong"],
        ),
        (
            "every completed image read back through bananaweb",
            figures["images_failed"] == 0
            and figures["images_read"] >= figures["completed"],
        ),
        ("a task worker was SIGKILLed and started again", figures["kills"] >= 1),
    ]


def _counts(counts: dict) -> str:
    return (
        ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=str))
        or "none"
    )


def report(figures: dict, checks: list[tuple[str, bool]]) -> str:
    rows = [
        (
            "submissions (web / API)",
            f"{figures['submissions']} ({figures['web']} / {figures['api']}), {figures['acknowledged']} acknowledged",
        ),
        ("submitted to each web process", _counts(figures["by_server"])),
        (
            "responses logged by each web process",
            _counts(figures["responses_by_process"]),
        ),
        ("5xx answers", sum(figures["server_errors"].values())),
        (
            "requests in the database",
            f"{figures['rows']} ({len(figures['missing'])} missing, {len(figures['saved_twice'])} saved twice, {figures['not_terminal']} not ended)",
        ),
        ("how they ended", _counts(figures["statuses"])),
        ("why the others did not complete", _counts(figures["error_codes"])),
        (
            "sent upstream (simulator)",
            f"{figures['sent_upstream']} sends, {len(figures['sent_not_once'])} requests sent twice or never; {figures['accepted_upstream']} accepted",
        ),
        (
            "images stored",
            f"{figures['images']} images, {figures['stored_names']} files and thumbnails; {figures['bucket_objects']} objects in the bucket ({len(figures['orphans'])} unaccounted for, {len(figures['absent'])} missing)",
        ),
        (
            "read back through the other web process",
            f"{_counts(figures['read_statuses'])}; {figures['images_read']} images read, {figures['images_failed']} failed",
        ),
        ("task workers SIGKILLed and restarted", figures["kills"]),
        ("task runs", _counts(figures["task_runs"]["by_status"])),
        (
            "time",
            f"{figures['submit_seconds']:.0f} s submitting, {figures['drain_seconds']:.0f} s for the rest to end",
        ),
    ]
    lines = [
        "# Scale-out run: 2 gunicorn processes, 3 task workers, PostgreSQL, moto S3",
        "",
        *verdicts.figure_table(rows),
        "",
        *verdicts.check_lines(checks),
    ]
    details = {
        "refused": figures["refused"],
        "on the client side": figures["client_errors"],
        "5xx": dict(figures["server_errors"].most_common(5)),
        "missing": figures["missing"][:5],
        "not sent exactly once": dict(list(figures["sent_not_once"].items())[:5]),
        "bucket objects unaccounted for": figures["orphans"][:5],
        "stored images missing from the bucket": figures["absent"][:5],
        "requests with the wrong number of images": figures["image_counts_wrong"][:5],
    }
    lines += [
        f"{name}: {json.dumps(value)}" for name, value in details.items() if value
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    verdicts.exit_with(main, say)
