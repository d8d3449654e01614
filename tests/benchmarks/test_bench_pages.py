"""Benchmarks (`make bench`): ratios measured in one run, since these machines are shared and noisy."""

import statistics
import time
import tracemalloc

import pytest
from django.urls import reverse

from bananaweb.models import ImageRequest
from tests.factories import ImageRequestFactory

pytestmark = pytest.mark.bench
HTMX = {"HX-Request": "true"}


def median_seconds(fn, rounds: int = 60) -> float:
    fn()  # warm up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_polling_a_card_costs_a_fraction_of_the_page(client_logged_in, user, settings):
    """Every in-flight card polls every 2 s, so its fragment must stay far cheaper than the page."""
    settings.BANANAWEB_HISTORY_PAGE_SIZE = 20
    ImageRequestFactory.create_batch(
        40, user=user, status=ImageRequest.Status.COMPLETED
    )
    card = ImageRequestFactory(user=user, status=ImageRequest.Status.IN_PROGRESS)
    page = median_seconds(lambda: client_logged_in.get(reverse("index")))
    fragment = median_seconds(
        lambda: client_logged_in.get(
            reverse("request-card", args=[card.pk]), headers=HTMX
        )
    )
    ratio = fragment / page
    print(
        f"\nmain page {page * 1000:.2f} ms, card fragment {fragment * 1000:.2f} ms, ratio {ratio:.2f}"
    )
    assert ratio < 0.5


def test_history_page_memory_does_not_grow_with_history(
    client_logged_in, user, settings
):
    """The main page pages its history: 2,000 requests cost about what 20 do."""
    settings.BANANAWEB_HISTORY_PAGE_SIZE = 20

    def peak() -> int:
        tracemalloc.start()
        client_logged_in.get(reverse("index"))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    ImageRequestFactory.create_batch(20, user=user)
    small = peak()
    ImageRequest.objects.bulk_create(
        [
            ImageRequest(
                user=user, action="generate", prompt=f"p{n}", model="nano-banana-fast"
            )
            for n in range(2000)
        ]
    )
    large = peak()
    print(
        f"\npeak with 20 requests {small / 1024:.0f} KiB, with 2,020 {large / 1024:.0f} KiB"
    )
    assert large < small * 1.5
