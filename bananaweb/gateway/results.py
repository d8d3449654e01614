"""A bananaweb request, told in the upstream's TaskResult shape."""

from collections.abc import Callable
from datetime import datetime

from bananaweb.gateway.models import GatewayTask
from bananaweb.models import ErrorCode, GeneratedImage, ImageRequest, RequestStatus
from bananaweb.options import TERMINAL_STATUSES, UpstreamStatus

# The upstream's in-flight statuses, passed through while bananaweb waits on it.
IN_FLIGHT_STATUSES = frozenset(UpstreamStatus.values) - TERMINAL_STATUSES

# Every ImageRequest.error_code -> the number in errorCode (a test checks that each
# ErrorCode has one). HTTP-like, so scripts can tell their own mistakes (4xx) from
# the service's (5xx).
ERROR_CODES: dict[ErrorCode, int] = {
    ErrorCode.REJECTED: 400,  # the upstream refused the request
    ErrorCode.IMAGE_URLS: 400,  # an image URL could not be fetched or is not an image
    ErrorCode.NO_TOKEN: 503,  # no upstream token is available to send it with
    ErrorCode.UNAVAILABLE: 503,  # the upstream stayed unreachable or rate limited
    ErrorCode.UNKNOWN_OUTCOME: 502,  # sent, but no usable answer came back
    ErrorCode.NO_IMAGES: 502,  # completed upstream without an image
    ErrorCode.IMAGE_FETCH: 502,  # the image was made but could not be downloaded
    ErrorCode.DEADLINE: 504,  # no result within bananaweb's polling deadline
    ErrorCode.UPSTREAM_FAILED: 500,
    ErrorCode.UPSTREAM_CANCELLED: 500,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.TOKEN_DELETED: 500,
    ErrorCode.EXPIRED: 503,  # never sent by its submit deadline
}
# A row with no code, or one no longer in ErrorCode, still gets a number (never an
# HTTP error): the service failed somewhere.
UNMAPPED_ERROR_CODE = 500


def contract_status(image_request: ImageRequest) -> str:
    """The status a Mountsea client expects, from bananaweb's own."""
    match image_request.status:
        case RequestStatus.QUEUED | RequestStatus.SUBMITTING:
            return UpstreamStatus.PENDING
        case RequestStatus.IN_PROGRESS:
            # "completed" upstream is not completed here until the image is saved,
            # and result stays null until then.
            if image_request.upstream_status in IN_FLIGHT_STATUSES:
                return image_request.upstream_status
            return UpstreamStatus.PROCESSING
        case RequestStatus.COMPLETED:
            return UpstreamStatus.COMPLETED
        case RequestStatus.FAILED if image_request.upstream_status in (
            UpstreamStatus.CANCELLED,
            UpstreamStatus.TIMEOUT,
        ):
            return image_request.upstream_status
        case _:  # failed, or an unknown outcome
            return UpstreamStatus.FAILED


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def task_result(
    gateway_task: GatewayTask, *, image_url: Callable[[GeneratedImage], str]
) -> dict:
    """The TaskResult body for a task; image_url gives the absolute URL of an image."""
    image_request = gateway_task.image_request
    body: dict = {
        "taskId": str(gateway_task.task_id),
        "status": contract_status(image_request),
        "result": None,
        "createdAt": _iso(image_request.created_at),
    }
    if image_request.status == RequestStatus.COMPLETED:
        body["result"] = {
            "images": [
                {
                    "url": image_url(image),
                    "upstream_url": image.source_url or None,
                    "width": image.width,
                    "height": image.height,
                    "content_type": image.content_type,
                }
                for image in image_request.images.all()
            ]
        }
    # An unknown outcome is stored as a failure with its own code and explanation.
    if image_request.status in (RequestStatus.FAILED, RequestStatus.UNKNOWN):
        body["errorMessage"] = image_request.error_message or "The request failed."
        body["errorCode"] = ERROR_CODES.get(
            image_request.error_code, UNMAPPED_ERROR_CODE
        )
    if image_request.finished_at:
        body["finishedAt"] = _iso(image_request.finished_at)
    return body
