import io

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from bananaweb import crypto, options
from bananaweb.models import GeneratedImage, ImageRequest, UpstreamToken


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")


class ImageRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageRequest

    user = factory.SubFactory(UserFactory)
    action = options.Action.GENERATE
    prompt = factory.Sequence(lambda n: f"A banana number {n} on a sunny table")
    model = options.Model.NANO_BANANA_FAST


class UpstreamTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UpstreamToken
        exclude = ("secret_value",)

    name = factory.Sequence(lambda n: f"token {n}")
    secret_value = factory.Sequence(lambda n: f"sim-token-{n:04d}-abcd")
    secret_encrypted = factory.LazyAttribute(lambda o: crypto.encrypt(o.secret_value))
    last4 = factory.LazyAttribute(lambda o: o.secret_value[-4:])


def png_bytes(size: tuple[int, int] = (30, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "gold").save(buffer, "PNG")
    return buffer.getvalue()


def make_image(
    image_request: ImageRequest, *, source_url: str = "https://cdn.test/a.png"
) -> GeneratedImage:
    """A stored 30×20 PNG of `png_bytes()`, its thumbnail the same bytes."""
    content = png_bytes()
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
