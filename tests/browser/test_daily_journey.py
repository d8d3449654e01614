"""Issue 11's "Done when", in one session as a new user would: upload a picture,
edit it, edit the result and edit that again, find all three requests by searching
the history, walk the chain from the last back to the upload, compare two, and
download the three as one ZIP.

The upload itself is not a request (nothing to search, select or zip), so the three
requests are the chain of edits made from it: the upload's edit, then two edits of
a result ("Edit this image" on a card, then on a detail page). The simulator
fetches each source through its signed link and draws on a dimmed copy of it, so
a red upload gives red results: proof the edit was made from our stored copy.
"""

import io
import re
import zipfile

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.helpers import check_accessibility

pytestmark = pytest.mark.browser

RESULT = 30_000  # ms: the simulator takes about three seconds per image
WORD = "zebrafinch"  # in every prompt of the journey, and nowhere else
PROMPTS = [
    "Zebrafinch as a watercolour",
    "Zebrafinch at night",
    "Zebrafinch in falling snow",
]
SLUGS = [
    "zebrafinch-as-a-watercolour",
    "zebrafinch-at-night",
    "zebrafinch-in-falling-snow",
]


def red_picture() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (220, 20, 20)).save(buffer, "PNG")
    return {
        "name": "red-kite.png",
        "mimeType": "image/png",
        "buffer": buffer.getvalue(),
    }


def cards(page: Page):
    return page.locator("#history-list > li.card")


def edit_form(page: Page):
    return page.locator("#edit-form")


def send_edit(page: Page, prompt: str):
    """Type the prompt in the open Edit form, send it, and wait for its result."""
    form = edit_form(page)
    form.get_by_label("Prompt").fill(prompt)
    form.get_by_role("button", name="Edit").click()
    newest = cards(page).first
    expect(newest.locator(".card__prompt")).to_have_text(prompt)
    pk = newest.get_attribute("id").removeprefix("request-")
    card = page.locator(f"#request-{pk}")  # stays this card as newer ones arrive
    expect(card.locator(".status")).to_have_text("Completed", timeout=RESULT)
    expect(card.locator(".card__media img")).to_be_visible()
    return card, pk


def expect_made_from_red(page: Page, card) -> None:
    """The result is drawn over a dimmed copy of its source: red, not a gradient."""
    thumbnail = card.locator(".card__media img").get_attribute("src")
    response = page.request.get(re.sub(r"/thumbnail/$", "/full/", thumbnail))
    assert response.ok, response.status
    image = Image.open(io.BytesIO(response.body())).convert("RGB")
    red, green, blue = image.getpixel((2, 2))  # a corner, away from the text
    assert red > 4 * max(green, blue, 1), (red, green, blue)


def test_upload_edit_twice_search_walk_compare_and_zip(signed_in: Page):
    page = signed_in

    # 1. Upload a picture through the Edit form's picker, and edit it.
    page.get_by_text("Edit an image").click()
    form = edit_form(page)
    form.get_by_label("Pictures").set_input_files([red_picture()])
    expect(form.locator("#edit-previews .preview")).to_have_count(1)
    expect(form.get_by_role("button", name="Remove red-kite.png")).to_be_visible()
    check_accessibility(page, "journey: a picture chosen")
    first, first_id = send_edit(page, PROMPTS[0])
    expect_made_from_red(page, first)

    # 2. Edit the result, from its card.
    first.get_by_role("link", name=re.compile("^Edit this image")).click()
    expect(edit_form(page).locator(".preview")).to_have_text(
        re.compile(f"Image of request #{first_id}")
    )
    second, second_id = send_edit(page, PROMPTS[1])
    expect_made_from_red(page, second)

    # 3. And edit that result again, from its detail page.
    second.locator(".card__prompt a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Edit request #{second_id}"
    )
    page.locator(".detail__image").get_by_role("link", name="Edit this image").click()
    expect(edit_form(page).locator(".preview")).to_have_text(
        re.compile(f"Image of request #{second_id}")
    )
    third, third_id = send_edit(page, PROMPTS[2])
    expect_made_from_red(page, third)
    ids = [first_id, second_id, third_id]

    # 4. Find all three by searching the history (as typed, case aside).
    search = page.get_by_role("search", name="Your images").get_by_label(
        "Search prompts"
    )
    search.press_sequentially(WORD, delay=20)
    expect(page).to_have_url(re.compile(f"/\\?q={WORD}$"))
    expect(page.locator(".history__summary")).to_contain_text("3 matches.")
    expect(cards(page)).to_have_count(3)
    expect(cards(page).locator(".card__prompt")).to_have_text(PROMPTS[::-1])
    check_accessibility(page, "journey: three found")

    # 5. Walk the chain from the last back to the upload, on the detail pages.
    cards(page).first.locator(".card__prompt a").click()
    for child, parent in ((third_id, second_id), (second_id, first_id)):
        expect(page.get_by_role("heading", level=1)).to_have_text(
            f"Edit request #{child}"
        )
        page.get_by_role("list", name="Made from", exact=True).get_by_role(
            "link", name=re.compile(f"^Request #{parent}:")
        ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Edit request #{first_id}"
    )
    expect(page.locator(".facts__prompt")).to_have_text(PROMPTS[0])
    made_from = page.get_by_role("list", name="Made from", exact=True)
    expect(made_from.locator("li")).to_have_text(
        [re.compile("An uploaded picture: red-kite.png")]
    )
    expect(made_from.locator("img")).to_have_js_property("naturalWidth", 64)
    expect(
        page.get_by_role("list", name="Made from this").get_by_role("link")
    ).to_have_text([re.compile(f"#{second_id}: {PROMPTS[1]}")])
    check_accessibility(page, "journey: the upload's edit")

    # 6. Back to the search, and compare the first and the last.
    for _ in range(3):
        page.go_back()
    expect(page).to_have_url(re.compile(f"/\\?q={WORD}$"))
    expect(cards(page)).to_have_count(3)

    def select(prompt: str):
        return page.get_by_label(f"Select: {prompt}", exact=True)

    select(PROMPTS[0]).check()
    select(PROMPTS[2]).check()
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_title("Compare 2 images · bananaweb")
    compared = page.locator(".compare__item")
    expect(compared.locator(".facts__prompt")).to_have_text([PROMPTS[2], PROMPTS[0]])
    for n in (0, 1):
        full = compared.nth(n).locator("img")
        expect(full).to_be_visible()
        expect(full).to_have_attribute("src", re.compile(r"/full/$"))
        expect(full).not_to_have_js_property("naturalWidth", 0)
    check_accessibility(page, "journey: compare")

    # 7. Download the three as one ZIP.
    page.go_back()
    expect(cards(page)).to_have_count(3)
    for prompt in PROMPTS:
        select(prompt).check()
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download ZIP").click()
    download = downloading.value
    assert download.suggested_filename == "bananaweb-3-images.zip"
    with zipfile.ZipFile(download.path()) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(
            f"{slug}-{pk}.png" for slug, pk in zip(SLUGS, ids, strict=True)
        ), names
        for name in names:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                assert image.format == "PNG" and image.width > 64, (name, image.size)
