"""The bundled Mountsea simulator, spoken to over real HTTP."""

import base64
import io
import itertools
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from bananaweb import options
from bananaweb.simulator import SimulatorHandle, knobs, start_simulator

TOKEN = "sim-test-token"
GENERATE = "/gemini/image/generate"
RESULT = "/gemini/task/result"
UNREACHABLE = "http://127.0.0.1:9/x.png"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    handle = start_simulator(delay=0.3)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def fresh_simulator(simulator: SimulatorHandle) -> None:
    simulator.reset()


def body(**overrides: object) -> dict:
    return {
        "prompt": "A fluffy orange cat running through a sunny meadow",
        "action": options.Action.GENERATE,
        "num_images": 1,
        **overrides,
    }


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def submit(simulator, token: str = TOKEN, **overrides: object) -> requests.Response:
    return requests.post(
        simulator.url + GENERATE, json=body(**overrides), headers=auth(token), timeout=5
    )


def submitted(simulator, **overrides: object) -> str:
    response = submit(simulator, **overrides)
    assert response.status_code == 201, response.text
    return response.json()["taskId"]


def result(simulator, task_id: str, token: str = TOKEN) -> requests.Response:
    return requests.get(
        simulator.url + RESULT,
        params={"taskId": task_id},
        headers=auth(token),
        timeout=5,
    )


def statuses_until_done(simulator, task_id: str, timeout: float = 5) -> list[dict]:
    """Every TaskResult seen while polling quickly, up to the first terminal one."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(result(simulator, task_id).json())
        if seen[-1]["status"] in options.TERMINAL_STATUSES:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"task still {seen[-1]['status']} after {timeout} s")


def finished(simulator, task_id: str) -> dict:
    return statuses_until_done(simulator, task_id)[-1]


def png_at(url: str) -> tuple[Image.Image, int]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    return image, len(response.content)


# Submitting


def test_valid_request_is_accepted_with_a_task_id(simulator):
    response = submit(simulator)

    assert response.status_code == 201
    assert uuid.UUID(response.json()["taskId"]).version == 4
    assert simulator.requests[-1] == ("POST", GENERATE, body())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"action": options.Action.EDIT}, "image_urls"),
        (
            {"model": options.Model.NANO_BANANA_FAST, "resolution": "1K"},
            "resolution",
        ),
        (
            {"model": options.Model.NANO_BANANA_PRO, "aspect_ratio": "1:4"},
            "aspect_ratio",
        ),
        ({"num_images": 2}, "num_images"),
        ({"image_urls": ["ftp://example.com/cat.png"]}, "image_urls"),
        ({"prompt": "   "}, "prompt"),
    ],
)
def test_body_breaking_a_rule_is_400_in_option_errors_words(
    simulator, overrides, field
):
    response = submit(simulator, **overrides)

    assert response.status_code == 400
    errors = options.option_errors(**body(**overrides))
    assert field in errors
    assert response.json() == {
        "statusCode": 400,
        "message": next(iter(errors.values())),
        "errors": errors,
        "error": "Bad Request",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"model": "nano-banana-9", "aspect_ratio": "1:4", "resolution": "2K"},
        {"model": ["nano-banana-pro"]},
    ],
)
def test_unknown_model_is_400_about_the_model(simulator, overrides):
    response = submit(simulator, **overrides)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"model"}


@pytest.mark.parametrize("data", [b"{not json", b"", b'["a list"]'])
def test_body_that_is_not_a_json_object_is_400(simulator, data):
    response = requests.post(
        simulator.url + GENERATE, data=data, headers=auth(), timeout=5
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "body": "The request body must be a JSON object."
    }


# Tokens


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic c2ltLXg6eA==", "Bearer", "Bearer ", "Bearer not-a-sim-token"],
)
def test_missing_or_malformed_token_is_401_on_both_endpoints(simulator, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    unauthorized = {"statusCode": 401, "message": "Unauthorized"}

    posted = requests.post(
        simulator.url + GENERATE, json=body(), headers=headers, timeout=5
    )
    polled = requests.get(
        simulator.url + RESULT, params={"taskId": "x"}, headers=headers, timeout=5
    )

    assert (posted.status_code, posted.json()) == (401, unauthorized)
    assert (polled.status_code, polled.json()) == (401, unauthorized)


def test_nocredit_token_cannot_submit_but_can_poll(simulator):
    task_id = submitted(simulator)

    response = submit(simulator, token="sim-nocredit")

    assert response.status_code == 402
    assert response.json() == {"statusCode": 402, "message": "Insufficient credits"}
    assert result(simulator, task_id, token="sim-nocredit").status_code == 200


def test_revoked_token_is_403(simulator):
    forbidden = {"statusCode": 403, "message": "Forbidden: token revoked"}

    response = submit(simulator, token="sim-revoked-1")

    assert (response.status_code, response.json()) == (403, forbidden)
    assert result(simulator, "x", token="sim-revoked-1").status_code == 403


def test_configured_tokens_replace_the_sim_prefix():
    handle = start_simulator(tokens=["alpha", "beta"])
    try:
        assert submit(handle, token="beta").status_code == 201
        assert submit(handle, token="sim-anything").status_code == 401
    finally:
        handle.stop()


def test_token_is_never_echoed_or_recorded(simulator):
    token = "sim-secret-value"
    answers = [
        submit(simulator, token=token).text,
        submit(simulator, token=token, num_images=2).text,
        result(simulator, "unknown", token=token).text,
    ]

    assert not any(token in answer for answer in answers)
    assert token not in repr(simulator.requests)


# Results


def test_result_needs_a_task_id_and_a_known_one(simulator):
    missing = requests.get(simulator.url + RESULT, headers=auth(), timeout=5)
    unknown = result(simulator, str(uuid.uuid4()))

    assert missing.status_code == 400
    assert missing.json()["message"] == "taskId is required"
    assert unknown.status_code == 404
    assert unknown.json() == {"statusCode": 404, "message": "Task not found"}


def test_task_goes_pending_then_processing_then_completed(simulator):
    task_id = submitted(simulator, model=options.Model.NANO_BANANA_PRO)

    seen = statuses_until_done(simulator, task_id)

    order = [status for status, _ in itertools.groupby(s["status"] for s in seen)]
    assert order == ["pending", "processing", "completed"]
    assert all(s["result"] is None and "finishedAt" not in s for s in seen[:-1])
    done = seen[-1]
    assert done["taskId"] == task_id
    assert done["createdAt"] < done["finishedAt"]
    assert done["traceId"]
    assert done["result"] == {
        "images": [
            {
                "url": f"{simulator.url}/images/{task_id}.png",
                "width": 1024,
                "height": 1024,
            }
        ],
        "model": options.Model.NANO_BANANA_PRO,
        "prompt": body()["prompt"],
    }


def test_image_url_uses_the_host_the_client_used(simulator):
    simulator.configure(delay=0)
    task_id = submitted(simulator)
    port = simulator.url.rsplit(":", 1)[1]

    response = requests.get(
        f"http://localhost:{port}{RESULT}",
        params={"taskId": task_id},
        headers=auth(),
        timeout=5,
    )

    image_url = response.json()["result"]["images"][0]["url"]
    assert image_url == f"http://localhost:{port}/images/{task_id}.png"


@pytest.mark.parametrize(
    ("model", "aspect_ratio", "resolution", "long_side"),
    [
        (options.Model.NANO_BANANA_FAST, None, None, 1024),
        (options.Model.NANO_BANANA_PRO, options.AspectRatio.R16_9, "1K", 1024),
        (options.Model.NANO_BANANA_2, options.AspectRatio.R1_8, "2K", 2048),
        (options.Model.NANO_BANANA_PRO, options.AspectRatio.R3_4, "4K", 4096),
    ],
)
def test_image_is_a_png_at_the_ratio_and_resolution(
    simulator, model, aspect_ratio, resolution, long_side
):
    simulator.configure(delay=0)
    overrides = {"model": model, "aspect_ratio": aspect_ratio, "resolution": resolution}
    task_id = submitted(simulator, **{k: v for k, v in overrides.items() if v})
    entry = finished(simulator, task_id)["result"]["images"][0]

    image, size = png_at(entry["url"])

    assert image.size == (entry["width"], entry["height"])
    assert max(image.size) == long_side
    ratio = options.ratio_value(aspect_ratio or options.AspectRatio.R1_1)
    assert image.width / image.height == pytest.approx(ratio, rel=0.01)
    assert size < options.MAX_IMAGE_BYTES


def test_image_is_404_until_the_task_completes(simulator):
    task_id = submitted(simulator)
    image_url = f"{simulator.url}/images/{task_id}.png"

    early = requests.get(image_url, timeout=5)
    finished(simulator, task_id)
    late = requests.get(image_url, timeout=5)

    assert early.status_code == 404
    assert late.status_code == 200
    assert (
        requests.get(f"{simulator.url}/images/nope.png", timeout=5).status_code == 404
    )


# Edits


def test_edit_of_its_own_image_completes_without_fetching_it_over_http(simulator):
    simulator.configure(delay=0)
    source = finished(simulator, submitted(simulator))["result"]["images"][0]["url"]

    task_id = submitted(
        simulator,
        action=options.Action.EDIT,
        image_urls=[source],
        model=options.Model.NANO_BANANA_2,
        aspect_ratio=options.AspectRatio.R4_1,
    )
    done = finished(simulator, task_id)

    assert done["status"] == "completed"
    image, _ = png_at(done["result"]["images"][0]["url"])
    assert image.size == (1024, 256)
    assert not any(r.path.startswith("/images/") for r in simulator.requests[:-1])


@pytest.mark.parametrize(
    ("image_urls", "reason"),
    [
        ([UNREACHABLE], "image_urls[0]: could not connect"),
        (["{own}", "{sim}/nothing.png"], "image_urls[1]: the server answered 404"),
        (["{sim}/_simulator/config"], "image_urls[0]: not an image Pillow can read"),
    ],
)
def test_edit_fails_when_a_source_cannot_be_used(simulator, image_urls, reason):
    simulator.configure(delay=0)
    own = finished(simulator, submitted(simulator))["result"]["images"][0]["url"]
    urls = [u.format(own=own, sim=simulator.url) for u in image_urls]

    done = finished(
        simulator, submitted(simulator, action=options.Action.EDIT, image_urls=urls)
    )

    assert done["status"] == "failed"
    assert done["errorMessage"].startswith(f"Could not download {reason}")
    assert done["errorCode"] == 400
    assert done["result"] is None


# Faults


@pytest.mark.parametrize("fault", ["500", "503", "429"])
def test_submit_fault_set_through_the_control_endpoint(simulator, fault):
    config = requests.post(
        simulator.url + "/_simulator/config", json={"submit_fault": fault}, timeout=5
    )
    response = submit(simulator)

    assert config.json()["submit_fault"] == fault
    assert response.status_code == int(fault)
    assert response.json()["statusCode"] == int(fault)
    if fault == "429":
        assert response.headers["Retry-After"] == "2"


def test_submit_fault_malformed_and_no_task_id(simulator):
    simulator.configure(submit_fault="malformed")
    malformed = submit(simulator)
    simulator.configure(submit_fault="no_task_id")
    empty = submit(simulator)

    assert malformed.status_code == 201
    with pytest.raises(requests.JSONDecodeError):
        malformed.json()
    assert (empty.status_code, empty.json()) == (201, {})


def test_slow_submit_outlasts_the_client_read_timeout(simulator):
    simulator.configure(submit_fault="slow", slow_seconds=0.4)

    with pytest.raises(requests.ReadTimeout):
        requests.post(
            simulator.url + GENERATE, json=body(), headers=auth(), timeout=(2, 0.1)
        )

    assert simulator.requests[-1] == ("POST", GENERATE, body())


@pytest.mark.parametrize(
    ("fault", "status"),
    [("500", 500), ("503", 503), ("429", 429), ("malformed", 200), ("no_task_id", 200)],
)
def test_result_fault(simulator, fault, status):
    task_id = submitted(simulator)
    simulator.configure(result_fault=fault, retry_after=7)

    response = result(simulator, task_id)

    assert response.status_code == status
    if fault == "malformed":
        assert response.text.startswith("<html>")
    elif fault == "no_task_id":
        assert response.json() == {}
    elif fault == "429":
        assert response.headers["Retry-After"] == "7"


def test_slow_result_outlasts_the_client_timeout(simulator):
    task_id = submitted(simulator)
    simulator.configure(result_fault="slow", slow_seconds=0.4)

    with pytest.raises(requests.ReadTimeout):
        requests.get(
            simulator.url + RESULT,
            params={"taskId": task_id},
            headers=auth(),
            timeout=(2, 0.1),
        )


@pytest.mark.parametrize(
    ("outcome", "status", "message", "code"),
    [
        (
            "failed",
            "failed",
            "The model refused to draw this prompt (simulated failure)",
            500,
        ),
        ("cancelled", "cancelled", "The task was cancelled (simulated)", None),
        ("timeout", "timeout", "The task timed out (simulated)", 504),
    ],
)
def test_task_outcome(simulator, outcome, status, message, code):
    simulator.configure(task_outcome=outcome)

    done = finished(simulator, submitted(simulator))

    assert done["status"] == status
    assert done["errorMessage"] == message
    assert done.get("errorCode") == code
    assert done["result"] is None
    assert "finishedAt" in done


def test_unknown_status_is_reported_before_completing(simulator):
    simulator.configure(task_outcome="unknown_status")

    seen = [s["status"] for s in statuses_until_done(simulator, submitted(simulator))]

    assert "queued-for-gpu" in seen
    assert "queued-for-gpu" not in options.UpstreamStatus.values
    assert seen[-1] == "completed"


def image_url_in(shape: str, answer: dict) -> str:
    match shape:
        case "images_list":
            return answer["images"][0]["url"]
        case "nested":
            return answer["data"]["outputs"][0]["image"]["uri"]
        case "url_string":
            return answer["imageUrl"]
    raise AssertionError(shape)


@pytest.mark.parametrize("shape", knobs.SHAPES)
def test_result_shape(simulator, shape):
    simulator.configure(result_shape=shape, delay=0)
    task_id = submitted(simulator)

    answer = finished(simulator, task_id)["result"]

    if shape == "base64":
        (entry,) = answer["images"]
        assert entry["mime_type"] == "image/png"
        png = base64.b64decode(entry["b64_json"])
        assert Image.open(io.BytesIO(png)).size == (1024, 1024)
    else:
        image, _ = png_at(image_url_in(shape, answer))
        assert image_url_in(shape, answer).endswith(f"/images/{task_id}.png")
        assert image.size == (1024, 1024)


@pytest.mark.parametrize("fault", ["502", "504", "401", "403"])
def test_more_status_faults_on_submit_and_result(simulator, fault):
    task_id = submitted(simulator)
    simulator.configure(submit_fault=fault, result_fault=fault)

    posted = submit(simulator)
    polled = result(simulator, task_id)

    assert (posted.status_code, polled.status_code) == (int(fault), int(fault))
    assert posted.json()["statusCode"] == int(fault)


def test_submit_500_after_create_counts_the_task_as_accepted(simulator):
    simulator.configure(submit_fault="500_after_create")

    response = submit(simulator, prompt="Charged anyway")

    assert response.status_code == 500
    assert simulator.stats["accepted_by_prompt"] == {"Charged anyway": 1}


@pytest.mark.parametrize("knob", ["submit_fault", "result_fault"])
def test_cutoff_promises_more_body_than_it_sends(simulator, knob):
    task_id = submitted(simulator) if knob == "result_fault" else None
    simulator.configure(**{knob: "cutoff"})

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        submit(simulator) if task_id is None else result(simulator, task_id)

    assert simulator.stats["accepted"] == 1  # a cut-off submit's task exists


@pytest.mark.parametrize("knob", ["submit_fault", "result_fault", "image_fault"])
def test_reset_closes_the_connection_without_an_answer(simulator, knob):
    simulator.configure(delay=0)
    task_id = submitted(simulator)
    image_url = finished(simulator, task_id)["result"]["images"][0]["url"]
    simulator.configure(**{knob: "reset"})
    call = {
        "submit_fault": lambda: submit(simulator),
        "result_fault": lambda: result(simulator, task_id),
        "image_fault": lambda: requests.get(image_url, timeout=5),
    }[knob]

    with pytest.raises(requests.ConnectionError):
        call()

    assert simulator.stats["accepted"] == 1  # a reset submit creates no task


def completed_image_url(simulator, **overrides: object) -> str:
    simulator.configure(delay=0)
    task_id = submitted(simulator, **overrides)
    return finished(simulator, task_id)["result"]["images"][0]["url"]


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "401", "403"])
def test_image_status_fault(simulator, fault):
    url = completed_image_url(simulator)
    simulator.configure(image_fault=fault)

    response = requests.get(url, timeout=5)

    assert response.status_code == int(fault)
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("503_retry_after", 503)])
def test_image_429_and_503_say_when_to_retry(simulator, fault, status):
    url = completed_image_url(simulator)
    simulator.configure(image_fault=fault, retry_after=3)

    response = requests.get(url, timeout=5)

    assert (response.status_code, response.headers["Retry-After"]) == (status, "3")


def test_plain_503_sends_no_retry_after_and_the_other_kind_does(simulator):
    simulator.configure(submit_fault="503")
    plain = submit(simulator)
    simulator.configure(submit_fault="503_retry_after", retry_after=4)
    timed = submit(simulator)

    assert (plain.status_code, timed.status_code) == (503, 503)
    assert "Retry-After" not in plain.headers
    assert timed.headers["Retry-After"] == "4"


def test_image_oversized_is_a_png_over_ten_megabytes(simulator):
    url = completed_image_url(simulator)
    simulator.configure(image_fault="oversized")

    response = requests.get(url, timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert len(response.content) == 10 * 1024 * 1024 + 1
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_image_not_image_is_html(simulator):
    url = completed_image_url(simulator)
    simulator.configure(image_fault="not_image")

    response = requests.get(url, timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")


def test_image_cutoff_and_slow(simulator):
    url = completed_image_url(simulator)
    simulator.configure(image_fault="cutoff")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=5)

    simulator.configure(image_fault="slow", slow_seconds=0.4)
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, timeout=(2, 0.1))


def test_fault_count_lets_later_calls_through_per_knob(simulator):
    url = completed_image_url(simulator)
    task_id = url.rsplit("/", 1)[1].removesuffix(".png")
    simulator.configure(
        submit_fault="503", result_fault="500", image_fault="503", fault_count=2
    )

    submits = [submit(simulator).status_code for _ in range(3)]
    polls = [result(simulator, task_id).status_code for _ in range(3)]
    downloads = [requests.get(url, timeout=5).status_code for _ in range(3)]
    simulator.configure(submit_fault="429")
    again = [submit(simulator).status_code for _ in range(3)]

    assert submits == [503, 503, 201]
    assert polls == [500, 500, 200]
    assert downloads == [503, 503, 200]
    assert again == [429, 429, 201]  # setting the knob starts its count again


def test_fault_rate_applies_faults_at_random(simulator):
    simulator.configure(submit_fault="503", fault_rate=0.5)

    codes = {submit(simulator).status_code for _ in range(40)}
    simulator.configure(fault_rate=0)
    never = {submit(simulator).status_code for _ in range(5)}

    assert codes == {201, 503}
    assert never == {201}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"fault_count": -1}, "fault_count"),
        ({"fault_count": 1.5}, "fault_count"),
        ({"fault_rate": 2}, "fault_rate"),
        ({"fault_rate": "often"}, "fault_rate"),
        ({"image_fault": "malformed"}, "image_fault"),
        ({"result_fault": "500_after_create"}, "result_fault"),
    ],
)
def test_invalid_fault_knobs_are_refused(values, field):
    assert set(knobs.knob_errors(values)) == {field}


def test_completed_no_image_has_a_result_without_images(simulator):
    simulator.configure(delay=0)
    task_id = submitted(simulator, prompt="Nothing to see [sim:no_image]")

    done = finished(simulator, task_id)

    assert done["status"] == "completed"
    assert done["result"]["images"] == []
    image = requests.get(f"{simulator.url}/images/{task_id}.png", timeout=5)
    assert image.status_code == 404


# Stats


def test_stats_count_calls_and_accepted_tasks_by_prompt(simulator):
    simulator.configure(delay=0)
    task_id = submitted(simulator, prompt="A cat [sim:fast]")
    submitted(simulator, prompt="A cat")
    submit(simulator, prompt="A dog [sim:503]")
    image_url = finished(simulator, task_id)["result"]["images"][0]["url"]
    requests.get(image_url, timeout=5)

    stats = requests.get(simulator.url + "/_simulator/stats", timeout=5).json()

    assert stats["generate_calls"] == 3
    assert stats["generate_calls_by_prompt"] == {"A cat": 2, "A dog": 1}
    assert stats["accepted"] == 2
    assert stats["accepted_by_prompt"] == {"A cat": 2}
    assert stats["result_calls"] >= 1
    assert stats["image_calls"] == 1
    requests.post(simulator.url + "/_simulator/reset", timeout=5)
    assert simulator.stats == {
        "generate_calls": 0,
        "generate_calls_by_prompt": {},
        "accepted": 0,
        "accepted_by_prompt": {},
        "result_calls": 0,
        "image_calls": 0,
    }


# Prompt tags


@pytest.mark.parametrize(
    ("tag", "status"),
    [
        ("[sim:fail]", "failed"),
        ("[sim:cancel]", "cancelled"),
        ("[sim:timeout]", "timeout"),
    ],
)
def test_prompt_tag_sets_the_outcome(simulator, tag, status):
    simulator.configure(delay=0)
    prompt = f"A cat {tag}"

    done = finished(simulator, submitted(simulator, prompt=prompt))

    assert done["status"] == status
    assert simulator.config["task_outcome"] == "completed"


@pytest.mark.parametrize("tag", ["500", "429", "malformed"])
def test_prompt_tag_sets_the_submit_fault(simulator, tag):
    response = submit(simulator, prompt=f"A cat [sim:{tag}]")

    if tag == "malformed":
        assert response.status_code == 201
        assert response.text == "<html>oops"
    else:
        assert response.status_code == int(tag)
    assert submit(simulator).status_code == 201


@pytest.mark.parametrize(("tag", "status"), [("502", 502), ("504", 504), ("403", 403)])
def test_prompt_tag_sets_a_new_submit_fault(simulator, tag, status):
    assert submit(simulator, prompt=f"A cat [sim:{tag}]").status_code == status


def test_prompt_tags_set_faults_for_that_tasks_polls_and_image(simulator):
    simulator.configure(delay=0)
    tagged = submitted(simulator, prompt="A cat [sim:result-503] [sim:image-500]")
    plain = submitted(simulator, prompt="A cat")

    assert result(simulator, tagged).status_code == 503
    done = finished(simulator, plain)
    assert requests.get(done["result"]["images"][0]["url"], timeout=5).ok
    image_url = done["result"]["images"][0]["url"].replace(plain, tagged)
    assert requests.get(image_url, timeout=5).status_code == 500


def test_prompt_tag_slow(simulator):
    simulator.configure(slow_seconds=0.3)

    with pytest.raises(requests.ReadTimeout):
        requests.post(
            simulator.url + GENERATE,
            json=body(prompt="A cat [sim:slow]"),
            headers=auth(),
            timeout=(2, 0.1),
        )


@pytest.mark.parametrize("shape", ["nested", "base64"])
def test_prompt_tag_sets_the_result_shape(simulator, shape):
    simulator.configure(delay=0)

    answer = finished(simulator, submitted(simulator, prompt=f"[sim:{shape}] A cat"))

    assert ("data" in answer["result"]) == (shape == "nested")
    assert ("b64_json" in str(answer["result"])) == (shape == "base64")
    assert answer["result"]["prompt"] == f"[sim:{shape}] A cat"


def test_prompt_tag_fast_completes_in_half_a_second(simulator):
    simulator.configure(delay=30)
    started = time.monotonic()

    done = finished(simulator, submitted(simulator, prompt="A cat [sim:fast]"))

    assert done["status"] == "completed"
    assert time.monotonic() - started < 2


def test_prompt_tags_are_stripped_from_the_drawn_text():
    text, overrides = knobs.prompt_tags("A cat [sim:fail] in a [sim:nested]  hat")

    assert text == "A cat in a hat"
    assert overrides == {"task_outcome": "failed", "result_shape": "nested"}


# Control endpoints


def test_control_endpoint_shows_merges_and_rejects_knobs(simulator):
    url = simulator.url + "/_simulator/config"

    merged = requests.post(url, json={"retry_after": 5}, timeout=5)
    bad = requests.post(url, json={"task_outcome": "exploded", "volume": 11}, timeout=5)
    shown = requests.get(url, timeout=5).json()

    assert merged.json()["retry_after"] == 5
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"task_outcome", "volume"}
    assert shown == {**knobs.DEFAULTS, "delay": 0.3, "retry_after": 5}


def test_reset_restores_start_knobs_and_forgets_tasks(simulator):
    task_id = submitted(simulator)
    simulator.configure(delay=9, submit_fault="503")

    reset = requests.post(simulator.url + "/_simulator/reset", timeout=5)

    assert reset.json() == {**knobs.DEFAULTS, "delay": 0.3}
    assert result(simulator, task_id).status_code == 404
    assert simulator.requests == [("GET", f"{RESULT}?taskId={task_id}", None)]


# Command line


def run_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "bananaweb.simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return process


def stop_cli(process: subprocess.Popen) -> tuple[str, str]:
    process.terminate()
    return process.communicate(timeout=5)


def test_command_line_prints_its_url_then_logs_requests_tersely():
    process = run_cli("--delay", "0")
    try:
        line = process.stdout.readline()
        url = re.fullmatch(r"Simulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert url, line
        response = requests.post(
            url[1] + GENERATE, json=body(), headers=auth(), timeout=5
        )
        assert response.status_code == 201
    finally:
        out, err = stop_cli(process)

    assert out == ""
    assert f"POST {GENERATE} 201" in err
    assert TOKEN not in err


def test_command_line_reads_fault_knobs():
    from_text = knobs.from_text

    assert from_text("fault_count", "2") == 2
    assert from_text("fault_rate", "0.25") == 0.25
    assert from_text("fault_count", "none") is None
    assert from_text("image_fault", "oversized") == "oversized"


def test_command_line_reads_tokens_from_the_environment_and_can_be_quiet():
    process = run_cli("--quiet", env={"MOUNTSEA_SIMULATOR_TOKENS": "alpha,beta"})
    try:
        url = process.stdout.readline().split(" on ")[1].strip()
        accepted = requests.post(
            url + GENERATE, json=body(), headers=auth("beta"), timeout=5
        )
        refused = requests.post(url + GENERATE, json=body(), headers=auth(), timeout=5)
    finally:
        _, err = stop_cli(process)

    assert (accepted.status_code, refused.status_code) == (201, 401)
    assert err == ""
