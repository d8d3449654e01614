"""A bananaweb request, told in the upstream's TaskResult shape."""

from collections.abc import Callable
from datetime import datetime

from bananaweb.gateway.models import GatewayTask
from bananaweb.models import GeneratedImage, ImageRequest, RequestStatus
from bananaweb.options import TERMINAL_STATUSES, UpstreamStatus

# The upstream's in-flight statuses, passed through while bananaweb waits on it.
IN_FLIGHT_STATUSES = frozenset(UpstreamStatus.values) - TERMINAL_STATUSES

# ImageRequest.error_code -> the number in errorCode. HTTP-like, so scripts can
# tell their own mistakes (4xx) from the service's (5xx).
ERROR_CODES: dict[str, int] = {
    "rejected": 400,  # the upstream refused the request
    "image_urls": 400,  # an image URL could not be fetched or is not an image
    "no_token": 503,  # no upstream token is available to send it with
    "unavailable": 503,  # the upstream stayed unreachable or rate limited
    "unknown_outcome": 502,  # sent, but no usable answer came back
    "no_images": 502,  # completed upstream without an image
    "image_fetch": 502,  # the image was made but could not be downloaded
    "deadline": 504,  # no result within bananaweb's polling deadline
    "upstream_failed": 500,
    "upstream_cancelled": 500,
    "upstream_timeout": 504,
    "token_deleted": 500,
}
DEFAULT_ERROR_CODE = 500


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
        body["errorCode"] = ERROR_CODES.get(image_request.error_code, DEFAULT_ERROR_CODE)
    if image_request.finished_at:
        body["finishedAt"] = _iso(image_request.finished_at)
    return body
