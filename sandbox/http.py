"""Plain request/response objects the broker simulators speak, apart from any server."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs


class _Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return str(o)
        return super().default(o)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, cls=_Encoder, separators=(",", ":")).encode()


@dataclass
class Request:
    method: str
    path: str
    raw_query: str = ""
    headers: dict[str, str] = field(default_factory=dict)   # keys lower-cased
    body: bytes = b""
    client_ip: str = "127.0.0.1"
    host: str = ""                                          # the Host header, as the client sent it

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """Repeated keys (`product_ids=A&product_ids=B`) and `name[]` forms."""
        q = self.query
        return q.get(name, []) + q.get(name + "[]", [])

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body or b"null", parse_float=Decimal)

    def form(self) -> dict[str, str]:
        """Body as a flat dict: form-encoded or JSON (Kraken accepts both)."""
        ctype = self.header("content-type", "")
        if "json" in ctype:
            data = self.json() or {}
            return {k: str(v) for k, v in data.items()}
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, dumps(obj), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


class SimError(Exception):
    """Raised inside a simulator to answer with `response` (keeps handlers flat)."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response
