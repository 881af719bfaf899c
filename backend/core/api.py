"""One error shape for the whole API: {"message": ..., "fields": {name: [messages]}}, also for
paths no view answers (404) and errors no view caught (500) under /api/."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import ApplicationError


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "fields": exc.fields}, status=exc.status, headers=exc.headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(getattr(exc, "message_dict", {"non_field_errors": exc.messages}))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = {"message": "Invalid input.", "fields": fields}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"message": str(response.data["detail"]), "fields": {}}
    if response.status_code == status.HTTP_404_NOT_FOUND:
        response.data = {"message": "Not found.", "fields": {}}
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON under /api/ (an unknown path, a non-numeric id), Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse({"message": "Not found.", "fields": {}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: never a traceback or an HTML page to an API client."""
    if _is_api(request):
        return JsonResponse({"message": "Server error.", "fields": {}}, status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400 (e.g. a Host not in ALLOWED_HOSTS, a malformed multipart body)."""
    if _is_api(request):
        return JsonResponse({"message": "Bad request.", "fields": {}}, status=400)
    return defaults.bad_request(request, exception)
