"""Finding things in the history and taking images out, in Chromium (issue 11):
search as you type and the back button, filters, the gallery, star, compare, a
ZIP download, bulk delete, the tab's title and the opt-in notification. Each
journey runs axe-core in the states it reaches."""

import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import check_accessibility, sign_in

pytestmark = pytest.mark.browser

RESULT = 30_000  # ms


def cards(page: Page):
    return page.locator("#history-list > li.card")


def filters(page: Page):
    return page.get_by_role("search", name="Your images")


def test_search_as_you_type_keeps_the_form_and_the_back_button_works(
    page: Page, stack, username: str
):
    stack.seed("history", username, "25")  # 4 lighthouses, one of them failed
    sign_in(page, username)
    prompt = page.locator("#generate-prompt")
    prompt.fill("A half-written prompt")

    search = filters(page).get_by_label("Search prompts")
    search.press_sequentially("lighthouse", delay=20)
    expect(page).to_have_url(re.compile(r"/\?q=lighthouse$"))
    expect(cards(page)).to_have_count(4)
    for text in cards(page).locator(".card__prompt").all_inner_texts():
        assert "lighthouse" in text.lower()
    expect(page.locator(".history__summary")).to_contain_text("4 matches.")
    expect(page.locator("#live-status")).to_have_text("4 matches.")
    expect(prompt).to_have_value("A half-written prompt")  # only the list was replaced
    check_accessibility(page, "history searched")

    filters(page).locator("summary").click()
    filters(page).get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"/\?q=lighthouse&status=failed$"))
    expect(cards(page)).to_have_count(1)
    check_accessibility(page, "history searched and filtered")

    page.go_back()
    expect(page).to_have_url(re.compile(r"/\?q=lighthouse$"))
    expect(cards(page)).to_have_count(4)
    expect(filters(page).get_by_label("Status")).to_have_value("")
    expect(search).to_have_value("lighthouse")
    page.go_back()
    expect(cards(page)).to_have_count(20)
    expect(search).to_have_value("")
    expect(prompt).to_have_value("A half-written prompt")

    # A shared link opens the same list.
    page.goto("/?q=lighthouse&status=failed")
    expect(cards(page)).to_have_count(1)
    expect(filters(page).get_by_label("Status")).to_have_value("failed")
    page.get_by_role("link", name="Clear search and filters").click()
    expect(cards(page)).to_have_count(20)
    expect(search).to_have_value("")
    expect(filters(page).get_by_label("Status")).to_have_value("")


def test_gallery_compare_zip_and_delete(page: Page, stack, username: str):
    stack.seed("history", username, "6")  # 5 with an image, 1 failed
    thumbnails = []
    page.on(
        "request",
        lambda request: (
            thumbnails.append(request.url) if "/images/" in request.url else None
        ),
    )
    sign_in(page, username)

    filters(page).get_by_label("Gallery").check()
    expect(page).to_have_url(re.compile(r"/\?view=gallery$"))
    tiles = page.locator("#history-gallery > li")
    expect(tiles).to_have_count(5)
    page.wait_for_load_state("networkidle")
    assert thumbnails and all(url.endswith("/thumbnail/") for url in thumbnails)
    check_accessibility(page, "gallery")

    for n in (0, 1):
        tiles.nth(n).get_by_label(re.compile("^Select")).check()
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_title("Compare 2 images · bananaweb")
    full = page.locator(".compare img")
    expect(full).to_have_count(2)
    for n in (0, 1):
        assert re.search(r"/full/$", full.nth(n).get_attribute("src"))
        expect(full.nth(n)).to_be_visible()
    check_accessibility(page, "compare")

    page.go_back()
    for n in (0, 1):
        tiles.nth(n).get_by_label(re.compile("^Select")).check()
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download ZIP").click()
    download = downloading.value
    assert download.suggested_filename == "bananaweb-2-images.zip"
    names = zipfile.ZipFile(download.path()).namelist()
    assert len(names) == 2 and all(re.search(r"-\d+\.png$", n) for n in names), names

    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete 2 requests?")
    check_accessibility(page, "delete confirmation")
    page.get_by_role("button", name="Delete 2 requests").click()
    expect(page.locator(".notice")).to_have_text("Deleted 2 requests.")
    expect(cards(page)).to_have_count(4)


def test_star_and_the_starred_filter(signed_in: Page, stack, username: str):
    page = signed_in
    stack.seed("history", username, "3")
    page.reload()
    star = cards(page).nth(1).get_by_role("button", name=re.compile("^Star"))
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    starred = cards(page).nth(1).get_by_role("button", name=re.compile("^Star"))
    expect(starred).to_have_attribute("aria-pressed", "true")
    expect(starred).to_be_focused()
    starred_id = cards(page).nth(1).get_attribute("id")

    filters(page).locator("summary").click()
    filters(page).get_by_label("Starred only").check()
    expect(page).to_have_url(re.compile(r"/\?starred=1$"))
    expect(cards(page)).to_have_count(1)
    expect(cards(page).first).to_have_attribute("id", starred_id)
    check_accessibility(page, "starred only")


# A stand-in for the browser's notifications, and a tab in the background.
FAKE_NOTIFICATIONS = """
window.shown = [];
window.Notification = class {
  static permission = "default";
  static async requestPermission() { window.Notification.permission = "granted"; return "granted"; }
  constructor(title, options) { window.shown.push([title, options.body]); }
  addEventListener() {}
  close() {}
};
Object.defineProperty(Document.prototype, "visibilityState", {get: () => "hidden", configurable: true});
"""


def test_tab_title_counts_in_flight_and_a_notification_says_when_done(
    page: Page, username: str
):
    page.add_init_script(FAKE_NOTIFICATIONS)
    sign_in(page, username)
    button = page.get_by_role("button", name="Notify me when images finish")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")

    form = page.locator("#generate-form")
    form.get_by_label("Prompt").fill("A banana kite over the sea")
    form.get_by_role("button", name="Generate").click()
    expect(page).to_have_title("(1) Images · bananaweb")
    expect(cards(page).first.locator(".status")).to_have_text(
        "Completed", timeout=RESULT
    )
    expect(page).to_have_title("Images · bananaweb")
    assert page.evaluate("window.shown") == [
        ["Your image is ready", "A banana kite over the sea: Completed."]
    ]
