"""Pictures people bring and our own copies as references (issue 11): uploads,
signed links for the upstream, run again, variations, every model, star, delete."""

import json
import time
from unittest import mock

import pytest
import responses
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.tasks import default_task_backend
from django.urls import reverse

from bananaweb import options, public_links, services
from bananaweb.models import ImageRequest, Reference, Upload
from bananaweb.tasks import image_request_submit_task
from tests.factories import ImageRequestFactory, make_image, png_bytes

Status = ImageRequest.Status
GENERATE = "https://upstream.test/gemini/image/generate"
EDIT = {"action": "edit", "prompt": "Make it blue"}

pytestmark = pytest.mark.usefixtures("clear_tasks")


def picture(name: str = "cat.png", size=(40, 30)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(size), content_type="image/png")


def submitted(capture, image_request: ImageRequest) -> dict:
    """The JSON the upstream received for this request."""
    with responses.RequestsMock() as upstream:
        upstream.post(GENERATE, json={"taskId": "up-1"})
        with capture(execute=True):
            image_request_submit_task.call(image_request.pk)
        return json.loads(upstream.calls[0].request.body)


# --- uploads ------------------------------------------------------------------------


def test_an_upload_is_verified_stored_and_sent_by_a_signed_link(
    user, upstream_token, client, django_capture_on_commit_callbacks
):
    image_request = services.image_request_create(
        user=user, data=EDIT, uploads=[picture()]
    )
    upload = Upload.objects.get()
    assert (upload.user, upload.width, upload.height) == (user, 40, 30)
    assert image_request.references.get().upload == upload

    body = submitted(django_capture_on_commit_callbacks, image_request)
    [url] = body["image_urls"]
    assert url.startswith("http://testserver/files/")
    served = client.get(url.removeprefix("http://testserver"))  # no sign-in
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == png_bytes((40, 30))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not a picture", "can't be used"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "can't be used"),
    ],
)
def test_a_bad_upload_is_refused_and_nothing_is_saved(user, content, words):
    upload = SimpleUploadedFile("x.png", content, content_type="image/png")
    with pytest.raises(ValidationError) as refused:
        services.image_request_create(user=user, data=EDIT, uploads=[upload])
    assert words in str(refused.value)
    assert not ImageRequest.objects.exists() and not Upload.objects.exists()


def test_an_upload_over_10_mb_is_refused(user):
    big = SimpleUploadedFile("big.png", b"\x00" * (options.MAX_IMAGE_BYTES + 1))
    with pytest.raises(ValidationError, match="larger than"):
        services.image_request_create(user=user, data=EDIT, uploads=[big])


def test_pictures_and_urls_share_one_cap(user, settings):
    settings.BANANAWEB_MAX_IMAGE_URLS = 2
    data = EDIT | {"image_urls": ["https://example.com/a.png"]}
    with pytest.raises(ValidationError, match="pictures and image URLs together"):
        services.image_request_create(
            user=user, data=data, uploads=[picture(), picture()]
        )


def test_edit_with_only_a_picture_is_enough(user):
    image_request = services.image_request_create(
        user=user, data=EDIT, uploads=[picture()]
    )
    assert image_request.status == Status.QUEUED


# --- the signed links ---------------------------------------------------------------


def test_a_signed_link_expires_and_cant_be_tampered_with(user, client, settings):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    other = make_image(ImageRequestFactory(user=user, status=Status.COMPLETED))
    url = public_links.public_url(public_links.IMAGE, image.pk)
    path = url.removeprefix("http://testserver")
    assert client.get(path).status_code == 200

    token = path.split("/")[2]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(reverse("public-file", args=[tampered])).status_code == 404
    # A link for another file can't be made without the key.
    forged = signing.dumps({"k": "i", "id": other.pk}, salt="not-the-salt")
    assert client.get(reverse("public-file", args=[forged])).status_code == 404
    later = time.time() + settings.BANANAWEB_PUBLIC_LINK_MAX_AGE + 2
    with mock.patch("django.core.signing.time.time", return_value=later):
        assert client.get(path).status_code == 404


def test_a_signed_link_serves_nothing_once_the_request_is_deleted(user, client):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    path = public_links.public_url(public_links.IMAGE, image.pk).removeprefix(
        "http://testserver"
    )
    services.image_requests_delete(user=user, ids=[image_request.pk])
    assert client.get(path).status_code == 404


# --- our own results as references ------------------------------------------------------


def test_a_result_used_as_reference_is_sent_as_our_copy_never_its_upstream_url(
    user, upstream_token, django_capture_on_commit_callbacks
):
    parent = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(parent, source_url="https://cdn.upstream.test/old.png")
    child = services.image_request_create(user=user, data=EDIT, references=[image])
    body = submitted(django_capture_on_commit_callbacks, child)
    assert "cdn.upstream.test" not in json.dumps(body)
    assert body["image_urls"][0].startswith("http://testserver/files/")
    assert Reference.objects.get(image_request=child).image == image
    assert list(
        ImageRequest.objects.filter(references__image__image_request=parent)
    ) == [child]


def test_another_users_image_is_no_reference(user, other_user):
    theirs = make_image(ImageRequestFactory(user=other_user, status=Status.COMPLETED))
    with pytest.raises(ValidationError, match="not one of yours"):
        services.image_request_create(user=user, data=EDIT, references=[theirs])


def test_run_again_copies_the_parameters_and_the_references(user):
    parent = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(parent)
    first = services.image_request_create(
        user=user,
        data=EDIT | {"model": "nano-banana-pro", "resolution": "2K"},
        references=[image],
    )
    again = services.image_request_run_again(image_request=first)
    assert again.pk != first.pk
    assert (again.prompt, again.model, again.resolution) == (
        first.prompt,
        "nano-banana-pro",
        "2K",
    )
    assert again.references.get().image == image


# --- groups -------------------------------------------------------------------------------


def test_variations_are_n_requests_in_one_group(user, settings):
    settings.BANANAWEB_MAX_VARIATIONS = 4
    group = services.image_request_variations(
        user=user, data={"action": "generate", "prompt": "A pear"}, count=3
    )
    assert len(group) == 3 and len({r.group for r in group}) == 1
    assert all(r.group_kind == "variations" for r in group)
    submits = [
        r
        for r in default_task_backend.results
        if r.task.name == "image_request_submit_task"
    ]
    assert len(submits) == 0 or len(submits) == 3  # on commit
    assert services.quota_usage(user=user).used == 3
    with pytest.raises(ValidationError):
        services.image_request_variations(
            user=user, data={"action": "generate", "prompt": "A pear"}, count=5
        )


def test_every_model_sends_the_prompt_to_each_within_what_it_offers(user):
    data = {
        "action": "generate",
        "prompt": "A pear",
        "aspect_ratio": "1:8",
        "resolution": "4K",
    }
    group = services.image_request_every_model(user=user, data=data)
    by_model = {r.model: r for r in group}
    assert set(by_model) == set(options.MODELS)
    assert by_model["nano-banana-2"].aspect_ratio == "1:8"
    assert by_model["nano-banana-pro"].aspect_ratio == ""  # Pro has no 1:8
    assert by_model["nano-banana-fast"].resolution == ""


def test_a_group_needs_quota_for_all_of_it(user, settings):
    settings.BANANAWEB_DEFAULT_DAILY_QUOTA = 2
    with pytest.raises(services.QuotaExceeded):
        services.image_request_variations(
            user=user, data={"action": "generate", "prompt": "A pear"}, count=3
        )
    assert not ImageRequest.objects.exists()


# --- star and delete -------------------------------------------------------------------------


def test_star(user):
    image_request = ImageRequestFactory(user=user)
    services.image_request_star(image_request=image_request, starred=True)
    image_request.refresh_from_db()
    assert image_request.starred


def test_delete_removes_the_files_and_hides_it_but_keeps_the_record(user, other_user):
    done = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(done)
    storage, name = image.file.storage, image.file.name
    in_flight = ImageRequestFactory(user=user, status=Status.IN_PROGRESS)
    theirs = ImageRequestFactory(user=other_user, status=Status.COMPLETED)

    deleted = services.image_requests_delete(
        user=user, ids=[done.pk, in_flight.pk, theirs.pk]
    )

    assert deleted == 1
    assert not storage.exists(name)
    assert not ImageRequest.objects.for_user(user).filter(pk=done.pk).exists()
    assert ImageRequest.objects.filter(pk=done.pk, deleted_at__isnull=False).exists()
    assert ImageRequest.objects.for_user(user).filter(pk=in_flight.pk).exists()
    assert ImageRequest.objects.for_user(other_user).filter(pk=theirs.pk).exists()
    assert services.quota_usage(user=user).used == 2  # deleting gives no quota back
