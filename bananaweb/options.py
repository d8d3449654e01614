"""The Mountsea Nano Banana API's options and their rules, as data.

Everything that validates, offers or sends an option reads it from here: model
validation, the forms and their templates, the payload builder, the gateway API
and the simulator. The rules mirror `x-rules` in the upstream contract.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import models

PROMPT_MAX_LENGTH = 4000
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # per image, both for image_urls and results
DEFAULT_MAX_IMAGE_URLS = 8  # overridable with settings.BANANAWEB_MAX_IMAGE_URLS
NUM_IMAGES = (1,)


class Action(models.TextChoices):
    GENERATE = "generate", "Generate"
    EDIT = "edit", "Edit"


class Model(models.TextChoices):
    NANO_BANANA_FAST = "nano-banana-fast", "Nano Banana Fast"
    NANO_BANANA_PRO = "nano-banana-pro", "Nano Banana Pro"
    NANO_BANANA_2 = "nano-banana-2", "Nano Banana 2"


DEFAULT_MODEL = Model.NANO_BANANA_FAST


class AspectRatio(models.TextChoices):
    R21_9 = "21:9"
    R1_1 = "1:1"
    R4_3 = "4:3"
    R3_2 = "3:2"
    R2_3 = "2:3"
    R5_4 = "5:4"
    R4_5 = "4:5"
    R3_4 = "3:4"
    R16_9 = "16:9"
    R9_16 = "9:16"
    R1_4 = "1:4"
    R4_1 = "4:1"
    R1_8 = "1:8"
    R8_1 = "8:1"


class Resolution(models.TextChoices):
    R1K = "1K"
    R2K = "2K"
    R4K = "4K"


class UpstreamStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    ASSIGNED = "assigned"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


TERMINAL_STATUSES = frozenset(
    {
        UpstreamStatus.COMPLETED,
        UpstreamStatus.FAILED,
        UpstreamStatus.CANCELLED,
        UpstreamStatus.TIMEOUT,
    }
)

BASE_RATIOS = tuple(AspectRatio)[:10]  # 21:9 .. 9:16, the contract's order
ALL_RATIOS = tuple(AspectRatio)
ALL_RESOLUTIONS = tuple(Resolution)


@dataclass(frozen=True)
class ModelSpec:
    aspect_ratios: tuple[str, ...]
    resolutions: tuple[str, ...]


MODELS: dict[str, ModelSpec] = {
    Model.NANO_BANANA_FAST: ModelSpec(aspect_ratios=BASE_RATIOS, resolutions=()),
    Model.NANO_BANANA_PRO: ModelSpec(
        aspect_ratios=BASE_RATIOS, resolutions=ALL_RESOLUTIONS
    ),
    Model.NANO_BANANA_2: ModelSpec(
        aspect_ratios=ALL_RATIOS, resolutions=ALL_RESOLUTIONS
    ),
}


def spec_for(model: str) -> ModelSpec:
    """The spec of a model, or the default model's for an unknown one."""
    return MODELS.get(model, MODELS[DEFAULT_MODEL])


def models_offering(*, aspect_ratio: str = "", resolution: str = "") -> list[str]:
    """The labels of the models that offer this aspect ratio or a choice of resolution."""
    return [
        Model(name).label
        for name, spec in MODELS.items()
        if (not aspect_ratio or aspect_ratio in spec.aspect_ratios)
        and (not resolution or spec.resolutions)
    ]


def _either(labels: list[str]) -> str:
    return " or ".join(
        [", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels
    )


def fit_to_model(values: dict, model: str) -> dict:
    """The values for `model`: an aspect ratio or resolution it doesn't offer is
    left to its default."""
    spec = spec_for(model)
    fitted = {**values, "model": model}
    if fitted.get("aspect_ratio") not in spec.aspect_ratios:
        fitted["aspect_ratio"] = ""
    if fitted.get("resolution") not in spec.resolutions:
        fitted["resolution"] = ""
    return fitted


def ratio_value(aspect_ratio: str) -> float:
    width, height = aspect_ratio.split(":")
    return int(width) / int(height)


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON can carry "\\ud800"): it
    can't be encoded, so it can't be stored, sent or shown."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def option_errors(
    *,
    prompt: str | None = None,
    action: str | None = None,
    model: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    image_urls: list | None = None,
    num_images: object = 1,
    max_image_urls: int = DEFAULT_MAX_IMAGE_URLS,
    references: int = 0,
) -> dict[str, str]:
    """Every rule broken by these values, as {field: message a person understands}.

    Empty strings and None mean "not set". The result is empty when the values
    can be sent upstream as they are.
    """
    errors: dict[str, str] = {}
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = "Describe the image you want: the prompt can't be empty."
    elif "\x00" in prompt:
        errors["prompt"] = (
            "The prompt contains a NUL character; remove it and try again."
        )
    elif not is_unicode(prompt):
        errors["prompt"] = (
            "The prompt contains a character that is not valid Unicode (a lone "
            "surrogate); remove it and try again."
        )
    elif len(prompt) > PROMPT_MAX_LENGTH:
        errors["prompt"] = (
            f"The prompt is {len(prompt):,} characters long; "
            f"the limit is {PROMPT_MAX_LENGTH:,}."
        )

    if not isinstance(action, str) or action not in Action.values:
        errors["action"] = "Choose whether to generate a new image or edit one."

    model = model or DEFAULT_MODEL
    known_model = isinstance(model, str) and model in MODELS
    if not known_model:
        errors["model"] = "Choose one of the models: " + ", ".join(MODELS) + "."

    if aspect_ratio:
        if not isinstance(aspect_ratio, str) or aspect_ratio not in ALL_RATIOS:
            errors["aspect_ratio"] = f"“{aspect_ratio}” is not an aspect ratio we know."
        elif known_model and aspect_ratio not in MODELS[model].aspect_ratios:
            errors["aspect_ratio"] = (
                f"{Model(model).label} can't make {aspect_ratio} images; "
                f"only {_either(models_offering(aspect_ratio=aspect_ratio))} can."
            )

    if resolution:
        if not isinstance(resolution, str) or resolution not in ALL_RESOLUTIONS:
            errors["resolution"] = "Choose a resolution of 1K, 2K or 4K."
        elif known_model and not MODELS[model].resolutions:
            errors["resolution"] = (
                f"{Model(model).label} has a fixed resolution; "
                f"choose {_either(models_offering(resolution='any'))} to pick one."
            )

    if num_images not in NUM_IMAGES or isinstance(num_images, bool):
        errors["num_images"] = "Only one image per request is supported."

    urls = image_urls or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        errors["image_urls"] = "Image URLs must be a list of web addresses."
    elif bad := [n for n, u in enumerate(urls, start=1) if not is_unicode(u)]:
        # Not repeated in the message: it couldn't be shown.
        errors["image_urls"] = (
            f"Image URL {bad[0]} contains a character that is not valid Unicode "
            "(a lone surrogate)."
        )
    elif bad := [u for u in urls if not is_http_url(u) or "\x00" in u]:
        errors["image_urls"] = (
            f"“{bad[0]}” is not a web address: image URLs must start with "
            "http:// or https://."
        )
    elif len(urls) + references > max_image_urls:
        given = len(urls) + references
        errors["image_urls"] = (
            f"At most {max_image_urls} images per request (pictures and image URLs "
            f"together); you gave {given}."
            if references
            else f"At most {max_image_urls} image URLs per request; you gave {given}."
        )
    elif action == Action.EDIT and not urls and not references:
        errors["image_urls"] = (
            "Editing needs at least one image to start from: add a picture or an "
            "image URL."
        )
    return errors


def upstream_payload(
    *,
    prompt: str,
    action: str,
    model: str,
    aspect_ratio: str = "",
    resolution: str = "",
    image_urls: list[str] | None = None,
) -> dict:
    """The JSON body sent upstream: only the fields that are set."""
    payload: dict = {
        "prompt": prompt,
        "action": action,
        "num_images": 1,
        "model": model,
    }
    if image_urls:
        payload["image_urls"] = list(image_urls)
    if aspect_ratio:
        payload["aspect_ratio"] = aspect_ratio
    if resolution and spec_for(model).resolutions:
        payload["resolution"] = resolution
    return payload
