"""`make loadtest`: the whole stack under load, with upstream faults and a task
worker killed half-way, then the figures, checked.

    python -m tests.load.run [--seconds 60] [--users 50] [--database postgresql]

It starts a throwaway database (PostgreSQL by default: DATABASE_URL's server, or
127.0.0.1:5432), the simulator with a modest rate of 429 and 5xx answers, gunicorn
(3 workers × 4 threads, DEBUG off, static files collected), two task workers and
`start_background`; seeds 50 users, half of them with an API token; runs Locust
headless (tests/load/locustfile.py); SIGKILLs one task worker half-way, in the
middle of a task when it catches one, and starts it again; waits (bounded) until
every request is finished; prints the figures, writes them to
var/loadtest-last.md, and exits 1 if any check fails (keeping the logs, and a
diagnosis of what was left in flight, in a folder it names):

- no 5xx answer, and no request left without an answer;
- no lost request: each one the site acknowledged is in the database, finished;
- no request sent upstream twice (the simulator counts acceptances by prompt);
- every request finished by the deadline.

Everything listens on 127.0.0.1 only, and every wait is bounded.
"""

import argparse
import csv
import itertools
import json
import os
import secrets
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.load import verdicts
from tests.load.stack import PYTHON, ROOT, Stack, throwaway_database

DRAIN_SECONDS = 60  # after the load, for every request to finish
# A modest rate of upstream trouble: each knob's fault on one call in ten. Submits
# take turns between a 429 (wait, send again), a 503 (the same) and a 502 (outcome
# unknown: never resent); polls and image downloads get a 503 (tried again).
FAULT_RATE = 0.1
SUBMIT_FAULTS = ("429", "503", "502")
FAULT_TURN_SECONDS = 5
REPORT = ROOT / "var" / "loadtest-last.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load.run")
    parser.add_argument("--seconds", type=int, default=60, help="load phase length")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument(
        "--database", choices=("postgresql", "sqlite"), default="postgresql"
    )
    parser.add_argument(
        "--drain",
        type=int,
        default=DRAIN_SECONDS,
        help="seconds after the load for every request to finish",
    )
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's folder (logs) even on success",
    )
    args = parser.parse_args(argv)
    if not 5 <= args.seconds <= 600:
        parser.error("--seconds must be between 5 and 600.")
    if not 0 <= args.drain <= 600:
        parser.error("--drain must be between 0 and 600.")
    return args


def say(message: str) -> None:
    print(f"[loadtest] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin_url = ""
    if args.database == "postgresql":
        admin_url = verdicts.postgres_server(
            say, "start it, point DATABASE_URL at a server, or use --database sqlite."
        )
        if admin_url is None:
            return 2
    folder = Path(tempfile.mkdtemp(prefix="bananaweb-load-"))
    database = throwaway_database(
        args.database, folder, label="load", admin_url=admin_url
    )
    ok = False
    try:
        ok = run(args, folder, database.url, args.database)
    finally:
        database.drop()
        verdicts.tidy_up(folder, ok and not args.keep, say)
    return 0 if ok else 1


def run(args: argparse.Namespace, folder: Path, database_url: str, vendor: str) -> bool:
    say(f"Starting the stack on a throwaway {vendor} database …")
    with Stack(folder, database_url) as stack:
        say(
            f"Web {stack.url}, simulator {stack.simulator_url}, "
            f"task workers: {stack.worker_command()[2]}"
        )
        stack.simulator(
            "POST",
            "/_simulator/config",
            {
                "delay": 1.0,
                "retry_after": 1,
                "fault_rate": FAULT_RATE,
                "submit_fault": SUBMIT_FAULTS[0],
                "result_fault": "503",
                "image_fault": "503",
            },
        )
        password = secrets.token_urlsafe(12)
        accounts = stack.seed_users(
            args.users, with_tokens=args.users // 2, password=password
        )
        accounts_file = folder / "accounts.json"
        accounts_file.write_text(json.dumps(accounts))
        record_file = folder / "submissions.json"
        csv_prefix = folder / "locust"

        say(f"Load: {args.users} users for {args.seconds} s (Locust, headless) …")
        locust_log = (folder / "logs" / "locust.log").open("w")
        locust = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "locust",
                "-f",
                str(ROOT / "tests" / "load" / "locustfile.py"),
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{args.seconds}s",
                "--host",
                stack.url,
                "--csv",
                str(csv_prefix),
                "--only-summary",
                "--exit-code-on-error",
                "0",
            ],
            cwd=ROOT,
            env=stack.env
            | {
                "LOAD_ACCOUNTS": str(accounts_file),
                "LOAD_PASSWORD": password,
                "LOAD_RECORD": str(record_file),
                "LOAD_RUN_ID": folder.name.rsplit("-", 1)[-1],
            },
            stdin=subprocess.DEVNULL,
            stdout=locust_log,
            stderr=subprocess.STDOUT,
        )
        locust_log.close()
        started = time.monotonic()
        killed_at = cut_off = None
        faults = itertools.cycle(SUBMIT_FAULTS)
        next(faults)
        next_turn = started + FAULT_TURN_SECONDS
        limit = started + args.seconds + 60
        try:
            while locust.poll() is None and time.monotonic() < limit:
                now = time.monotonic()
                if killed_at is None and now - started >= args.seconds / 2:
                    killed_at, cut_off = verdicts.kill_worker_mid_task(
                        stack, say, started
                    )
                if now >= next_turn:
                    stack.simulator(
                        "POST", "/_simulator/config", {"submit_fault": next(faults)}
                    )
                    next_turn += FAULT_TURN_SECONDS
                stack.check_alive()
                time.sleep(0.25)
        finally:
            if locust.poll() is None:
                locust.terminate()
            try:
                locust.wait(20)
            except subprocess.TimeoutExpired:
                locust.kill()
                locust.wait(5)
        load_seconds = time.monotonic() - started
        load_average = os.getloadavg()[0]  # over the last minute of the load
        if not record_file.exists():
            say(f"Locust wrote no record (exit {locust.returncode}):")
            print(stack.log_tail("locust"), flush=True)
        # No new trouble while the last requests finish.
        stack.simulator(
            "POST",
            "/_simulator/config",
            {"submit_fault": None, "result_fault": None, "image_fault": None},
        )

        say(
            f"Load over after {load_seconds:.0f} s; waiting up to {args.drain} s "
            "for every request to finish …"
        )
        rows, drain_seconds = verdicts.drain(stack, args.drain)

        figures = measure(
            stack=stack,
            rows=rows,
            record=json.loads(record_file.read_text())
            if record_file.exists()
            else None,
            stats_rows=read_csv(Path(f"{csv_prefix}_stats.csv")),
            failures=read_csv(Path(f"{csv_prefix}_failures.csv")),
        )
        figures.update(
            load_average=load_average,
            cpus=os.cpu_count(),
            task_runs=stack.task_runs(),
            users=args.users,
            seconds=args.seconds,
            database=vendor,
            killed_at=killed_at,
            cut_off=cut_off,
            kills=stack.worker_starts[0] - 1,
            drain_seconds=drain_seconds,
            worker=stack.worker_command()[2],
        )
        checks = verdict(figures)
        if not verdicts.passed(checks):
            verdicts.keep_diagnosis(stack, folder, say)
    text = report(figures, checks)
    print(text, flush=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    say(f"Figures written to {args.report}")
    return verdicts.passed(checks)


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def measure(
    *,
    stack: Stack,
    rows: list[dict],
    record: dict | None,
    stats_rows: list[dict],
    failures: list[dict],
) -> dict:
    by_name = {row["Name"]: row for row in stats_rows}
    total = by_name.get("Aggregated", {})
    access = stack.access_log()
    upstream = stack.simulator_stats()
    statuses = Counter(row["status"] for row in rows)
    in_db = Counter(row["prompt"] for row in rows)
    record = record or {}
    submissions = record.get("submissions", [])
    acknowledged = [s for s in submissions if s["status"] in (200, 201)]
    unanswered = [s for s in submissions if s["status"] is None]
    refused = Counter(
        s["status"] for s in submissions if s["status"] not in (None, 200, 201)
    )
    accepted_by_prompt = (upstream or {}).get("accepted_by_prompt", {})

    def number(row: dict, column: str) -> float | None:
        try:
            return float(row[column])
        except (KeyError, ValueError):
            return None

    return {
        "requests": int(number(total, "Request Count") or 0),
        "rps": number(total, "Requests/s"),
        "p50": number(total, "50%"),
        "p95": number(total, "95%"),
        "by_name": {
            f"{row['Type']} {name}": {
                "count": int(number(row, "Request Count") or 0),
                "failures": int(number(row, "Failure Count") or 0),
                "p50": number(row, "50%"),
                "p95": number(row, "95%"),
            }
            for name, row in sorted(by_name.items())
            if name != "Aggregated"
        },
        "locust_failures": {
            f"{row['Method']} {row['Name']}: {row['Error']}": int(row["Occurrences"])
            for row in failures
        },
        "responses": len(access),
        "server_errors": Counter(
            f"{status} {method} {path}"
            for status, method, path, _ in access
            if status >= 500
        ),
        "server_errors_seen": record.get("server_errors", 0),
        "no_answer": record.get("no_answer", 0),
        "submissions": len(submissions),
        "submitted_web": sum(1 for s in submissions if s["via"] == "web"),
        "submitted_api": sum(1 for s in submissions if s["via"] == "api"),
        "acknowledged": len(acknowledged),
        "unanswered_at_stop": len(unanswered),
        "refused": dict(refused),
        "missing": [s["prompt"] for s in acknowledged if s["prompt"] not in in_db],
        "rows": len(rows),
        "rows_twice": [prompt for prompt, n in in_db.items() if n > 1],
        "statuses": dict(statuses),
        "error_messages": Counter(
            f"{row['error_code']}: {row['error_message']}"
            for row in rows
            if row["status"] != "completed"
        ),
        "error_codes": dict(
            Counter(row["error_code"] for row in rows if row["status"] != "completed")
        ),
        "not_terminal": sum(
            1 for row in rows if row["status"] not in verdicts.TERMINAL
        ),
        # In flight with a next step booked for after the deadline: a retry waiting
        # out its backoff, not a task that was lost.
        "waiting_past_deadline": sorted(
            row["due_at"][11:19]
            for row in rows
            if row["status"] not in verdicts.TERMINAL
            and datetime.fromisoformat(row["due_at"]) > datetime.now(UTC)
        ),
        "upstream": None
        if upstream is None
        else {
            name: value
            for name, value in upstream.items()
            if not isinstance(value, dict | list)
        },
        "duplicates": None
        if upstream is None
        else {prompt: n for prompt, n in accepted_by_prompt.items() if n > 1},
        "record_written": bool(record),
    }


def verdict(figures: dict) -> list[tuple[str, bool]]:
    return [
        ("Locust recorded its submissions", figures["record_written"]),
        (
            "no 5xx answer",
            not figures["server_errors"] and not figures["server_errors_seen"],
        ),
        ("no request left without an answer", figures["no_answer"] == 0),
        ("no lost request", not figures["missing"] and figures["not_terminal"] == 0),
        ("no request saved twice", not figures["rows_twice"]),
        (
            "no request sent upstream twice",
            figures["duplicates"] is not None and not figures["duplicates"],
        ),
        ("every request finished by the deadline", figures["not_terminal"] == 0),
    ]


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def report(figures: dict, checks: list[tuple[str, bool]]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    killed = figures["killed_at"]
    duplicates = figures["duplicates"]
    by_name = figures["by_name"]

    def p95(name: str) -> str:
        return _ms(by_name.get(name, {}).get("p95"))

    rows = [
        (
            "HTTP requests",
            f"{figures['requests']} (Locust; {figures['responses']} in gunicorn's log)",
        ),
        (
            "requests per second",
            "n/a" if figures["rps"] is None else f"{figures['rps']:.1f}",
        ),
        ("latency p50 / p95", f"{_ms(figures['p50'])} / {_ms(figures['p95'])}"),
        (
            "p95 of a submission (web / API)",
            f"{p95('POST web: submit')} / {p95('POST api: generate')}",
        ),
        (
            "5xx answers",
            (
                f"{sum(figures['server_errors'].values())} in gunicorn's log, "
                f"{figures['server_errors_seen']} seen by Locust"
            ),
        ),
        ("requests left without an answer", figures["no_answer"]),
        (
            "submissions (web / API)",
            (
                f"{figures['submissions']} ({figures['submitted_web']} / "
                f"{figures['submitted_api']}): {figures['acknowledged']} acknowledged, "
                f"{figures['unanswered_at_stop']} cut off by the end of the run"
            ),
        ),
        (
            "lost requests",
            f"{len(figures['missing']) + figures['not_terminal']} "
            f"({len(figures['missing'])} acknowledged but not saved, "
            f"{figures['not_terminal']} not finished, of which "
            f"{len(figures['waiting_past_deadline'])} waiting for a retry booked "
            "after the deadline"
            + (
                f": {', '.join(figures['waiting_past_deadline'][:5])} UTC)"
                if figures["waiting_past_deadline"]
                else ")"
            ),
        ),
        (
            "duplicate upstream submissions",
            "not measured" if duplicates is None else len(duplicates),
        ),
        (
            "finished by the deadline",
            (
                f"{figures['rows'] - figures['not_terminal']} of {figures['rows']} "
                f"(the last {figures['drain_seconds']:.0f} s after the load)"
            ),
        ),
        ("how they ended", _counts(figures["statuses"]) or "none"),
        ("why the others did not complete", _counts(figures["error_codes"]) or "-"),
    ]
    task_runs = figures["task_runs"]
    rows.append(
        (
            "task runs",
            (
                f"{_counts(task_runs['by_status']) or 'none'}; still RUNNING "
                "(cut off by the SIGKILL, or running as counted): "
                f"{', '.join(task_runs['running']) or 'none'}"
            ),
        )
    )
    if figures["upstream"]:
        rows.append(("upstream (simulator)", _counts(figures["upstream"], first=False)))
    lines = [
        f"# Load run, {when}",
        "",
        f"{figures['users']} users for {figures['seconds']} s against gunicorn "
        f"(3 workers × 4 threads, DEBUG off) on {figures['database']}; two task "
        f"workers (`{figures['worker']}`), "
        + (
            "none killed"
            if killed is None
            else (
                f"one SIGKILLed at {killed:.0f} s"
                + (
                    f" in the middle of {figures['cut_off']}"
                    if figures["cut_off"]
                    else " (idle)"
                )
                + (f" (kill {figures['kills']})" if figures["kills"] > 1 else "")
                + " and started again"
            )
        )
        + f"; the simulator answering 1 call in {round(1 / FAULT_RATE)} with a fault "
        f"(submits: {', '.join(SUBMIT_FAULTS)} in turns; polls and image downloads: "
        "503).",
        "",
        (
            f"The machine: {figures['cpus']} CPUs, load average "
            f"{figures['load_average']:.1f} over the load's last minute (this run "
            "and anything else running)."
        ),
        "",
        *verdicts.figure_table(rows),
        "",
        "Checks:",
        "",
        *verdicts.check_lines(checks),
        "",
        "| request | count | failed | p50 | p95 |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {row['count']} | {row['failures']} | {_ms(row['p50'])} "
            f"| {_ms(row['p95'])} |"
            for name, row in by_name.items()
        ),
    ]
    details = []
    if figures["server_errors"]:
        worst = dict(figures["server_errors"].most_common(10))
        details.append(f"5xx answers: {json.dumps(worst)}")
    if figures["locust_failures"]:
        details.append(f"Locust failures: {json.dumps(figures['locust_failures'])}")
    if task_runs["failed"]:
        details.append(f"Task runs that raised: {task_runs['failed'][:10]}")
    for message, n in figures["error_messages"].most_common(5):
        details.append(f"Did not complete ({n}×): {message}")
    if figures["refused"]:
        details.append(f"Submissions refused (status: count): {figures['refused']}")
    if figures["missing"]:
        details.append(f"Acknowledged, not in the database: {figures['missing'][:5]}")
    if figures["rows_twice"]:
        details.append(f"Saved twice: {figures['rows_twice'][:5]}")
    if duplicates:
        details.append(f"Sent upstream twice: {list(duplicates.items())[:5]}")
    if details:
        lines += ["", *details]
    return "\n".join(lines) + "\n"


def _counts(counts: dict, *, first: bool = True) -> str:
    """{"completed": 40, "unknown": 2} as "40 completed, 2 unknown"."""
    return ", ".join(
        f"{n} {name or '(none)'}" if first else f"{name} {n}"
        for name, n in sorted(counts.items(), key=lambda item: str(item[0]))
    )


if __name__ == "__main__":
    verdicts.exit_with(main, say)
