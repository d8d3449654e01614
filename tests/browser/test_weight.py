"""The main page is light: its first load, with a cold cache and a full history page,
moves at most 60 KB of HTML, CSS, JS and icons, and no full-size image."""

import json
import re

import pytest

from tests.browser.helpers import ARTIFACTS, DESKTOP, sign_in

pytestmark = pytest.mark.browser

BUDGET = 60 * 1024  # bytes over the wire, headers included, images of the history aside
HISTORY_IMAGE = re.compile(r"/requests/\d+/images/\d+/(full|thumbnail)/$")


def test_main_page_first_load_is_light(browser, base_url: str, stack, username: str):
    stack.seed("history", username, "25")
    signing_in = browser.new_context(base_url=base_url, viewport=DESKTOP)
    sign_in(signing_in.new_page(), username)
    cookies = signing_in.storage_state()
    signing_in.close()

    cold = browser.new_context(
        base_url=base_url, viewport=DESKTOP, storage_state=cookies
    )  # an empty cache
    page = cold.new_page()
    finished = []
    page.on("requestfinished", lambda request: finished.append(request))
    page.goto("/")
    page.wait_for_load_state("networkidle")
    assert page.locator("#history-list > li").count() == 20

    rows = []
    for request in finished:
        sizes, response = request.sizes(), request.response()
        rows.append(
            {
                "url": request.url.removeprefix(base_url),
                "type": request.resource_type,
                "status": response.status,
                "encoding": response.headers.get("content-encoding", ""),
                "body": sizes["responseBodySize"],
                "headers": sizes["responseHeadersSize"],
            }
        )
    images = [row for row in rows if HISTORY_IMAGE.search(row["url"])]
    assets = [row for row in rows if row not in images]
    total = sum(row["body"] + row["headers"] for row in assets)
    report = {
        "assets_bytes": total,
        "assets_body_bytes": sum(row["body"] for row in assets),
        "thumbnail_bytes": sum(row["body"] + row["headers"] for row in images),
        "responses": rows,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "page-weight.json").write_text(json.dumps(report, indent=2))

    assert total <= BUDGET, (
        f"The main page's first load moved {total:,} bytes (budget {BUDGET:,}): {rows}"
    )
    assert images and all(row["url"].endswith("/thumbnail/") for row in images), images
    for row in assets:
        if row["type"] in ("stylesheet", "script"):
            # As in production: WhiteNoise serves hashed names, compressed.
            assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", row["url"]), row
            assert row["encoding"] in ("gzip", "br"), row

    # Scrolling loads the rest of the thumbnails, and still no full-size image.
    page.keyboard.press("End")
    page.wait_for_load_state("networkidle")
    urls = [request.url for request in finished if HISTORY_IMAGE.search(request.url)]
    assert urls and all(url.endswith("/thumbnail/") for url in urls), urls
    cold.close()
