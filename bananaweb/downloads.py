"""Taking images out: their file names, and ZIP archives written as they are sent.

An archive is never held whole: zipfile writes each entry to a small buffer
that is emptied after every chunk, so memory stays near one chunk whatever the
number and size of the files.
"""

import mimetypes
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from django.core.files import File
from django.utils.text import slugify

from bananaweb import media
from bananaweb.models import GeneratedImage

CHUNK_SIZE = 64 * 1024
SLUG_MAX_LENGTH = 60


def download_name(image: GeneratedImage) -> str:
    """ "a-banana-on-a-table-42.png": a slug of the prompt and the request's id."""
    image_request = image.image_request
    slug = slugify(image_request.prompt)[:SLUG_MAX_LENGTH].strip("-") or "image"
    suffix = PurePosixPath(image.file.name).suffix.lower()
    if not suffix:
        suffix = mimetypes.guess_extension(image.content_type) or ""
    return f"{slug}-{image_request.pk}{suffix}"


class _Sink:
    """Where zipfile writes: bytes kept until taken. No tell() or seek(), so
    zipfile writes as to a pipe (sizes after each entry's data)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_stream(files: Iterable[tuple[str, File]]) -> Iterator[bytes]:
    """A ZIP of (name, file) pairs, in chunks, each file opened only as its turn
    comes. Deflated, if lightly (images are compressed already): a stored entry
    followed by its sizes, as a stream must write it, trips some unzip tools."""
    sink = _Sink()
    with zipfile.ZipFile(
        sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
    ) as archive:
        for name, file in files:
            with (
                media.open_stream(file) as source,
                archive.open(name, mode="w") as entry,
            ):
                while chunk := source.read(CHUNK_SIZE):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
