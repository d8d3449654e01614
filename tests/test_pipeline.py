"""The whole pipeline against the bundled simulator, over real HTTP: submit to stored image."""

import time

import pytest
from django.tasks import default_task_backend
from PIL import Image

from bananaweb import services
from bananaweb.models import ImageRequest, UpstreamToken
from bananaweb.simulator import start_simulator
from tests.factories import UpstreamTokenFactory

Status = ImageRequest.Status


@pytest.fixture(scope="module")
def simulator():
    handle = start_simulator(delay=0.3)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def upstream(simulator, settings, db, clear_tasks):
    simulator.reset()
    settings.MOUNTSEA_BASE_URL = simulator.url
    settings.MOUNTSEA_READ_TIMEOUT = 2
    settings.BANANAWEB_POLL_FIRST_DELAY = 0
    return simulator


def run_pipeline(
    user, data, django_capture_on_commit_callbacks, *, budget: float = 15
) -> ImageRequest:
    """Create a request, then run every task it enqueues (polls included) until none are left."""
    with django_capture_on_commit_callbacks(execute=True):
        image_request = services.image_request_create(user=user, data=data)
    deadline = time.monotonic() + budget
    while default_task_backend.results and time.monotonic() < deadline:
        result = default_task_backend.results.pop(0)
        if not result.task.name.startswith("image_request_"):
            continue  # token re-checks run on their own schedule
        if result.task.name == "image_request_poll_task":
            time.sleep(0.1)  # the simulator's tasks take a moment
        with django_capture_on_commit_callbacks(execute=True):
            result.task.call(*result.args, **result.kwargs)
    image_request.refresh_from_db()
    return image_request


@pytest.fixture
def sim_token(db):
    return UpstreamTokenFactory(name="sim", secret_value="sim-team-token-0001")


def test_generate_ends_with_a_stored_image_at_the_requested_ratio(
    user, sim_token, django_capture_on_commit_callbacks, upstream
):
    image_request = run_pipeline(
        user,
        {
            "action": "generate",
            "prompt": "A banana on the moon",
            "model": "nano-banana-2",
            "aspect_ratio": "16:9",
            "resolution": "1K",
        },
        django_capture_on_commit_callbacks,
    )
    assert image_request.status == Status.COMPLETED, image_request.error_message
    assert image_request.upstream_task_id
    image = image_request.images.get()
    assert (image.width, image.height) == (1024, 576)
    assert image.source_url.startswith(upstream.url + "/images/")
    with Image.open(image.file.open("rb")) as stored:
        assert stored.size == (1024, 576)
    sent = [
        body
        for method, path, body in upstream.requests
        if path == "/gemini/image/generate"
    ]
    assert sent == [
        {
            "prompt": "A banana on the moon",
            "action": "generate",
            "num_images": 1,
            "model": "nano-banana-2",
            "aspect_ratio": "16:9",
            "resolution": "1K",
        }
    ]


def test_edit_through_the_url_of_a_generated_image(
    user, sim_token, django_capture_on_commit_callbacks
):
    first = run_pipeline(
        user,
        {"action": "generate", "prompt": "A plain banana"},
        django_capture_on_commit_callbacks,
    )
    source_url = first.images.get().source_url
    edited = run_pipeline(
        user,
        {"action": "edit", "prompt": "Make it purple", "image_urls": [source_url]},
        django_capture_on_commit_callbacks,
    )
    assert edited.status == Status.COMPLETED, edited.error_message
    assert edited.image_urls == [source_url]
    assert edited.images.count() == 1


def test_simulated_task_failure_is_shown_in_plain_words(
    user, sim_token, django_capture_on_commit_callbacks
):
    image_request = run_pipeline(
        user,
        {"action": "generate", "prompt": "Doomed [sim:fail]"},
        django_capture_on_commit_callbacks,
    )
    assert image_request.status == Status.FAILED
    assert image_request.error_message.startswith(
        "The image service could not make this image"
    )
    assert not image_request.counts_toward_quota


def test_slow_submit_is_unknown_and_sent_only_once(
    user, sim_token, django_capture_on_commit_callbacks, upstream
):
    upstream.configure(slow_seconds=4)
    image_request = run_pipeline(
        user,
        {"action": "generate", "prompt": "Slow [sim:slow]"},
        django_capture_on_commit_callbacks,
    )
    assert image_request.status == Status.UNKNOWN
    assert [path for _, path, _ in upstream.requests].count(
        "/gemini/image/generate"
    ) == 1


def test_bad_token_is_suspended_and_the_good_one_used(
    user, django_capture_on_commit_callbacks, upstream
):
    UpstreamTokenFactory(name="bad", secret_value="not-a-simulator-token", priority=5)
    UpstreamTokenFactory(name="good", secret_value="sim-good-token-0002", priority=1)
    image_request = run_pipeline(
        user,
        {"action": "generate", "prompt": "Failover"},
        django_capture_on_commit_callbacks,
    )
    assert image_request.status == Status.COMPLETED, image_request.error_message
    assert image_request.upstream_token.name == "good"
    bad = UpstreamToken.objects.get(name="bad")
    assert bad.state == "suspended"
    assert "401" in bad.suspended_reason


@pytest.mark.parametrize("shape", ["nested", "base64", "url_string"])
def test_every_result_shape_yields_the_image(
    user, sim_token, django_capture_on_commit_callbacks, shape
):
    image_request = run_pipeline(
        user,
        {"action": "generate", "prompt": f"Shape [sim:{shape}]"},
        django_capture_on_commit_callbacks,
    )
    assert image_request.status == Status.COMPLETED, image_request.error_message
    assert image_request.images.count() == 1


def test_edit_with_an_unreachable_url_fails_before_anything_is_sent(
    user, sim_token, django_capture_on_commit_callbacks, upstream
):
    image_request = run_pipeline(
        user,
        {"action": "edit", "prompt": "x", "image_urls": ["http://10.1.2.3/cat.png"]},
        django_capture_on_commit_callbacks,
    )
    assert image_request.status == Status.FAILED
    assert "private" in image_request.error_message
    assert not [
        path for _, path, _ in upstream.requests if path == "/gemini/image/generate"
    ]
