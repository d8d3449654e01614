"""The simulated images: a calm gradient (or a dimmed source image for edits) with
the prompt written across it, encoded as PNG.

Flat colours and soft, upscaled backgrounds keep even 4K PNGs far below
`options.MAX_IMAGE_BYTES` and quick to draw.
"""

import colorsys
import hashlib
import io
import string
import textwrap

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from bananaweb import options

LONG_SIDES = {
    options.Resolution.R1K: 1024,
    options.Resolution.R2K: 2048,
    options.Resolution.R4K: 4096,
}
DEFAULT_LONG_SIDE = 1024
DEFAULT_ASPECT_RATIO = options.AspectRatio.R1_1
BACKGROUND_LONG_SIDE = 512  # edits keep their source this small, then upscale it
MAX_SOURCE_PIXELS = 50_000_000


def image_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Width and height of the image drawn for these options."""
    long_side = LONG_SIDES.get(resolution, DEFAULT_LONG_SIDE)
    ratio = options.ratio_value(aspect_ratio or DEFAULT_ASPECT_RATIO)
    if ratio >= 1:
        return long_side, max(1, round(long_side / ratio))
    return max(1, round(long_side * ratio)), long_side


def decode(data: bytes) -> Image.Image:
    """The image in these bytes; ValueError if Pillow can't read it."""
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as exc:  # Pillow raises many kinds for bad data
        raise ValueError("not an image Pillow can read") from exc
    if image.width * image.height > MAX_SOURCE_PIXELS:
        raise ValueError("the image has too many pixels")
    try:
        image.load()
    except Exception as exc:
        raise ValueError("not an image Pillow can read") from exc
    return image


def background(source: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A small, soft, dimmed copy of `source`, cropped to the proportions of `size`."""
    scale = BACKGROUND_LONG_SIDE / max(size)
    small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    fitted = ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), small)
    return ImageEnhance.Brightness(fitted.filter(ImageFilter.GaussianBlur(2))).enhance(
        0.45
    )


def draw_png(
    *,
    text: str,
    model: str,
    aspect_ratio: str,
    resolution: str,
    source: Image.Image | None = None,
) -> bytes:
    """The PNG for a completed task; `source` is an edit's `background()`."""
    size = image_size(aspect_ratio, resolution)
    if source is None:
        image = _gradient(size, seed=text)
    else:
        image = source.resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    width, height = size
    short_side = min(size)

    font = ImageFont.load_default(size=max(10, short_side // 14))
    draw.multiline_text(
        (width / 2, height / 2),
        _wrap(text, font, width * 0.8, height * 0.6),
        font=font,
        fill="white",
        anchor="mm",
        align="center",
        stroke_width=max(1, font.size // 24),
        stroke_fill=(0, 0, 0),
    )

    footer_font = ImageFont.load_default(size=max(8, short_side // 40))
    footer = " · ".join(
        ("Simulated", model, aspect_ratio or DEFAULT_ASPECT_RATIO, resolution or "1K")
    )
    draw.text(
        (width / 2, height - footer_font.size),
        footer,
        font=footer_font,
        fill=(235, 235, 235),
        anchor="ms",
    )

    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _gradient(size: tuple[int, int], *, seed: str) -> Image.Image:
    """A top-to-bottom gradient between two soft colours picked from `seed`."""
    hue = hashlib.sha256(seed.encode()).digest()[0] / 255
    top = tuple(round(c * 255) for c in colorsys.hls_to_rgb(hue, 0.25, 0.35))
    bottom = tuple(
        round(c * 255) for c in colorsys.hls_to_rgb((hue + 0.1) % 1, 0.6, 0.4)
    )
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(
        Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask
    )


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float, height: float) -> str:
    """`text` in lines that fit in `width` by `height`, cut with an ellipsis."""
    average_char = font.getlength(string.ascii_letters) / len(string.ascii_letters)
    lines = textwrap.wrap(
        text,
        width=max(1, int(width / average_char)),
        max_lines=max(1, int(height / (font.size * 1.2))),
        placeholder=" …",
    )
    return "\n".join(lines)
