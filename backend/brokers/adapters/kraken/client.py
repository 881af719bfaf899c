"""Talking to Kraken: signing and the error table.

Kraken answers almost everything with HTTP 200 and puts errors in the body
(`{"error": ["EAPI:Invalid nonce"]}`, docs/brokers.md §4.6). `vendor_errors` turns
them into error kinds; BrokerSession retries those in place like any other, calling
`_sign` again on every attempt, so a retry after `EAPI:Invalid nonce` carries a fresh
nonce and a retry after `EAPI:Rate limit exceeded` waits for the counter to decay.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from ...base import egress_ip
from ...dtos import Credentials
from ...errors import AuthError, BrokerError, PermanentError, RateLimited, TransientError
from ...http import BrokerSession
from .assets import AssetBook

# Call-counter costs (docs.kraken.com ratelimits, §4.5): history calls cost 2, others 1.
# AddOrder counts against the per-pair trading limiter, not the call counter.
COSTS = {"Ledgers": 2, "QueryLedgers": 2, "TradesHistory": 2, "AddOrder": 0}
STARTER_DECAY = 0.33            # counter units per second on the Starter tier (the slowest)
PUBLIC_WAIT = 1.0               # public calls: ~1 per second per IP
PUBLIC_BUDGET = "kraken-public"  # the rate rule (settings.BROKER_RATE_LIMITS) of public calls
LOCKOUT_WAIT = 900.0            # "EGeneral:Temporary lockout": Kraken does not say; 15 min is our guess
BOOK_TTL_SECONDS = 3600.0       # Assets / AssetPairs change rarely; KSDK caches them for the process

_AUTH = ("EAPI:Invalid key", "EAPI:Invalid signature", "EGeneral:Permission denied", "EAPI:Feature disabled")
_RATE = ("EAPI:Rate limit exceeded", "EService:Throttled", "EGeneral:Too many requests", "EOrder:Rate limit exceeded")
_TRANSIENT = ("EAPI:Invalid nonce", "EService:", "EGeneral:Internal error", "EDatabase:")
_PERMANENT = ("EGeneral:Invalid arguments", "EQuery:", "EAPI:Bad request", "EGeneral:Unknown method")


def sign_request(secret: str, path: str, nonce: int | str, body: str) -> str:
    """API-Sign = base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body))) (§4.2)."""
    try:
        key = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("kraken: the private key is not valid base64") from None
    digest = hashlib.sha256(f"{nonce}{body}".encode()).digest()
    return base64.b64encode(hmac.new(key, path.encode() + digest, hashlib.sha512).digest()).decode()


def _path_of(response: requests.Response) -> str:
    request = getattr(response, "request", None)
    return urlsplit(getattr(request, "url", "") or "").path


def rate_wait(path: str, decay: float = STARTER_DECAY) -> float:
    """Seconds until the counter has room again for this call: its cost over the decay."""
    if "/public/" in path:
        return PUBLIC_WAIT
    return COSTS.get(path.rsplit("/", 1)[-1], 1) / decay


def vendor_errors(response: requests.Response, body: Any) -> BrokerError | None:
    """Kraken's `error` strings -> error kinds; any 5xx (Cloudflare's 520 too) is transient."""
    status = response.status_code
    errors = body.get("error") if isinstance(body, dict) else None
    if errors:
        return classify(str(errors[0]), status, _path_of(response))
    if status >= 500:
        return TransientError(f"kraken: HTTP {status}", status=status)
    if status < 400 and not isinstance(body, dict):
        return TransientError("kraken: answer is not a JSON object", status=status)
    return None


def classify(text: str, status: int, path: str) -> BrokerError:
    message = f"kraken: {text[:200]} on {path}"      # Kraken's own text: it never echoes the key
    text = text.replace(": ", ":")                   # "EService: Throttled: 1700000000" (§4.5)
    if text.startswith(_AUTH):
        return AuthError(message, status=status, code=text, revoked=text == "EAPI:Invalid key")
    if text.startswith("EGeneral:Temporary lockout"):
        return RateLimited(message, retry_after=LOCKOUT_WAIT, banned=True, status=status, code=text)
    if text.startswith(_RATE):
        return RateLimited(message, retry_after=_throttled_wait(text) or rate_wait(path), status=status, code=text)
    if text.startswith(_TRANSIENT):
        return TransientError(message, status=status, code=text)
    if text.startswith(_PERMANENT):
        return PermanentError(message, status=status, code=text)
    kind = TransientError if status >= 500 else PermanentError
    return kind(message, status=status, code=text)


def _throttled_wait(text: str) -> float:
    """`EService: Throttled: 1700000000` carries the time to come back (§4.5)."""
    tail = text.rsplit(":", 1)[-1].strip()
    return max(0.0, float(tail) - time.time()) if tail.isdigit() else 0.0


def _form_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


_BOOKS: dict[str, tuple[float, AssetBook]] = {}
_BOOKS_GUARD = threading.Lock()


class KrakenClient:
    def __init__(self, session: BrokerSession, credentials: Credentials, nonces: Callable[[], Any]):
        self.session = session
        self.credentials = credentials
        self._nonces = nonces           # called lazily: the Redis source is only needed to sign

    # -- private ------------------------------------------------------------------------
    def private(self, method: str, params: dict[str, Any] | None = None) -> dict:
        path = f"/0/private/{method}"
        with self._nonces().exclusive(self.credentials.api_key):
            body = self.session.request_json("POST", path, data=dict(params or {}), cost=COSTS.get(method, 1),
                                             sign=self._sign)
        result = body.get("result")
        return result if isinstance(result, dict) else {}     # an empty account answers {"error": []}

    def _sign(self, method: str, path: str, params: Any, data: Any, headers: dict) -> tuple[Any, Any, dict]:
        nonce = self._nonces().next(self.credentials.api_key)
        fields = [("nonce", str(nonce))] + [(k, _form_value(v)) for k, v in (data or {}).items()]
        body = urlencode(fields)
        headers = {**headers, "API-Key": self.credentials.api_key,
                   "API-Sign": sign_request(self.credentials.api_secret, path, nonce, body),
                   "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return params, body.encode(), headers

    # -- public -------------------------------------------------------------------------
    def public(self, method: str, params: dict[str, Any] | None = None) -> dict:
        path = f"/0/public/{method}"
        # Counted per IP, not per key (a counter of 30 decaying 1/s in our rule): every user's
        # public calls share it, so they go through the limiter under the IP's scope.
        body = self.session.request_json("GET", path, params=params, cost=1,
                                         budget=(PUBLIC_BUDGET, f"{PUBLIC_BUDGET}:ip:{egress_ip()}"))
        result = body.get("result")
        if not isinstance(result, dict):
            raise TransientError(f"kraken: no result from {path}")
        return result

    def book(self, *, refresh: bool = False) -> AssetBook:
        """Assets and pairs, cached per base URL for an hour (they are the same for every user)."""
        url = self.session.base_url
        with _BOOKS_GUARD:
            cached = _BOOKS.get(url)
        if cached and not refresh and cached[0] > time.monotonic():
            return cached[1]
        book = AssetBook(self.public("Assets"), self.public("AssetPairs"))
        with _BOOKS_GUARD:
            _BOOKS[url] = (time.monotonic() + BOOK_TTL_SECONDS, book)
        return book
