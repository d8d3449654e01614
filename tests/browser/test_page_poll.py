"""One poll per page, not one per card (issue 13), counted in Chromium: six requests
in flight on one page make one request every 2 s between them, the cards finish,
the tab's title follows, and the polling stops once nothing is in flight."""

import json
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import check_accessibility, sign_in

pytestmark = pytest.mark.browser

IN_FLIGHT = 6
WATCH = 7.0  # seconds of counting, all six in flight
POLL_EVERY = 2.0  # the poller's hx-trigger
# Long enough for six submissions and the whole watch; the stack's own is 3 s.
SLOW_DELAY = 25.0
RESULT = 60_000  # ms
USER = "pollster"  # its own user: the stack's name list is for the other tests


def simulator_config(stack, **knobs) -> dict:
    request = urllib.request.Request(
        f"{stack.simulator_url}/_simulator/config",
        data=json.dumps(knobs).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def slow_upstream(stack):
    before = simulator_config(stack)["delay"]
    simulator_config(stack, delay=SLOW_DELAY)
    yield
    simulator_config(stack, delay=before)


def test_six_requests_in_flight_make_one_poll_per_interval_and_it_stops(
    page: Page, stack, slow_upstream
):
    stack.seed("users", USER)
    sign_in(page, USER)
    form = page.locator("#generate-form")
    cards = page.locator("#history-list > li.card")
    for number in range(1, IN_FLIGHT + 1):
        form.get_by_label("Prompt").fill(f"A banana balloon, number {number}")
        form.get_by_role("button", name="Generate").click()
        expect(cards).to_have_count(number)
    expect(page).to_have_title(f"({IN_FLIGHT}) Images · bananaweb")

    sent: list[tuple[float, str]] = []
    page.on("request", lambda request: sent.append((time.monotonic(), request.url)))
    started = time.monotonic()
    page.wait_for_timeout(WATCH * 1000)
    watched = [url for at, url in sent if at - started <= WATCH]

    polls = [url for url in watched if "/requests/updates/" in url]
    print(
        f"\n{IN_FLIGHT} cards in flight, {WATCH:.0f} s: {len(watched)} requests, {len(polls)} polls"
    )
    # Every 2 s for the whole page (3 or 4 in 7 s), never one per card (21 in 7 s).
    assert WATCH // POLL_EVERY <= len(polls) <= WATCH // POLL_EVERY + 1, watched
    assert watched == polls, f"the page asked for more than its poll: {watched}"
    card_ids = {
        card.get_attribute("id").removeprefix("request-") for card in cards.all()
    }
    for url in polls:
        assert (
            set(parse_qs(urlsplit(url).query)["ids"]) == card_ids
        )  # all six, each time
    expect(
        cards.locator(".status--queued, .status--submitting, .status--in_progress")
    ).to_have_count(IN_FLIGHT)
    check_accessibility(page, "six requests in flight, one poll")

    # They finish: each card comes back final through the same poll, and the
    # tab's title (static/js/history.js) counts down to none.
    expect(cards.locator(".status--completed")).to_have_count(IN_FLIGHT, timeout=RESULT)
    expect(page).to_have_title("Images · bananaweb")
    expect(page.locator("#request-poll")).not_to_have_attribute(
        "hx-trigger", "every 2s"
    )

    # Then nothing more is asked.
    finished = time.monotonic()
    page.wait_for_timeout(2.5 * POLL_EVERY * 1000)
    late = [url for at, url in sent if at > finished and "/requests/updates/" in url]
    assert late == []
