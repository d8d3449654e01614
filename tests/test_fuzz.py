"""Property-based (Hypothesis): whatever a client sends, no answer is a 500 (issue 10).

The pages' forms and query strings, and the JSON API, get random text for every
field (lone surrogates, NULs, huge strings, odd digits and other odd Unicode),
random extra fields and random headers. Bytes are sent as a client could send
them: a surrogate reaches Django percent-encoded, and JSON carries it escaped.
Each example starts from the same state: no requests, no tasks, an empty cache.
"""

import json
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.tasks import default_task_backend
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bananaweb import options
from bananaweb.models import ImageRequest
from tests.factories import ImageRequestFactory, UserFactory
from tests.gateway_helpers import bearer, issue_token

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ("action", "prompt", "model", "aspect_ratio", "resolution", "image_urls")

# --- What clients send ------------------------------------------------------------

ODD_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff\ud800",
    "²",
    "٣",
    "１４",
    "-1",
    "1e3",
    "NaN",
    "9" * 5000,
    "🍌" * 10,
    "\u202eevil",
    "\ufeff",
    "e\u0301" * 50,
    "<script>alert(1)</script>",
    "{{ request }}",
    "%s%n",
    "../../etc/passwd",
    "https://cdn.test/a.png",
    "https://[::1]/a.png",
    "http://",
    "javascript:alert(1)",
]
VALID_TEXT = [
    *options.Action.values,
    *options.Model.values,
    *options.AspectRatio.values,
    *options.Resolution.values,
    "A banana on a table",
    "7",
    "14",
    "2025-01-06",
    "2999-12-31",
    "0001-01-01",
]
VALID_FORM = {
    "action": "edit",
    "prompt": "A banana on a table",
    "model": "nano-banana-2",
    "aspect_ratio": "8:1",
    "resolution": "4K",
    "image_urls": "https://cdn.test/a.png",
    "idempotency_key": "k-1",
}
VALID_BODY = {
    "prompt": "A banana on a table",
    "action": "edit",
    "model": "nano-banana-2",
    "aspect_ratio": "8:1",
    "resolution": "4K",
    "image_urls": ["https://cdn.test/a.png"],
    "num_images": 1,
}
# Every code point, lone surrogates included (Hypothesis leaves them out by default),
# with the troublesome ones often. Joined from a list: st.text() merges its alphabet
# into one set of characters, and the surrogates are lost on the way.
any_text = st.lists(
    st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(["\ud800", "\udfff", "\x00", "²", "🍌", "\u202e", "\n", "%"]),
    ),
    max_size=60,
).map("".join)
huge_text = st.builds(
    lambda character, size: character * size,
    st.characters(exclude_categories=()),
    st.sampled_from([4_001, 20_000, 300_000]),
)
text = st.one_of(st.sampled_from(ODD_TEXT + VALID_TEXT), any_text, any_text, huge_text)
# What a number in a query string may be sent as: digits of any script, superscripts.
number_text = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),
    st.sampled_from(["²", "٣", "١٤", "１４", "7²", "0" * 5000 + "7", "9" * 5000]),
    text,
)
NUMBER_FIELDS = ("page", "days", "p", "created_at__year", "user__id__exact")
field_name = st.one_of(st.sampled_from(FIELDS + NUMBER_FIELDS), any_text)


def query(pairs: list[tuple[str, str]]) -> str:
    """Percent-encoded the way a client can: a lone surrogate as its three UTF-8-ish bytes."""
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass")


def pairs_for(
    names: tuple[str, ...], valid: dict[str, str] | None = None
) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Some of `names` (maybe repeated) with random values, and random extra fields;
    or, half the time, the `valid` values with a few changed or left out."""
    extra = st.lists(st.tuples(field_name, text), max_size=3)
    pair = st.sampled_from(names).flatmap(
        lambda name: st.tuples(
            st.just(name), number_text if name in NUMBER_FIELDS else text
        )
    )
    anything = st.builds(
        lambda known, more: known + more,
        st.lists(pair, max_size=len(names) + 2),
        extra,
    )
    if not valid:
        return anything
    nearly_valid = st.builds(
        lambda changed, dropped, more: (
            [
                (name, value)
                for name, value in (valid | changed).items()
                if name not in dropped
            ]
            + more
        ),
        st.lists(pair, max_size=2).map(dict),
        st.sets(st.sampled_from(names), max_size=2),
        extra,
    )
    return st.one_of(anything, nearly_valid)


json_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(any_text, children, max_size=4),
    ),
    max_leaves=12,
)
json_object = st.builds(
    lambda known, extra: extra | known,
    st.dictionaries(st.sampled_from(FIELDS + ("num_images",)), json_value),
    st.dictionaries(any_text, json_value, max_size=3),
)


def poisoned(name: str, odd: str, replace: bool) -> object:
    """The valid value of a field with odd text added to it, or instead of it."""
    valid = VALID_BODY[name]
    if name == "image_urls":
        return [odd] if replace else [valid[0] + odd]
    return odd if replace else valid + odd


# The valid body with one field's string made odd: the likeliest way to reach past
# the type checks into the rules, the database and the messages.
odd_string_body = st.builds(
    lambda name, odd, replace, extra: (
        extra | VALID_BODY | {name: poisoned(name, odd, replace)}
    ),
    st.sampled_from(FIELDS),
    st.one_of(any_text, st.sampled_from(ODD_TEXT)),
    st.booleans(),
    st.dictionaries(any_text, json_value, max_size=2),
)
nearly_valid_json_object = st.builds(
    lambda changed, extra: extra | VALID_BODY | changed,
    st.dictionaries(
        st.sampled_from(FIELDS + ("num_images",)), json_value, min_size=1, max_size=2
    ),
    st.dictionaries(any_text, json_value, max_size=2),
)
# What WSGI can deliver in a header: latin-1, without line breaks.
header_text = st.one_of(
    st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=40),
    st.sampled_from(["", "x" * 101, "k-1", "\x00", "²"]),
)


# --- The state each example starts from ----------------------------------------------


def fresh() -> None:
    ImageRequest.objects.all().delete()
    default_task_backend.clear()
    cache.clear()  # the gateway's rate limit


def encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def assert_stored_requests_are_valid() -> None:
    """Whatever got through was right to: the rules hold for every stored request."""
    for image_request in ImageRequest.objects.all():
        assert encodable(image_request.prompt)
        assert all(encodable(url) for url in image_request.image_urls)
        image_request.full_clean(exclude=["idempotency_key"])


@pytest.fixture
def fuzz_user(db):
    return UserFactory(username="fuzz")


@pytest.fixture
def signed_in(fuzz_user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(fuzz_user)
    return client


@pytest.fixture
def raw_token(fuzz_user) -> str:
    return issue_token(fuzz_user)


@pytest.fixture
def staff(db) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(
        UserFactory(username="fuzz-staff", is_staff=True, is_superuser=True)
    )
    return client


# --- The pages ------------------------------------------------------------------------


@FUZZ
@given(pairs=pairs_for(tuple(VALID_FORM), VALID_FORM), htmx=st.booleans())
# The findings of issue 10, always tried.
@example(pairs=[*VALID_FORM.items(), ("prompt", "A banana \ud800")], htmx=False)
@example(
    pairs=[*VALID_FORM.items(), ("image_urls", "https://a.test/\udfff")], htmx=True
)
def test_generate_and_edit_form_posts_never_answer_500(signed_in, pairs, htmx):
    fresh()
    response = signed_in.post(
        "/requests/",
        query(pairs),
        content_type="application/x-www-form-urlencoded",
        headers={"HX-Request": "true"} if htmx else {},
    )
    assert response.status_code < 500, response.content[:500]
    assert_stored_requests_are_valid()


@FUZZ
@given(
    path=st.sampled_from(["/", "/requests/options/", "/settings/tokens/"]),
    pairs=pairs_for(("page", *FIELDS), {"page": "1", **VALID_FORM}),
    htmx=st.booleans(),
)
@example(path="/", pairs=[("page", "²")], htmx=True)
def test_signed_in_pages_never_answer_500_whatever_the_query(
    signed_in, path, pairs, htmx
):
    fresh()
    response = signed_in.get(
        f"{path}?{query(pairs)}", headers={"HX-Request": "true"} if htmx else {}
    )
    assert response.status_code < 500, response.content[:500]


@FUZZ
@given(
    page=st.sampled_from(["", "card/"]), pairs=pairs_for(("page",)), htmx=st.booleans()
)
def test_request_pages_never_answer_500_whatever_the_query(
    signed_in, fuzz_user, page, pairs, htmx
):
    fresh()
    image_request = ImageRequestFactory(user=fuzz_user)
    response = signed_in.get(
        f"/requests/{image_request.pk}/{page}?{query(pairs)}",
        headers={"HX-Request": "true"} if htmx else {},
    )
    assert response.status_code < 500, response.content[:500]


@FUZZ
@given(
    path=st.sampled_from(["/admin/usage/", "/admin/usage/export.csv"]),
    pairs=pairs_for(
        ("days", "start", "end"), {"start": "2025-01-06", "end": "2025-02-06"}
    ),
)
@example(path="/admin/usage/", pairs=[("days", "²")])
@example(path="/admin/usage/export.csv", pairs=[("days", "²")])
def test_usage_dashboard_and_export_never_answer_500_whatever_the_query(
    staff, path, pairs
):
    fresh()
    response = staff.get(f"{path}?{query(pairs)}")
    assert response.status_code < 500, response.content[:500]
    if response.status_code == 200 and path.endswith(".csv"):
        b"".join(response.streaming_content)  # the rows are made while streaming


ADMIN_LISTS = [
    "/admin/bananaweb/imagerequest/",
    "/admin/bananaweb/upstreamtoken/",
    "/admin/bananaweb/tokenauditentry/",
    "/admin/gateway/apitoken/",
    "/admin/gateway/gatewaytask/",
]
# The admin's own parameters (page, ordering, search, popup) and our lists' filters.
ADMIN_PARAMS = (
    "p",
    "o",
    "q",
    "e",
    "all",
    "_popup",
    "_to_field",
    "status__exact",
    "model__exact",
    "user__id__exact",
    "created_at__gte",
    "created_at__year",
    "created_at__month",
    "created_at__day",
    "is_active__exact",
    "groups__id__exact",
    "event__exact",
    "state",
)


@settings(FUZZ, max_examples=40)  # an admin list takes a few hundred milliseconds
@given(path=st.sampled_from(ADMIN_LISTS), pairs=pairs_for(ADMIN_PARAMS))
@example(path=ADMIN_LISTS[0], pairs=[("created_at__year", "²"), ("p", "²")])
def test_admin_lists_never_answer_500_whatever_the_query(staff, path, pairs):
    fresh()
    response = staff.get(f"{path}?{query(pairs)}")
    assert response.status_code < 500, response.content[:500]


# --- The JSON API ----------------------------------------------------------------------


@FUZZ
@given(
    body=st.one_of(
        odd_string_body,
        odd_string_body,
        nearly_valid_json_object,
        json_object,
        json_value,
    ),
    idempotency_key=st.one_of(st.none(), header_text),
    other_headers=st.dictionaries(
        st.sampled_from(["Accept", "Content-Encoding", "X-Request-Id", "Origin"]),
        header_text,
        max_size=2,
    ),
)
@example(
    body={"prompt": "A banana \ud800", "action": "generate"},
    idempotency_key=None,
    other_headers={},
)
@example(
    body=VALID_BODY | {"image_urls": ["https://cdn.test/a.png\ud800"]},
    idempotency_key="k-1",
    other_headers={},
)
@example(body=VALID_BODY, idempotency_key="k\x00", other_headers={})
def test_generate_api_answers_json_and_never_500(
    raw_token, body, idempotency_key, other_headers
):
    fresh()
    headers = bearer(raw_token) | other_headers
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    api = Client(enforce_csrf_checks=True, raise_request_exception=False)

    response = api.post(
        "/api/gemini/image/generate",
        json.dumps(body),  # a lone surrogate as JSON's "\ud800"
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert ("taskId" in answer) == (response.status_code == 201)
    assert_stored_requests_are_valid()


@FUZZ
@given(
    pairs=pairs_for(("taskId",)),
    authorization=st.one_of(st.none(), header_text),  # None: the real token
)
def test_task_result_api_answers_json_and_never_500(raw_token, pairs, authorization):
    fresh()
    api = Client(enforce_csrf_checks=True, raise_request_exception=False)
    headers = {"Authorization": authorization or f"Bearer {raw_token}"}

    response = api.get(f"/api/gemini/task/result?{query(pairs)}", headers=headers)

    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == "application/json"
