"""Query-string lookups the admin lists accept, kept within what the database can
take: Django turns `created_at__year=0` into a 500 when it builds the query."""

from django.contrib import admin

# The date parts a lookup can name, and the values each can hold.
DATE_PARTS = {
    "year": (1, 9999),
    "iso_year": (1, 9999),
    "quarter": (1, 4),
    "month": (1, 12),
    "week": (1, 53),
    "day": (1, 31),
    "week_day": (1, 7),
    "iso_week_day": (1, 7),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
}


def date_part_in_range(lookup: str, value: object) -> bool:
    """False when the lookup names a date part and the value is outside it."""
    parts = [part for part in lookup.split("__") if part in DATE_PARTS]
    if not parts or not isinstance(value, str):
        return True
    low, high = DATE_PARTS[parts[-1]]
    text = value.strip().lstrip("0") or "0"
    # Length first: Python refuses to read an int of thousands of digits.
    fits = len(text) <= len(str(high))
    return fits and text.isascii() and text.isdigit() and low <= int(text) <= high


class SafeLookupsMixin:
    """For every ModelAdmin of ours: an out-of-range date part is refused (a 400,
    as any lookup the admin doesn't allow) instead of failing the query."""

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if not date_part_in_range(lookup, value):
            return False
        return super().lookup_allowed(lookup, value, request)


class ModelAdmin(SafeLookupsMixin, admin.ModelAdmin):
    pass
