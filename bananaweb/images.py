"""Images: finding them in an upstream result, checking them, making thumbnails.

The upstream's `result` is passed through from its provider with no fixed shape,
so `find_images` walks whatever JSON comes back. Every image bytes bananaweb
keeps go through `verify_image` first, and Pillow only ever sees the four
formats we accept.
"""

import base64
import binascii
import hashlib
import io
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from bananaweb.fetching import size_text

MAX_IMAGES = 16
MAX_DEPTH = 16
MAX_STRING_LENGTH = 15 * 1024 * 1024
MAX_URL_LENGTH = 16 * 1024
# The most pixels an image may have, an input or a result: nothing larger is decoded.
# The Mountsea contract states no sizes, so from "4K": a long side of 4096 makes
# 4096 × 4096 = 16.8 MP the largest (8:1 would be 4096 × 512), and the provider's
# published 4K sizes keep about that area in every shape, the largest being 21:9 at
# 6336 × 2688 = 17.03 MP. nano-banana-2's 8:1 and 1:8 are no larger: 16.8 MP at 8:1
# is about 11585 × 1448. Hence 17.5 MP, the largest 4K output with 3% to spare.
# The 10 MB input limit bounds bytes, not pixels (a one-colour PNG of 8940 × 8940 is
# 300 KB, 80 MP); this bounds both inputs and results, and a photo of more than
# 17.5 MP is refused (the upstream would only scale it down). Decoded whole, as a
# WebP must be (about 16 bytes a pixel in Pillow and libwebp), the worst image stays
# under 300 MB (tests/test_image_memory.py).
MAX_PIXELS = 17_500_000
# Pillow's decompression-bomb limit, the same: above it Image.open warns (answered
# by our own refusal in _opened, with the size) and above twice it refuses.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Modes Pillow can shrink (reduce, resize) as they are: the others are converted first.
REDUCIBLE_MODES = ("RGB", "RGBA", "L", "LA")

# Keys are compared lowercased with "_" and "-" removed.
URL_KEYS = {
    "src",
    "href",
    "link",
    "links",
    "output",
    "outputs",
    "result",
    "results",
    "file",
    "files",
    "download",
}
IMAGE_WORDS = ("image", "img", "photo", "picture")
BASE64_KEYS = {"data", "bytes", "content", "b64", "base64", "b64json"}
# Callbacks and echoes of what was asked for (inputs, references, sources) are
# not results, and a thumbnail or preview only repeats an image.
SKIPPED_KEY_PREFIXES = (
    "input",
    "source",
    "request",
    "param",
    "argument",
    "reference",
    "mask",
)
SKIPPED_KEY_WORDS = ("callback", "webhook", "notify", "thumb", "preview")
NON_IMAGE_TYPES = {"video", "audio", "text", "model3d"}
TYPE_KEYS = {"contenttype", "mimetype", "mediatype", "type"}

# What Pillow raises for broken files, besides its own UnidentifiedImageError.
PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    MemoryError,
)
_MAX_PIXELS_TEXT = f"bananaweb accepts at most {MAX_PIXELS / 1_000_000:g} megapixels."
_EMBEDDED_URL = re.compile(r"https?://[^\s\"'<>()\[\]]+", re.IGNORECASE)


@dataclass(frozen=True)
class ImageRef:
    """An image in a result: a URL to fetch, or bytes that came inline."""

    url: str = ""
    data: bytes = b""
    content_type: str = ""  # known only for inline data, from its signature

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.data):
            raise ValueError("An ImageRef has exactly one of url and data.")


class ImageInvalid(Exception):
    """Why bytes aren't an acceptable image, as a sentence for a person."""


@dataclass(frozen=True)
class VerifiedImage:
    content: bytes
    format: str  # "PNG", "JPEG", "WEBP" or "GIF"
    content_type: str
    width: int  # as displayed, after any EXIF rotation
    height: int
    extension: str  # ".png"


# --- Finding images in a result ---------------------------------------------------


def find_images(result: object) -> list[ImageRef]:
    """Image URLs and inline images in a result, in document order, without repeats."""
    found: list[ImageRef] = []
    seen: set[str] = set()

    def add(ref: ImageRef) -> None:
        identity = ref.url or hashlib.sha256(ref.data).hexdigest()
        if identity not in seen and len(found) < MAX_IMAGES:
            seen.add(identity)
            found.append(ref)

    def walk(value: object, key: str | None, depth: int) -> None:
        if depth > MAX_DEPTH or len(found) >= MAX_IMAGES:
            return
        if isinstance(value, dict):
            if _declares_non_image(value):
                return
            for child_key, child in value.items():
                normalized = _normalized(child_key)
                if not _skipped(normalized):
                    walk(child, normalized, depth + 1)
        elif isinstance(value, (list, tuple)):
            for child in value:
                walk(child, key, depth + 1)
        elif isinstance(value, str) and len(value) <= MAX_STRING_LENGTH:
            for ref in _refs_in_string(value, key):
                add(ref)

    walk(result, None, 0)
    return found


def _refs_in_string(value: str, key: str | None) -> list[ImageRef]:
    text = value.strip()
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://")):
        if _looks_like_url(text) and (
            key is None or _is_url_key(key) or _has_image_extension(text)
        ):
            # No key at all means the result is the URL itself (or a bare list of them).
            return [ImageRef(url=text)]
        return []
    if lowered.startswith("data:image/"):
        data = _decode_data_uri(text)
        return [ImageRef(data=data, content_type=_sniff(data))] if data else []
    if key is not None and (
        key in BASE64_KEYS or "base64" in key or "b64" in key or _has_image_word(key)
    ):
        data = _decode_base64_image(text)
        if data:
            return [ImageRef(data=data, content_type=_sniff(data))]
    if "http" in text and len(text) <= 64 * 1024:
        # Free text (a caption, markdown): only URLs that end like an image file.
        return [
            ImageRef(url=url)
            for url in (match.rstrip(".,;:!?") for match in _EMBEDDED_URL.findall(text))
            if _looks_like_url(url) and _has_image_extension(url)
        ]
    return []


def _normalized(key: object) -> str:
    return str(key).lower().replace("_", "").replace("-", "")


def _skipped(key: str) -> bool:
    return key.startswith(SKIPPED_KEY_PREFIXES) or any(
        word in key for word in SKIPPED_KEY_WORDS
    )


def _has_image_word(key: str) -> bool:
    return any(word in key for word in IMAGE_WORDS)


def _is_url_key(key: str) -> bool:
    return (
        key.endswith(("url", "uri", "urls", "uris"))
        or key in URL_KEYS
        or _has_image_word(key)
    )


def _declares_non_image(value: dict) -> bool:
    """An entry that says what it is, and isn't an image: {"type": "video", "url": ...}."""
    for key, declared in value.items():
        if isinstance(declared, str) and _normalized(key) in TYPE_KEYS:
            declared = declared.strip().lower()
            if declared in NON_IMAGE_TYPES or declared.startswith(
                ("video/", "audio/", "text/")
            ):
                return True
    return False


def _looks_like_url(text: str) -> bool:
    if len(text) > MAX_URL_LENGTH or any(character.isspace() for character in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _has_image_extension(url: str) -> bool:
    try:
        return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)
    except ValueError:
        return False


def _decode_data_uri(text: str) -> bytes:
    header, comma, payload = text.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        return b""
    return _decode_base64_image(payload)


def _decode_base64_image(text: str) -> bytes:
    """The decoded bytes if `text` is base64 of a PNG, JPEG, WebP or GIF, else b""."""
    if len(text) < 32:
        return b""
    compact = re.sub(r"\s+", "", text)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    compact += "=" * (-len(compact) % 4)
    try:
        # The first 24 bytes tell the format: don't decode megabytes of anything else.
        if not _sniff(base64.b64decode(compact[:32], altchars=altchars)):
            return b""
        return base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _sniff(data: bytes) -> str:
    """The image content type announced by the first bytes, or ""."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


# --- Checking images ------------------------------------------------------------


def verify_image(content: bytes, *, max_bytes: int) -> VerifiedImage:
    """The image's facts if `content` is a whole PNG, JPEG, WebP or GIF of sane size, else ImageInvalid."""
    if not content:
        raise ImageInvalid("The image is empty.")
    if len(content) > max_bytes:
        raise ImageInvalid(f"The image is larger than {size_text(max_bytes)}.")
    try:
        with _opened(content) as image:
            image.verify()  # structure and checksums, without decoding pixels
        with _opened(content) as image:  # verify() leaves the image unusable
            image_format = image.format
            width, height = image.size
            if _quarter_turned(image):
                width, height = height, width
            _check_pixels(image)
    except PILLOW_ERRORS:
        raise ImageInvalid("The image is damaged or cut short.") from None
    return VerifiedImage(
        content=content,
        format=image_format,
        content_type=Image.MIME[image_format],
        width=width,
        height=height,
        extension=FORMATS[image_format],
    )


def _check_pixels(image: Image.Image) -> None:
    """Raises if the pixels are cut short or corrupt, decoding no more than needed.

    A PNG's verify() has checked every chunk's CRC and its end, and a WebP whose
    container is cut short doesn't open: their pixels are decoded only for a
    thumbnail. JPEG and GIF have no such check, so they are decoded: a JPEG at an
    eighth of its size (libjpeg still reads every coefficient), a GIF's first frame
    at a byte a pixel.
    """
    if image.format in ("PNG", "WEBP"):
        return
    if image.format == "JPEG":
        image.draft(None, (1, 1))  # changes image.size
    image.load()


def _quarter_turned(image: Image.Image) -> bool:
    """Whether the EXIF orientation shows the image turned a quarter (width and height swap)."""
    if image.format == "PNG" and "exif" not in image.info:
        # A PNG's eXIf after its pixels is read only by decoding them all; the PNG
        # spec puts it before them.
        return False
    return image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)


def make_thumbnail(content: bytes, *, size: int) -> bytes:
    """A WebP of the (first frame of the) image, upright, its longest side at most `size`.

    Decoded reduced where the format allows: a JPEG at the smallest scale libjpeg
    offers that is still twice `size`; other images are shrunk by whole factors
    as soon as they are decoded, so that no more than two full-size copies (the
    decoded image and its converted or premultiplied copy) ever exist.
    """
    try:
        with _opened(content) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size * 2, size * 2))
            # P, LA, PA and transparent-colour images keep their transparency as RGBA.
            mode = "RGBA" if image.has_transparency_data else "RGB"
            if image.mode in REDUCIBLE_MODES and "transparency" not in image.info:
                image.thumbnail((size, size), Image.Resampling.LANCZOS)
            # A palette or a transparent colour becomes real colours before shrinking.
            thumbnail = image.convert(mode)
        # The source is closed, its pixels freed, before a full-size copy is shrunk.
        thumbnail.thumbnail((size, size), Image.Resampling.LANCZOS)
        upright = ImageOps.exif_transpose(thumbnail)
        output = io.BytesIO()
        upright.save(output, "WEBP", quality=80, method=4)
    except PILLOW_ERRORS:
        raise ImageInvalid("The image is damaged or cut short.") from None
    return output.getvalue()


@contextmanager
def _opened(content: bytes) -> Iterator[Image.Image]:
    """Image.open limited to our formats and pixel count, with Pillow's errors as ImageInvalid."""
    try:
        with warnings.catch_warnings():
            # Over MAX_PIXELS: refused below, with the image's size in the message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise ImageInvalid("The file isn't a PNG, JPEG, WebP or GIF image.") from None
    except Image.DecompressionBombError:
        raise ImageInvalid(
            f"The image has too many pixels; {_MAX_PIXELS_TEXT}"
        ) from None
    except PILLOW_ERRORS:
        raise ImageInvalid("The image is damaged or cut short.") from None
    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageInvalid("The image has no pixels.")
        if width * height > MAX_PIXELS:
            # Checked from the header, before decoding: a small file can declare
            # a huge canvas (a decompression bomb).
            raise ImageInvalid(
                f"The image is {width} × {height} pixels; {_MAX_PIXELS_TEXT}"
            )
        yield image
