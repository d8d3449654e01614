"""Placeholders in a template's prompt: “A {animal} on a {place}”.

`{name}` marks a value to fill in; `{{` and `}}` stand for a literal brace. A
name used twice (in any case) is one value, filled in everywhere. Pure: no
Django, no models.
"""

import re
from dataclasses import dataclass

MAX_PLACEHOLDERS = 10
NAME_MAX_LENGTH = 40
VALUE_MAX_LENGTH = 200

# {{, }}, a placeholder, or a brace on its own (an error).
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# A letter first, then letters, digits, spaces, "-" and "_".
_NAME = re.compile(r"[^\W\d_][\w\- ]*")

HOW = "For a literal brace, write {{ or }}."


class PlaceholderError(ValueError):
    """The prompt's braces can't be read as placeholders; the message says why."""


@dataclass(frozen=True)
class Placeholder:
    key: str  # how it is matched: "hair colour" for {Hair  Colour}
    label: str  # as first written, for the field's label: "Hair Colour"
    count: int = 1  # how many times the prompt uses it


@dataclass(frozen=True)
class Filled:
    prompt: str
    missing: list[Placeholder]  # left as written, to fill still
    notes: list[str]  # values that were left out, and why


def key_of(name: str) -> str:
    return " ".join(name.split()).casefold()


def _parts(prompt: str) -> list[str | Placeholder]:
    """The prompt as literal text and placeholders (each with count 1), in order."""
    parts: list[str | Placeholder] = []
    position = 0
    for match in _TOKEN.finditer(prompt):
        parts.append(prompt[position : match.start()])
        position = match.end()
        token = match.group()
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif token == "{":
            raise PlaceholderError(
                "A “{” in the prompt is never closed: end the placeholder with “}”. "
                + HOW
            )
        elif token == "}":
            raise PlaceholderError("A “}” in the prompt has no “{” before it. " + HOW)
        else:
            name = " ".join(match.group(1).split())
            if not name:
                raise PlaceholderError(
                    f"The prompt has an empty placeholder “{token}”: write a name "
                    "between the braces, like {animal}. " + HOW
                )
            if len(name) > NAME_MAX_LENGTH:
                raise PlaceholderError(
                    f"The placeholder “{token[:20]}…” has a name longer than "
                    f"{NAME_MAX_LENGTH} characters: shorten it."
                )
            if not _NAME.fullmatch(name):
                raise PlaceholderError(
                    f"“{token}” is not a placeholder: a name starts with a letter and "
                    "has only letters, digits, spaces, - and _, like {animal} or "
                    "{hair colour}. " + HOW
                )
            parts.append(Placeholder(key=key_of(name), label=name))
    parts.append(prompt[position:])
    return parts


def parse(prompt: str) -> list[Placeholder]:
    """The prompt's placeholders, each once, in the order they first appear.

    Raises PlaceholderError for a brace that opens or closes nothing, an empty
    placeholder, a name that isn't one, or more than MAX_PLACEHOLDERS names.
    """
    found: dict[str, Placeholder] = {}
    for part in _parts(prompt):
        if isinstance(part, Placeholder):
            first = found.get(part.key, part)
            found[part.key] = Placeholder(
                key=first.key,
                label=first.label,
                count=first.count + 1 if part.key in found else 1,
            )
    if len(found) > MAX_PLACEHOLDERS:
        raise PlaceholderError(
            f"The prompt has {len(found)} different placeholders; a template can "
            f"have at most {MAX_PLACEHOLDERS}."
        )
    return list(found.values())


def fill(prompt: str, values: dict[str, str]) -> Filled:
    """The prompt with each placeholder replaced by its value (keys as `key_of`).

    A placeholder without a value (or only spaces) stays as written, listed in
    `missing`; a value too long is left out; a value for a name the prompt
    doesn't have is left out. Each one left out says so in `notes`. Values are
    put in as they are: braces in a value are not placeholders.
    """
    placeholders = parse(prompt)
    known = {placeholder.key for placeholder in placeholders}
    notes = [
        f"This template has no placeholder “{key}” (it may have been changed "
        "since): that value was left out."
        for key in values
        if key not in known
    ]
    usable: dict[str, str] = {}
    for placeholder in placeholders:
        value = " ".join(values.get(placeholder.key, "").split())
        if len(value) > VALUE_MAX_LENGTH:
            notes.append(
                f"The value for “{placeholder.label}” is {len(value)} characters "
                f"long; at most {VALUE_MAX_LENGTH}. It was left out."
            )
        elif value:
            usable[placeholder.key] = value
    text = []
    for part in _parts(prompt):
        if isinstance(part, Placeholder):
            text.append(usable.get(part.key, "{" + part.label + "}"))
        else:
            text.append(part)
    missing = [p for p in placeholders if p.key not in usable]
    return Filled(prompt="".join(text), missing=missing, notes=notes)
