"""The fault matrix (issue 9): every way the upstream can fail on submit, poll and
image download, against the bundled simulator over real HTTP, and where each
request ends.

Tasks are drained from the DummyBackend and called at once (sleeping at most
MAX_SLEEP for a delayed one), so a retry runs long before its run_after; the
deadlines are made small instead.
"""

import json
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from django.conf import settings
from django.tasks import TaskResult, default_task_backend
from django.urls import reverse
from django.utils import timezone

from bananaweb import services
from bananaweb.gateway.models import GatewayTask
from bananaweb.models import ImageRequest
from bananaweb.simulator import SimulatorHandle, knobs, start_simulator
from tests.factories import UpstreamTokenFactory
from tests.gateway_helpers import bearer, issue_token

Status = ImageRequest.Status
Code = ImageRequest.ErrorCode

SUBMIT = "image_request_submit_task"
POLL = "image_request_poll_task"
FETCH = "image_request_fetch_images_task"
STEPS = (SUBMIT, POLL, FETCH)
MAX_SLEEP = 0.1  # seconds a drained task may wait for its run_after
READ_TIMEOUT = 0.5
SLOW = 1.0  # the simulator's "slow" fault: past READ_TIMEOUT and the fetch timeout
SHORT_DEADLINE = 0.6


@pytest.fixture(scope="module")
def simulator():
    handle = start_simulator(delay=0.1, retry_after=1, slow_seconds=SLOW)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def upstream(simulator, settings, db, clear_tasks):
    simulator.reset()
    settings.MOUNTSEA_BASE_URL = simulator.url
    settings.MOUNTSEA_READ_TIMEOUT = READ_TIMEOUT
    settings.BANANAWEB_FETCH_TIMEOUT = READ_TIMEOUT
    settings.BANANAWEB_POLL_FIRST_DELAY = 0
    settings.BANANAWEB_POLL_MAX_DELAY = MAX_SLEEP
    settings.BANANAWEB_POLL_DEADLINE = 60
    settings.BANANAWEB_SUBMIT_DEADLINE = 60
    settings.BANANAWEB_FETCH_ATTEMPTS = 5
    return simulator


@pytest.fixture(autouse=True)
def sim_token(db):
    return UpstreamTokenFactory(name="sim", secret_value="sim-team-token-0001")


@pytest.fixture(autouse=True)
def no_secret_escapes(
    request, db, caplog, formatted_logs, client, admin_client, sim_token
):
    """Issue 10: across every case of the matrix, no log record and no page about
    the requests (card, detail, admin, the gateway's answer) holds a secret: the
    upstream token, a personal API token, SECRET_KEY or an encryption key."""
    caplog.set_level(logging.DEBUG)
    user = request.getfixturevalue("user")
    personal = issue_token(user, "matrix")
    yield
    secrets = [
        "sim-team-token-0001",
        personal,
        settings.SECRET_KEY,
        *settings.BANANAWEB_ENCRYPTION_KEYS,
    ]
    client.force_login(user)
    seen = [
        caplog.text,
        formatted_logs.getvalue(),  # as written, in JSON and console lines
        *(record.getMessage() for record in caplog.records),
    ]
    for image_request in ImageRequest.objects.all():
        GatewayTask.objects.get_or_create(image_request=image_request)
        task_id = image_request.gateway_task.task_id
        seen += [
            image_request.error_message,
            json.dumps(image_request.exchange),
            json.dumps(image_request.result),
            client.get(reverse("request-detail", args=[image_request.pk])).content,
            client.get(reverse("request-updates"), {"ids": image_request.pk}).content,
            client.get(
                f"/api/gemini/task/result?taskId={task_id}", headers=bearer(personal)
            ).content,
            admin_client.get(
                reverse("admin:bananaweb_imagerequest_change", args=[image_request.pk])
            ).content,
        ]
    seen.append(
        admin_client.get(
            reverse("admin:bananaweb_upstreamtoken_change", args=[sim_token.pk])
        ).content
    )
    text = "\n".join(
        part.decode(errors="replace") if isinstance(part, bytes) else str(part)
        for part in seen
    )
    for secret in secrets:
        assert secret not in text


@pytest.fixture
def run(user, upstream, django_capture_on_commit_callbacks):
    """Create a request for `prompt` and drain its tasks: run(prompt, ...) -> Run."""

    def run_request(prompt: str, **drain_options) -> Run:
        with django_capture_on_commit_callbacks(execute=True):
            image_request = services.image_request_create(
                user=user, data={"action": "generate", "prompt": prompt}
            )
        done = Run(image_request, prompt, upstream)
        drain(done, django_capture_on_commit_callbacks, **drain_options)
        image_request.refresh_from_db()
        return done

    return run_request


@dataclass
class Run:
    image_request: ImageRequest
    prompt: str
    simulator: SimulatorHandle
    called: list[TaskResult] = field(default_factory=list)

    @property
    def stats(self) -> dict:
        return self.simulator.stats

    @property
    def untagged(self) -> str:
        """The prompt as the simulator's stats name it: without [sim:...] tags."""
        return knobs.prompt_tags(self.prompt)[0]

    @property
    def generate_calls(self) -> int:
        return self.stats["generate_calls_by_prompt"].get(self.untagged, 0)

    @property
    def accepted(self) -> int:
        return self.stats["accepted_by_prompt"].get(self.untagged, 0)

    def delays(self, name: str) -> list[float]:
        """Seconds between enqueueing and run_after of each `name` task called."""
        return [
            (r.task.run_after - r.enqueued_at).total_seconds()
            if r.task.run_after
            else 0
            for r in self.called
            if r.task.name == name
        ]


def drain(
    done: Run,
    capture,
    *,
    before_call: Callable[[TaskResult, Run], None] | None = None,
    max_steps: int = 200,
    budget: float = 15,
) -> None:
    """Call the request's tasks as they are enqueued, sleeping at most MAX_SLEEP for
    a delayed one, until none is left or max_steps were called; fail after budget
    seconds."""
    deadline = time.monotonic() + budget
    while default_task_backend.results and len(done.called) < max_steps:
        assert time.monotonic() < deadline, f"still running after {budget} s"
        result = default_task_backend.results.pop(0)
        if result.task.name not in STEPS:
            continue  # token checks and the reconciler run on their own schedule
        if result.task.run_after is not None:
            wait = (result.task.run_after - timezone.now()).total_seconds()
            time.sleep(min(max(wait, 0), MAX_SLEEP))
        if before_call is not None:
            before_call(result, done)
        done.called.append(result)
        with capture(execute=True):
            result.task.call(*result.args, **result.kwargs)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def refusing(settings, step: str, times: int | None) -> Callable:
    """A before_call hook: `step`'s first `times` calls (all if None) find the
    upstream's port closed; every other call reaches the simulator."""
    closed, open_url = closed_port_url(), settings.MOUNTSEA_BASE_URL
    seen = 0

    def hook(result: TaskResult, done: Run) -> None:
        nonlocal seen
        if result.task.name == step:
            seen += 1
            refused = times is None or seen <= times
            settings.MOUNTSEA_BASE_URL = closed if refused else open_url
        else:
            settings.MOUNTSEA_BASE_URL = open_url

    return hook


def assert_ended(done: Run, status: str, code: str = "", *words: str) -> None:
    """The request ended as `status` with `code`; a failure says one of `words`;
    and the upstream never accepted it twice."""
    image_request = done.image_request
    assert (image_request.status, image_request.error_code) == (status, code), (
        image_request.error_message
    )
    if status != Status.COMPLETED:
        message = image_request.error_message.lower()
        assert message.strip()
        assert any(word.lower() in message for word in words), message
    assert done.accepted <= 1


# --- Submit ---------------------------------------------------------------------

UNKNOWN_WORDS = ("resent", "resubmit", "can't tell", "cannot tell")


@pytest.mark.parametrize(
    "fault",
    ["500", "502", "504", "slow", "malformed", "no_task_id", "cutoff", "reset"],
)
def test_submit_without_a_usable_answer_is_unknown_and_never_resent(
    run, upstream, fault
):
    upstream.configure(submit_fault=fault)

    done = run(f"Submit {fault}")

    assert_ended(done, Status.UNKNOWN, Code.UNKNOWN_OUTCOME, *UNKNOWN_WORDS)
    assert done.generate_calls == 1
    assert done.stats["result_calls"] == 0


def test_submit_500_after_create_is_unknown_though_accepted(run, upstream):
    upstream.configure(submit_fault="500_after_create")

    done = run("Submit 500 after create")

    assert_ended(done, Status.UNKNOWN, Code.UNKNOWN_OUTCOME, *UNKNOWN_WORDS)
    assert (done.generate_calls, done.accepted) == (1, 1)


def waiting_seen(hook: Callable | None, seen: list) -> Callable:
    """A before_call hook noting (status, message) before every submit but the
    first, then calling `hook`."""

    def note(result: TaskResult, done: Run) -> None:
        if result.task.name == SUBMIT and any(
            r.task.name == SUBMIT for r in done.called
        ):
            done.image_request.refresh_from_db()
            seen.append((done.image_request.status, done.image_request.error_message))
        if hook is not None:
            hook(result, done)

    return note


@pytest.mark.parametrize("fault", ["503", "503_retry_after", "429", "refused"])
def test_submit_transient_refusal_waits_and_is_sent_again(
    run, upstream, settings, fault
):
    hook = None
    if fault == "refused":
        hook = refusing(settings, SUBMIT, times=1)
    else:
        upstream.configure(submit_fault=fault, fault_count=1)
    seen: list[tuple[str, str]] = []

    done = run(f"Submit {fault} once", before_call=waiting_seen(hook, seen))

    assert seen, "never sent again"
    status, message = seen[0]
    assert status == Status.QUEUED
    assert re.search(r"waiting .*until \d\d:\d\d:\d\d", message.lower()), message
    assert_ended(done, Status.COMPLETED)
    assert done.accepted == 1
    assert done.generate_calls == (1 if fault == "refused" else 2)
    assert done.image_request.images.count() == 1


@pytest.mark.parametrize("fault", ["503", "503_retry_after", "429", "refused"])
def test_submit_persistent_refusal_fails_unavailable_at_the_deadline(
    run, upstream, settings, fault
):
    settings.BANANAWEB_SUBMIT_DEADLINE = 2
    before_call = None
    if fault == "refused":
        before_call = refusing(settings, SUBMIT, times=None)
    else:
        upstream.configure(submit_fault=fault)

    done = run(f"Submit {fault} always", before_call=before_call)

    assert_ended(
        done, Status.FAILED, Code.UNAVAILABLE, "unavailable", "not sent", "busy"
    )
    assert done.accepted == 0
    assert not done.image_request.counts_toward_quota


@pytest.mark.parametrize("fault", ["401", "403", "402"])
def test_submit_refused_token_fails_no_token(run, upstream, sim_token, fault):
    if fault == "402":
        sim_token.set_secret("sim-nocredit-0001")
        sim_token.save()
    else:
        upstream.configure(submit_fault=fault)

    done = run(f"Submit {fault}")

    assert_ended(done, Status.FAILED, Code.NO_TOKEN, "refused", "rejected", "credit")
    assert "token" in done.image_request.error_message.lower()
    assert done.accepted == 0
    assert done.generate_calls == 1


def test_submit_backs_off_while_the_service_is_unavailable(run, upstream):
    upstream.configure(submit_fault="503")

    done = run("Submit backoff", max_steps=4)

    delays = done.delays(SUBMIT)[1:]  # the first was enqueued at creation
    assert len(delays) == 3
    assert all(later > earlier for earlier, later in pairwise(delays)), delays
    assert done.accepted == 0


# --- Poll -----------------------------------------------------------------------

POLL_FAULTS = [
    "500",
    "502",
    "503",
    "503_retry_after",
    "504",
    "429",
    "401",
    "403",
    "slow",
    "malformed",
    "no_task_id",
    "cutoff",
    "reset",
    "refused",
]


def poll_fault(upstream, settings, fault: str, times: int | None) -> Callable | None:
    if fault == "refused":
        return refusing(settings, POLL, times=times)
    upstream.configure(result_fault=fault, fault_count=times)
    return None


@pytest.mark.parametrize("fault", POLL_FAULTS)
def test_transient_poll_fault_never_ends_the_request(run, upstream, settings, fault):
    before_call = poll_fault(upstream, settings, fault, times=2)

    done = run(f"Poll {fault} twice", before_call=before_call)

    assert_ended(done, Status.COMPLETED)
    assert done.accepted == 1
    assert done.image_request.images.count() == 1
    assert len(done.delays(POLL)) >= 3


@pytest.mark.parametrize("fault", POLL_FAULTS)
def test_persistent_poll_fault_fails_at_the_poll_deadline(
    run, upstream, settings, fault
):
    settings.BANANAWEB_POLL_DEADLINE = SHORT_DEADLINE
    before_call = poll_fault(upstream, settings, fault, times=None)
    started = time.monotonic()

    done = run(f"Poll {fault} always", before_call=before_call)

    assert_ended(
        done, Status.FAILED, Code.DEADLINE, "stopped waiting", "no result", "gave up"
    )
    assert time.monotonic() - started >= SHORT_DEADLINE
    polls = len(done.delays(POLL))
    assert 2 <= polls <= SHORT_DEADLINE / MAX_SLEEP + 3
    assert done.accepted == 1


def test_poll_backs_off(run, upstream, settings):
    settings.BANANAWEB_POLL_FIRST_DELAY = 1
    settings.BANANAWEB_POLL_MAX_DELAY = 60
    upstream.configure(result_fault="503")

    done = run("Poll backoff", max_steps=6)

    delays = done.delays(POLL)
    assert len(delays) == 5
    assert all(later > earlier for earlier, later in pairwise(delays[1:])), delays


# --- Task outcomes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "code", "words"),
    [
        ("fail", Code.UPSTREAM_FAILED, ("could not make", "failed")),
        ("cancel", Code.UPSTREAM_CANCELLED, ("cancelled",)),
        ("timeout", Code.UPSTREAM_TIMEOUT, ("ran out of time", "timed out")),
        ("no_image", Code.NO_IMAGES, ("no image",)),
    ],
)
def test_task_that_ends_without_an_image_fails_with_its_reason(
    run, upstream, tag, code, words
):
    done = run(f"Outcome {tag} [sim:{tag}]")

    assert_ended(done, Status.FAILED, code, *words)
    assert done.accepted == 1
    assert done.stats["image_calls"] == 0


# --- Image download -------------------------------------------------------------

TRANSIENT_IMAGE_FAULTS = [
    "500",
    "502",
    "503",
    "503_retry_after",
    "504",
    "429",
    "slow",
    "cutoff",
    "reset",
]


@pytest.mark.parametrize("fault", TRANSIENT_IMAGE_FAULTS)
def test_transient_image_fault_is_retried(run, upstream, fault):
    upstream.configure(image_fault=fault, fault_count=1)

    done = run(f"Image {fault} once")

    assert_ended(done, Status.COMPLETED)
    assert done.stats["image_calls"] == 2
    assert done.image_request.images.count() == 1


@pytest.mark.parametrize("fault", ["503", "500", "reset"])
def test_persistent_image_fault_fails_after_the_attempts(run, upstream, fault):
    upstream.configure(image_fault=fault)

    done = run(f"Image {fault} always")

    assert_ended(
        done, Status.FAILED, Code.IMAGE_FETCH, "could not be saved", "couldn't"
    )
    assert done.stats["image_calls"] == 5
    assert not done.image_request.images.exists()


@pytest.mark.parametrize(
    ("fault", "words"),
    [("oversized", ("larger than 10 mb",)), ("not_image", ("isn't an image",))],
)
def test_image_that_will_never_do_fails_at_once(run, upstream, fault, words):
    upstream.configure(image_fault=fault)

    done = run(f"Image {fault}")

    assert_ended(done, Status.FAILED, Code.IMAGE_FETCH, *words)
    assert done.stats["image_calls"] == 1


def test_image_download_backs_off(run, upstream):
    upstream.configure(image_fault="503")

    done = run("Image backoff")

    delays = done.delays(FETCH)
    assert len(delays) == 5
    assert all(later > earlier for earlier, later in pairwise(delays)), delays
