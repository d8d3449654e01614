import factory
from django.contrib.auth import get_user_model

from bananaweb import crypto, options
from bananaweb.models import ImageRequest, UpstreamToken


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
