"""The staff usage dashboard (issue 3): its page, its charts and its CSV export.

Thin views: the numbers come from `bananaweb.usage`, the SVG from
`bananaweb.charts`.
"""

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bananaweb.charts import Series, bar_chart_svg
from bananaweb.usage import (
    DAY_CHOICES,
    StatusCounts,
    daily_breakdowns,
    daily_status_counts,
    export_rows,
    parse_range,
    time_to_result,
    top_failure_reasons,
    usage_today,
)

# --- Charts and formatting -------------------------------------------------------


def _day_label(day: date) -> str:
    return day.strftime("%b %d").replace(" 0", " ")


def requests_chart(daily: Sequence[tuple[date, StatusCounts]]) -> str:
    counts = [c for _, c in daily]
    return bar_chart_svg(
        chart_id="requests-chart",
        title="Requests per day",
        description="Stacked bars per day: completed, failed or unknown, "
        "and still in flight. The table beside it has the same numbers.",
        labels=[_day_label(day) for day, _ in daily],
        series=[
            Series(
                "completed",
                [c.completed for c in counts],
                "chart__bar--completed",
                "#2e7d32",
            ),
            Series(
                "failed or unknown",
                [c.failed + c.unknown for c in counts],
                "chart__bar--failed",
                "#c62828",
            ),
            Series(
                "in flight",
                [c.in_flight for c in counts],
                "chart__bar--in-flight",
                "#f9a825",
            ),
        ],
    )


def success_chart(daily: Sequence[tuple[date, StatusCounts]]) -> str:
    return bar_chart_svg(
        chart_id="success-chart",
        title="Success rate per day",
        description="Completed requests as a percentage of finished ones, per day; "
        "no bar on days with nothing finished.",
        labels=[_day_label(day) for day, _ in daily],
        series=[
            Series(
                "success rate",
                [c.success_percent for _, c in daily],
                "chart__bar--rate",
                "#1565c0",
            )
        ],
        y_max=100,
        unit="%",
    )


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"


# --- CSV -------------------------------------------------------------------------

CSV_HEADER = ("user", "time", "model", "action", "resolution", "token", "status")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_safe(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection): no cell starts with = + - @."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _csv_lines(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


# --- Views -----------------------------------------------------------------------

# Staff see the pages only with it: every user's usage and the token names
# (the "Usage viewers" group holds it; superusers have it anyway).
USAGE_PERMISSION = "bananaweb.view_usage"


@require_GET
@never_cache
@staff_member_required
@permission_required(USAGE_PERMISSION, raise_exception=True)
def usage_dashboard(request: HttpRequest) -> HttpResponse:
    date_range = parse_range(request.GET, today=timezone.localdate())
    daily = daily_status_counts(date_range=date_range)
    totals = sum((counts for _, counts in daily), StatusCounts())
    today, today_by_user = usage_today()
    durations = time_to_result(date_range=date_range)
    context = {
        **admin.site.each_context(request),
        "title": "Usage",
        "date_range": date_range,
        "day_choices": DAY_CHOICES,
        "today": today,
        "today_by_user": today_by_user,
        "totals": totals,
        "daily": daily,
        # charts.py escapes every value it draws.
        "requests_chart": mark_safe(requests_chart(daily)),
        "success_chart": mark_safe(success_chart(daily)),
        "durations": durations,
        "median": format_duration(durations.median),
        "p95": format_duration(durations.p95),
        "breakdowns": daily_breakdowns(date_range=date_range),
        "failures": top_failure_reasons(date_range=date_range),
        "export_url": f"{reverse('usage-export')}?{date_range.query}",
    }
    return render(request, "admin/usage_dashboard.html", context)


@require_GET
@never_cache
@staff_member_required
@permission_required(USAGE_PERMISSION, raise_exception=True)
def usage_export(request: HttpRequest) -> StreamingHttpResponse:
    """One CSV row per request in the range, for chargeback; streamed."""
    date_range = parse_range(request.GET, today=timezone.localdate())
    filename = f"bananaweb-usage-{date_range.start}-to-{date_range.end}.csv"
    return StreamingHttpResponse(
        _csv_lines(export_rows(date_range=date_range)),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
