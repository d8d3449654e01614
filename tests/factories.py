import io
import struct
import zlib

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from bananaweb import crypto, options
from bananaweb.models import (
    GeneratedImage,
    ImageRequest,
    Star,
    Upload,
    UpstreamToken,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")


class ImageRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageRequest
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    action = options.Action.GENERATE
    prompt = factory.Sequence(lambda n: f"A banana number {n} on a sunny table")
    model = options.Model.NANO_BANANA_FAST

    @factory.post_generation
    def starred(obj, create, extracted, **kwargs):
        """starred=True: starred by its owner (stars are each person's: a Star)."""
        if create and extracted:
            Star.objects.create(user=obj.user, image_request=obj)


class UpstreamTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UpstreamToken
        exclude = ("secret_value",)

    name = factory.Sequence(lambda n: f"token {n}")
    secret_value = factory.Sequence(lambda n: f"sim-token-{n:04d}-abcd")
    secret_encrypted = factory.LazyAttribute(lambda o: crypto.encrypt(o.secret_value))
    last4 = factory.LazyAttribute(lambda o: o.secret_value[-4:])


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One chunk of a PNG file, its CRC right: for building odd PNGs by hand."""
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data))
    )


def png_bytes(size: tuple[int, int] = (30, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "gold").save(buffer, "PNG")
    return buffer.getvalue()


def make_image(
    image_request: ImageRequest,
    *,
    source_url: str = "https://cdn.test/a.png",
    content: bytes | None = None,
) -> GeneratedImage:
    """A stored 30×20 PNG of `png_bytes()` (or `content`), its thumbnail the same
    bytes."""
    content = png_bytes() if content is None else content
    image = GeneratedImage(
        image_request=image_request,
        content_type="image/png",
        width=30,
        height=20,
        size_bytes=len(content),
        source_url=source_url,
    )
    image.file.save("image-0.png", ContentFile(content), save=False)
    image.thumbnail.save("thumb-0.webp", ContentFile(content), save=False)
    image.save()
    return image


def make_upload(user, *, name: str = "cat.png") -> Upload:
    """A picture the user brought: a stored 30×20 PNG of `png_bytes()`."""
    content = png_bytes()
    upload = Upload(
        user=user,
        original_name=name,
        content_type="image/png",
        width=30,
        height=20,
        size_bytes=len(content),
    )
    upload.file.save("upload.png", ContentFile(content), save=False)
    upload.save()
    return upload
