"""What services raise for API callers: a message and, optionally, per-field messages."""
from __future__ import annotations


class ApplicationError(Exception):
    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, status: int = 400,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.status = status
        self.headers = headers or {}        # e.g. Retry-After on a 503
