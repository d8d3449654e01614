"""The main page's memory does not grow with the history (it pages it): part of
`make test`, since it needs no server. Throughput is `make bench`'s (run.py)."""

import tracemalloc

from django.urls import reverse

from bananaweb.models import ImageRequest
from tests.factories import ImageRequestFactory


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
    assert large < small * 1.5, (
        f"peak with 20 requests {small / 1024:.0f} KiB, "
        f"with 2,020 {large / 1024:.0f} KiB"
    )
