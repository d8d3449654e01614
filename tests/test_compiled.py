"""SQL built once per process with stand-ins (bananaweb/compiled.py) and the rows
read through it (bananaweb/lookups.py, bananaweb/gateway/lookups.py): the very
rows the ORM gives, whoever asks, whatever the values."""

import uuid

import pytest
from django.db import DataError, connection, transaction
from django.db.models import IntegerField, Value
from django.db.models.functions import Cast
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bananaweb import compiled, lookups, services
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


def _prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall() if name.startswith("bw_")}


@pytest.fixture
def none_prepared(db):
    """This connection with no statement prepared, whatever ran on it before."""
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    connection._bananaweb_prepared = None


def _asking(key, prepare: bool):
    return lambda viewer, text: compiled.query(
        key, prompts_of, model=ImageRequest, prepare=prepare, user=viewer, text=text
    )


@only_postgresql
def test_a_prepared_query_is_planned_once_per_connection(
    user, other_user, none_prepared
):
    """Prepared in the same round trip as its first run, then only EXECUTEd; the
    very rows of the same query unprepared, whoever asks, whatever the values."""
    ImageRequestFactory(user=user, prompt="Banana", image_urls=["https://a.test/1"])
    ImageRequestFactory(user=other_user, prompt="Banana")
    ImageRequestFactory(user=user, prompt="50% off")
    key = ("test-prepared", uuid.uuid4().hex)
    plain, prepared = _asking(key, False), _asking(key, True)
    asks = [(v, t) for v in (user, other_user) for t in ("Banana", "50% off", "x")]
    expected = {ask: compiled.rows(plain(*ask)) for ask in asks}
    assert sum(map(len, expected.values())) == 3
    texts = []
    for _ in range(2):
        for ask, rows in expected.items():
            with CaptureQueriesContext(connection) as ran:
                assert compiled.rows(prepared(*ask)) == rows
            assert len(ran) == 1
            texts.append(ran[0]["sql"])
    assert len(_prepared_names()) == 1
    # Only the first run prepared it; every run EXECUTEd it.
    assert ["PREPARE bw_" in text for text in texts] == [True] + [False] * 11
    assert all("EXECUTE bw_" in text for text in texts)


@only_postgresql
def test_prepared_and_planned_queries_run_together(user, other_user, none_prepared):
    ImageRequestFactory(user=user, prompt="Banana")
    ImageRequestFactory(user=other_user, prompt="Banana")
    key = ("test-prepared-together", uuid.uuid4().hex)
    asked = [
        _asking(key, True)(user, "Banana"),
        _asking(key, False)(other_user, "Banana"),
        _asking(key, True)(other_user, "Banana"),
    ]
    alone = [compiled.rows(query) for query in asked]
    with CaptureQueriesContext(connection) as ran, compiled.together(*asked):
        assert [compiled.rows(query) for query in asked] == alone
    assert len(ran) == 1
    assert ran[0]["sql"].count("EXECUTE bw_") == 2


@only_postgresql
def test_after_an_error_the_connection_forgets_its_statements(user, none_prepared):
    """A PREPARE outlives a text that failed after it: the next run starts again
    from none instead of preparing a statement twice (an error of its own)."""
    ImageRequestFactory(user=user, prompt="Banana")
    failing = compiled.query(
        ("test-failing", uuid.uuid4().hex),
        lambda viewer: ImageRequest.objects.filter(user=viewer).values_list(
            Cast(Value("not a number"), IntegerField())
        ),
        model=ImageRequest,
        user=user,
    )
    prepared = _asking(("test-prepared-error", uuid.uuid4().hex), True)
    with (
        pytest.raises(DataError),
        transaction.atomic(),
        compiled.together(prepared(user, "Banana"), failing),
    ):
        pass
    with CaptureQueriesContext(connection) as ran:
        assert len(compiled.rows(prepared(user, "Banana"))) == 1
    assert ran[0]["sql"].startswith("DEALLOCATE ALL")


@only_postgresql
def test_a_connection_keeps_a_bounded_number_of_statements(
    user, monkeypatch, none_prepared
):
    monkeypatch.setattr(compiled, "PREPARED_PER_CONNECTION", 2)
    ImageRequestFactory(user=user, prompt="Banana")
    for index in range(5):
        # Its own SQL each (LIMIT is written in it), hence a statement each.
        prepared = compiled.query(
            ("test-prepared-bound", index),
            lambda viewer, text, index=index: prompts_of(viewer, text)[: index + 1],
            model=ImageRequest,
            prepare=True,
            user=user,
            text="Banana",
        )
        assert len(compiled.rows(prepared)) == 1
        assert 1 <= len(_prepared_names()) <= 2


@only_postgresql
def test_a_prepared_statement_has_the_values_as_parameters_and_the_constants_in_it(
    db,
):
    """A generic plan knows the constants (a partial index on one serves it); one
    SQL compiled with other constants is another statement."""
    sql = "SELECT %s FROM t WHERE v = %s AND w LIKE '5%%' AND u = %s AND d > %s"
    day = timezone.now()
    team = compiled._statement(sql, [1, "team", -7, day], [-7, day])
    private = compiled._statement(sql, [1, "private", -7, day], [-7, day])
    connection.ensure_connection()
    assert team.text(connection.connection) == (
        f"PREPARE {team.name}(bigint, timestamptz) AS "
        "SELECT 1 FROM t WHERE v = 'team' AND w LIKE '5%%' AND u = $1 AND d > $2"
    )
    assert team.execute == f"EXECUTE {team.name}(%s, %s)"
    assert private.name != team.name
    constant = compiled._statement("SELECT %s", [1], [-7])
    assert (
        constant.text(connection.connection) == f"PREPARE {constant.name} AS SELECT 1"
    )
    assert constant.execute == f"EXECUTE {constant.name}"


@only_postgresql
def test_the_quota_is_prepared_and_planned_once(user, none_prepared):
    """Every page and submission reads the quota: PostgreSQL plans it once per
    connection (a generic plan, the day's start written in), not every time; a
    submission's too, which also finds what its idempotency key made (by the
    key's unique index, whatever the key)."""
    ImageRequestFactory.create_batch(3, user=user)
    made = ImageRequestFactory(user=user, idempotency_key="made-once")
    for _ in range(8):
        assert services.quota_usage(user=user).used == 4
        for key, found in (("made-once", made.pk), ("not-yet", None)):
            with transaction.atomic():
                *_, made_by_key = services._quota_preference_and_key(
                    user, idempotency_key=key
                )
            assert made_by_key == found
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement LIKE %s, generic_plans, custom_plans"
            " FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%idempotency_key%", "%bananaweb_userquota%"],
        )
        plans = sorted(cursor.fetchall())
    assert [keyed for keyed, *_ in plans] == [False, True]
    for _, generic, custom in plans:
        assert generic >= 3 and custom <= 5, plans


@only_postgresql
def test_a_submissions_generic_plan_finds_its_key_by_the_unique_index(
    user, none_prepared
):
    """Not knowing the key, the prepared statement's generic plan still walks the
    key's unique index, never the user's every request (under their lock)."""
    ImageRequest.objects.bulk_create(
        ImageRequestFactory.build(user=user) for _ in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bananaweb_imagerequest")
    bound = compiled._bind(services.quota_query(user, idempotency_key="a-key"))
    compiled.rows(services.quota_query(user, idempotency_key="a-key"))  # prepared
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        values = [bound.params[index] for index in bound.prepared.variable]
        cursor.execute("EXPLAIN " + bound.prepared.execute, values)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "image_request_idempotency_key_unique" in plan, plan
