"""Signed, expiring links to one stored image, for the upstream to fetch.

The upstream takes every input by URL, so an upload or one of our results used
as a reference is handed over as BANANAWEB_PUBLIC_URL + /files/<signed>/: the
signature names that one file, expires after BANANAWEB_PUBLIC_LINK_MAX_AGE, and
these are the only files served without sign-in.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "bananaweb.public-file"
UPLOAD, IMAGE = "u", "i"


@dataclass(frozen=True)
class FileRef:
    kind: str  # UPLOAD or IMAGE
    pk: int


def public_url(kind: str, pk: int) -> str:
    token = signing.dumps({"k": kind, "id": pk}, salt=SALT, compress=True)
    base = settings.BANANAWEB_PUBLIC_URL.rstrip("/")
    return base + reverse("public-file", args=[token])


def resolve(token: str) -> FileRef | None:
    """The file a token names, or None when it is tampered with or expired."""
    try:
        data = signing.loads(
            token, salt=SALT, max_age=settings.BANANAWEB_PUBLIC_LINK_MAX_AGE
        )
    except signing.BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(data, dict) or data.get("k") not in (UPLOAD, IMAGE):
        return None
    if not isinstance(data.get("id"), int):
        return None
    return FileRef(kind=data["k"], pk=data["id"])
