"""CDP API key -> a fresh ES256 JWT for every request attempt.

Claims follow the official SDK [CBPY jwt_generator.py; docs/brokers.md §2.2]:
`{"sub": key, "iss": "cdp", "nbf": now, "exp": now + 120, "uri": "GET api.coinbase.com/path"}`,
header `{"alg": "ES256", "kid": key, "nonce": <random hex>, "typ": "JWT"}`. `uri` is built
from the configured base URL's host (so the sandbox's `127.0.0.1:<port>` works) and the
path without its query string (a query in `uri` gets 401 [CB-ISS sieblyio#62]).
"""
from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import AuthError

JWT_LIFETIME = 120          # seconds; the longest Coinbase accepts ("expires after 2 minutes")


def _normalise_pem(secret: str) -> str:
    """Key files downloaded from the CDP portal are JSON, so a pasted secret often still
    holds literal backslash-n sequences instead of newlines."""
    secret = secret.strip()
    if "\\n" in secret and "\n" not in secret:
        secret = secret.replace("\\n", "\n")
    return secret


class JwtSigner:
    """A BrokerSession `sign` hook. Never shows the key in repr or in error messages."""

    def __init__(self, key_name: str, private_pem: str, base_url: str):
        if not key_name:
            raise AuthError("coinbase: the API key name is empty")
        try:
            key = serialization.load_pem_private_key(_normalise_pem(private_pem).encode(), password=None)
        except (ValueError, TypeError, UnicodeError):
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            # `from None` everywhere: the parser's own message may quote the input.
            raise AuthError("coinbase: the private key is not an EC P-256 PEM "
                            "(-----BEGIN EC PRIVATE KEY-----) as issued for CDP API keys") from None
        parts = urlsplit(base_url)
        self._key_name = key_name
        self._key = key
        self._host = parts.netloc
        self._prefix = parts.path.rstrip("/")

    def __repr__(self) -> str:
        return "JwtSigner(<redacted>)"

    def uri(self, method: str, path: str) -> str:
        return f"{method.upper()} {self._host}{self._prefix}{path.split('?', 1)[0]}"

    def token(self, method: str, path: str) -> str:
        now = int(time.time())
        claims = {"sub": self._key_name, "iss": "cdp", "nbf": now, "exp": now + JWT_LIFETIME,
                  "uri": self.uri(method, path)}
        return jwt.encode(claims, self._key, algorithm="ES256",
                          headers={"kid": self._key_name, "nonce": secrets.token_hex()})

    def __call__(self, method: str, path: str, params: Any, data: Any, headers: dict) -> tuple[Any, Any, dict]:
        return params, data, {**headers, "Authorization": f"Bearer {self.token(method, path)}"}
