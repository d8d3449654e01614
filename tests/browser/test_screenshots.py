"""Screenshots of the main pages at desktop and phone widths, and in the dark theme,
saved to test-artifacts/screenshots/ on every run; axe-core checks each of them."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    check_accessibility,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser

LOOKS = {
    "desktop": {"viewport": DESKTOP, "color_scheme": "light"},
    "phone": {
        "viewport": PHONE,
        "color_scheme": "light",
        "is_mobile": True,
        "has_touch": True,
    },
    "desktop-dark": {"viewport": DESKTOP, "color_scheme": "dark"},
}


@pytest.mark.parametrize("look", LOOKS)
def test_main_pages(
    browser, browser_context_args: dict, stack, username: str, look: str
):
    context = browser.new_context(**{**browser_context_args, **LOOKS[look]})
    page = context.new_page()

    page.goto("/accounts/login/")
    check_accessibility(page, f"login ({look})")
    screenshot(page, f"login-{look}")

    sign_in(page, username)
    expect(page.get_by_text("Nothing here yet.")).to_be_visible()
    check_accessibility(page, f"empty history ({look})")
    screenshot(page, f"main-empty-{look}")

    stack.seed("history", username, "5", "--live")
    page.reload()
    expect(page.locator("#history-list .card--completed")).to_have_count(4)
    expect(page.locator("#history-list .card--failed")).to_have_count(1)
    expect(page.locator("#history-list .card--in_progress")).to_have_count(1)
    page.locator("#history-list img").last.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#history-list img')].every(img => img.complete)"
    )
    check_accessibility(
        page, f"history with completed, failed and in-flight cards ({look})"
    )
    screenshot(page, f"main-{look}")

    page.get_by_text("Edit an image").click()
    page.locator("#edit-form").get_by_label("Prompt").fill("Make the sky purple")
    page.locator("#edit-form").get_by_role("button", name="Edit").click()
    expect(page.locator("#edit-form .field__error")).to_be_visible()
    check_accessibility(page, f"edit form error ({look})")
    screenshot(page, f"main-form-error-{look}")

    page.locator("#history-list .card--completed .card__prompt a").first.click()
    expect(page).to_have_title(re.compile(r"^Request #\d+"))
    page.wait_for_function(
        "() => document.querySelector('.detail__image img').complete"
    )
    check_accessibility(page, f"detail ({look})")
    screenshot(page, f"detail-{look}")

    page.goto("/settings/tokens/")
    page.get_by_label("Token name").fill("my laptop")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()
    check_accessibility(page, f"token settings with a new token ({look})")
    screenshot(page, f"tokens-{look}")
    context.close()
