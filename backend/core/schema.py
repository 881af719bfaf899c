"""The OpenAPI schema says what the API does: a text field that may not be blank needs a
character that is not whitespace (DRF trims input), and an operation a throttle guards
(backend/core/throttling.py) documents its 429 answer."""
from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

NOT_BLANK = r"\S"           # JSON Schema patterns are searched, not anchored: one non-space


class AutoSchema(openapi.AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and _must_not_be_blank(field) and schema.get("type") == "string":
            schema.setdefault("minLength", 1)
            schema.setdefault("pattern", NOT_BLANK)
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if getattr(self.view, "throttle_scopes", {}).get(self.method.upper()) and "429" not in responses:
            from .serializers import ErrorSerializer

            throttled = OpenApiResponse(ErrorSerializer, description="Too many requests: try again after the "
                                                                      "Retry-After header's seconds.")
            responses["429"] = self._get_response_for_code(throttled, "429", direction=direction)
        return responses


def _must_not_be_blank(field) -> bool:
    return isinstance(field, serializers.CharField) and not field.allow_blank and not field.read_only


class TokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Token <token>` (backend/core/auth.py) in the schema's security schemes."""

    target_class = "backend.core.auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": 'A token from POST /api/v1/auth/token/, prefixed "Token ".'}
