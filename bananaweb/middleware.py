from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware


class GZipPagesMiddleware(GZipMiddleware):
    """GZip for pages and fragments; images are compressed already.

    Django's GZipMiddleware carries the BREACH mitigation (randomised padding).
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if response.get("Content-Type", "").startswith("image/"):
            return response
        return super().process_response(request, response)
