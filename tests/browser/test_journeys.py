"""What a person does with bananaweb, in Chromium, against the running stack.

Each journey also runs axe-core in every state it reaches.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import PASSWORD, check_accessibility, sign_in

pytestmark = pytest.mark.browser

RESULT = 30_000  # ms: the simulator answers in about 3 s, `[sim:fast]` in 0.5 s
IN_FLIGHT = re.compile(r"Queued|Sending|In progress")


def cards(page: Page):
    return page.locator("#history-list > li.card")


def generate(page: Page, prompt: str) -> None:
    form = page.locator("#generate-form")
    form.get_by_label("Prompt").fill(prompt)
    form.get_by_role("button", name="Generate").click()


def expect_completed(card) -> None:
    expect(card.locator(".status")).to_have_text("Completed", timeout=RESULT)
    expect(card.locator(".card__media img")).to_be_visible()
    assert card.locator(".card__media img").evaluate(
        "img => img.complete && img.naturalWidth > 0"
    )


def test_sign_in(page: Page, username: str):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page).to_have_title("Sign in · bananaweb")
    expect(page.get_by_label("User name")).to_be_focused()
    check_accessibility(page, "login")

    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("don't match")
    expect(page.get_by_label("User name")).to_have_value(username)
    check_accessibility(page, "login with an error")

    sign_in(page, username)
    expect(page).to_have_title("Images · bananaweb")
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(username)
    expect(page.get_by_text("Nothing here yet.")).to_be_visible()
    expect(page.locator("#quota")).to_have_text("50 of 50 requests left today")
    check_accessibility(page, "empty history")


def test_generate_shows_the_request_in_flight_then_its_image(signed_in: Page):
    page = signed_in
    generate(page, "A banana surfing a turquoise wave at dawn")

    card = cards(page).first
    expect(card).to_contain_text("A banana surfing a turquoise wave at dawn")
    expect(card.locator(".status")).to_have_text(IN_FLIGHT)
    expect(card.locator(".card__time")).to_have_text(re.compile(r"\d+ s so far"))
    expect(card.locator(".spinner")).to_be_visible()
    expect(page.locator("#generate-prompt")).to_have_value("")  # ready for the next one
    expect(page.locator("#quota")).to_have_text("49 of 50 requests left today")
    expect(page.get_by_text("Nothing here yet.")).to_be_hidden()
    check_accessibility(page, "request in flight")

    expect_completed(card)
    expect(card.locator(".card__time")).to_have_text(re.compile(r"in \d+ s"))
    # The page-level live region said so: the card itself is replaced on every poll.
    expect(page.locator("#live-status")).to_have_text(
        re.compile(r"A banana surfing .*: Completed\.")
    )
    check_accessibility(page, "request completed")


def test_switching_model_changes_the_choices(signed_in: Page):
    form = signed_in.locator("#generate-form")
    model, ratio, resolution = (
        form.get_by_label("Model"),
        form.get_by_label("Aspect ratio"),
        form.get_by_label("Resolution"),
    )

    expect(model).to_have_value("nano-banana-fast")
    expect(resolution).to_be_disabled()
    expect(form.get_by_text("Nano Banana Fast has one resolution.")).to_be_visible()
    expect(ratio.locator("option[value='1:8']")).to_have_count(0)

    model.select_option("nano-banana-2")
    expect(ratio.locator("option[value='1:8']")).to_have_count(1)
    expect(resolution).to_be_enabled()
    expect(resolution.locator("option")).to_have_text(
        ["Model default", "1K", "2K", "4K"]
    )
    ratio.select_option("16:9")
    resolution.select_option("4K")

    model.select_option("nano-banana-pro")
    expect(ratio.locator("option[value='1:8']")).to_have_count(0)
    expect(ratio).to_have_value("16:9")  # still offered, so kept
    expect(resolution).to_have_value("4K")

    model.select_option("nano-banana-2")
    ratio.select_option("1:8")
    model.select_option("nano-banana-fast")
    expect(ratio).to_have_value("")  # 1:8 is gone: back to the model's default
    expect(resolution).to_be_disabled()
    check_accessibility(signed_in, "model switched")


def test_invalid_input_is_shown_inline_and_keeps_what_was_typed(signed_in: Page):
    page = signed_in
    page.get_by_text("Edit an image").click()
    edit = page.locator("#edit-form")
    edit.get_by_label("Prompt").fill("Make the sky purple")
    edit.get_by_label("Model").select_option("nano-banana-2")
    edit.get_by_role("button", name="Edit").click()

    urls = edit.get_by_label("Image URLs")
    expect(edit.locator(".field__error")).to_have_text(
        "Editing needs at least one image to start from: add a picture or an image URL."
    )
    expect(urls).to_have_attribute("aria-invalid", "true")
    expect(urls).to_be_focused()
    described_by = urls.get_attribute("aria-describedby").split()
    assert all(page.locator(f"#{id_}").count() == 1 for id_ in described_by), (
        described_by
    )
    expect(edit.get_by_label("Prompt")).to_have_value("Make the sky purple")
    expect(edit.get_by_label("Model")).to_have_value("nano-banana-2")
    check_accessibility(page, "edit form error")

    generate(page, "   ")
    prompt = page.locator("#generate-prompt")
    expect(page.locator("#generate-form .field__error")).to_have_text(
        "Describe the image you want: the prompt can't be empty."
    )
    expect(prompt).to_have_value(re.compile(r"^\s+$"))
    expect(prompt).to_be_focused()
    expect(cards(page)).to_have_count(0)
    check_accessibility(page, "generate form error")


def test_edit_this_image_prefills_the_edit_form(signed_in: Page, stack):
    page = signed_in
    generate(page, "A yellow banana on a blue plate [sim:fast]")
    expect_completed(cards(page).first)

    first = cards(page).first.get_attribute("id").removeprefix("request-")
    cards(page).first.get_by_role("link", name=re.compile("^Edit this image")).click()
    edit = page.locator("#edit-form")
    # Our stored copy, never the upstream's URL.
    expect(edit.locator(".preview")).to_have_count(1)
    expect(edit.locator(".preview")).to_contain_text(f"Image of request #{first}")
    expect(page.locator("#edit-image_urls")).to_have_value("")
    expect(page.locator("#edit-prompt")).to_be_focused()
    check_accessibility(page, "edit form with a reference")

    page.keyboard.type("Make the plate red [sim:fast]")
    edit.get_by_role("button", name="Edit").click()
    card = cards(page).first
    expect(card.locator(".card__meta")).to_contain_text("Edit · Nano Banana Fast")
    expect_completed(card)
    expect(cards(page)).to_have_count(2)

    card.locator(".card__prompt a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(r"Edit request #\d+")
    )
    made_from = page.get_by_role("list", name="Made from", exact=True)
    expect(made_from).to_contain_text(f"Request #{first}")
    assert stack.simulator_url not in page.content()
    check_accessibility(page, "detail of an edit")


def test_upstream_failure_is_shown_in_plain_words(signed_in: Page):
    page = signed_in
    generate(page, "A banana nobody can draw [sim:fail]")
    card = cards(page).first
    expect(card.locator(".status")).to_have_text("Failed", timeout=RESULT)
    expect(card.locator(".card__error")).to_have_text(
        "The image service could not make this image: The model refused to draw this prompt (simulated failure)"
    )
    expect(card.locator(".card__placeholder")).to_be_visible()
    expect(page.locator("#live-status")).to_contain_text(
        "Failed. The image service could not make this image"
    )
    check_accessibility(page, "request failed")

    card.locator(".card__prompt a").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "The model refused to draw this prompt"
    )
    expect(page.get_by_role("button", name="Resubmit")).to_be_visible()
    check_accessibility(page, "detail of a failure")


def test_history_pages_and_detail(page: Page, stack, username: str):
    stack.seed("history", username, "45")
    images: list[str] = []
    page.on(
        "request",
        lambda request: (
            images.append(request.url) if "/images/" in request.url else None
        ),
    )
    sign_in(page, username)

    expect(cards(page)).to_have_count(20)
    pager = page.get_by_role("navigation", name="History pages")
    # The whole history is not counted (it would cost more than the page): no "of 3".
    expect(pager).to_have_text(re.compile(r"\bPage 1\b(?! of)"))
    first_on_page_1 = cards(page).first.get_attribute("id")

    pager.get_by_role("link", name="Older").click()
    expect(pager).to_have_text(re.compile(r"\bPage 2\b(?! of)"))
    expect(page).to_have_url(re.compile(r"\?page=2$"))
    expect(cards(page)).to_have_count(20)
    assert cards(page).first.get_attribute("id") != first_on_page_1
    check_accessibility(page, "history page 2")

    pager.get_by_role("link", name="Older").click()
    expect(pager).to_have_text(re.compile(r"\bPage 3\b(?! of)"))
    expect(cards(page)).to_have_count(5)
    expect(pager.get_by_role("link", name="Older")).to_have_count(0)
    pager.get_by_role("link", name="Newer").click()
    expect(pager).to_have_text(re.compile(r"\bPage 2\b(?! of)"))

    page.keyboard.press("End")  # let the lazy thumbnails load
    page.wait_for_load_state("networkidle")
    assert images and all(url.endswith("/thumbnail/") for url in images), images

    card = cards(page).first
    prompt = card.locator(".card__prompt a").inner_text()
    card.locator(".card__prompt a").click()
    expect(page).to_have_title(re.compile(r"^Request #\d+ · bananaweb$"))
    expect(page.locator(".facts__prompt")).to_have_text(prompt)
    full = page.locator(".detail__image img")
    expect(full).to_be_visible()
    assert full.evaluate("img => img.complete && img.naturalWidth > 0")
    check_accessibility(page, "detail")
    page.get_by_role("link", name="All images").click()
    expect(page).to_have_title("Images · bananaweb")


def test_personal_api_tokens(signed_in: Page):
    page = signed_in
    page.get_by_role("link", name="API tokens").click()
    expect(page).to_have_url(re.compile(r"/settings/tokens/$"))
    expect(page).to_have_title("API tokens · bananaweb")
    expect(page.get_by_text("No tokens yet.")).to_be_visible()
    check_accessibility(page, "tokens, none yet")

    page.get_by_label("Token name").fill("nightly render script")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token")
    expect(shown).to_be_visible()
    raw = shown.input_value()
    assert len(raw) >= 20
    check_accessibility(page, "token just created")

    page.goto("/settings/tokens/")  # not reload(): that would post the form again
    expect(page.locator("#new-token")).to_have_count(0)
    assert raw not in page.content()  # shown once only
    row = page.get_by_role("row", name=re.compile("nightly render script"))
    expect(row).to_contain_text("Active")

    row.get_by_role("button", name="Revoke nightly render script").click()
    expect(
        page.get_by_role("row", name=re.compile("nightly render script"))
    ).to_contain_text("Revoked")
    check_accessibility(page, "token revoked")


def test_ctrl_or_cmd_enter_submits(signed_in: Page):
    page = signed_in
    prompt = page.locator("#generate-prompt")
    prompt.fill("A banana in the snow [sim:fast]")
    prompt.press("Control+Enter")
    expect(cards(page)).to_have_count(1)
    expect(prompt).to_have_value("")
    expect(prompt).to_be_focused()  # ready for the next prompt

    page.keyboard.type("A banana in the rain [sim:fast]")
    prompt.press("Meta+Enter")
    expect(cards(page)).to_have_count(2)
    expect(cards(page).first).to_contain_text("A banana in the rain")


def test_sign_out(signed_in: Page):
    page = signed_in
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def _focus_is_visible(page: Page) -> bool:
    return page.evaluate("""() => {
      const style = getComputedStyle(document.activeElement);
      return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
    }""")


def _focused(page: Page) -> str:
    return page.evaluate(
        "() => document.activeElement.id || document.activeElement.textContent.trim()"
    )


def test_keyboard_alone_signs_in_and_generates(page: Page, username: str):
    page.goto("/")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    assert _focus_is_visible(page)
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    assert _focus_is_visible(page)
    page.keyboard.press("Enter")
    expect(page).to_have_title("Images · bananaweb")

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("#generate-prompt")).to_be_focused()
    assert _focus_is_visible(page)
    page.keyboard.type("A banana typed without a mouse [sim:fast]")

    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(_focused(page))
        assert _focus_is_visible(page), f"no visible focus on {seen[-1]!r}"
        if seen[-1] == "Generate":
            break
    assert seen[-1] == "Generate", seen
    page.keyboard.press("Enter")
    expect_completed(cards(page).first)
    expect(cards(page).first).to_contain_text("A banana typed without a mouse")
