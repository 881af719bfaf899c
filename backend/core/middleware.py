"""Limits every request under /api/ meets before a view (or a parser) reads its body."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class ApiRequestLimitsMiddleware:
    """A body larger than the limit is refused by its Content-Length (413), before anything
    reads it. File uploads (multipart) have a limit of their own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            refused = _refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return JsonResponse({"message": "Content-Length is not a number.", "fields": {}}, status=400)
    multipart = (request.content_type or "").startswith("multipart/")
    limit = settings.API_MAX_UPLOAD_BYTES if multipart else settings.API_MAX_BODY_BYTES
    if length > limit:
        return JsonResponse({"message": f"The request body is larger than {limit} bytes.", "fields": {}},
                            status=413)
    return None
