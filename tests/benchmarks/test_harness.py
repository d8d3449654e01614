"""`make bench`'s own parts, without a server: the seed, wrk's figures, the verdicts
against the goals, and the poller's query as htmx would send it."""

import argparse
import dataclasses

import pytest
from django.core.files.storage import default_storage

from bananaweb.gateway.models import GatewayTask
from bananaweb.models import GeneratedImage, ImageRequest
from tests.benchmarks import report, seed
from tests.benchmarks.client import poller_query

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:1/bench/floor/
  2 threads and 8 connections
BENCH_JSON {"requests": 2400, "duration_us": 3000000, "bytes": 1, "p50_us": 8100, "p99_us": 21000, "status_errors": 0, "socket_errors": 0}
"""


def figures(requests: int, *, errors: int = 0) -> dict:
    return {
        "requests": requests,
        "duration_us": 1_000_000,
        "p50_us": 1000,
        "p99_us": 2000,
        "status_errors": errors,
        "socket_errors": 0,
    }


def test_wrk_figures_are_read_from_the_scripts_line():
    line = report.result("floor", report.parse_wrk(WRK_OUTPUT), goal=None)
    assert (line.rate, line.p50_ms, line.p99_ms, line.errors) == (800, 8.1, 21, 0)


def test_wrk_output_without_figures_is_an_error():
    with pytest.raises(ValueError, match="no figures"):
        report.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.mark.parametrize(
    ("ratio", "short", "passes"),
    [(0.5, False, True), (0.49, False, False), (0.26, True, True), (0.24, True, False)],
)
def test_the_short_run_fails_only_below_half_a_goal(ratio, short, passes):
    assert report.passes(ratio, 0.5, short=short) is passes


def test_the_table_fails_a_line_below_its_goal_or_answering_errors():
    floor = report.result("the floor", figures(1000), goal=None)
    fast = report.result("detail page", figures(700), goal=0.6)
    slow = report.result("main page", figures(400), goal=0.5)
    broken = report.result("a thumbnail", figures(950, errors=3), goal=0.9)
    body, ok = report.table([floor, fast], [], short=False)
    assert (
        ok and "| detail page | 700 | 1.0 ms | 2.0 ms | 0.70 | ≥ 0.6 | PASS |" in body
    )
    body, ok = report.table([floor, fast, slow], [], short=False)
    assert not ok and "| 0.40 | ≥ 0.5 | FAIL |" in body
    body, ok = report.table([floor, broken], [], short=True)
    assert not ok and "3 errors" in body


def test_ratios_not_enforced_show_a_slow_line_but_still_fail_errors():
    floor = report.result("the floor", figures(1000), goal=None)
    slow = report.result("main page", figures(100), goal=0.5)
    broken = report.result("a thumbnail", figures(950, errors=3), goal=0.9)
    body, ok = report.table([floor, slow], [], short=True, enforce=False)
    assert ok and "| 0.10 | ≥ 0.5 | below |" in body
    body, ok = report.table([floor, slow, broken], [], short=True, enforce=False)
    assert not ok and "3 errors" in body


def test_a_poll_line_reports_the_cards_it_answers_for():
    floor = report.result("the floor", figures(1000), goal=None)
    poll = report.result("page poll, 10 cards", figures(600), goal=0.6, cards=10)
    body, ok = report.table([floor, poll], [], short=False)
    assert ok and "page poll, 10 cards (6,000 cards/s)" in body


def test_a_budget_passes_at_its_limit_and_the_short_run_allows_twice():
    polls = report.Budget("polls for a 60 s task", 13, 12)
    assert not report.within(polls, short=False)
    assert report.within(polls, short=True)
    floor = report.result("the floor", figures(1000), goal=None)
    body, ok = report.table([floor], [report.Budget("polls", 7, 12)], short=False)
    assert ok and "- polls: 7 (goal ≤ 12) PASS" in body


def test_the_pollers_query_is_what_htmx_sends_with_its_form():
    page = """
    <form id="request-poll" hx-get="/requests/updates/"></form>
    <li><input type="hidden" name="ids" value="9" form="request-poll">
        <input type="hidden" name="since" value="9:ab12cd34" form="request-poll"></li>
    <form id="search"><input name="q" value="cats"></form>
    <li><input type="hidden" name="ids" value="7" form="request-poll">
        <input type="hidden" name="since" value="7:0011aabb" form="request-poll"></li>
    """
    assert poller_query(page) == "ids=9&since=9%3Aab12cd34&ids=7&since=7%3A0011aabb"


def test_the_seed_gives_every_request_an_image_and_the_measured_user_their_share(db):
    args = argparse.Namespace(
        requests=120, user_requests=30, users=5, username="bench", out=None
    )
    made = seed.seed(args, "a-bench-password")

    mine = ImageRequest.objects.filter(user__username="bench")
    assert made["requests"] == ImageRequest.objects.count() == 120
    assert made["user_requests"] == mine.count() == 30
    assert GeneratedImage.objects.count() == 120
    assert not ImageRequest.objects.filter(images__isnull=True).exists()
    image = GeneratedImage.objects.get(pk=made["completed_image"])
    assert default_storage.exists(image.thumbnail.name)
    # Each person's newest is in flight (the page polls), the rest have ended.
    newest = list(mine.newest_first().values_list("status", flat=True)[:3])
    assert newest[:2] == ["in_progress", "queued"]
    assert newest[2] not in ImageRequest.IN_FLIGHT
    # The search's word is there to find (fixed random seed: the same every run).
    assert ImageRequest.objects.filter(prompt__icontains=seed.SEARCH_WORD).exists()
    task = GatewayTask.objects.get(task_id=made["gateway_task_id"])
    assert task.image_request.user.username == "bench"
    assert task.image_request.status == ImageRequest.Status.COMPLETED


def test_a_ratio_is_to_the_floor_measured_just_before_its_line():
    """The machine slowed down between the first floor and the line: the line is
    judged against the floor of its own minute."""
    floor = report.result("the floor", figures(1000), goal=None)
    main = dataclasses.replace(
        report.result("main page", figures(300), goal=0.5), floor_rate=600
    )
    body, ok = report.table([floor, main], [], short=False)
    assert ok and "| 0.50 | ≥ 0.5 | PASS |" in body, body
    assert "floor measured just before its line: 600–600 requests/s" in body


def test_of_two_measures_of_a_line_the_better_counts_and_errors_never_do():
    """The short run measures a line below half its goal once more: it fails
    only if both measures are below, and a measure with errors never counts."""
    floor = report.result("the floor", figures(1000), goal=None)
    low, high = (
        dataclasses.replace(
            report.result("gallery", figures(n), goal=0.5), floor_rate=1000
        )
        for n in (200, 400)
    )
    assert report.better(low, high, floor) is high
    assert report.better(high, low, floor) is high
    failing = dataclasses.replace(
        report.result("gallery", figures(900, errors=3), goal=0.5), floor_rate=1000
    )
    assert report.better(failing, low, floor) is low


def test_a_line_whose_floor_fell_far_is_measured_again_and_the_calmer_counts():
    """Another tenant's burst during the floor just before a line makes its ratio
    say more about the machine than the line (a thumbnail at 1.31): such a
    line is measured once more, and the measure whose floor ran faster counts,
    whatever the line's own figures."""
    floor = report.result("the floor", figures(1000), goal=None)
    line = report.result("a thumbnail", figures(577), goal=0.9)
    burst = dataclasses.replace(line, floor_rate=439)
    calm = dataclasses.replace(line, requests=line.requests - 1, floor_rate=900)
    assert report.disturbed(burst, floor)
    assert not report.disturbed(calm, floor)
    assert not report.disturbed(dataclasses.replace(line, floor_rate=None), floor)
    assert report.calmer(burst, calm) is calm
    assert report.calmer(calm, burst) is calm


def test_a_line_in_rounds_counts_its_median_round_and_every_rounds_errors():
    """A burst during one round (the gallery at 0.27 in one run, 0.48 in the
    next) moves a line's result by one place at most: the round with the median
    ratio counts, and an error in any round fails the line."""
    floor = report.result("the floor", figures(1000), goal=None)
    rounds = [
        dataclasses.replace(
            report.result("the team gallery", figures(n), goal=0.5), floor_rate=f
        )
        for n, f in ((270, 1000), (500, 1000), (150, 1000))
    ]
    middle = report.median_round(rounds, floor)
    assert middle.requests == 270 and middle.floor_rate == 1000
    assert middle.round_ratios == (0.27, 0.5, 0.15)
    body, ok = report.table([floor, middle], [], short=False)
    assert not ok and "| 0.27 | ≥ 0.5 | FAIL |" in body, body
    assert "rounds' ratios, in the order measured (the median counts): " in body
    assert "the team gallery 0.27 0.50 0.15" in body

    # A burst on the floor's side: its round's ratio is the outlier.
    calm = [dataclasses.replace(rounds[1], floor_rate=f) for f in (1000, 400, 1050)]
    assert report.median_round(calm, floor).floor_rate == 1000

    failing = [rounds[0], dataclasses.replace(rounds[1], errors=2), rounds[2]]
    assert report.median_round(failing, floor).errors == 2
    assert not report.line_passes(
        report.median_round(failing, floor), floor, short=False
    )


def test_the_full_run_measures_in_rounds_and_the_short_one_does_not():
    from tests.benchmarks.run import parse_args

    assert parse_args([]).rounds == 3
    assert parse_args(["--short"]).rounds == 1
    with pytest.raises(SystemExit):
        parse_args(["--seconds", "2", "--rounds", "3"])
