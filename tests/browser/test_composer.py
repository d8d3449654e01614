"""The composer in Chromium (issue 11): pictures chosen, dropped and pasted, each
previewed and removable; an edit chain walked both ways; every model; run again
and use as template. Each journey runs axe-core in the states it reaches."""

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.helpers import check_accessibility

pytestmark = pytest.mark.browser

RESULT = 30_000  # ms


def png(size=(48, 32), colour="tomato") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def picture(name: str) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": png()}


def cards(page: Page):
    return page.locator("#history-list .card")


def expect_completed(card) -> None:
    expect(card.locator(".status")).to_have_text("Completed", timeout=RESULT)


def open_edit(page: Page):
    page.get_by_text("Edit an image").click()
    return page.locator("#edit-form")


# A picture made in the page, dropped on the form or pasted into it, as a person would.
DROP = """async ([selector, name]) => {
  const canvas = Object.assign(document.createElement("canvas"), {width: 40, height: 30});
  canvas.getContext("2d").fillRect(0, 0, 40, 30);
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const data = new DataTransfer();
  data.items.add(new File([blob], name, {type: "image/png"}));
  const target = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}"""
PASTE = """async (selector) => {
  const canvas = Object.assign(document.createElement("canvas"), {width: 40, height: 30});
  canvas.getContext("2d").fillRect(0, 0, 40, 30);
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const data = new DataTransfer();
  data.items.add(new File([blob], "image.png", {type: "image/png"}));
  const target = document.querySelector(selector);
  target.focus();
  target.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
}"""


def test_upload_edit_the_result_and_walk_the_chain(signed_in: Page):
    page = signed_in
    edit = open_edit(page)
    edit.get_by_label("Pictures").set_input_files([picture("holiday.png")])
    previews = edit.locator("#edit-previews .preview")
    expect(previews).to_have_count(1)
    expect(previews.locator("img")).to_have_js_property("complete", True)
    expect(edit.get_by_role("button", name="Remove holiday.png")).to_be_visible()
    check_accessibility(page, "a picture chosen")

    edit.get_by_label("Prompt").fill("Make it a watercolour [sim:fast]")
    edit.get_by_role("button", name="Edit").click()
    first = cards(page).first
    expect_completed(first)
    expect(previews).to_have_count(0)  # the form is ready for the next one
    first_id = first.get_attribute("id").removeprefix("request-")

    first.get_by_role("link", name=re.compile("^Edit this image")).click()
    edit = page.locator("#edit-form")
    expect(edit.locator(".preview")).to_contain_text(f"Image of request #{first_id}")
    page.keyboard.type("Now at night [sim:fast]")
    edit.get_by_role("button", name="Edit").click()
    second = cards(page).first
    expect(second).to_contain_text("Now at night")
    expect_completed(second)

    # From the last one back to the upload, and forward again.
    second.locator(".card__prompt a").click()
    page.get_by_role("list", name="Made from", exact=True).get_by_role(
        "link", name=re.compile(f"Request #{first_id}")
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Edit request #{first_id}"
    )
    made_from = page.get_by_role("list", name="Made from", exact=True)
    expect(made_from).to_contain_text("An uploaded picture: holiday.png")
    # The picture really loads (waited for: on a busy machine it may still be coming).
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=made_from.locator("img").element_handle(),
        timeout=10_000,
    )
    check_accessibility(page, "lineage both ways")
    page.get_by_role("list", name="Made from this").get_by_role(
        "link", name=re.compile("Now at night")
    ).click()
    expect(page.locator(".facts__prompt")).to_have_text("Now at night [sim:fast]")


def test_drop_and_paste_add_pictures_and_each_can_be_removed(signed_in: Page):
    page = signed_in
    edit = open_edit(page)
    expect(edit.get_by_text("Or drop pictures")).to_be_visible()
    page.evaluate(DROP, ["#edit-prompt", "dropped.png"])
    page.evaluate(PASTE, "#edit-prompt")
    edit.get_by_label("Pictures").set_input_files([picture("chosen.png")])
    previews = edit.locator("#edit-previews .preview")
    expect(previews).to_have_count(3)
    expect(previews.locator(".preview__name")).to_have_text(
        ["dropped.png", "pasted-picture-1.png", "chosen.png"]
    )
    status = edit.locator("[data-pictures-status]")
    expect(status).to_have_text("chosen.png added. 3 images to send.")

    # With the keyboard: focus moves on to the next remove button.
    remove = edit.get_by_role("button", name="Remove pasted-picture-1.png")
    remove.focus()
    page.keyboard.press("Enter")
    expect(previews).to_have_count(2)
    expect(edit.get_by_role("button", name="Remove chosen.png")).to_be_focused()
    expect(status).to_have_text("pasted-picture-1.png removed. 2 images to send.")
    assert edit.get_by_label("Pictures").evaluate("input => input.files.length") == 2
    check_accessibility(page, "pictures dropped, pasted and chosen")

    edit.get_by_label("Prompt").fill("Both of them, side by side [sim:fast]")
    edit.get_by_role("button", name="Edit").click()
    card = cards(page).first
    expect_completed(card)
    card.locator(".card__prompt a").click()
    made_from = page.get_by_role("list", name="Made from", exact=True)
    expect(made_from.locator("li")).to_have_text(
        [
            re.compile("An uploaded picture: dropped.png"),
            re.compile("An uploaded picture: chosen.png"),
        ]
    )


def test_a_bad_picture_is_refused_beside_the_picker(signed_in: Page):
    page = signed_in
    edit = open_edit(page)
    edit.get_by_label("Prompt").fill("A careful prompt")
    edit.get_by_label("Pictures").set_input_files(
        [{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture"}]
    )
    edit.get_by_role("button", name="Edit").click()
    picker = edit.get_by_label("Pictures")
    expect(edit.locator("#edit-uploads_error")).to_contain_text(
        "“notes.png” can't be used"
    )
    expect(edit.get_by_text("choose them again")).to_be_visible()
    expect(picker).to_have_attribute("aria-invalid", "true")
    expect(picker).to_be_focused()
    expect(edit.get_by_label("Prompt")).to_have_value("A careful prompt")
    expect(cards(page)).to_have_count(0)
    check_accessibility(page, "a bad picture refused")


def test_try_on_every_model(signed_in: Page):
    page = signed_in
    form = page.locator("#generate-form")
    form.get_by_label("Prompt").fill("A banana on every model [sim:fast]")
    form.get_by_role("button", name="Try on every model").click()
    expect(cards(page)).to_have_count(3)
    for index in range(3):
        expect_completed(cards(page).nth(index))
    models = {
        text.split(" · ")[1]
        for text in cards(page).locator(".card__meta").all_inner_texts()
    }
    assert models == {"Nano Banana Fast", "Nano Banana Pro", "Nano Banana 2"}
    expect(page.locator("#quota")).to_have_text("47 of 50 requests left today")
    check_accessibility(page, "every model")


def test_run_again_and_use_as_template(signed_in: Page):
    page = signed_in
    form = page.locator("#generate-form")
    form.get_by_label("Prompt").fill("A banana in a template [sim:fast]")
    form.get_by_label("Model").select_option("nano-banana-2")
    form.get_by_label("Aspect ratio").select_option("1:8")
    form.get_by_role("button", name="Generate").click()
    expect_completed(cards(page).first)
    cards(page).first.locator(".card__prompt a").click()
    first_url = page.url

    page.get_by_role("button", name="Run again").click()
    expect(page).not_to_have_url(first_url)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(r"Generate request #\d+")
    )
    expect(page.locator(".facts")).to_contain_text("1:8")
    check_accessibility(page, "run again")

    page.get_by_role("link", name="Use as template").click()
    form = page.locator("#generate-form")
    expect(form.get_by_label("Prompt")).to_have_value(
        "A banana in a template [sim:fast]"
    )
    expect(form.get_by_label("Prompt")).to_be_focused()
    expect(form.get_by_label("Model")).to_have_value("nano-banana-2")
    expect(form.get_by_label("Aspect ratio")).to_have_value("1:8")
    expect(page.locator("#quota")).to_have_text(
        "48 of 50 requests left today"
    )  # nothing sent
