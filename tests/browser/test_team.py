"""Issue 12's "Done when", in Chromium, with two accounts in two browser contexts:
the first shows an image to the team; the second finds it in the Team view by
searching, opens it read-only, edits it into an image of their own, adds both to a
collection shared with the first (who then sees it), and sends a share link that
opens in a third context with no session and stops working once revoked. Then a
prompt template with a placeholder, picked from the Generate form.

Each journey runs axe-core in the states it reaches.
"""

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.helpers import check_accessibility, sign_in

pytestmark = pytest.mark.browser

RESULT = 30_000  # ms: the simulator takes about three seconds per image
WORD = "quokka"  # in both prompts of the journey, and nowhere else
SHARED_PROMPT = "Quokka lighthouse on a foggy harbour"
EDIT_PROMPT = "Quokka lighthouse at sunset, in oils"
COLLECTION = "Harbour picks"


def watched_page(context: BrowserContext, problems: list[str]) -> Page:
    """A page in the context whose script errors and CSP refusals go to problems,
    as conftest's `page` fixture does for the first one (and fails the test)."""
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    return page


def cards(page: Page):
    return page.locator("#history-list > li.card")


def wait_for_result(page: Page, prompt: str):
    """The newest card is the request just sent: wait for its image."""
    newest = cards(page).first
    expect(newest.locator(".card__prompt")).to_have_text(prompt)
    pk = newest.get_attribute("id").removeprefix("request-")
    card = page.locator(f"#request-{pk}")  # stays this card as newer ones arrive
    expect(card.locator(".status")).to_have_text("Completed", timeout=RESULT)
    expect(card.locator(".card__media img")).to_be_visible()
    return card, pk


def expect_loaded(images) -> None:
    for n in range(images.count()):
        expect(images.nth(n)).not_to_have_js_property("naturalWidth", 0)


def test_team_gallery_collection_and_share_link(
    page: Page, new_context, stack, username: str
):
    first, first_name = page, username  # the one who shares
    second_name = stack.next_user()
    problems: list[str] = []  # the second's and the stranger's pages
    second = watched_page(new_context(), problems)

    # 1. The first makes an image visible to the team, from the Generate form.
    sign_in(first, first_name)
    form = first.locator("#generate-form")
    form.get_by_label("Prompt").fill(SHARED_PROMPT)
    visibility = form.get_by_label("Who can see it")
    expect(visibility).to_have_value("private")  # nothing shown unless chosen
    visibility.select_option(label="The team")
    form.get_by_role("button", name="Generate").click()
    shared_card, shared_id = wait_for_result(first, SHARED_PROMPT)
    # Its name gains a "✓ " (CSS) when pressed, so matched from "Share with team".
    toggle = shared_card.get_by_role(
        "button", name=re.compile(f"Share with team\\W*{SHARED_PROMPT}$")
    )
    expect(toggle).to_have_attribute("aria-pressed", "true")
    # The card's toggle makes it private and shows it again.
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    check_accessibility(first, "team: an image shown to the team")

    # 2. The second finds it in the Team view by searching, in the gallery too.
    sign_in(second, second_name)
    second.get_by_role("navigation", name="Whose images").get_by_role(
        "link", name="Team"
    ).click()
    expect(second.get_by_role("heading", name="Team images")).to_be_visible()
    filters = second.get_by_role("search", name="Team images")
    filters.get_by_label("Search prompts").press_sequentially(WORD, delay=20)
    expect(second).to_have_url(re.compile(f"scope=team.*q={WORD}|q={WORD}.*scope=team"))
    expect(second.locator(".history__summary")).to_contain_text("1 match.")
    expect(cards(second)).to_have_count(1)
    card = second.locator(f"#request-{shared_id}")
    expect(card.locator(".card__author")).to_have_text(f"By {first_name}")
    # Not theirs: no toggle to change who sees it.
    expect(
        card.get_by_role("button", name=re.compile("^Share with team"))
    ).to_have_count(0)
    check_accessibility(second, "team: the team view searched")

    filters.get_by_label("Gallery").check()
    tiles = second.locator("#history-gallery > li")
    expect(tiles).to_have_count(1)
    expect(tiles.first.locator(".tile__author")).to_have_text(first_name)
    check_accessibility(second, "team: the team gallery searched")

    # 3. Its detail page, read-only, with the author's name.
    tiles.first.get_by_role("link", name=SHARED_PROMPT).click()
    expect(second.get_by_role("heading", level=1)).to_have_text(
        f"Generate request #{shared_id}"
    )
    expect(second.locator(".detail__owner")).to_have_text(
        f"By {first_name} · Visible to the team"
    )
    expect(second.get_by_label("Who can see it")).to_have_count(0)
    expect(second.get_by_role("button", name="Resubmit")).to_have_count(0)
    expect_loaded(second.locator(".detail__image img"))
    check_accessibility(second, "team: a teammate's image, read-only")

    # 4. ... used for an edit of the second's own.
    second.locator(".detail__image").get_by_role("link", name="Edit this image").click()
    edit_form = second.locator("#edit-form")
    expect(edit_form.locator(".preview")).to_have_text(
        re.compile(f"Image of request #{shared_id}")
    )
    edit_form.get_by_label("Prompt").fill(EDIT_PROMPT)
    edit_form.get_by_role("button", name="Edit").click()
    edit_card, edit_id = wait_for_result(second, EDIT_PROMPT)
    expect(edit_card.locator(".card__author")).to_have_count(0)  # theirs
    edit_card.locator(".card__prompt a").click()
    expect(second.locator(".detail__owner")).to_have_text("Yours · Private")
    expect(
        second.get_by_role("list", name="Made from", exact=True).get_by_role("link")
    ).to_have_text([re.compile(f"Request #{shared_id}: {SHARED_PROMPT}")])

    # 5. Both go to a new collection: the teammate's image first, from its card.
    second.goto(f"/?scope=team&q={WORD}")
    second.locator(f"#request-{shared_id}").get_by_role(
        "link", name=re.compile("^Add to collection")
    ).click()
    expect(second.get_by_role("heading", level=1)).to_have_text(
        "Add 1 image to a collection"
    )
    second.get_by_label("Name of the new collection").fill(COLLECTION)
    second.get_by_role("button", name="Add to collection").click()
    expect(second.get_by_role("heading", level=1)).to_have_text(COLLECTION)
    expect(second.locator(".notice")).to_have_text(f"Added 1 image to “{COLLECTION}”.")
    collection_url = second.url

    # Shared with the first, as a viewer.
    members = second.locator("#add-member")
    members.get_by_label("User or group").fill(first_name)
    members.get_by_label("Role").select_option(label="Viewer")
    members.get_by_role("button", name="Add member").click()
    expect(second.locator("#members tbody tr")).to_have_count(2)
    expect(second.locator("#members tbody tr").last).to_contain_text(first_name)
    expect(second.locator("#collection-access")).to_contain_text("shared with 1 member")

    # Then the second's own edit, private: asked first, as the collection is shared.
    second.goto("/")
    second.locator(f"#request-{edit_id}").get_by_role(
        "link", name=re.compile("^Add to collection")
    ).click()
    choice = second.get_by_role("radio", name=re.compile(f"^{COLLECTION}"))
    expect(choice).to_be_checked()
    expect(second.locator("#collection-new")).not_to_be_checked()
    second.get_by_role("button", name="Add to collection").click()
    expect(second.get_by_role("heading", level=1)).to_have_text(
        f"Show private images to the members of “{COLLECTION}”?"
    )
    check_accessibility(second, "team: asked before showing a private image")
    second.get_by_role("button", name="Add and show to its members").click()
    expect(second.get_by_role("heading", level=1)).to_have_text(COLLECTION)
    gallery = second.locator(".collection-gallery > li")
    expect(gallery).to_have_count(2)
    expect(gallery.locator(".tile__caption")).to_have_text(
        [
            re.compile(f"By {first_name} · added by {second_name}"),
            re.compile(f"By {second_name} · added by {second_name}"),
        ]
    )

    # 6. The first sees the collection, both images in it, the private one too.
    first.get_by_role("navigation", name="Account").get_by_role(
        "link", name="Collections"
    ).click()
    listed = first.get_by_role("list", name="Collections").get_by_role(
        "link", name=COLLECTION
    )
    expect(listed).to_be_visible()
    expect(first.locator(".collection-list .tile__caption")).to_contain_text(
        f"2 images · {second_name}’s"
    )
    listed.click()
    expect(first.get_by_role("heading", level=1)).to_have_text(COLLECTION)
    expect(first.locator("#collection-access")).to_contain_text(
        f"{second_name}’s collection · you are a viewer"
    )
    seen = first.locator(".collection-gallery img")
    expect(seen).to_have_count(2)
    expect_loaded(seen)
    expect(first.locator("#add-member")).to_have_count(0)  # only the owner manages
    expect(first.locator("#share-form")).to_have_count(0)
    check_accessibility(first, "team: a collection shared with me")

    # 7. The second makes a share link for the collection ...
    second.goto(collection_url)
    share = second.locator("#share-form")
    share.get_by_label("Expires after (days)").fill("3")
    share.get_by_label("Show the prompts").check()
    share.get_by_role("button", name="Create share link").click()
    expect(second.get_by_role("heading", level=1)).to_have_text("Share links")
    link = second.get_by_role("textbox", name="Share link")
    expect(link).to_have_value(re.compile(r"^http://[^/]+/s/[^/]+/$"))
    url = link.input_value()

    # ... that opens in a fresh context, with no session.
    stranger = watched_page(new_context(), problems)
    response = stranger.goto(url)
    assert response.status == 200, response.status
    assert "private" in response.headers["cache-control"]
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Shared images")
    shown = stranger.locator(".shared__figure")
    expect(shown).to_have_count(2)
    expect(shown.locator("figcaption")).to_have_text(
        [SHARED_PROMPT, EDIT_PROMPT]  # in the collection's order
    )
    expect_loaded(shown.locator("img"))
    assert stranger.request.get(f"{url}images/1/").ok
    body = stranger.locator("body").inner_text()
    assert first_name not in body and second_name not in body, body  # no names
    expect(stranger.locator('meta[name="robots"]')).to_have_attribute(
        "content", "noindex"
    )
    check_accessibility(stranger, "team: a share link, signed out")

    # 8. Revoked, it stops working.
    second.get_by_role("navigation", name="Account").get_by_role(
        "link", name="Share links"
    ).click()
    second.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(second.locator(".notice")).to_have_text(
        "Revoked: the link no longer opens anything."
    )
    expect(second.locator(".share-link-table tbody tr")).to_contain_text("Revoked")
    response = stranger.goto(url)
    assert response.status == 404, response.status
    expect(stranger.get_by_role("heading", level=1)).to_have_text(
        "This link is not valid"
    )
    expect(stranger.locator(".shared__figure")).to_have_count(0)
    assert stranger.request.get(f"{url}images/1/").status == 404  # its images too

    assert not problems, problems


def test_prompt_template_with_a_placeholder_fills_the_generate_form(signed_in: Page):
    page = signed_in
    page.get_by_role("navigation", name="Account").get_by_role(
        "link", name="Templates"
    ).click()
    page.get_by_role("link", name="New template", exact=True).click()
    page.get_by_label("Name").fill("Postcard")
    page.get_by_label("Prompt").fill("A postcard of {city} at dusk")
    page.get_by_label("Share with the team").check()
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Prompt templates")
    row = page.locator(".template-item", has_text="Postcard")
    expect(row).to_contain_text("Shared with the team")
    expect(row).to_contain_text("Placeholders: city")
    check_accessibility(page, "templates: one saved")

    page.get_by_role("link", name="bananaweb").click()
    form = page.locator("#generate-form")
    form.get_by_text("Start from a template").click()
    form.get_by_role("list", name="Templates to start from").get_by_role(
        "link", name="Postcard"
    ).click()
    city = form.get_by_label("city")
    expect(city).to_be_focused()
    # Chromium focuses the new field (autofocus) before htmx, settling the swap,
    # listens to it: a value filled in before then would never be sent.
    expect(page.locator("#generate-templates")).not_to_have_class(
        re.compile(r"\bhtmx-(added|settling)\b")
    )
    prompt = form.get_by_label("Prompt", exact=True)
    expect(prompt).to_have_value("A postcard of {city} at dusk")
    city.fill("Lisbon")
    expect(prompt).to_have_value("A postcard of Lisbon at dusk")
    expect(page.locator("#generate-template-status")).to_have_text(
        "Every placeholder is filled in: the prompt is ready."
    )
    check_accessibility(page, "templates: one picked and filled in")
