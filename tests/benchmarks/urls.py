"""The product's URLs and the benchmark's floor: "ok" through the same middleware,
sign-in included (LoginRequiredMiddleware sends anyone else to the login page)."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_GET


@require_GET
def floor(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/floor/", floor, name="bench-floor"),
    path("", include("bananaweb.urls")),
]
