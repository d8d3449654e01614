import base64
import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image

from bananaweb.images import (
    ImageInvalid,
    ImageRef,
    find_images,
    make_thumbnail,
    verify_image,
)
from tests.factories import png_chunk

MB = 1024 * 1024


def image_bytes(
    format: str = "PNG",
    size: tuple[int, int] = (40, 20),
    mode: str = "RGB",
    **save_args,
) -> bytes:
    image = Image.new(mode, size, color=(200, 30, 30) if mode == "RGB" else None)
    output = io.BytesIO()
    image.save(output, format, **save_args)
    return output.getvalue()


PNG = image_bytes("PNG")
PNG_B64 = base64.b64encode(PNG).decode()


# --- find_images ------------------------------------------------------------------


def test_finds_urls_in_a_list_of_image_dicts_in_document_order():
    result = {
        "images": [
            {"url": "https://cdn.test/a"},
            {"url": "https://cdn.test/b.png", "width": 1024},
        ]
    }
    assert find_images(result) == [
        ImageRef(url="https://cdn.test/a"),
        ImageRef(url="https://cdn.test/b.png"),
    ]


def test_finds_a_plain_string_result_and_a_bare_list_of_urls():
    assert find_images("https://cdn.test/x?sig=1") == [
        ImageRef(url="https://cdn.test/x?sig=1")
    ]
    assert find_images(["https://cdn.test/x", "https://cdn.test/y"]) == [
        ImageRef(url="https://cdn.test/x"),
        ImageRef(url="https://cdn.test/y"),
    ]


@pytest.mark.parametrize(
    "result",
    [
        {"imageUrl": "https://cdn.test/1"},
        {"image_url": "https://cdn.test/1"},
        {"image": "https://cdn.test/1"},
        {"uri": "https://cdn.test/1"},
        {"src": "https://cdn.test/1"},
        {"href": "https://cdn.test/1"},
        {"output": "https://cdn.test/1"},
        {"outputs": [{"type": "image", "url": "https://cdn.test/1"}]},
        {"data": {"result": {"urls": ["https://cdn.test/1"]}}},
        {"anything": "https://cdn.test/1.PNG"},
    ],
)
def test_finds_urls_by_key_hint_or_image_extension(result):
    assert [ref.url for ref in find_images(result)] == [result_url(result)]


def result_url(result) -> str:
    text = repr(result)
    start = text.index("https://")
    return text[start : text.index("'", start)]


def test_ignores_urls_that_are_not_images():
    result = {
        "status": "completed",
        "callback_url": "https://app.test/hook",
        "webhook": "https://app.test/hook.png",
        "docs": "https://docs.test/page",
        "input": {"image_urls": ["https://user.test/input.png"]},
        "thumbnail_url": "https://cdn.test/thumb.png",
        "outputs": [{"type": "video", "url": "https://cdn.test/v.mp4"}],
        "note": "not a url at all",
        "ftp": "ftp://cdn.test/a.png",
        "image": "https://",
    }
    assert find_images(result) == []


def test_keeps_the_first_of_repeated_urls():
    result = {
        "url": "https://cdn.test/a.png",
        "images": ["https://cdn.test/b.png", "https://cdn.test/a.png"],
    }
    assert [ref.url for ref in find_images(result)] == [
        "https://cdn.test/a.png",
        "https://cdn.test/b.png",
    ]


def test_decodes_data_uris_and_base64_payloads():
    result = {
        "first": f"data:image/png;base64,{PNG_B64}",
        "data": [{"b64_json": PNG_B64}],  # the same image again: kept once
        "inlineData": {
            "mimeType": "image/jpeg",
            "data": base64.b64encode(image_bytes("JPEG")).decode(),
        },
    }
    refs = find_images(result)
    assert [(ref.content_type, ref.url) for ref in refs] == [
        ("image/png", ""),
        ("image/jpeg", ""),
    ]
    assert refs[0].data == PNG


def test_base64_payload_without_padding_or_urlsafe_alphabet_is_decoded():
    webp = image_bytes("WEBP")
    encoded = base64.urlsafe_b64encode(webp).decode().rstrip("=")
    assert find_images({"image_base64": encoded}) == [
        ImageRef(data=webp, content_type="image/webp")
    ]


def test_base64_that_is_not_an_image_is_ignored():
    result = {
        "b64_json": base64.b64encode(
            b"%PDF-1.7 not an image at all, just padding...."
        ).decode(),
        "data": "this is not base64 but it is long enough to be tried !!",
        "base64": "data:image/png;base64,!!!!",
        "image": f"data:image/svg+xml;base64,{base64.b64encode(b'<svg xmlns=...></svg> and padding').decode()}",
    }
    assert find_images(result) == []


def test_finds_image_urls_in_free_text():
    result = {
        "text": "Here you go: ![cat](https://cdn.test/cat.webp). See https://site.test/about too."
    }
    assert find_images(result) == [ImageRef(url="https://cdn.test/cat.webp")]


def test_stops_at_a_sane_depth_and_count():
    deep: object = "https://cdn.test/deep.png"
    for _ in range(40):
        deep = {"next": deep}
    assert find_images(deep) == []
    many = {"images": [f"https://cdn.test/{n}.png" for n in range(100)]}
    assert len(find_images(many)) == 16


@pytest.mark.parametrize(
    "result", [None, 42, True, {}, [], "", "just words", {"url": None}]
)
def test_results_without_images_give_nothing(result):
    assert find_images(result) == []


def test_image_ref_holds_exactly_one_of_url_and_data():
    with pytest.raises(ValueError):
        ImageRef()
    with pytest.raises(ValueError):
        ImageRef(url="https://cdn.test/a.png", data=PNG)


# --- verify_image -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("format", "content_type", "extension"),
    [
        ("PNG", "image/png", ".png"),
        ("JPEG", "image/jpeg", ".jpg"),
        ("WEBP", "image/webp", ".webp"),
        ("GIF", "image/gif", ".gif"),
    ],
)
def test_verifies_real_images(format, content_type, extension):
    content = image_bytes(format, size=(40, 20))
    verified = verify_image(content, max_bytes=MB)
    assert (verified.format, verified.content_type, verified.extension) == (
        format,
        content_type,
        extension,
    )
    assert (verified.width, verified.height) == (40, 20)
    assert verified.content == content


def test_junk_bytes_are_not_an_image():
    with pytest.raises(ImageInvalid, match="isn't a PNG, JPEG, WebP or GIF"):
        verify_image(b"<html>nope</html>" * 10, max_bytes=MB)


def test_other_formats_are_refused():
    with pytest.raises(ImageInvalid, match="isn't a PNG, JPEG, WebP or GIF"):
        verify_image(image_bytes("BMP"), max_bytes=MB)


def test_empty_content_is_refused():
    with pytest.raises(ImageInvalid, match="empty"):
        verify_image(b"", max_bytes=MB)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_image_is_refused(format):
    content = image_bytes(format, size=(300, 300))
    with pytest.raises(ImageInvalid, match="damaged or cut short"):
        verify_image(content[: len(content) // 2], max_bytes=MB)


def test_corrupted_png_checksum_is_refused():
    content = bytearray(image_bytes("PNG", size=(64, 64)))
    content[-20] ^= 0xFF  # inside the IDAT data
    with pytest.raises(ImageInvalid):
        verify_image(bytes(content), max_bytes=MB)


def test_image_over_the_size_cap_is_refused():
    content = image_bytes("PNG")
    with pytest.raises(ImageInvalid, match=r"larger than 10 bytes"):
        verify_image(content, max_bytes=10)
    with pytest.raises(ImageInvalid, match=r"^The image is larger than 10 MB\.$"):
        verify_image(b"\x89PNG" + bytes(10 * MB), max_bytes=10 * MB)


@pytest.mark.parametrize("side", [4_200, 9_000, 100_000])
def test_decompression_bomb_is_refused_from_its_header(side):
    # A ~100-byte PNG claiming side x side pixels (17.6 megapixels is just over our
    # limit, which Pillow only warns about; 81 megapixels and 10 gigapixels are over
    # twice it, which Pillow refuses itself).
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + png_chunk(b"IEND", b"")
    )
    assert len(bomb) < 200
    with pytest.raises(
        ImageInvalid, match=r"pixels; bananaweb accepts at most 17\.5 megapixels\.$"
    ):
        verify_image(bomb, max_bytes=MB)
    with pytest.raises(ImageInvalid, match=r"17\.5 megapixels"):
        make_thumbnail(bomb, size=64)


def test_exif_rotated_jpeg_reports_its_upright_size():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    verified = verify_image(
        image_bytes("JPEG", size=(200, 100), exif=exif.tobytes()), max_bytes=MB
    )
    assert (verified.width, verified.height) == (100, 200)


# --- make_thumbnail ---------------------------------------------------------------


def open_webp(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    assert image.format == "WEBP"
    return image


def test_thumbnail_is_webp_with_the_longest_side_at_size_and_aspect_kept():
    thumbnail = open_webp(make_thumbnail(image_bytes("PNG", size=(400, 100)), size=64))
    assert thumbnail.size == (64, 16)
    assert thumbnail.mode == "RGB"


def test_thumbnail_never_enlarges_a_small_image():
    assert open_webp(
        make_thumbnail(image_bytes("PNG", size=(30, 20)), size=64)
    ).size == (30, 20)


def test_thumbnail_keeps_rgba_transparency():
    image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    image.paste((0, 200, 0, 255), (50, 25, 150, 75))
    output = io.BytesIO()
    image.save(output, "PNG")
    thumbnail = open_webp(make_thumbnail(output.getvalue(), size=64))
    assert thumbnail.size == (64, 32)
    assert thumbnail.mode == "RGBA"
    assert thumbnail.getpixel((1, 1))[3] == 0
    assert thumbnail.getpixel((32, 16))[3] == 255


def test_thumbnail_of_palette_images_keeps_colours_and_transparency():
    image = Image.new("P", (100, 100), 0)
    image.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 50, 100, 100))
    opaque, transparent = io.BytesIO(), io.BytesIO()
    image.save(opaque, "GIF")
    image.save(transparent, "PNG", transparency=0)

    thumbnail = open_webp(make_thumbnail(opaque.getvalue(), size=50))
    assert (thumbnail.size, thumbnail.mode) == ((50, 50), "RGB")
    red, _green, blue = thumbnail.getpixel((25, 40))
    assert blue > 200 and red < 60

    thumbnail = open_webp(make_thumbnail(transparent.getvalue(), size=50))
    assert thumbnail.mode == "RGBA"
    assert thumbnail.getpixel((25, 5))[3] == 0
    assert thumbnail.getpixel((25, 40))[3] == 255


def test_thumbnail_of_grey_with_alpha_is_rgba():
    thumbnail = open_webp(
        make_thumbnail(image_bytes("PNG", size=(20, 20), mode="LA"), size=10)
    )
    assert thumbnail.mode == "RGBA"


def test_thumbnail_applies_exif_orientation():
    # Stored 200x100, left half red, right half blue; orientation 6 shows it
    # turned a quarter clockwise: 100x200, red on top.
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    output = io.BytesIO()
    image.save(output, "JPEG", exif=exif.tobytes())

    thumbnail = open_webp(make_thumbnail(output.getvalue(), size=64))
    assert thumbnail.size == (32, 64)
    top, bottom = thumbnail.getpixel((16, 8)), thumbnail.getpixel((16, 56))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_thumbnail_of_junk_is_refused():
    with pytest.raises(ImageInvalid):
        make_thumbnail(b"not an image" * 10, size=64)
