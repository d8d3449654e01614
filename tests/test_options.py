"""The API's option rules, spelled out literally from the contract's x-rules."""

import itertools

import pytest

from bananaweb import options
from bananaweb.options import option_errors, upstream_payload

# Literal copies of the contract, so the table in options.py is tested, not trusted.
MODELS = ["nano-banana-fast", "nano-banana-pro", "nano-banana-2"]
ALL_RATIOS = [
    "21:9",
    "1:1",
    "4:3",
    "3:2",
    "2:3",
    "5:4",
    "4:5",
    "3:4",
    "16:9",
    "9:16",
    "1:4",
    "4:1",
    "1:8",
    "8:1",
]
ONLY_NANO_BANANA_2 = {"1:4", "4:1", "1:8", "8:1"}
RESOLUTIONS = ["1K", "2K", "4K"]
ACTIONS = ["generate", "edit"]
IMAGE = ["https://example.com/cat.png"]


def expected_errors(action: str, model: str, ratio: str, resolution: str) -> set[str]:
    fields = set()
    if ratio in ONLY_NANO_BANANA_2 and model != "nano-banana-2":
        fields.add("aspect_ratio")
    if resolution and model == "nano-banana-fast":
        fields.add("resolution")
    return fields


@pytest.mark.parametrize(
    ("action", "model", "ratio", "resolution"),
    list(itertools.product(ACTIONS, MODELS, ["", *ALL_RATIOS], ["", *RESOLUTIONS])),
)
def test_options_matrix(action, model, ratio, resolution):
    errors = option_errors(
        prompt="A banana",
        action=action,
        model=model,
        aspect_ratio=ratio,
        resolution=resolution,
        image_urls=IMAGE,
    )
    assert set(errors) == expected_errors(action, model, ratio, resolution)


def test_matrix_covers_the_contract_enums():
    assert list(options.Model.values) == MODELS
    assert list(options.AspectRatio.values) == ALL_RATIOS
    assert list(options.Resolution.values) == RESOLUTIONS
    assert set(options.Action.values) == set(ACTIONS)


def test_edit_without_image_urls_is_refused():
    errors = option_errors(prompt="Make it blue", action="edit", image_urls=[])
    assert errors == {
        "image_urls": "Editing needs at least one image to start from: add a picture or an image URL."
    }


def test_generate_without_image_urls_is_fine():
    assert option_errors(prompt="A banana", action="generate") == {}


@pytest.mark.parametrize("prompt", ["", "   ", None, "\n\t"])
def test_blank_prompt_is_refused(prompt):
    assert "prompt" in option_errors(prompt=prompt, action="generate")


def test_overlong_prompt_says_how_long():
    errors = option_errors(
        prompt="x" * (options.PROMPT_MAX_LENGTH + 1), action="generate"
    )
    assert f"{options.PROMPT_MAX_LENGTH:,}" in errors["prompt"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "example.com/a.png",
        "javascript:alert(1)",
        "http://",
        "file:///etc/passwd",
    ],
)
def test_image_urls_must_be_http(url):
    assert (
        "http:// or https://"
        in option_errors(prompt="p", action="edit", image_urls=[url])["image_urls"]
    )


def test_image_url_count_is_capped():
    urls = [f"https://example.com/{n}.png" for n in range(4)]
    assert (
        "At most 3"
        in option_errors(prompt="p", action="edit", image_urls=urls, max_image_urls=3)[
            "image_urls"
        ]
    )


@pytest.mark.parametrize("num_images", [0, 2, 4, "1", True, None])
def test_only_one_image_per_request(num_images):
    assert "num_images" in option_errors(
        prompt="p", action="generate", num_images=num_images
    )


@pytest.mark.parametrize("value", [1, 1.0])
def test_num_images_one_is_fine(value):
    assert option_errors(prompt="p", action="generate", num_images=value) == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "paint"),
        ("model", "nano-banana-9"),
        ("aspect_ratio", "2:1"),
        ("resolution", "8K"),
    ],
)
def test_unknown_values_are_refused(field, value):
    values = {"prompt": "p", "action": "generate", "model": "nano-banana-2"} | {
        field: value
    }
    assert field in option_errors(**values)


def test_fast_model_never_sends_resolution():
    payload = upstream_payload(
        prompt="p", action="generate", model="nano-banana-fast", resolution="2K"
    )
    assert "resolution" not in payload


def test_payload_carries_only_fields_that_are_set():
    assert upstream_payload(
        prompt="p", action="generate", model="nano-banana-fast"
    ) == {
        "prompt": "p",
        "action": "generate",
        "num_images": 1,
        "model": "nano-banana-fast",
    }
    full = upstream_payload(
        prompt="p",
        action="edit",
        model="nano-banana-pro",
        aspect_ratio="16:9",
        resolution="4K",
        image_urls=IMAGE,
    )
    assert full == {
        "prompt": "p",
        "action": "edit",
        "num_images": 1,
        "model": "nano-banana-pro",
        "aspect_ratio": "16:9",
        "resolution": "4K",
        "image_urls": IMAGE,
    }


def test_messages_name_the_model_in_plain_words():
    errors = option_errors(
        prompt="p", action="generate", model="nano-banana-pro", aspect_ratio="1:8"
    )
    assert (
        errors["aspect_ratio"]
        == "Nano Banana Pro can't make 1:8 images; only Nano Banana 2 can."
    )


@pytest.mark.parametrize("model", ["bogus", ["nano-banana-2"], 7])
def test_unknown_or_odd_model_is_an_error_not_a_crash(model):
    errors = option_errors(
        prompt="p", action="generate", model=model, aspect_ratio="1:4", resolution="2K"
    )
    assert "model" in errors


@pytest.mark.parametrize(
    ("field", "value"),
    [("action", ["edit"]), ("aspect_ratio", {"a": 1}), ("resolution", 4)],
)
def test_odd_types_are_errors_not_crashes(field, value):
    values = {"prompt": "p", "action": "generate", "model": "nano-banana-2"} | {
        field: value
    }
    assert field in option_errors(**values)


def test_nul_characters_are_refused():
    assert "NUL" in option_errors(prompt="a\x00b", action="generate")["prompt"]
    assert "image_urls" in option_errors(
        prompt="p", action="edit", image_urls=["https://a.test/\x00.png"]
    )
