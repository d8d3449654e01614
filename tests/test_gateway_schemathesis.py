"""Property-based: schemathesis drives every operation of /api/openapi.json through the WSGI app.

It fails on any 5xx and on any response off the document: status code, content
type, headers and body schema.
"""

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bananaweb.gateway import openapi, services
from bananaweb.models import ImageRequest
from tests.factories import make_image
from tests.gateway_helpers import bearer, issue_token

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OPERATIONS = [
    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode}")
    for path, methods in openapi.document(server_url="/api")["paths"].items()
    for method, operation in methods.items()
    for mode in [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    # Negative data needs an input to get wrong.
    if mode == GenerationMode.POSITIVE or {"parameters", "requestBody"} & set(operation)
]
Status = ImageRequest.Status


def plain(headers: dict) -> dict:
    # Schemathesis' WSGI transport asks for gzip but does not decode it; HTTP clients do.
    return headers | {"Accept-Encoding": "identity"}


@pytest.fixture
def wsgi_app():
    """The WSGI app without per-request connection closing, as Django's test client does it.

    Otherwise request_finished closes the test's connection inside its transaction
    (PostgreSQL; SQLite's in-memory database is never closed).
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def gateway_schema(db, settings, wsgi_app):
    # Room for every generated request, so generation gets past the quota and the rate limit.
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 10_000
    settings.BANANAWEB_API_RATE_LIMIT = 10_000
    cache.clear()
    return schemathesis.openapi.from_wsgi("/api/openapi.json", wsgi_app)


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_generated_requests_keep_to_the_document(
    gateway_schema, user, method, path, mode
):
    headers = plain(bearer(issue_token(user)))

    @given(case=gateway_schema[path][method].as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


@pytest.mark.parametrize(
    ("status", "upstream_status", "error_code"),
    [
        (Status.QUEUED, "", ""),
        (Status.IN_PROGRESS, "assigned", ""),
        (Status.COMPLETED, "completed", ""),
        (Status.FAILED, "timeout", "upstream_timeout"),
        (Status.UNKNOWN, "", "unknown_outcome"),
    ],
)
def test_real_tasks_and_their_images_keep_to_the_document(
    gateway_schema, user, status, upstream_status, error_code
):
    """Random task and image ids only find 404s: these are answers about tasks that exist."""
    raw = issue_token(user)
    api_token = user.api_tokens.get()
    gateway_task = services.gateway_task_create(
        api_token=api_token, data={"prompt": "A banana", "action": "generate"}
    )
    image_request = gateway_task.image_request
    image_request.status, image_request.upstream_status, image_request.error_code = (
        status,
        upstream_status,
        error_code,
    )
    if image_request.status not in ImageRequest.IN_FLIGHT:
        image_request.finished_at = timezone.now()
    image_request.save()
    image = make_image(image_request) if status == Status.COMPLETED else None

    result = gateway_schema[openapi.RESULT_PATH]["GET"].Case(
        query={"taskId": str(gateway_task.task_id)}
    )
    response = result.call_and_validate(headers=plain(bearer(raw)), checks=CHECKS)
    assert response.status_code == 200
    if image is not None:
        assert response.json()["result"]["images"]
        case = gateway_schema[openapi.IMAGE_PATH]["GET"].Case(
            path_parameters={"imageId": image.pk}
        )
        assert (
            case.call_and_validate(
                headers=plain(bearer(raw)), checks=CHECKS
            ).status_code
            == 200
        )
