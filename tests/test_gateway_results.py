"""bananaweb's request states told in the upstream's TaskResult shape."""

import uuid
from datetime import UTC, datetime

import pytest

from bananaweb.gateway import results
from bananaweb.gateway.models import GatewayTask
from bananaweb.models import UNKNOWN_OUTCOME_MESSAGE, ImageRequest

Status = ImageRequest.Status
CREATED = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
FINISHED = datetime(2026, 5, 1, 9, 31, 5, tzinfo=UTC)


def task(status: str, upstream_status: str = "", **fields) -> GatewayTask:
    image_request = ImageRequest(
        status=status, upstream_status=upstream_status, created_at=CREATED, **fields
    )
    return GatewayTask(task_id=uuid.UUID(int=7), image_request=image_request)


@pytest.mark.parametrize(
    ("status", "upstream_status", "expected"),
    [
        (Status.QUEUED, "", "pending"),
        (Status.SUBMITTING, "", "pending"),
        (Status.IN_PROGRESS, "pending", "pending"),
        (Status.IN_PROGRESS, "ready", "ready"),
        (Status.IN_PROGRESS, "assigned", "assigned"),
        (Status.IN_PROGRESS, "processing", "processing"),
        (Status.IN_PROGRESS, "", "processing"),
        (Status.IN_PROGRESS, "queued_somewhere_new", "processing"),
        # Completed upstream, but the image isn't saved yet: not completed here.
        (Status.IN_PROGRESS, "completed", "processing"),
        (Status.COMPLETED, "completed", "completed"),
        (Status.FAILED, "failed", "failed"),
        (Status.FAILED, "cancelled", "cancelled"),
        (Status.FAILED, "timeout", "timeout"),
        (Status.FAILED, "", "failed"),
        (Status.FAILED, "processing", "failed"),
        (Status.UNKNOWN, "", "failed"),
    ],
)
def test_status_mapping(status, upstream_status, expected):
    image_request = ImageRequest(status=status, upstream_status=upstream_status)
    assert results.contract_status(image_request) == expected


def test_every_status_maps_into_the_contracts_enum():
    contract = {
        "pending",
        "ready",
        "assigned",
        "processing",
        "completed",
        "failed",
        "cancelled",
        "timeout",
    }
    for status in Status.values:
        for upstream_status in [*contract, "", "weird"]:
            assert (
                results.contract_status(
                    ImageRequest(status=status, upstream_status=upstream_status)
                )
                in contract
            )


@pytest.mark.parametrize("status", [Status.QUEUED, Status.IN_PROGRESS])
def test_in_flight_task_has_no_result_and_no_finish(status):
    assert results.task_result(task(status, "completed"), image_url=str) == {
        "taskId": "00000000-0000-0000-0000-000000000007",
        "status": "pending" if status == Status.QUEUED else "processing",
        "result": None,
        "createdAt": "2026-05-01T09:30:00Z",
    }


def test_unknown_outcome_fails_saying_it_was_not_resent():
    body = results.task_result(
        task(
            Status.UNKNOWN,
            error_code="unknown_outcome",
            finished_at=FINISHED,
            error_message=UNKNOWN_OUTCOME_MESSAGE.format(
                reason="no answer within 30 seconds"
            ),
        ),
        image_url=str,
    )
    assert body["status"] == "failed"
    assert "not resent" in body["errorMessage"]
    assert body["errorCode"] == 502
    assert body["finishedAt"] == "2026-05-01T09:31:05Z"


@pytest.mark.parametrize(
    ("error_code", "number"),
    [
        ("rejected", 400),
        ("image_urls", 400),
        ("no_token", 503),
        ("unavailable", 503),
        ("upstream_failed", 500),
        ("upstream_timeout", 504),
        ("deadline", 504),
        ("image_fetch", 502),
        ("something_new", 500),
        ("", 500),
    ],
)
def test_failure_codes_are_http_like_numbers(error_code, number):
    body = results.task_result(
        task(Status.FAILED, error_code=error_code, error_message="Nope."), image_url=str
    )
    assert (body["errorCode"], body["errorMessage"]) == (number, "Nope.")
