"""The Flex Web Service's two calls, its error table, and the pace it allows (docs/brokers.md).

    GET /AccountManagement/FlexWebService/SendRequest?t=TOKEN&q=QUERY_ID&v=3&fd=yyyymmdd&td=yyyymmdd
        -> <FlexStatementResponse><Status>Success</Status><ReferenceCode>..</ReferenceCode><Url>..</Url>
    GET /AccountManagement/FlexWebService/GetStatement?t=TOKEN&q=REFERENCE_CODE&v=3
        -> <FlexQueryResponse> (the statement), or <Status>Warn</Status><ErrorCode>1019</ErrorCode>
           while IBKR is still generating it

Every answer is HTTP 200; a failure is a FlexStatementResponse with Status Fail (or Warn),
ErrorCode and ErrorMessage. The token travels in the query string, so nothing here ever puts
a URL in a message or a log line: BrokerSession names the path only, and scrubs the token
from any text the broker echoes.
"""
from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import requests

from ...dtos import Credentials
from ...errors import AuthError, BrokerError, PermanentError, RateLimited, TransientError
from ...http import BrokerSession

SERVICE = "/AccountManagement/FlexWebService"
SEND_REQUEST = f"{SERVICE}/SendRequest"
GET_STATEMENT = f"{SERVICE}/GetStatement"
VERSION = "3"

# Waits before each GetStatement poll while IBKR answers 1019. Portfolio Performance's client
# starts at 2 s and doubles; ibflex's waits 5 s. In all they stay within one in-place wait
# (BROKER_MAX_INPLACE_WAIT, 10 s): after them the step hands its thread back and comes back
# to the same reference code.
POLL_WAITS = (2.0, 3.0, 5.0)
GENERATION_RETRY_SECONDS = 15.0
# 1018 "too many requests": ibflex's client waits 10 s; 1009 "server under heavy load": 5 s.
THROTTLED_WAIT = 10.0
BUSY_WAIT = 5.0
# IBKR allows one request per second per token (Flex error table, code 1018). Padded a little:
# the second is counted where the request arrives, not where it leaves.
MIN_SPACING_SECONDS = 1.1

STILL_GENERATING = "1019"
# Codes that mean the user has to act in Client Portal; each message says what to do there.
AUTH_MESSAGES = {
    "1011": "the Flex Web Service is not active for this account (IBKR code 1011). Activate it in Client "
            "Portal > Settings > Flex Web Service, then reconnect.",
    "1012": "the Flex token has expired (IBKR code 1012). Generate a new token in Client Portal > Settings > "
            "Flex Web Service (choose a long expiry) and update this connection.",
    "1013": "IBKR refused this request's IP address (IBKR code 1013): the token is restricted to another IP. "
            "In Client Portal > Settings > Flex Web Service, generate a token without an IP restriction, or for "
            "brokersync's address.",
    "1014": "the Flex query id is not valid (IBKR code 1014). Check the id of the Activity Flex Query in "
            "Client Portal > Performance & Reports > Flex Queries.",
    "1015": "the Flex token is not valid (IBKR code 1015): it was mistyped, or a newer token replaced it. "
            "Copy the current token from Client Portal > Settings > Flex Web Service.",
    "1016": "IBKR says the account is not valid (IBKR code 1016): it may be closed, or the query does not "
            "cover it. Check the Flex query's account in Client Portal.",
}
REVOKED = frozenset({"1015"})            # replaced by a newer token: the old one never works again
RATE_LIMITED = {"1018": THROTTLED_WAIT, "1009": BUSY_WAIT}
# "Please try again shortly": generation failed or its data (settlement, P/L) is not ready yet.
TRANSIENT = frozenset({"1001", "1004", "1005", "1006", "1007", "1008", "1021"})
# 1003 statement not available, 1010 legacy query, 1017 reference code invalid, 1020 invalid
# request, and any code IBKR adds later: the request will not work as it is.


@dataclass(frozen=True)
class Window:
    """The days one statement covers, both ends included (IBKR's fd/td, at most 365 days)."""

    start: date
    end: date

    def params(self) -> dict[str, str]:
        return {"fd": self.start.strftime("%Y%m%d"), "td": self.end.strftime("%Y%m%d")}

    def key(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


class StillGenerating(RateLimited):
    """IBKR is still generating the statement after our in-place polls: come back later and
    ask again for the same reference code."""

    def __init__(self, reference: str):
        super().__init__(f"ibkr: statement {reference} is still being generated (IBKR code 1019)",
                         retry_after=GENERATION_RETRY_SECONDS, code=STILL_GENERATING)
        self.reference = reference


def decode(content: bytes) -> ET.Element:
    """The answer's XML root. ValueError (a malformed body, retried like any other) when the
    XML is cut or is not XML at all."""
    try:
        return ET.fromstring(content)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc.code}") from None


def envelope(root: ET.Element) -> dict[str, str]:
    """A FlexStatementResponse's children as {tag: text}: Status, ReferenceCode, Url, ErrorCode,
    ErrorMessage (IBKR sends ErrorCode as an element; an attribute is read too)."""
    fields = {child.tag: (child.text or "").strip() for child in root}
    if "ErrorCode" not in fields and root.get("ErrorCode"):
        fields["ErrorCode"] = root.get("ErrorCode", "")
    return fields


def classify(code: str, message: str) -> BrokerError:
    """One Flex error code -> our error kind. Messages are IBKR's own (they never echo the
    token) or ours for the cases the user must fix."""
    text = f"ibkr: {AUTH_MESSAGES.get(code) or (message or 'error')[:200]}"
    if code in AUTH_MESSAGES:
        return AuthError(text, code=code, revoked=code in REVOKED)
    if code in RATE_LIMITED:
        return RateLimited(f"{text} (IBKR code {code})", retry_after=RATE_LIMITED[code], code=code)
    if code in TRANSIENT:
        return TransientError(f"{text} (IBKR code {code})", code=code)
    return PermanentError(f"{text} (IBKR code {code})", code=code)


def vendor_errors(response: requests.Response, body: Any) -> BrokerError | None:
    """A FlexStatementResponse that is not a success -> its error kind (1019 is no error: the
    poll loop reads it). Non-XML 5xx pages (a proxy's or IBKR's maintenance page) are transient."""
    status = response.status_code
    if isinstance(body, ET.Element):
        if body.tag == "FlexQueryResponse":
            return None
        if body.tag != "FlexStatementResponse":
            return TransientError(f"ibkr: unexpected answer <{body.tag[:40]}>", status=status)
        fields = envelope(body)
        code = fields.get("ErrorCode", "")
        if fields.get("Status") == "Success" or code == STILL_GENERATING:
            return None
        return classify(code, fields.get("ErrorMessage", ""))
    if status >= 500:
        return TransientError(f"ibkr: HTTP {status}", status=status)
    return None


class _Pacer:
    """At least MIN_SPACING_SECONDS between two requests with one token from this process.
    Real time, not the session's sleep: it is IBKR's rule, not a wait we may skip in tests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait(self, scope: str) -> None:
        with self._lock:
            now = time.monotonic()
            due = max(now, self._next.get(scope, 0.0))
            self._next[scope] = due + MIN_SPACING_SECONDS
        if due > now:
            time.sleep(due - now)


_PACER = _Pacer()


class FlexClient:
    """SendRequest and GetStatement through the one BrokerSession (limiter, retries, errors)."""

    def __init__(self, session: BrokerSession, credentials: Credentials):
        self.session = session
        self.token = credentials.api_secret
        self.query_id = credentials.api_key
        self.statement_path = GET_STATEMENT

    def send_request(self, window: Window) -> str:
        """Ask IBKR to generate the statement of `window`: its reference code."""
        root = self._get(SEND_REQUEST, {"q": self.query_id, **window.params()})
        fields = envelope(root) if root.tag == "FlexStatementResponse" else {}
        reference = fields.get("ReferenceCode", "")
        if not reference.isdigit():
            raise TransientError("ibkr: SendRequest answered without a reference code")
        # The answer names where to fetch it; the host stays the configured one (the sandbox).
        path = urlsplit(fields.get("Url", "")).path
        if path.endswith("/GetStatement"):
            self.statement_path = path
        return reference

    def poll(self, reference: str) -> ET.Element:
        """The statement, polling while IBKR generates it. StillGenerating when the polls run
        out (the caller keeps the reference code for its retry)."""
        budget = self.session.policy.max_inplace_wait
        waits = [w for i, w in enumerate(POLL_WAITS) if sum(POLL_WAITS[:i + 1]) <= budget] or [0.0]
        for wait in waits:
            self.session.sleep(wait)
            root = self._get(self.statement_path, {"q": reference})
            if root.tag == "FlexQueryResponse":
                return root
        raise StillGenerating(reference)

    def _get(self, path: str, params: dict[str, str]) -> ET.Element:
        query = {"t": self.token, **params, "v": VERSION}
        return self.session.request_decoded("GET", path, decode, params=query, sign=self._pace)

    def _pace(self, method: str, path: str, params: Any, data: Any, headers: dict) -> tuple[Any, Any, dict]:
        """Called by the session right before every attempt, in-place retries included."""
        _PACER.wait(self.session.scope)
        return params, data, headers
