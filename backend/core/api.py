"""One error shape for the whole API: {"message": ..., "fields": {name: [messages]}}."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import ApplicationError


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "fields": exc.fields}, status=exc.status)
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
