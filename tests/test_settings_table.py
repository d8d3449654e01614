"""README's settings table covers every environment variable bananaweb.settings
reads: a new setting without a row fails here, not in a deployer's hands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# os.environ["X"], os.environ.get("X"), os.getenv("X"), env_bool("X", …) and kin,
# the name on the next line or not.
READS = re.compile(
    r'(?:os\.environ(?:\.get)?\s*[\[(]|os\.getenv\(|\benv_\w+\()\s*"([A-Z][A-Z0-9_]*)"'
)
ROW_NAMES = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def variables_read() -> set[str]:
    return set(READS.findall((ROOT / "bananaweb" / "settings.py").read_text()))


def variables_documented() -> set[str]:
    """The names in the first column of the table under README's "Configuration"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in ROW_NAMES.findall(line.split(" | ", 1)[0])
    }


def test_the_scan_sees_every_way_settings_reads_the_environment():
    found = variables_read()
    # One of each form: os.environ.get, env_bool, env_int, env_float, env_list.
    assert {
        "SECRET_KEY",
        "BANANAWEB_DEV",
        "BANANAWEB_DEFAULT_DAILY_QUOTA",
        "BANANAWEB_POLL_DEADLINE",
        "BANANAWEB_ENCRYPTION_KEYS",
        "DATABASE_URL",
        "REDIS_URL",
        "CACHE_URL",
    } <= found


def test_every_variable_settings_reads_is_in_readmes_table():
    missing = sorted(variables_read() - variables_documented())
    assert not missing, f"Not in README's settings table: {', '.join(missing)}"
