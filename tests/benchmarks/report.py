"""The benchmark's figures: a line's result, its verdict against its goal, the
machine, and the Markdown table `make bench` prints and writes."""

import json
import os
import platform
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    """One line, as wrk's script (wrk.lua) reported it."""

    what: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # 4xx/5xx answers and socket errors: the line measured the wrong thing
    goal: float | None = None  # the least ratio to the floor; None for the floor
    cards: int = 0  # cards in flight one request answers for (a poll), else 0
    # The floor measured just before this line, its ratio's denominator: these
    # machines' speed drifts over a run by more than the goals' margins.
    floor_rate: float | None = None
    # Each round's ratio, in the order measured, when the line was measured in
    # rounds (median_round).
    round_ratios: tuple[float, ...] = ()

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse_wrk(output: str) -> dict:
    """wrk.lua's one JSON line, from wrk's whole output."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise ValueError(f"wrk printed no figures:\n{output[-2000:]}")


def result(what: str, figures: dict, *, goal: float | None, cards: int = 0) -> Result:
    return Result(
        what=what,
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=figures["status_errors"] + figures["socket_errors"],
        goal=goal,
        cards=cards,
    )


@dataclass(frozen=True)
class Budget:
    """A figure with an upper bound (polls for a task, bytes of a first load)."""

    what: str
    value: float
    limit: float
    unit: str = ""


def passes(ratio: float | None, goal: float | None, *, short: bool) -> bool:
    """Within its goal; the short run, on noisy machines, fails only below half."""
    if goal is None or ratio is None:
        return True
    return ratio >= (goal / 2 if short else goal)


def within(budget: Budget, *, short: bool) -> bool:
    """At most the limit; the short run fails only past twice the limit."""
    return budget.value <= (budget.limit * 2 if short else budget.limit)


def line_passes(line: Result, floor: Result, *, short: bool) -> bool:
    return not line.errors and passes(ratio(line, floor), line.goal, short=short)


def better(first: Result, second: Result, floor: Result) -> Result:
    """Of two measures of one line, the one without errors, else the higher ratio."""
    return max(
        first, second, key=lambda line: (not line.errors, ratio(line, floor) or 0)
    )


# A floor below this share of the run's first was measured on a disturbed
# machine (another tenant's burst): its line is measured once more.
DISTURBED_FLOOR = 0.75


def disturbed(line: Result, floor: Result) -> bool:
    """Whether the floor measured just before the line fell far below the run's
    first: the ratio would then say more about the machine than the line."""
    return bool(line.floor_rate and line.floor_rate < DISTURBED_FLOOR * floor.rate)


def calmer(first: Result, second: Result) -> Result:
    """Of two measures of one line, the one whose floor ran faster (the machine
    less disturbed), whatever the line's own figures."""
    return max(first, second, key=lambda line: line.floor_rate or 0)


def median_round(rounds: list[Result], floor: Result) -> Result:
    """Of a line's rounds (each measured just after its own floor), the one with
    the median ratio: a burst on the machine during one round moves the result
    no more than one place. An error in any round is the line's."""
    ordered = sorted(rounds, key=lambda line: ratio(line, floor) or 0)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(
        middle,
        errors=sum(line.errors for line in rounds),
        round_ratios=tuple(ratio(line, floor) or 0 for line in rounds),
    )


def round_ratios(line: Result, separator: str = " ") -> str:
    """A line's rounds' ratios, in the order measured ("" for a single measure)."""
    if len(line.round_ratios) < 2:
        return ""
    return separator.join(f"{r:.2f}" for r in line.round_ratios)


def ratio(line: Result, floor: Result) -> float | None:
    """To the floor measured just before the line, else the run's first."""
    denominator = line.floor_rate or floor.rate
    return line.rate / denominator if denominator else None


def table(
    lines: list[Result], budgets: list[Budget], *, short: bool, enforce: bool = True
) -> tuple[str, bool]:
    """The Markdown table and notes, and whether everything is within its goal
    (with `enforce` off, a ratio below its goal is shown, not failed)."""
    floor = lines[0]
    rows = [
        "| what | requests/s | p50 | p99 | ratio to the floor | goal | |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    ok = True
    for line in lines:
        line_ratio = ratio(line, floor)
        good = line_passes(line, floor, short=short)
        ok &= good or (enforce is False and not line.errors)
        what = line.what
        if line.cards:
            what += f" ({line.rate * line.cards:,.0f} cards/s)"
        if line.errors:
            what += f" — {line.errors:,} errors"
        goal = f"≥ {line.goal:g}" if line.goal is not None else ""
        verdict = "PASS" if good else "FAIL" if enforce or line.errors else "below"
        if line is floor:
            verdict = "FAIL" if line.errors else ""
        rows.append(
            f"| {what} | {line.rate:,.0f} | {line.p50_ms:.1f} ms | "
            f"{line.p99_ms:.1f} ms | {line_ratio:.2f} | {goal} | {verdict} |"
        )
    notes = []
    if floors := [line.floor_rate for line in lines if line.floor_rate]:
        notes.append(
            "- each ratio is to the floor measured just before its line: "
            f"{min(floors):,.0f}–{max(floors):,.0f} requests/s over the run"
        )
    if rounds := [line for line in lines if len(line.round_ratios) > 1]:
        notes.append(
            "- each line's rounds' ratios, in the order measured (the median "
            "counts): "
            + "; ".join(
                f"{line.what.split(' (')[0]} {round_ratios(line)}" for line in rounds
            )
        )
    for budget in budgets:
        good = within(budget, short=short)
        ok &= good
        digits = 0 if float(budget.value).is_integer() or budget.value >= 100 else 1
        notes.append(
            f"- {budget.what}: {budget.value:,.{digits}f}"
            f"{budget.unit} (goal ≤ {budget.limit:g}{budget.unit}) "
            f"{'PASS' if good else 'FAIL'}"
        )
    return "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n", ok


def _run(*command: str) -> str:
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except OSError:
        return ""


def machine(postgres_version: str) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory = next(
        (
            int(line.split()[1]) / 2**20
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    commit = _run("git", "rev-parse", "--short", "HEAD")
    if _run("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    return {
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU": cpu,
        "RAM": f"{memory:.0f} GiB",
        "PostgreSQL": postgres_version,
        "Python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
    }


def document(
    *, body: str, command: str, setup: dict[str, str], machine: dict[str, str]
) -> str:
    """docs/PERFORMANCE.md (or var/bench-last.md): the table, how it was made
    (`command`, as Markdown), where."""
    settings = "\n".join(f"- {name}: {value}" for name, value in setup.items())
    where = "\n".join(f"- {name}: {value}" for name, value in machine.items())
    return (
        "# Performance\n\n"
        "Written by `make bench` (tests/benchmarks/run.py); every ratio is to the "
        "floor (a view answering “ok” through the same middleware, sign-in "
        "included) measured just before its line, on the same machine in the same "
        "minute. These machines are shared and noisy: compare ratios, not requests "
        "per second across runs.\n\n"
        f"{body}\n"
        f"## How\n\n{command}\n\n{settings}\n\n## Machine\n\n{where}\n"
    )
