"""The pages: one main page with the forms and the history, a detail page, and their fragments."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HTMX_STOP_POLLING, reswap, retarget
from django_htmx.middleware import HtmxDetails

from bananaweb import options, services
from bananaweb.forms import ImageRequestForm
from bananaweb.models import GeneratedImage, ImageRequest


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _forms(request: HtmxHttpRequest, bound: ImageRequestForm | None = None) -> dict:
    forms = {
        action: ImageRequestForm(action=action, initial=_prefill(request, action))
        for action in options.Action.values
    }
    if bound is not None:
        forms[bound.kind] = bound
    return {
        "generate_form": forms[options.Action.GENERATE],
        "edit_form": forms[options.Action.EDIT],
    }


def _prefill(request: HtmxHttpRequest, action: str) -> dict:
    """Initial values from the query string, e.g. "Edit this image" links."""
    if request.GET.get("action") != action:
        return {}
    initial = {
        name: request.GET[name]
        for name in ("prompt", "model", "aspect_ratio", "resolution")
        if name in request.GET
    }
    if urls := request.GET.getlist("image_urls"):
        initial["image_urls"] = urls
    return initial


def _history(request: HtmxHttpRequest) -> dict:
    requests_ = ImageRequest.objects.for_user(request.user).newest_first().with_images()
    # ASCII digits only, as every number in a query string; anything else is page 1.
    page_raw = request.GET.get("page", "")
    strict = page_raw.isascii() and page_raw.isdigit() and len(page_raw) <= 9
    page = Paginator(requests_, settings.BANANAWEB_HISTORY_PAGE_SIZE).get_page(
        int(page_raw) if strict else 1
    )
    return {"page": page, "quota": services.quota_usage(user=request.user)}


# --- The main page ------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx and "page" in request.GET:
        return render(request, "requests/index.html#history", _history(request))
    return render(request, "requests/index.html", _forms(request) | _history(request))


@require_POST
def request_create(request: HtmxHttpRequest) -> HttpResponse:
    action = request.POST.get("action")
    form = ImageRequestForm(
        request.POST,
        action=action if action in options.Action.values else options.Action.GENERATE,
    )
    quota_error = ""
    if form.is_valid():
        try:
            image_request = services.image_request_create(
                user=request.user,
                data=form.cleaned_data,
                idempotency_key=form.cleaned_data["idempotency_key"],
            )
        except services.QuotaExceeded as exc:
            quota_error = str(exc)
        except services.IdempotencyConflict as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if not request.htmx:
                return redirect("index")
            # The new card joins the history; the form comes back empty, keeping the model's choices.
            fresh = ImageRequestForm(
                action=form.kind,
                initial={
                    "model": form.cleaned_data["model"],
                    "aspect_ratio": form.cleaned_data["aspect_ratio"],
                    "resolution": form.cleaned_data["resolution"],
                },
            )
            return render(
                request,
                "requests/index.html#created",
                {
                    "image_request": image_request,
                    "form": fresh,
                    "quota": services.quota_usage(user=request.user),
                },
            )

    context = {"form": form, "quota_error": quota_error}
    if request.htmx:
        response = render(
            request,
            "requests/index.html#request-form",
            context,
            status=422 if not quota_error else 429,
        )
        return reswap(retarget(response, f"#{form.kind}-form"), "outerHTML")
    return render(
        request,
        "requests/index.html",
        _forms(request, form) | _history(request) | context,
        status=422 if not quota_error else 429,
    )


@require_GET
def request_options(request: HtmxHttpRequest) -> HttpResponse:
    """The aspect-ratio and resolution fields for the chosen model."""
    action = request.GET.get("action")
    form = ImageRequestForm(
        action=action if action in options.Action.values else options.Action.GENERATE,
        initial={
            name: request.GET.get(name, "")
            for name in ("model", "aspect_ratio", "resolution")
        },
    )
    return render(request, "requests/index.html#option-fields", {"form": form})


# --- One request ----------------------------------------------------------------------


def _own_request(request: HtmxHttpRequest, pk: int) -> ImageRequest:
    return get_object_or_404(
        ImageRequest.objects.for_user(request.user).with_images(), pk=pk
    )


@require_GET
def request_card(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A card's current state: cheap (the database only), polled while in flight."""
    image_request = _own_request(request, pk)
    response = render(
        request, "requests/index.html#request-card", {"image_request": image_request}
    )
    if not image_request.in_flight:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_GET
def request_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return render(
        request, "requests/detail.html", {"image_request": _own_request(request, pk)}
    )


@require_POST
def request_resubmit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    image_request = _own_request(request, pk)
    if not image_request.can_resubmit:
        message = "Only a failed request, or one whose outcome is unknown, can be resubmitted."
        context = {"image_request": image_request, "resubmit_error": message}
        return render(request, "requests/detail.html", context, status=409)
    try:
        new_request = services.image_request_resubmit(image_request=image_request)
    except (services.QuotaExceeded, ValidationError) as exc:
        message = (
            str(exc)
            if isinstance(exc, services.QuotaExceeded)
            else " ".join(exc.messages)
        )
        return render(
            request,
            "requests/detail.html",
            {"image_request": image_request, "resubmit_error": message},
            status=429,
        )
    return redirect("request-detail", pk=new_request.pk)


@require_GET
@cache_control(private=True, max_age=31536000, immutable=True)
def image_file(
    request: HtmxHttpRequest, pk: int, image_pk: int, variant: str
) -> FileResponse:
    """An image or its thumbnail, to its owner only."""
    if variant not in ("full", "thumbnail"):
        raise Http404
    image = get_object_or_404(
        GeneratedImage.objects.filter(image_request__user=request.user),
        pk=image_pk,
        image_request_id=pk,
    )
    file = image.thumbnail if variant == "thumbnail" else image.file
    content_type = "image/webp" if variant == "thumbnail" else image.content_type
    return FileResponse(file.open("rb"), content_type=content_type)


# --- Signing in -----------------------------------------------------------------------


def signin_locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict
) -> HttpResponse:
    """django-axes' answer (AXES_LOCKOUT_CALLABLE) to a sign-in past the failure
    limit, on the site's form and the admin's."""
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return render(
        request, "registration/locked_out.html", {"minutes": minutes}, status=429
    )
