"""Usage selectors for the staff dashboard (issue 3): the date range and every query.

Reads only. Every number comes from a few aggregate queries over the date
range, grouped by day in the site's time zone; nothing is queried per row.
"""

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.http import urlencode

from bananaweb import options
from bananaweb.models import ImageRequest, RequestStatus, local_day_start

NO_TOKEN = "no token"
NO_ERROR_CODE = "(no code)"
# Finished without an image: what the success rate counts against completed.
UNSUCCESSFUL = (RequestStatus.FAILED, RequestStatus.UNKNOWN)

# --- Date ranges -----------------------------------------------------------------

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
        length = (self.end - self.start).days + 1
        return [self.start + timedelta(days=n) for n in range(length)]

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


def _fallback(today: date, reason: str) -> DateRange:
    """The last 14 days, with a note saying why the query string was not used."""
    return _last_days(
        DEFAULT_DAYS, today, f"{reason}; showing the last {DEFAULT_DAYS} days."
    )


def parse_range(params: Mapping[str, str], *, today: date) -> DateRange:
    """The range in ?days= or ?start=&end=; else the last 14 days, with a note."""
    days_raw = params.get("days", "").strip()
    start_raw = params.get("start", "").strip()
    end_raw = params.get("end", "").strip()
    days = DEFAULT_DAYS
    if days_raw:
        # ASCII digits only ("²".isdigit(), and int() reads "١٤" and "１４"), and few
        # of them (int() refuses more than 4300).
        strict = days_raw.isascii() and days_raw.isdigit() and len(days_raw) <= 3
        days = int(days_raw) if strict else 0
        if days not in DAY_CHOICES:
            return _fallback(
                today, f"“{days_raw}” is not a range we offer (7, 14, 30 or 90 days)"
            )
    if not start_raw and not end_raw:
        return _last_days(days, today)

    try:
        end = date.fromisoformat(end_raw) if end_raw else today
        start = (
            date.fromisoformat(start_raw)
            if start_raw
            else end - timedelta(days=days - 1)
        )
    except (ValueError, OverflowError):
        return _fallback(today, f"Dates are written like {today.isoformat()}")
    date_range = DateRange(start, end)
    # Far-off years would overflow once turned into UTC datetimes.
    if not (EARLIEST <= start and end <= LATEST):
        return _fallback(today, f"Dates must be between {EARLIEST} and {LATEST}")
    if start > end:
        return _fallback(today, f"The start ({start}) is after the end ({end})")
    if len(date_range.days) > MAX_RANGE_DAYS:
        return _fallback(today, f"A range can be at most {MAX_RANGE_DAYS} days long")
    return date_range


# --- Results ---------------------------------------------------------------------


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
            in_flight=sum(
                by_status.get(status, 0) for status in ImageRequest.IN_FLIGHT
            ),
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
        """Completed out of finished; requests in flight don't count either way."""
        return 100 * self.completed / self.finished if self.finished else None


@dataclass(frozen=True)
class Breakdown:
    """Requests per day by one dimension (user, model, token): days × values."""

    name: str
    columns: list[str]
    rows: list[tuple[date, list[int], int]]  # day, a count per column, day's total
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


# --- Selectors -------------------------------------------------------------------


def requests_in_range(date_range: DateRange) -> QuerySet[ImageRequest]:
    since, until = date_range.bounds
    return ImageRequest.objects.filter(
        created_at__gte=since, created_at__lt=until
    ).order_by()


def _counts_by_day(
    requests: QuerySet[ImageRequest], field_name: str
) -> dict[tuple[date, object], int]:
    day = TruncDate("created_at", tzinfo=timezone.get_current_timezone())
    rows = (
        requests.annotate(day=day)
        .values("day", field_name)
        .annotate(n=Count("pk"))
        .order_by()
    )
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
    *,
    date_range: DateRange,
    field_name: str,
    name: str,
    label: Callable[[object], str] = str,
) -> Breakdown:
    """Requests per day by `field_name`, columns ordered by total, busiest first."""
    counts: dict[tuple[date, str], int] = defaultdict(int)
    by_value = _counts_by_day(requests_in_range(date_range), field_name)
    for (day, value), n in by_value.items():
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
        daily_breakdown(
            date_range=date_range, field_name="user__username", name="user"
        ),
        daily_breakdown(
            date_range=date_range, field_name="model", name="model", label=_model_label
        ),
        daily_breakdown(
            date_range=date_range,
            field_name="upstream_token__name",
            name="upstream token",
            label=_token_label,
        ),
    ]


def top_failure_reasons(
    *, date_range: DateRange, limit: int = 10
) -> list[FailureReason]:
    rows = (
        requests_in_range(date_range)
        .filter(status__in=UNSUCCESSFUL)
        .values("error_code")
        .annotate(count=Count("pk"), example=Max("error_message"))
        .order_by("-count", "error_code")[:limit]
    )
    return [
        FailureReason(
            error_code=row["error_code"] or NO_ERROR_CODE,
            count=row["count"],
            example=row["example"] or "",
        )
        for row in rows
    ]


def _percentile(ordered: QuerySet, count: int, percent: int) -> timedelta:
    """Interpolates between the closest ranks, like PostgreSQL's percentile_cont."""
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
    duration = ExpressionWrapper(
        F("finished_at") - F("created_at"), output_field=DurationField()
    )
    durations = (
        requests_in_range(date_range)
        .filter(status=RequestStatus.COMPLETED, finished_at__isnull=False)
        .annotate(duration=duration)
    )
    count = durations.count()
    if not count:
        return TimeToResult(count=0, median=None, p95=None)
    ordered = durations.order_by("duration", "pk").values_list("duration", flat=True)
    return TimeToResult(
        count=count,
        median=_percentile(ordered, count, 50),
        p95=_percentile(ordered, count, 95),
    )


def usage_today(
    *, now: datetime | None = None
) -> tuple[StatusCounts, list[tuple[str, StatusCounts]]]:
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
    users = [
        (username, StatusCounts.from_statuses(counts))
        for username, counts in per_user.items()
    ]
    users.sort(key=lambda item: (-item[1].total, item[0]))
    return StatusCounts.from_statuses(everyone), users


def export_rows(*, date_range: DateRange) -> Iterator[tuple[str, ...]]:
    """One row per request in the range, oldest first, in the CSV's column order."""
    rows = (
        requests_in_range(date_range)
        .order_by("created_at", "pk")
        .values_list(
            "user__username",
            "created_at",
            "model",
            "action",
            "resolution",
            "upstream_token__name",
            "status",
        )
    )
    for row in rows.iterator(chunk_size=2000):
        username, created_at, model, action, resolution, token_name, status = row
        yield (
            username,
            timezone.localtime(created_at).isoformat(),
            model,
            action,
            resolution,
            token_name or "",
            status,
        )
