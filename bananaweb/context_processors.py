from django.conf import settings
from django.http import HttpRequest


def upstream(request: HttpRequest) -> dict:
    return {"upstream_simulated": settings.MOUNTSEA_SIMULATED}
