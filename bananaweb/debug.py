from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Hide sensitive variables and POST fields on the debug page too.

    Django's filter only works with DEBUG off, but `make run` runs with DEBUG on
    and upstream tokens are the team's money.
    """

    def is_active(self, request: HttpRequest | None) -> bool:
        return True
