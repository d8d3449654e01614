"""What the browser tests share: where things are, signing in, axe-core, screenshots."""

import json
import os
import secrets
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BANANAWEB_CHROMIUM", "/usr/bin/chromium"))
AXE_CORE = Path(
    os.environ.get("AXE_CORE_PATH", ROOT / ".venv/npm/node_modules/axe-core/axe.min.js")
)
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
# Debian's Chromium, kept off the network: this machine's network is closed.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "banana-split-" + secrets.token_hex(4)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@cache
def browser_problem() -> str:
    """Why the browser tests can't run here, or "" when they can."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (as root with apt-get, `make test` installs Debian's chromium)"
    if not AXE_CORE.is_file():
        return f"no axe-core at {AXE_CORE} (`make test` installs it with npm)"
    return ""


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


# --- Accessibility --------------------------------------------------------------------

AXE_RUN = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + (n.failureSummary || "").replace(/\\s+/g, " ")),
  }));
}"""
AXE_LOG: list[dict] = []


@cache
def _axe_source() -> str:
    return AXE_CORE.read_text()


def check_accessibility(page, state: str) -> list[dict]:
    """axe-core on the page as it is now finds nothing serious or critical; all it finds goes to axe.json."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # evaluate() is not bound by the page's CSP, which refuses injected <script>s.
        page.evaluate(_axe_source())
    violations = page.evaluate(AXE_RUN)
    AXE_LOG.append({"state": state, "url": page.url, "violations": violations})
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe found serious problems in state '{state}':\n" + json.dumps(
        bad, indent=2
    )
    return violations


def write_axe_log() -> None:
    if AXE_LOG:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "axe.json").write_text(json.dumps(AXE_LOG, indent=2))


# --- Screenshots ----------------------------------------------------------------------


def screenshot(page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/screenshots/ (made on every run, not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
    return path
