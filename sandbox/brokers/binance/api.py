"""HTTP face of the Binance simulator: routes, weights, rate limits, SIGNED auth, errors.

Order of checks, as Binance answers: route; /api weight for the IP (429/418 before
anything else, so even bad keys spend weight); API key (-2014 format, -2015 unknown or
revoked); timestamp/recvWindow (-1021); signature (-1022); /sapi weight; the handler.
Every /api answer carries X-MBX-USED-WEIGHT-1M; /sapi answers X-SAPI-USED-IP-WEIGHT-1M
or X-SAPI-USED-UID-WEIGHT-1M.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs

from ...http import Request, Response, SimError
from . import handlers as h

if TYPE_CHECKING:
    from .sim import BinanceSim
    from .state import Account

KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{64}$")
MAX_RECV_WINDOW = 60_000             # rest-api.md "Timing security": max 60,000 ms
DEFAULT_RECV_WINDOW = 5_000
TOO_MUCH_WEIGHT = ("Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
                   "Please use WebSocket Streams for live updates to avoid polling the API.")
BANNED = ("Way too much request weight used; IP banned until {until}. "
          "Please use WebSocket Streams for live updates to avoid bans.")


@dataclass(frozen=True)
class Route:
    handler: Callable[..., Any]
    weight: Callable[[dict[str, str]], int]
    signed: bool = True
    sapi: str = ""                    # "" for /api, "ip" or "uid" for /sapi weight


def _fixed(n: int) -> Callable[[dict[str, str]], int]:
    return lambda q: n


# Weights from rest-api.md and the wallet connector's docstrings (see docs/brokers.md §3.3).
ROUTES: dict[str, Route] = {
    "/api/v3/ping": Route(h.ping, _fixed(1), signed=False),
    "/api/v3/time": Route(h.server_time, _fixed(1), signed=False),
    "/api/v3/exchangeInfo": Route(h.exchange_info, _fixed(20), signed=False),
    "/api/v3/ticker/price": Route(h.ticker_price, lambda q: 2 if q.get("symbol") else 4, signed=False),
    "/api/v3/klines": Route(h.klines, _fixed(2), signed=False),
    "/api/v3/account": Route(h.account, _fixed(20)),
    "/api/v3/myTrades": Route(h.my_trades, lambda q: 5 if q.get("orderId") else 20),
    "/api/v3/allOrders": Route(h.all_orders, _fixed(20)),
    "/api/v3/openOrders": Route(h.open_orders, lambda q: 6 if q.get("symbol") else 80),
    "/api/v3/order": Route(h.query_order, _fixed(4)),
    "/sapi/v1/account/apiRestrictions": Route(h.api_restrictions, _fixed(1), sapi="ip"),
    "/sapi/v1/capital/deposit/hisrec": Route(h.deposits, _fixed(1), sapi="ip"),
    "/sapi/v1/capital/withdraw/history": Route(h.withdrawals, _fixed(18_000), sapi="uid"),
    "/sapi/v1/asset/assetDividend": Route(h.dividends, _fixed(10), sapi="ip"),
}


def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> SimError:
    return SimError(Response.json({"code": code, "msg": msg}, status, headers))


def handle(sim: "BinanceSim", environment: str, request: Request) -> Response:
    route = ROUTES.get(request.path)
    if route is None or request.method != "GET":
        return Response.text("<html><body><h1>404 Not Found</h1></body></html>", 404)
    query = {k: v[0] for k, v in parse_qs(request.raw_query, keep_blank_values=True).items()}
    now, rate_now = sim.now_ms(), sim.rate_now_ms()
    headers: dict[str, str] = {}
    try:
        if not route.sapi:
            _charge_ip(sim, request.client_ip, route.weight(query), rate_now, headers)
        account = _authenticate(sim, request, query, now) if route.signed else None
        if route.sapi:
            _charge_sapi(sim, request, route, account, rate_now, headers)
        body = route.handler(sim, account, query, now)
    except SimError as exc:
        exc.response.headers.update(headers)
        return exc.response
    if isinstance(body, Response):
        body.headers.update(headers)
        return body
    return Response.json(body, 200, headers)


# -- limits -------------------------------------------------------------------------------
def _charge_ip(sim: "BinanceSim", ip: str, weight: int, now: int, headers: dict[str, str]) -> None:
    verdict = sim.weights.charge(ip, weight, now)
    headers["X-MBX-USED-WEIGHT-1M"] = str(verdict.used)
    if verdict.status == 429:
        raise error(429, -1003, TOO_MUCH_WEIGHT.format(limit=sim.weights.limit),
                    {**headers, "Retry-After": str(verdict.retry_after)})
    if verdict.status == 418:
        raise error(418, -1003, BANNED.format(until=verdict.banned_until),
                    {**headers, "Retry-After": str(verdict.retry_after)})


def _charge_sapi(sim, request: Request, route: Route, account: "Account", now: int, headers: dict) -> None:
    uid = route.sapi == "uid"
    scope = f"uid:{account.uid}" if uid else f"ip:{request.client_ip}"
    verdict = sim.sapi_weights.charge(scope, request.path, route.weight({}), now, uid=uid)
    headers["X-SAPI-USED-UID-WEIGHT-1M" if uid else "X-SAPI-USED-IP-WEIGHT-1M"] = str(verdict.used)
    if verdict.status == 429:
        limit = sim.sapi_weights.uid_limit if uid else sim.sapi_weights.ip_limit
        kind = f"UID({account.uid})" if uid else f"IP({request.client_ip})"
        raise error(429, -1003, f"Too much request weight used; current limit of {kind} is {limit} requests per "
                                f"minute. Please use the websocket for live updates to avoid polling the API.",
                    {**headers, "Retry-After": str(verdict.retry_after)})


# -- SIGNED auth --------------------------------------------------------------------------
def _authenticate(sim: "BinanceSim", request: Request, query: dict[str, str], now: int) -> "Account":
    key = request.header("X-MBX-APIKEY") or ""
    if not KEY_FORMAT.match(key):
        raise error(400, -2014, "API-key format invalid.")
    account = sim.account_for_key(key)
    if account is None or account.revoked:
        raise error(401, -2015, "Invalid API-key, IP, or permissions for action.")
    _check_timestamp(query, now)
    signature = query.get("signature")
    if not signature:
        raise error(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    payload = signed_payload(request.raw_query, request.body.decode("latin-1"))
    expected = hmac.new(account.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise error(400, -1022, "Signature for this request is not valid.")
    return account


def _check_timestamp(query: dict[str, str], now: int) -> None:
    try:
        timestamp = int(query["timestamp"])
    except (KeyError, ValueError):
        raise error(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    try:
        recv_window = float(query.get("recvWindow") or DEFAULT_RECV_WINDOW)
    except ValueError:
        raise error(400, -1100, "Illegal characters found in parameter 'recvWindow'.")
    if recv_window > MAX_RECV_WINDOW:
        raise error(400, -1131, "recvWindow must be less than 60000")
    # rest-api.md: process only if timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow.
    if timestamp >= now + 1000:
        raise error(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - timestamp > recv_window:
        raise error(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def signed_payload(raw_query: str, body: str) -> str:
    """totalParams: the query string without `signature`, directly followed by the body."""
    query = "&".join(p for p in raw_query.split("&") if p and not p.startswith("signature="))
    body = "&".join(p for p in body.split("&") if p and not p.startswith("signature="))
    return query + body
