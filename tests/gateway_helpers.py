"""Helpers shared by the gateway tests."""

import io

from django.core.files.base import ContentFile
from PIL import Image

from bananaweb.gateway import services
from bananaweb.models import GeneratedImage, ImageRequest


def issue_token(user, name: str = "script") -> str:
    return services.api_token_create(user=user, name=name)[1]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def png_bytes(size: tuple[int, int] = (30, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "gold").save(buffer, "PNG")
    return buffer.getvalue()


def make_image(image_request: ImageRequest, *, source_url: str = "https://cdn.test/a.png") -> GeneratedImage:
    content = png_bytes()
    image = GeneratedImage(image_request=image_request, content_type="image/png", width=30, height=20,
                           size_bytes=len(content), source_url=source_url)
    image.file.save("image-0.png", ContentFile(content), save=False)
    image.thumbnail.save("thumb-0.webp", ContentFile(content), save=False)
    image.save()
    return image
