"""The gateway API (the upstream's contract, token-authenticated) and the API tokens page."""

import json
import math
import uuid

from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_http_methods, require_POST

from bananaweb import media, options
from bananaweb import services as bananaweb_services
from bananaweb.gateway import lookups, openapi, results, services
from bananaweb.gateway.auth import ApiError, ApiRequest, api_view
from bananaweb.gateway.forms import ApiTokenForm
from bananaweb.gateway.models import ApiToken, GatewayTask
from bananaweb.models import GeneratedImage

MAX_DB_ID = 2**63 - 1
JSON_TYPES = {"string": (str,), "number": (int, float), "array": (list,)}


def api_base_url(request: HttpRequest) -> str:
    """This server's equivalent of https://api.mountsea.ai, as seen by the client."""
    return request.build_absolute_uri(reverse("gateway-generate")).removesuffix(
        openapi.GENERATE_PATH
    )


def _image_url(request: HttpRequest, image: GeneratedImage) -> str:
    return request.build_absolute_uri(reverse("gateway-image", args=[image.pk]))


def _type_errors(data: dict) -> dict[str, str]:
    """Known fields of the wrong JSON type, or holding NUL characters (PostgreSQL
    refuses them) or lone surrogates (JSON's "\\ud800": no database, page or
    upstream can take them).

    Only the JSON types: the rules themselves are options.option_errors', applied by the service.
    """
    errors = {}
    for name, schema in openapi.request_schema()["properties"].items():
        value = data.get(name)
        if value is None:
            continue  # like the upstream, null is "not set"
        texts = [
            text
            for text in (value if isinstance(value, list) else [value])
            if isinstance(text, str)
        ]
        if not isinstance(value, JSON_TYPES[schema["type"]]) or isinstance(value, bool):
            errors[name] = f"{name} must be a JSON {schema['type']}."
        elif any("\x00" in text for text in texts):
            errors[name] = f"{name} must not contain NUL characters."
        elif not all(options.is_unicode(text) for text in texts):
            errors[name] = (
                f"{name} is not valid Unicode: it holds a lone surrogate "
                "(half of a UTF-16 pair)."
            )
    return errors


def _json_body(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if errors := _type_errors(data):
        raise ApiError(
            400, "The request is invalid: " + " ".join(errors.values()), errors
        )
    return data


# --- The API --------------------------------------------------------------------


@api_view("POST")
def generate(request: ApiRequest) -> JsonResponse:
    data = _json_body(request)
    idempotency_key = request.headers.get("Idempotency-Key", "").strip()
    if "\x00" in idempotency_key:  # PostgreSQL refuses NUL (gunicorn passes none)
        message = "The Idempotency-Key header must not contain NUL characters."
        raise ApiError(400, message, {"Idempotency-Key": message})
    try:
        gateway_task = services.gateway_task_create(
            api_token=request.api_token, data=data, idempotency_key=idempotency_key
        )
    except ValidationError as exc:
        errors = {
            field: " ".join(messages) for field, messages in exc.message_dict.items()
        }
        raise ApiError(
            400, "The request is invalid: " + " ".join(errors.values()), errors
        ) from None
    except bananaweb_services.IdempotencyConflict as exc:
        raise ApiError(422, str(exc), {"Idempotency-Key": str(exc)}) from None
    except bananaweb_services.QuotaExceeded as exc:
        seconds = max(math.ceil((exc.resets_at - timezone.now()).total_seconds()), 1)
        raise ApiError(429, str(exc), headers={"Retry-After": str(seconds)}) from None
    return JsonResponse({"taskId": str(gateway_task.task_id)}, status=201)


@api_view("GET")
def task_result(request: ApiRequest) -> JsonResponse:
    raw_task_id = request.GET.get("taskId", "")
    if not raw_task_id:
        raise ApiError(
            400, "Pass the task's id: ?taskId=…", {"taskId": "taskId is required."}
        )
    try:
        task_id = uuid.UUID(raw_task_id)
    except ValueError:
        raise ApiError(
            404, "No task with this taskId.", {"taskId": "Unknown taskId."}
        ) from None
    # What scripts poll: its SQL built once per process.
    gateway_task = lookups.own_task(request.user, task_id)
    if gateway_task is None:
        gateway_task = (
            GatewayTask.objects.select_related("image_request")
            .prefetch_related("image_request__images")
            .filter(
                image_request__user=request.user,
                image_request__deleted_at__isnull=True,
                task_id=task_id,
            )
            .first()
        )
    if not gateway_task:
        raise ApiError(
            404, "No task with this taskId among yours.", {"taskId": "Unknown taskId."}
        )
    body = results.task_result(
        gateway_task, image_url=lambda image: _image_url(request, image)
    )
    return JsonResponse(body)


@api_view("GET", auth="token_or_session")
@cache_control(private=True, max_age=31536000, immutable=True)
def api_image(request: ApiRequest, image_id: str) -> FileResponse:
    """A stored image, to its owner's tokens or its owner signed in to the site."""
    # The path takes any string, so that no id is answered with an HTML 404.
    if not image_id.isascii() or not image_id.isdigit() or int(image_id) > MAX_DB_ID:
        raise ApiError(404, "No such image.")
    image = (
        GeneratedImage.objects.for_user(request.user).filter(pk=int(image_id)).first()
    )
    if image is None:
        raise ApiError(404, "No such image among yours.")
    return media.file_response(image.file, content_type=image.content_type)


@api_view("GET", auth="public")
def openapi_document(request: ApiRequest) -> JsonResponse:
    return JsonResponse(openapi.document(server_url=api_base_url(request)))


# --- The API tokens page -------------------------------------------------------------


def _tokens_page(
    request: HttpRequest, form: ApiTokenForm, *, status: int = 200, **context
) -> HttpResponse:
    return render(
        request,
        "gateway/tokens.html",
        {
            "form": form,
            "api_tokens": ApiToken.objects.for_user(request.user).newest_first(),
            "api_base_url": api_base_url(request),
            "openapi_url": request.build_absolute_uri(reverse("gateway-openapi")),
            **context,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@never_cache  # the POST's answer shows a new token: never stored by anyone
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The user's tokens; a POST creates one and shows it in its own answer, once.

    The raw token is never stored, not even in the session; the form's key makes
    a reload that posts it again harmless.
    """
    if request.method != "POST":
        return _tokens_page(request, ApiTokenForm())
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form, status=422)
    try:
        api_token, raw = services.api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            form_key=form.cleaned_data["form_key"],
        )
    except services.TokenAlreadyCreated as exc:
        return _tokens_page(request, ApiTokenForm(), replay_note=str(exc))
    except services.TooManyTokens as exc:
        form.add_error(None, str(exc))
        return _tokens_page(request, form, status=422)
    context = {"new_token": raw, "new_api_token": api_token}
    return _tokens_page(request, ApiTokenForm(), status=201, **context)


@require_POST
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    api_token = get_object_or_404(ApiToken.objects.for_user(request.user), pk=pk)
    services.api_token_revoke(api_token=api_token)
    return redirect("api-tokens")
