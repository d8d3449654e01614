"""Media in an S3 bucket (issue 14): stored privately, served only through the
views that check who may see it, streamed (never downloaded whole first), and
copied from local files by `copy_media_to_storage`. Against moto's S3 server, a
real process on loopback (tests/s3_helpers.py), not a mock in this process."""

import io
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from storages.backends.s3 import S3File

from bananaweb import downloads, fetching, public_links, services
from bananaweb.models import ImageRequest, Upload
from bananaweb.tasks import image_request_fetch_images_task
from bananaweb.team import services as team_services
from tests.factories import ImageRequestFactory, make_image, png_bytes
from tests.gateway_helpers import bearer, issue_token
from tests.s3_helpers import (
    Bucket,
    create_bucket,
    moto_s3,  # noqa: F401 (a fixture)
    s3_env,
    storage_settings,
)
from tests.stack_helpers import manage, stack_env

Status = ImageRequest.Status
PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clear_tasks")]


@pytest.fixture
def bucket(moto_s3, settings) -> Iterator[Bucket]:  # noqa: F811
    """A fresh bucket as the media storage. Reading a whole object into memory
    (django-storages' S3File) fails the test: every read must stream."""
    bucket = Bucket(moto_s3.endpoint_url, create_bucket(moto_s3.endpoint_url))
    settings.STORAGES = settings.STORAGES | {
        "default": storage_settings(bucket.endpoint_url, bucket.name)
    }
    with mock.patch.object(S3File, "file", property(downloaded_whole)):
        yield bucket


def downloaded_whole(s3_file: S3File):
    raise AssertionError(f"{s3_file.name} was downloaded whole instead of streamed")


def assert_private(bucket: Bucket, key: str) -> None:
    grants = bucket.client.get_object_acl(Bucket=bucket.name, Key=key)["Grants"]
    assert not [g for g in grants if g["Grantee"].get("URI") in PUBLIC_GROUPS]
    # moto refuses an unsigned GET of a private object, as S3 does.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{bucket.endpoint_url}/{bucket.name}/{key}", timeout=5)
    assert refused.value.code == 403


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- storing --------------------------------------------------------------------------


def test_a_fetched_image_and_its_thumbnail_are_private_objects_in_the_bucket(
    bucket,
    user,
    upstream_token,
):
    image_url = "https://cdn.upstream.test/out/1.png"
    image_request = ImageRequestFactory(
        user=user,
        upstream_token=upstream_token,
        status=Status.IN_PROGRESS,
        upstream_task_id="up-1",
        upstream_status="completed",
        submitted_at=timezone.now(),
        result={"data": [{"image": {"url": image_url}}]},
    )
    fetched = fetching.Fetched(
        content=png_bytes((80, 40)), content_type="image/png", url=image_url
    )
    with mock.patch.object(fetching, "fetch", return_value=fetched):
        image_request_fetch_images_task.call(image_request.pk)

    image_request.refresh_from_db()
    assert image_request.status == Status.COMPLETED
    image = image_request.images.get()
    prefix = f"images/{user.pk}/{image_request.pk}/"
    assert bucket.listing() == sorted([image.file.name, image.thumbnail.name])
    assert image.file.name.startswith(prefix)
    assert bucket.read(image.file.name) == png_bytes((80, 40))
    head = bucket.client.head_object(Bucket=bucket.name, Key=image.file.name)
    assert head["ContentType"] == "image/png"
    assert_private(bucket, image.file.name)
    assert_private(bucket, image.thumbnail.name)


def test_a_name_in_use_is_never_overwritten(bucket, user):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    first = make_image(image_request, content=b"first")
    second = make_image(image_request, content=b"second")
    assert first.file.name != second.file.name
    assert bucket.read(first.file.name) == b"first"


# --- serving: through the permission check, streamed ----------------------------------


def test_an_image_and_its_thumbnail_are_streamed_to_who_may_see_them(
    bucket, user, other_user, client_logged_in
):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    image = make_image(image_request)
    for variant in ("full", "thumbnail"):
        url = reverse("image-file", args=[image_request.pk, image.pk, variant])
        response = client_logged_in.get(url)
        assert response.status_code == 200
        assert body(response) == png_bytes()
        assert response["Content-Length"] == str(len(png_bytes()))
        assert response["Cache-Control"].startswith("private")
        # Never a redirect to the bucket: the page's CSP allows images from 'self'.
        assert signed_in(other_user).get(url).status_code == 404

    download = client_logged_in.get(
        reverse("request-download", args=[image_request.pk])
    )
    assert download["Content-Disposition"].startswith("attachment;")
    assert body(download) == png_bytes()


def test_an_upload_is_a_private_object_served_to_its_owner_and_by_signed_link(
    bucket,
    user,
    other_user,
    client_logged_in,
    client,
):
    picture = SimpleUploadedFile("cat.png", png_bytes((40, 30)), "image/png")
    services.image_request_create(
        user=user, data={"action": "edit", "prompt": "Blue"}, uploads=[picture]
    )
    upload = Upload.objects.get()
    assert upload.file.name in bucket.listing()
    assert_private(bucket, upload.file.name)

    url = reverse("upload-file", args=[upload.pk])
    assert body(client_logged_in.get(url)) == png_bytes((40, 30))
    assert signed_in(other_user).get(url).status_code == 404

    # The upstream fetches it by a signed link, without signing in.
    link = public_links.public_url(public_links.UPLOAD, upload.pk)
    served = client.get(link.removeprefix("http://testserver"))
    assert served.status_code == 200
    assert body(served) == png_bytes((40, 30))


def test_a_signed_link_to_a_result_streams_it_from_the_bucket(bucket, user, client):
    image = make_image(ImageRequestFactory(user=user, status=Status.COMPLETED))
    link = public_links.public_url(public_links.IMAGE, image.pk)
    served = client.get(link.removeprefix("http://testserver"))
    assert served.status_code == 200
    assert body(served) == png_bytes()
    assert client.get(link.removeprefix("http://testserver") + "x").status_code == 404


def test_a_zip_is_streamed_from_the_bucket_chunk_by_chunk(
    bucket, user, client_logged_in
):
    contents = [os.urandom(3 * downloads.CHUNK_SIZE + 100) for _ in range(3)]
    images = [
        make_image(ImageRequestFactory(user=user, prompt=f"big {n}"), content=content)
        for n, content in enumerate(contents)
    ]
    chunks = list(downloads.zip_stream([(f"{i.pk}.png", i.file) for i in images]))
    assert max(len(chunk) for chunk in chunks) < 2 * downloads.CHUNK_SIZE

    response = client_logged_in.get(
        reverse("selection-download"), {"ids": [i.image_request_id for i in images]}
    )
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert archive.testzip() is None
    assert sorted(archive.read(name) for name in archive.namelist()) == sorted(contents)


def test_deleting_a_request_deletes_its_objects(bucket, user):
    image_request = ImageRequestFactory(user=user, status=Status.COMPLETED)
    make_image(image_request)
    assert bucket.listing()
    services.image_requests_delete(user=user, ids=[image_request.pk])
    assert bucket.listing() == []


# --- copying local media into the bucket ----------------------------------------------


def copy(source, **options) -> str:
    output = io.StringIO()
    call_command("copy_media_to_storage", source=source, stdout=output, **options)
    return output.getvalue()


def test_copy_media_copies_once_keeps_the_names_and_never_deletes(
    bucket,
    tmp_path,
):
    files = {
        "images/1/2/image-0.png": png_bytes(),
        "images/1/2/thumb-0.webp": b"thumbnail",
        "uploads/1/cat.png": png_bytes((40, 30)),
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    total = sum(len(content) for content in files.values())

    assert copy(tmp_path, dry_run=True).startswith(
        f"Would copy 3 files ({total} bytes)"
    )
    assert bucket.listing() == []

    assert f"Copied 3 files ({total} bytes) from {tmp_path}; 0 already" in copy(
        tmp_path
    )
    assert bucket.listing() == sorted(files)
    for name, content in files.items():
        assert bucket.read(name) == content
        assert (tmp_path / name).read_bytes() == content
    assert_private(bucket, "uploads/1/cat.png")

    assert "Copied 0 files (0 bytes)" in copy(tmp_path)
    assert "; 3 already stored; 0 stored with another size." in copy(tmp_path)


def test_copy_media_leaves_an_object_of_another_size_and_says_so(
    bucket,
    tmp_path,
):
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.png").write_bytes(b"local")
    (tmp_path / "uploads" / "b.png").write_bytes(b"bee")
    bucket.client.put_object(
        Bucket=bucket.name, Key="uploads/a.png", Body=b"stored, longer"
    )
    with pytest.raises(CommandError, match="uploads/a.png"):
        copy(tmp_path)
    assert bucket.read("uploads/a.png") == b"stored, longer"
    assert bucket.read("uploads/b.png") == b"bee"


def test_copy_media_refuses_to_copy_the_local_folder_onto_itself(settings):
    with pytest.raises(CommandError, match="AWS_STORAGE_BUCKET_NAME"):
        copy(settings.MEDIA_ROOT)


# --- the environment selects the storage ----------------------------------------------

PROBE = (
    "from django.core.files.base import ContentFile; "
    "from django.core.files.storage import default_storage as s; "
    "print(s.__class__.__name__, s.save('probe/x.txt', ContentFile(b'probe')))"
)


def test_the_bucket_variables_put_media_in_the_bucket_under_the_prefix(
    moto_s3,  # noqa: F811
    tmp_path,
):
    bucket = Bucket(moto_s3.endpoint_url, create_bucket(moto_s3.endpoint_url))
    env = stack_env(tmp_path) | s3_env(
        bucket.endpoint_url, bucket.name, location="media"
    )
    result = manage(["shell", "-c", PROBE], env)
    assert "S3Storage probe/x.txt" in result.stdout
    assert bucket.listing() == ["media/probe/x.txt"]
    assert_private(bucket, "media/probe/x.txt")
    assert not (tmp_path / "media").exists()


def test_without_a_bucket_media_stays_in_media_root(tmp_path):
    result = manage(["shell", "-c", PROBE], stack_env(tmp_path))
    assert "FileSystemStorage probe/x.txt" in result.stdout
    assert (tmp_path / "media" / "probe" / "x.txt").read_bytes() == b"probe"


def test_the_api_and_a_share_link_stream_their_images_from_the_bucket(
    bucket, user, other_user, client
):
    image = make_image(ImageRequestFactory(user=user, status=Status.COMPLETED))
    url = f"/api/images/{image.pk}/"
    served = client.get(url, headers=bearer(issue_token(user)))
    assert served.status_code == 200 and body(served) == png_bytes()
    assert client.get(url, headers=bearer(issue_token(other_user))).status_code == 404

    _, token = team_services.share_link_create(user=user, image=image)
    for name in ("share-image", "share-thumbnail"):
        shared = client.get(reverse(name, args=[token, 1]))
        assert shared.status_code == 200 and body(shared) == png_bytes()
