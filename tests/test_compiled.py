"""SQL built once per process with stand-ins (bananaweb/compiled.py) and the rows
read through it (bananaweb/lookups.py, bananaweb/gateway/lookups.py): the very
rows the ORM gives, whoever asks, whatever the values."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bananaweb import compiled, lookups
from bananaweb.gateway import lookups as gateway_lookups
from bananaweb.gateway.models import ApiToken, GatewayTask, hash_token
from bananaweb.models import GeneratedImage, ImageRequest
from tests.factories import ImageRequestFactory, make_image

POSTGRESQL = connection.vendor == "postgresql"
only_postgresql = pytest.mark.skipif(not POSTGRESQL, reason="PostgreSQL's compiled SQL")


def prompts_of(viewer, text):
    return (
        ImageRequest.objects.for_user(viewer)
        .filter(prompt=text)
        .values_list("prompt", "image_urls", "created_at")
    )


@pytest.mark.skipif(POSTGRESQL, reason="SQLite has no compiled SQL")
def test_elsewhere_there_is_no_compiled_sql(user):
    assert (
        compiled.compiled_rows(
            ("t",), prompts_of, model=ImageRequest, user=user, text="x"
        )
        is None
    )
    assert lookups.own_request(user, 1) is None
    assert gateway_lookups.active_token("x") is None


@only_postgresql
def test_each_call_gets_its_own_values_from_one_compiled_sql(
    user, other_user, monkeypatch
):
    mine = ImageRequestFactory(
        user=user, prompt="Banana", image_urls=["https://a.test/1.png"]
    )
    ImageRequestFactory(user=other_user, prompt="Banana")
    ImageRequestFactory(user=user, prompt="Cherry")
    built = []

    def counting(viewer, text):
        built.append(text)
        return prompts_of(viewer, text)

    key = ("test-each-call", uuid.uuid4().hex)
    for viewer, text in [(user, "Banana"), (user, "Cherry"), (other_user, "Banana")]:
        rows = compiled.compiled_rows(
            key, counting, model=ImageRequest, user=viewer, text=text
        )
        # As the ORM gives them: JSON decoded, aware datetimes.
        assert rows == list(prompts_of(viewer, text))
        if viewer == user and text == "Banana":
            assert rows == [("Banana", ["https://a.test/1.png"], mine.created_at)]
    assert len(built) == 1, "built once, for the stand-ins"
    assert (
        compiled.compiled_rows(
            key, counting, model=ImageRequest, user=user, text="Zebra"
        )
        == []
    )


@only_postgresql
def test_a_stand_in_is_never_a_value(user):
    """A constant of the query equal to nobody's value is left as it is."""
    ImageRequestFactory(user=user, prompt="\x1fstand-in 1\x1f")
    rows = compiled.compiled_rows(
        ("test-stand-in", uuid.uuid4().hex),
        prompts_of,
        model=ImageRequest,
        user=user,
        text="\x1fstand-in 1\x1f",
    )
    assert [row[0] for row in rows] == ["\x1fstand-in 1\x1f"]
    with pytest.raises(TypeError):
        compiled.compiled_rows(
            ("test-flag",), prompts_of, model=ImageRequest, user=user, text=True
        )


@only_postgresql
def test_the_owners_request_and_image_and_nobody_elses(user, other_user):
    image_request = ImageRequestFactory(user=user, status="completed")
    first, second = make_image(image_request), make_image(image_request)
    found = lookups.own_request(user, image_request.pk)
    assert found.pk == image_request.pk and found.user == user
    assert list(found.images.all()) == [first, second]
    assert found.starred is False
    assert lookups.own_request(other_user, image_request.pk) is False
    assert lookups.own_image(user, image_request.pk, second.pk) == second
    assert lookups.own_image(other_user, image_request.pk, second.pk) is False
    # An image under another request's id is not found by its id alone.
    other = ImageRequestFactory(user=user)
    assert lookups.own_image(user, other.pk, second.pk) is False
    ImageRequest.objects.filter(pk=image_request.pk).update(deleted_at=timezone.now())
    assert lookups.own_request(user, image_request.pk) is False
    assert lookups.own_image(user, image_request.pk, second.pk) is False


@only_postgresql
def test_the_gateways_token_and_task(user, other_user):
    api_token = ApiToken(user=user, name="script")
    api_token.set_token("bw_compiled-test-token")
    api_token.save()
    found = gateway_lookups.active_token(hash_token("bw_compiled-test-token"))
    assert found == api_token and found.user == user
    assert gateway_lookups.active_token(hash_token("bw_another")) is False
    image_request = ImageRequestFactory(user=user, status="completed")
    image = make_image(image_request)
    task = GatewayTask.objects.create(image_request=image_request, api_token=api_token)
    with CaptureQueriesContext(connection) as ran:
        found = gateway_lookups.own_task(user, task.task_id)
    assert len(ran) == 1, "the task and its images in one round trip"
    assert found == task and found.image_request == image_request
    assert list(found.image_request.images.all()) == [image]
    assert gateway_lookups.own_task(other_user, task.task_id) is False
    assert gateway_lookups.own_task(user, uuid.uuid4()) is False
    ApiToken.objects.filter(pk=api_token.pk).update(revoked_at=timezone.now())
    assert gateway_lookups.active_token(hash_token("bw_compiled-test-token")) is False
    assert GeneratedImage.objects.count() == 1


@only_postgresql
def test_a_polls_own_requests_whatever_their_number(user, other_user):
    mine = [ImageRequestFactory(user=user, status="in_progress") for _ in range(3)]
    theirs = ImageRequestFactory(user=other_user)
    names = ("status", "error_message")
    for ids in ([mine[0].pk], [m.pk for m in mine], [mine[2].pk, theirs.pk]):
        found = lookups.own_requests_only(user, ids, names)
        assert sorted(r.pk for r in found) == sorted(
            pk for pk in ids if pk != theirs.pk
        )
        assert all(r.status == "in_progress" for r in found)
    assert lookups.own_requests_only(other_user, [mine[0].pk], names) == []


@only_postgresql
def test_queries_run_together_in_one_round_trip(user, other_user):
    ImageRequestFactory(user=user, prompt="Banana")
    ImageRequestFactory(user=other_user, prompt="Cherry")
    asked = [
        compiled.query(
            ("test-together",), prompts_of, model=ImageRequest, user=user, text="Banana"
        ),
        compiled.query(
            ("test-together",),
            prompts_of,
            model=ImageRequest,
            user=other_user,
            text="Cherry",
        ),
        compiled.query(
            ("test-together",), prompts_of, model=ImageRequest, user=user, text="Zebra"
        ),
    ]
    alone = [compiled.rows(query) for query in asked]
    assert [len(rows) for rows in alone] == [1, 1, 0]
    with CaptureQueriesContext(connection) as ran, compiled.together(*asked):
        assert [compiled.rows(query) for query in reversed(asked)] == alone[::-1]
    assert len(ran) == 1, [query["sql"][:80] for query in ran]
    # What was read together is taken once; later asks run again.
    with compiled.together(*asked), CaptureQueriesContext(connection) as later:
        compiled.rows(asked[0])
        compiled.rows(asked[0])
    assert len(later) == 1
    with CaptureQueriesContext(connection) as after:
        assert compiled.rows(asked[1]) == alone[1]
    assert len(after) == 1


@only_postgresql
def test_the_main_and_detail_pages_ask_in_one_round_trip(client_logged_in, user):
    """Session, user, then everything else the page reads at once."""
    image_request = ImageRequestFactory(user=user, status="completed")
    make_image(image_request)
    for url in ("/", f"/requests/{image_request.pk}/", "/?scope=team&view=gallery"):
        client_logged_in.get(url)  # compiled, cached
        with CaptureQueriesContext(connection) as ran:
            assert client_logged_in.get(url).status_code == 200
        assert len(ran) == 3, (url, [query["sql"][:60] for query in ran])
