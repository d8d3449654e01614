"""Checking and thumbnailing an image costs memory near the cap, never more (issue 10).

Each measure runs in its own interpreter, so that nothing this test process has
allocated hides (or adds to) the peak: `ru_maxrss` after the imports is the
baseline, and the growth of the peak is what the image cost. On Linux a process
inherits the peak of the process that started it (exec keeps it), so the measure
is started by a small Python in between, not by pytest itself.
"""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bananaweb import images
from tests.factories import png_chunk

pytestmark = pytest.mark.slow

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent
PEAK_LIMIT_MIB = 300 * 1000 * 1000 / MB  # 300 MB

MEASURE = """
import json, resource, sys
from bananaweb import images

content = open(sys.argv[1], "rb").read()
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    images.verify_image(content, max_bytes=10 * 1024 * 1024)
    verified = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    images.make_thumbnail(content, size=512)
    outcome = "accepted"
except images.ImageInvalid as exc:
    verified = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = str(exc)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "outcome": outcome,
    "verify_mib": (verified - baseline) / 1024,
    "peak_mib": (peak - baseline) / 1024,
}))
"""

TRAMPOLINE = "import subprocess, sys; subprocess.run(sys.argv[1:], check=True)"


def one_colour_png(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG of one colour, compressed row by row: its pixels never exist in memory.

    Colour types: 2 is RGB, 6 is RGBA, 3 is a palette with a transparent entry.
    """
    pixel = {2: b"\xc8\x1e\x1e", 6: b"\xc8\x1e\x1e\x80", 3: b"\x01"}[colour_type]
    row = b"\x00" + pixel * width
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    palette = b""
    if colour_type == 3:
        palette = png_chunk(b"PLTE", b"\x00\x00\x00\xc8\x1e\x1e") + png_chunk(
            b"tRNS", b"\x00"
        )
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + palette
        + png_chunk(b"IDAT", idat + compressor.flush())
        + png_chunk(b"IEND", b"")
    )


def measure(content: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "image.png"
    path.write_bytes(content)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    finished = subprocess.run(
        [sys.executable, "-c", TRAMPOLINE, sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(finished.stdout)


def saved(format: str, width: int, height: int) -> bytes:
    output = io.BytesIO()
    mode = "P" if format == "GIF" else "RGB"
    Image.new(mode, (width, height), color=1 if mode == "P" else (200, 30, 30)).save(
        output, format
    )
    return output.getvalue()


@pytest.mark.parametrize(
    "kind", ["png-rgb", "png-rgba", "png-palette", "JPEG", "WEBP", "GIF"]
)
def test_the_largest_accepted_image_is_checked_and_thumbnailed_in_bounded_memory(
    kind, tmp_path
):
    width = 6000
    height = images.MAX_PIXELS // width
    if kind.startswith("png-"):
        colour_type = {"png-rgb": 2, "png-rgba": 6, "png-palette": 3}[kind]
        content = one_colour_png(width, height, colour_type)
    else:
        content = saved(kind, width, height)
    assert len(content) < MB  # a small file: its pixels are what cost

    result = measure(content, tmp_path)

    print(f"{kind} {width}×{height}: {result}")
    assert result["outcome"] == "accepted"
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_a_small_png_of_80_megapixels_is_refused_before_decoding(tmp_path):
    content = one_colour_png(8940, 8940)
    assert len(content) < MB

    result = measure(content, tmp_path)

    print(f"8940×8940: {result}")
    assert result["outcome"] == (
        "The image has too many pixels; bananaweb accepts at most 17.5 megapixels."
    )
    assert result["peak_mib"] < 20


def test_the_largest_4k_output_is_accepted():
    # 21:9 at 4K, the largest size the provider publishes.
    verified = images.verify_image(one_colour_png(6336, 2688), max_bytes=10 * MB)
    assert (verified.width, verified.height) == (6336, 2688)


def test_pillows_decompression_bomb_limit_is_the_cap():
    assert Image.MAX_IMAGE_PIXELS == images.MAX_PIXELS
