"""Stored media read back, wherever it is kept: local files or an S3 bucket.

Every image leaves through a view that checks who may see it, so every read of a
stored file goes through here. A local file is opened as it is. An S3 object is
read from its GET response as it arrives: django-storages' S3File downloads the
whole object into memory before its first byte can be read, which an original
of several megabytes, or a ZIP of a hundred, must not do.
"""

from pathlib import PurePosixPath
from typing import IO

from botocore.exceptions import ClientError
from django.db.models.fields.files import FieldFile
from django.http import FileResponse
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, safe_join

CHUNK_SIZE = 64 * 1024


def _s3_get(storage: S3Storage, name: str) -> dict:
    """The object's GET response: its body not yet read, its length."""
    key = safe_join(storage.location, clean_name(name))
    try:
        return storage.bucket.Object(key).get()
    except ClientError as error:
        if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            raise FileNotFoundError(f"No stored file {name}") from error
        raise


def open_stream(file: FieldFile) -> IO[bytes]:
    """The stored file opened for reading, to be read in chunks and closed."""
    if isinstance(file.storage, S3Storage):
        return _s3_get(file.storage, file.name)["Body"]
    return file.open("rb")


def file_response(
    file: FieldFile,
    *,
    content_type: str,
    as_attachment: bool = False,
    filename: str = "",
) -> FileResponse:
    """The stored file, sent in chunks; named after its stored name unless told."""
    filename = filename or PurePosixPath(file.name).name
    if isinstance(file.storage, S3Storage):
        s3_object = _s3_get(file.storage, file.name)
        response = FileResponse(
            s3_object["Body"],
            content_type=content_type,
            as_attachment=as_attachment,
            filename=filename,
        )
        # A stream has no size of its own; S3 said how long it is.
        response["Content-Length"] = str(s3_object["ContentLength"])
    else:
        response = FileResponse(
            file.open("rb"),
            content_type=content_type,
            as_attachment=as_attachment,
            filename=filename,
        )
    response.block_size = CHUNK_SIZE
    return response
