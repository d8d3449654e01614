"""The staff usage dashboard (issue 3): the numbers, their SVG bar charts, the page and the CSV export.

Every number comes from a few aggregate queries over the date range, grouped
by day in the site's time zone; nothing is queried per row.
"""

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bananaweb import options
from bananaweb.models import ImageRequest, RequestStatus, local_day_start

NO_TOKEN = "no token"
NO_ERROR_CODE = "(no code)"
# Finished without an image: what the success rate counts against completed.
UNSUCCESSFUL = (RequestStatus.FAILED, RequestStatus.UNKNOWN)

# --- Date ranges ---------------------------------------------------------------------

DAY_CHOICES = (7, 14, 30, 90)
DEFAULT_DAYS = 14
MAX_RANGE_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


@dataclass(frozen=True)
class DateRange:
    """Whole days, both ends included, in the site's time zone."""

    start: date
    end: date
    preset: int | None = None  # 7, 14, 30 or 90 when chosen with ?days=
    note: str = ""  # why the query string was not used as given

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """Local midnight at the start, and local midnight after the end."""
        tz = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, tzinfo=tz),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz),
        )

    @property
    def query(self) -> str:
        return urlencode({"start": self.start.isoformat(), "end": self.end.isoformat()})


def _last_days(days: int, today: date, note: str = "") -> DateRange:
    return DateRange(today - timedelta(days=days - 1), today, preset=days, note=note)


def parse_range(params: Mapping[str, str], *, today: date) -> DateRange:
    """The range asked for by ?days= or ?start=&end=; the last 14 days, with a note, for anything else."""
    days_raw = params.get("days", "").strip()
    start_raw = params.get("start", "").strip()
    end_raw = params.get("end", "").strip()
    days = DEFAULT_DAYS
    if days_raw:
        days = int(days_raw) if days_raw.isdigit() else 0
        if days not in DAY_CHOICES:
            return _last_days(
                DEFAULT_DAYS, today, f"“{days_raw}” is not a range we offer (7, 14, 30 or 90 days); "
                f"showing the last {DEFAULT_DAYS} days.",
            )
    if not start_raw and not end_raw:
        return _last_days(days, today)

    try:
        end = date.fromisoformat(end_raw) if end_raw else today
        start = date.fromisoformat(start_raw) if start_raw else end - timedelta(days=days - 1)
    except (ValueError, OverflowError):
        return _last_days(
            DEFAULT_DAYS, today, f"Dates are written like {today.isoformat()}; "
            f"showing the last {DEFAULT_DAYS} days.",
        )
    date_range = DateRange(start, end)
    # Far-off years would overflow once turned into UTC datetimes.
    if not (EARLIEST <= start and end <= LATEST):
        return _last_days(
            DEFAULT_DAYS, today, f"Dates must be between {EARLIEST} and {LATEST}; "
            f"showing the last {DEFAULT_DAYS} days.",
        )
    if start > end:
        return _last_days(
            DEFAULT_DAYS, today, f"The start ({start}) is after the end ({end}); "
            f"showing the last {DEFAULT_DAYS} days.",
        )
    if len(date_range.days) > MAX_RANGE_DAYS:
        return _last_days(
            DEFAULT_DAYS, today, f"A range can be at most {MAX_RANGE_DAYS} days long; "
            f"showing the last {DEFAULT_DAYS} days.",
        )
    return date_range


# --- Selectors -----------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCounts:
    completed: int = 0
    failed: int = 0
    unknown: int = 0
    in_flight: int = 0

    @classmethod
    def from_statuses(cls, by_status: Mapping[str, int]) -> "StatusCounts":
        return cls(
            completed=by_status.get(RequestStatus.COMPLETED, 0),
            failed=by_status.get(RequestStatus.FAILED, 0),
            unknown=by_status.get(RequestStatus.UNKNOWN, 0),
            in_flight=sum(by_status.get(status, 0) for status in ImageRequest.IN_FLIGHT),
        )

    def __add__(self, other: "StatusCounts") -> "StatusCounts":
        return StatusCounts(
            completed=self.completed + other.completed,
            failed=self.failed + other.failed,
            unknown=self.unknown + other.unknown,
            in_flight=self.in_flight + other.in_flight,
        )

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.unknown + self.in_flight

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.unknown

    @property
    def success_percent(self) -> float | None:
        """Completed out of finished; requests still in flight don't count either way."""
        return 100 * self.completed / self.finished if self.finished else None


@dataclass(frozen=True)
class Breakdown:
    """Requests per day by one dimension (user, model, token): a days × values table."""

    name: str
    columns: list[str]
    rows: list[tuple[date, list[int], int]]  # day, a count per column, the day's total
    totals: list[int]
    total: int


@dataclass(frozen=True)
class FailureReason:
    error_code: str
    count: int
    example: str


@dataclass(frozen=True)
class TimeToResult:
    count: int
    median: timedelta | None
    p95: timedelta | None


def requests_in_range(date_range: DateRange) -> QuerySet[ImageRequest]:
    since, until = date_range.bounds
    return ImageRequest.objects.filter(created_at__gte=since, created_at__lt=until).order_by()


def _counts_by_day(requests: QuerySet[ImageRequest], field_name: str) -> dict[tuple[date, object], int]:
    day = TruncDate("created_at", tzinfo=timezone.get_current_timezone())
    rows = requests.annotate(day=day).values("day", field_name).annotate(n=Count("pk")).order_by()
    counts: dict[tuple[date, object], int] = defaultdict(int)
    for row in rows:
        counts[row["day"], row[field_name]] += row["n"]
    return counts


def daily_status_counts(*, date_range: DateRange) -> list[tuple[date, StatusCounts]]:
    counts = _counts_by_day(requests_in_range(date_range), "status")
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for (day, status), n in counts.items():
        by_day[day][status] = n
    return [(day, StatusCounts.from_statuses(by_day[day])) for day in date_range.days]


def daily_breakdown(
    *, date_range: DateRange, field_name: str, name: str, label: Callable[[object], str] = str
) -> Breakdown:
    """Requests per day by `field_name`, columns ordered by their total, busiest first."""
    counts: dict[tuple[date, str], int] = defaultdict(int)
    for (day, value), n in _counts_by_day(requests_in_range(date_range), field_name).items():
        counts[day, label(value)] += n
    column_totals: dict[str, int] = defaultdict(int)
    for (_, column), n in counts.items():
        column_totals[column] += n
    columns = sorted(column_totals, key=lambda column: (-column_totals[column], column))
    rows = []
    for day in date_range.days:
        cells = [counts.get((day, column), 0) for column in columns]
        rows.append((day, cells, sum(cells)))
    return Breakdown(
        name=name,
        columns=columns,
        rows=rows,
        totals=[column_totals[column] for column in columns],
        total=sum(column_totals.values()),
    )


def _model_label(value: str) -> str:
    return options.Model(value).label if value in options.Model.values else value


def _token_label(value: str | None) -> str:
    return value if value is not None else NO_TOKEN


def daily_breakdowns(*, date_range: DateRange) -> list[Breakdown]:
    return [
        daily_breakdown(date_range=date_range, field_name="user__username", name="user"),
        daily_breakdown(date_range=date_range, field_name="model", name="model", label=_model_label),
        daily_breakdown(
            date_range=date_range, field_name="upstream_token__name", name="upstream token", label=_token_label
        ),
    ]


def top_failure_reasons(*, date_range: DateRange, limit: int = 10) -> list[FailureReason]:
    rows = (
        requests_in_range(date_range)
        .filter(status__in=UNSUCCESSFUL)
        .values("error_code")
        .annotate(count=Count("pk"), example=Max("error_message"))
        .order_by("-count", "error_code")[:limit]
    )
    return [
        FailureReason(error_code=row["error_code"] or NO_ERROR_CODE, count=row["count"], example=row["example"] or "")
        for row in rows
    ]


def _percentile(ordered: QuerySet, count: int, percent: int) -> timedelta:
    """Linear interpolation between the closest ranks (as PostgreSQL's percentile_cont)."""
    low, remainder = divmod(percent * (count - 1), 100)
    values = list(ordered[low : low + 2])
    if remainder == 0 or len(values) == 1:
        return values[0]
    return values[0] + (values[1] - values[0]) * remainder / 100


def time_to_result(*, date_range: DateRange) -> TimeToResult:
    """Median and 95th percentile of finished_at - created_at over completed requests.

    The database sorts the durations; only the two or so rows around each
    percentile are fetched, so this works the same on SQLite and PostgreSQL.
    """
    durations = (
        requests_in_range(date_range)
        .filter(status=RequestStatus.COMPLETED, finished_at__isnull=False)
        .annotate(duration=ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField()))
    )
    count = durations.count()
    if not count:
        return TimeToResult(count=0, median=None, p95=None)
    ordered = durations.order_by("duration", "pk").values_list("duration", flat=True)
    return TimeToResult(
        count=count, median=_percentile(ordered, count, 50), p95=_percentile(ordered, count, 95)
    )


def usage_today(*, now: datetime | None = None) -> tuple[StatusCounts, list[tuple[str, StatusCounts]]]:
    """Today's requests in all, and per user (busiest first), in one query."""
    rows = (
        ImageRequest.objects.filter(created_at__gte=local_day_start(now))
        .values("user__username", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    everyone: dict[str, int] = defaultdict(int)
    per_user: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        everyone[row["status"]] += row["n"]
        per_user[row["user__username"]][row["status"]] = row["n"]
    users = [(username, StatusCounts.from_statuses(counts)) for username, counts in per_user.items()]
    users.sort(key=lambda item: (-item[1].total, item[0]))
    return StatusCounts.from_statuses(everyone), users


# --- SVG charts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no bar (e.g. no rate on a day without finished requests)
    css_class: str
    fill: str  # the fallback colour; dashboard.css sets the real ones, light and dark


@dataclass(frozen=True)
class ChartBox:
    width: int = 720
    height: int = 240
    left: int = 48
    right: int = 12
    top: int = 28
    bottom: int = 36

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above value: a round top for the y axis."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def _px(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def bar_chart_svg(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    y_max: float | None = None,
    unit: str = "",
    box: ChartBox = ChartBox(),
) -> SafeString:
    """A stacked bar chart with axes, a legend and a tooltip per bar, as inline SVG."""
    stacks = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = y_max if y_max is not None else nice_ceiling(max(stacks, default=0))
    slot = box.plot_width / max(len(labels), 1)
    bar_width = max(slot * 0.7, 1)
    baseline = box.top + box.plot_height

    def y(value: float) -> float:
        return baseline - box.plot_height * value / top

    parts: list[SafeString] = [
        format_html(
            '<svg role="img" aria-labelledby="{0}-title {0}-desc" viewBox="0 0 {1} {2}" width="{1}" height="{2}" '
            'class="chart" xmlns="http://www.w3.org/2000/svg">'
            '<title id="{0}-title">{3}</title><desc id="{0}-desc">{4}</desc>',
            chart_id, box.width, box.height, title, description,
        )
    ]
    # The y axis: gridlines and labels at 0, the top, and half-way when that is a whole number.
    for tick in (0, top / 2, top) if (top / 2).is_integer() else (0, top):
        parts.append(format_html(
            '<line class="chart__grid" x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ccc" stroke-width="1"/>'
            '<text class="chart__label" x="{}" y="{}" text-anchor="end" font-size="11" fill="#666">{}{}</text>',
            box.left, box.width - box.right, _px(y(tick)), _px(y(tick)), box.left - 6, _px(y(tick) + 4), _number(tick), unit,
        ))
    # The bars, stacked in the order of the series.
    for i, label in enumerate(labels):
        x = box.left + i * slot + (slot - bar_width) / 2
        bottom = 0.0
        for s in series:
            value = s.values[i]
            if not value:
                continue
            parts.append(format_html(
                '<rect class="chart__bar {}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                "<title>{}: {}{} {}</title></rect>",
                s.css_class, _px(x), _px(y(bottom + value)), _px(bar_width), _px(y(bottom) - y(bottom + value)), s.fill,
                label, _number(value), unit, s.name,
            ))
            bottom += value
    # The x axis: the baseline and about a dozen labels at most.
    parts.append(format_html(
        '<line class="chart__axis" x1="{}" x2="{}" y1="{}" y2="{}" stroke="#888" stroke-width="1"/>',
        box.left, box.width - box.right, baseline, baseline,
    ))
    every = math.ceil(len(labels) / 12) or 1
    for i in range(0, len(labels), every):
        parts.append(format_html(
            '<text class="chart__label" x="{}" y="{}" text-anchor="middle" font-size="11" fill="#666">{}</text>',
            _px(box.left + (i + 0.5) * slot), baseline + 16, labels[i],
        ))
    # The legend, top left.
    x = box.left
    for s in series:
        parts.append(format_html(
            '<rect class="{}" x="{}" y="8" width="10" height="10" fill="{}"/>'
            '<text class="chart__label" x="{}" y="17" font-size="11" fill="#666">{}</text>',
            s.css_class, x, s.fill, x + 14, s.name,
        ))
        x += 24 + 7 * len(s.name)
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def _day_label(day: date) -> str:
    return day.strftime("%b %d").replace(" 0", " ")


def requests_chart(daily: Sequence[tuple[date, StatusCounts]]) -> SafeString:
    counts = [c for _, c in daily]
    return bar_chart_svg(
        chart_id="requests-chart",
        title="Requests per day",
        description="Stacked bars per day: completed, failed or unknown, and still in flight. "
        "The table beside it has the same numbers.",
        labels=[_day_label(day) for day, _ in daily],
        series=[
            Series("completed", [c.completed for c in counts], "chart__bar--completed", "#2e7d32"),
            Series("failed or unknown", [c.failed + c.unknown for c in counts], "chart__bar--failed", "#c62828"),
            Series("in flight", [c.in_flight for c in counts], "chart__bar--in-flight", "#f9a825"),
        ],
    )


def success_chart(daily: Sequence[tuple[date, StatusCounts]]) -> SafeString:
    return bar_chart_svg(
        chart_id="success-chart",
        title="Success rate per day",
        description="Completed requests as a percentage of finished ones, per day; "
        "no bar on days with nothing finished.",
        labels=[_day_label(day) for day, _ in daily],
        series=[Series("success rate", [c.success_percent for _, c in daily], "chart__bar--rate", "#1565c0")],
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


# --- Views ---------------------------------------------------------------------------


@require_GET
@never_cache
@staff_member_required
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
        "requests_chart": requests_chart(daily),
        "success_chart": success_chart(daily),
        "durations": durations,
        "median": format_duration(durations.median),
        "p95": format_duration(durations.p95),
        "breakdowns": daily_breakdowns(date_range=date_range),
        "failures": top_failure_reasons(date_range=date_range),
        "export_url": f"{reverse('usage-export')}?{date_range.query}",
    }
    return render(request, "admin/usage_dashboard.html", context)


# --- CSV export ----------------------------------------------------------------------

CSV_HEADER = ("user", "time", "model", "action", "resolution", "token", "status")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_safe(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection): a cell never starts with = + - @."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def export_rows(*, date_range: DateRange) -> Iterator[tuple[str, ...]]:
    rows = (
        requests_in_range(date_range)
        .order_by("created_at", "pk")
        .values_list("user__username", "created_at", "model", "action", "resolution", "upstream_token__name", "status")
    )
    for username, created_at, model, action, resolution, token_name, status in rows.iterator(chunk_size=2000):
        yield (username, timezone.localtime(created_at).isoformat(), model, action, resolution, token_name or "", status)


def _csv_lines(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


@require_GET
@never_cache
@staff_member_required
def usage_export(request: HttpRequest) -> StreamingHttpResponse:
    """One row per request in the range, for chargeback; streamed, however many there are."""
    date_range = parse_range(request.GET, today=timezone.localdate())
    filename = f"bananaweb-usage-{date_range.start}-to-{date_range.end}.csv"
    return StreamingHttpResponse(
        _csv_lines(export_rows(date_range=date_range)),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
