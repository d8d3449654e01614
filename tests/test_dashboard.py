"""The staff usage dashboard and its CSV export: who may see them, the numbers, the charts, the range."""

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from bananaweb import options
from bananaweb.charts import Series, bar_chart_svg
from bananaweb.models import ImageRequest, UpstreamToken, local_day_start
from bananaweb.usage import (
    DateRange,
    daily_status_counts,
    parse_range,
    time_to_result,
    top_failure_reasons,
)

Status = ImageRequest.Status
DASHBOARD = "/admin/usage/"
EXPORT = "/admin/usage/export.csv"
JAN_6_TO_8 = {"start": "2025-01-06", "end": "2025-01-08"}


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    """A time on a day in the site's time zone."""
    return datetime.fromisoformat(f"{day}T{hour:02}:{minute:02}").replace(
        tzinfo=timezone.get_current_timezone()
    )


def make_token(name: str) -> UpstreamToken:
    token = UpstreamToken(name=name)
    token.set_secret(f"sk-{name}-0000")
    token.save()
    return token


def make_request(
    user,
    *,
    created_at: datetime,
    status: str = Status.COMPLETED,
    took: timedelta | None = None,
    model: str = options.Model.NANO_BANANA_PRO,
    resolution: str = "2K",
    token: UpstreamToken | None = None,
    error_code: str = "",
    error_message: str = "",
    action: str = options.Action.GENERATE,
) -> ImageRequest:
    if took is None and status in (Status.COMPLETED, Status.FAILED, Status.UNKNOWN):
        took = timedelta(seconds=10)
    return ImageRequest.objects.create(
        user=user,
        action=action,
        prompt="A banana on a table",
        model=model,
        resolution=resolution,
        image_urls=["https://example.com/a.png"]
        if action == options.Action.EDIT
        else [],
        status=status,
        created_at=created_at,
        finished_at=created_at + took if took else None,
        upstream_token=token,
        error_code=error_code,
        error_message=error_message,
    )


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- who may see it ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [DASHBOARD, EXPORT])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "login" in response.url


@pytest.mark.parametrize("url", [DASHBOARD, EXPORT])
def test_signed_in_non_staff_are_sent_to_the_admin_login(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_usage_viewers_who_are_not_superusers_see_it(client, django_user_model):
    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    staff.groups.add(Group.objects.get(name="Usage viewers"))
    client.force_login(staff)
    assert client.get(DASHBOARD).status_code == 200
    assert client.get(EXPORT).status_code == 200


def test_admin_pages_link_to_the_dashboard(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{DASHBOARD}"' in html


def test_dashboard_is_an_admin_page_without_inline_styles_or_scripts(admin_client):
    response = admin_client.get(DASHBOARD)
    html = response.content.decode()
    assert response.status_code == 200
    assert "bananaweb admin" in html  # the admin's header
    assert "css/dashboard.css" in html
    assert "style=" not in html
    assert "<script>" not in html


# --- the numbers ------------------------------------------------------------------------


def test_requests_per_day_by_user_model_and_token(admin_client, user, other_user):
    alpha, beta = make_token("alpha"), make_token("beta")
    make_request(user, created_at=at("2025-01-06"), token=alpha)
    make_request(
        user,
        created_at=at("2025-01-06", 18),
        token=alpha,
        model=options.Model.NANO_BANANA_FAST,
        resolution="",
    )
    make_request(other_user, created_at=at("2025-01-07"), token=beta)
    make_request(
        user, created_at=at("2025-01-08"), status=Status.QUEUED
    )  # no token yet
    make_request(user, created_at=at("2025-01-09"))  # after the range
    make_request(other_user, created_at=at("2025-01-05", 23, 59))  # before it

    response = admin_client.get(DASHBOARD, JAN_6_TO_8)

    by_user, by_model, by_token = response.context["breakdowns"]
    assert by_user.columns == ["alice", "bob"]
    assert by_user.totals == [3, 1]
    assert [(day, cells) for day, cells, _ in by_user.rows] == [
        (date(2025, 1, 6), [2, 0]),
        (date(2025, 1, 7), [0, 1]),
        (date(2025, 1, 8), [1, 0]),
    ]
    assert dict(zip(by_model.columns, by_model.totals)) == {
        "Nano Banana Pro": 3,
        "Nano Banana Fast": 1,
    }
    assert dict(zip(by_token.columns, by_token.totals)) == {
        "alpha": 2,
        "beta": 1,
        "no token": 1,
    }
    assert by_token.total == 4
    html = response.content.decode()
    for name in ("alice", "bob", "Nano Banana Pro", "alpha", "beta", "no token"):
        assert f">{name}</th>" in html
    assert response.context["totals"].total == 4


def test_success_rate_leaves_out_requests_still_in_flight(admin_client, user):
    for _ in range(3):
        make_request(user, created_at=at("2025-01-06"))
    make_request(
        user,
        created_at=at("2025-01-06"),
        status=Status.FAILED,
        error_code="upstream_error",
    )
    make_request(user, created_at=at("2025-01-07"), status=Status.UNKNOWN)
    for status in ImageRequest.IN_FLIGHT:
        make_request(user, created_at=at("2025-01-07"), status=status)

    response = admin_client.get(DASHBOARD, JAN_6_TO_8)

    totals = response.context["totals"]
    assert (totals.completed, totals.failed, totals.unknown, totals.in_flight) == (
        3,
        1,
        1,
        3,
    )
    assert totals.success_percent == 60
    daily = dict(response.context["daily"])
    assert daily[date(2025, 1, 6)].success_percent == 75
    assert daily[date(2025, 1, 7)].success_percent == 0
    assert (
        daily[date(2025, 1, 8)].success_percent is None
    )  # nothing finished: no rate, not 0%
    html = response.content.decode()
    assert '<dd id="range-success-rate">60.0%</dd>' in html
    assert ">75.0%</td>" in html


def test_median_and_95th_percentile_time_to_result(admin_client, user):
    for seconds in range(1, 21):  # 1 s .. 20 s, inserted out of order
        make_request(
            user,
            created_at=at("2025-01-06", 12, seconds),
            took=timedelta(seconds=21 - seconds),
        )
    make_request(
        user, created_at=at("2025-01-06"), status=Status.FAILED, took=timedelta(hours=1)
    )
    make_request(user, created_at=at("2025-01-06"), status=Status.IN_PROGRESS)
    make_request(
        user, created_at=at("2025-01-09"), took=timedelta(hours=2)
    )  # outside the range

    result = time_to_result(date_range=DateRange(date(2025, 1, 6), date(2025, 1, 8)))

    assert result.count == 20
    assert result.median == timedelta(seconds=10.5)  # between the 10th and 11th
    assert result.p95 == timedelta(seconds=19.05)  # 19 s + 5% of the way to 20 s
    html = admin_client.get(DASHBOARD, JAN_6_TO_8).content.decode()
    assert '<dd id="range-median">10.5 s</dd>' in html
    assert '<dd id="range-p95">19.1 s</dd>' in html


def test_time_to_result_of_an_odd_count_and_of_none(user):
    for seconds in (100, 2, 1):
        make_request(user, created_at=at("2025-01-06"), took=timedelta(seconds=seconds))
    jan_6 = DateRange(date(2025, 1, 6), date(2025, 1, 6))

    result = time_to_result(date_range=jan_6)

    assert (result.median, result.p95) == (
        timedelta(seconds=2),
        timedelta(seconds=90.2),
    )
    empty = time_to_result(date_range=DateRange(date(2025, 2, 1), date(2025, 2, 1)))
    assert (empty.count, empty.median, empty.p95) == (0, None, None)


def test_top_failure_reasons_most_common_first_with_an_example(admin_client, user):
    day = at("2025-01-07")
    for code, count in [
        ("upstream_error", 2),
        ("rate_limited", 3),
        ("timeout", 2),
        ("", 1),
    ]:
        for n in range(count):
            make_request(
                user,
                created_at=day,
                status=Status.FAILED,
                error_code=code,
                error_message=f"{code or 'odd'} #{n}",
            )
    make_request(
        user,
        created_at=day,
        status=Status.UNKNOWN,
        error_code="timeout",
        error_message="Lost track",
    )
    make_request(
        user, created_at=day, error_code="rate_limited"
    )  # completed after all: not a failure

    reasons = top_failure_reasons(
        date_range=DateRange(date(2025, 1, 6), date(2025, 1, 8))
    )

    assert [(r.error_code, r.count) for r in reasons] == [
        ("rate_limited", 3),
        ("timeout", 3),
        ("upstream_error", 2),
        ("(no code)", 1),
    ]
    assert reasons[0].example.startswith("rate_limited #")
    html = admin_client.get(DASHBOARD, JAN_6_TO_8).content.decode()
    assert html.index("<code>rate_limited</code>") < html.index(
        "<code>upstream_error</code>"
    )


def test_top_failure_reasons_stop_at_ten(user):
    for n in range(12):
        make_request(
            user,
            created_at=at("2025-01-07"),
            status=Status.FAILED,
            error_code=f"code_{n:02}",
        )

    assert (
        len(
            top_failure_reasons(
                date_range=DateRange(date(2025, 1, 7), date(2025, 1, 7))
            )
        )
        == 10
    )


def test_todays_usage_at_the_top(admin_client, user, other_user):
    morning = local_day_start() + timedelta(seconds=1)
    make_request(user, created_at=morning)
    make_request(user, created_at=morning)
    make_request(user, created_at=morning, status=Status.FAILED)
    make_request(other_user, created_at=morning, status=Status.SUBMITTING)
    make_request(other_user, created_at=morning - timedelta(minutes=1))  # yesterday

    response = admin_client.get(DASHBOARD)

    today = response.context["today"]
    assert (today.total, today.completed, today.failed, today.in_flight) == (4, 2, 1, 1)
    assert [
        (name, counts.total) for name, counts in response.context["today_by_user"]
    ] == [("alice", 3), ("bob", 1)]
    html = response.content.decode()
    assert '<dd id="today-total">4</dd>' in html
    assert '<dd id="today-in-flight">1</dd>' in html


def test_days_are_cut_at_midnight_in_the_site_time_zone(settings, user):
    settings.TIME_ZONE = "America/New_York"
    late_evening = datetime.fromisoformat(
        "2025-01-07T03:30+00:00"
    )  # 22:30 on Jan 6 in New York
    make_request(user, created_at=late_evening)

    daily = dict(
        daily_status_counts(date_range=DateRange(date(2025, 1, 6), date(2025, 1, 7)))
    )

    assert daily[date(2025, 1, 6)].total == 1
    assert daily[date(2025, 1, 7)].total == 0


def test_empty_range_renders_dashes_not_errors(admin_client):
    response = admin_client.get(DASHBOARD, JAN_6_TO_8)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<dd id="range-success-rate">—</dd>' in html
    assert '<dd id="range-median">—</dd>' in html
    assert "No failed requests in this range." in html


@pytest.mark.parametrize("rows", [1, 60])
def test_dashboard_query_count_does_not_grow_with_rows(
    admin_client, django_user_model, django_assert_max_num_queries, rows
):
    users = [django_user_model.objects.create_user(f"user{n}") for n in range(5)]
    tokens = [make_token(f"token{n}") for n in range(3)] + [None]
    statuses = [Status.COMPLETED, Status.FAILED, Status.UNKNOWN, Status.QUEUED]
    today = local_day_start() + timedelta(seconds=1)
    for n in range(rows):
        make_request(
            users[n % 5],
            created_at=today - timedelta(days=n % 10),
            token=tokens[n % 4],
            status=statuses[n % 4],
            error_code=f"code{n % 3}",
        )

    with django_assert_max_num_queries(11):
        response = admin_client.get(DASHBOARD)

    assert response.context["totals"].total == rows


# --- the charts -------------------------------------------------------------------------


def test_charts_are_svg_with_a_title_and_a_table_beside_them(admin_client, user):
    make_request(user, created_at=at("2025-01-07"))

    html = admin_client.get(DASHBOARD, JAN_6_TO_8).content.decode()

    assert (
        '<svg role="img" aria-labelledby="requests-chart-title requests-chart-desc"'
        in html
    )
    assert '<title id="requests-chart-title">Requests per day</title>' in html
    assert '<title id="success-chart-title">Success rate per day</title>' in html
    assert "<title>Jan 7: 1 completed</title>" in html
    assert '<table class="usage__table" id="daily">' in html


def test_bar_chart_scales_stacks_and_escapes():
    svg = bar_chart_svg(
        chart_id="c",
        title="<Counts>",
        description="d",
        labels=["<a>", "b"],
        series=[
            Series("ok", [2, 4], "ok", "green"),
            Series("bad", [2, None], "bad", "red"),
        ],
        y_max=8,
    )
    assert svg.startswith('<svg role="img" aria-labelledby="c-title c-desc"')
    assert '<title id="c-title">&lt;Counts&gt;</title>' in svg
    assert "<a>" not in svg
    # The plot is 176 px high for 8: each request is 22 px; three bars (2, 2 stacked, 4), none for None.
    assert svg.count('<rect class="chart__bar') == 3
    assert svg.count('height="44.0"') == 2
    assert svg.count('height="88.0"') == 1


# --- the date range ---------------------------------------------------------------------

TODAY = date(2025, 3, 20)


@pytest.mark.parametrize(
    ("params", "start", "end"),
    [
        ({}, date(2025, 3, 7), TODAY),
        ({"days": "7"}, date(2025, 3, 14), TODAY),
        ({"days": "90"}, date(2024, 12, 21), TODAY),
        (
            {"start": "2025-01-06", "end": "2025-01-08"},
            date(2025, 1, 6),
            date(2025, 1, 8),
        ),
        ({"start": "2025-03-01"}, date(2025, 3, 1), TODAY),
        ({"end": "2025-01-20", "days": "7"}, date(2025, 1, 14), date(2025, 1, 20)),
        (
            {"start": "2025-01-06", "end": "2025-01-06"},
            date(2025, 1, 6),
            date(2025, 1, 6),
        ),
    ],
)
def test_range_from_the_query_string(params, start, end):
    date_range = parse_range(params, today=TODAY)
    assert (date_range.start, date_range.end, date_range.note) == (start, end, "")


@pytest.mark.parametrize(
    "params",
    [
        {"days": "5"},
        {"days": "abc"},
        {"days": "-7"},
        {"start": "yesterday"},
        {"start": "2025-13-01"},
        {"start": "2025-02-01", "end": "2025-01-01"},
        {"start": "2020-01-01", "end": "2025-01-01"},
        {"end": "0001-01-03"},
        {"start": "0001-01-01", "end": "0001-01-02"},
        {"start": "9999-12-30", "end": "9999-12-31"},
    ],
)
def test_bad_range_falls_back_to_the_last_14_days_with_a_note(params):
    date_range = parse_range(params, today=TODAY)
    assert (date_range.start, date_range.end) == (date(2025, 3, 7), TODAY)
    assert "showing the last 14 days" in date_range.note


@pytest.mark.parametrize(
    "params",
    [
        {"start": "0001-01-01", "end": "0001-01-02"},
        {"end": "9999-12-31"},
        {"days": "%"},
    ],
)
def test_odd_ranges_never_break_the_dashboard_or_the_export(admin_client, params):
    assert admin_client.get(DASHBOARD, params).status_code == 200
    assert admin_client.get(EXPORT, params).status_code == 200


def test_bad_range_shows_the_default_and_says_why(admin_client):
    response = admin_client.get(DASHBOARD, {"start": "2025-02-30", "days": "7"})
    html = response.content.decode()
    assert response.status_code == 200
    assert len(response.context["daily"]) == 14
    assert 'class="usage__note" role="status">Dates are written like' in html


# --- the CSV export ---------------------------------------------------------------------


def test_csv_export_has_one_row_per_request_in_the_range_oldest_first(
    admin_client, user, other_user
):
    alpha = make_token("alpha")
    make_request(
        other_user,
        created_at=at("2025-01-08", 9),
        model=options.Model.NANO_BANANA_FAST,
        resolution="",
        action=options.Action.EDIT,
        status=Status.FAILED,
    )
    make_request(user, created_at=at("2025-01-06", 10), token=alpha)
    make_request(user, created_at=at("2025-01-09", 0, 0))  # the day after the range

    response = admin_client.get(EXPORT, JAN_6_TO_8)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="bananaweb-usage-2025-01-06-to-2025-01-08.csv"'
    )
    assert csv_rows(response) == [
        ["user", "time", "model", "action", "resolution", "token", "status"],
        [
            "alice",
            at("2025-01-06", 10).isoformat(),
            "nano-banana-pro",
            "generate",
            "2K",
            "alpha",
            "completed",
        ],
        [
            "bob",
            at("2025-01-08", 9).isoformat(),
            "nano-banana-fast",
            "edit",
            "",
            "",
            "failed",
        ],
    ]


def test_csv_export_defuses_spreadsheet_formulas(admin_client, django_user_model):
    for name in ("=cmd", "+sum", "-one", "@home"):
        make_request(
            django_user_model.objects.create_user(name),
            created_at=at("2025-01-07"),
            token=make_token(f"{name}-token"),
        )

    rows = csv_rows(admin_client.get(EXPORT, JAN_6_TO_8))[1:]

    assert sorted((row[0], row[5]) for row in rows) == [
        ("'+sum", "'+sum-token"),
        ("'-one", "'-one-token"),
        ("'=cmd", "'=cmd-token"),
        ("'@home", "'@home-token"),
    ]


def test_csv_export_with_bad_range_uses_the_default(admin_client, user):
    make_request(user, created_at=local_day_start() + timedelta(seconds=1))

    response = admin_client.get(EXPORT, {"start": "nope"})

    today = timezone.localdate()
    assert (
        f"bananaweb-usage-{today - timedelta(days=13)}-to-{today}.csv"
        in response["Content-Disposition"]
    )
    assert len(csv_rows(response)) == 2
