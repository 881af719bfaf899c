"""JSON bodies with bounds: the size (settings.API_MAX_BODY_BYTES) and the nesting depth
(settings.API_MAX_JSON_DEPTH). Python's parser recurses once per level, so a body nested
100,000 deep would otherwise end in a RecursionError (a 500) instead of a 400."""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise ParseError(f"The request body is larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_refuse_constant
                              if api_settings.STRICT_JSON else None)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {settings.API_MAX_JSON_DEPTH} levels.") from None
        except ValueError as exc:          # includes UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
        if _deeper_than(data, settings.API_MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested deeper than {settings.API_MAX_JSON_DEPTH} levels.")
        return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _deeper_than(data: Any, limit: int) -> bool:
    """Iterative, so the check itself cannot recurse too deep."""
    stack = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
