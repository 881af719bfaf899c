"""Coinbase Advanced Trade market data over the sandbox market (sandbox/prices.py).

Authenticated (a CDP key's JWT, the v3 per-key budget):
    GET /api/v3/brokerage/products[?product_ids=..]      products with their price
    GET /api/v3/brokerage/products/{id}
    GET /api/v3/brokerage/best_bid_ask?product_ids=A&product_ids=B    {"pricebooks": [...]}
    GET /api/v3/brokerage/products/{id}/candles?start=&end=&granularity=ONE_DAY&limit=
Public twins, no key, counted per IP (docs.cdp.coinbase.com "Advanced Trade API rate
limits": public endpoints 10 requests/s per IP):
    GET /api/v3/brokerage/market/products[?product_ids=..], /market/products/{id},
        /market/products/{id}/candles
best_bid_ask has no public twin; public latest prices come from market/products' `price`.
Candles come newest first, at most 350 a request (the docs' "number of candles requested
should be less than 350" error beyond that).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ... import prices
from ...http import Request, Response, SimError
from . import market
from .paging import int_arg, v3_error
from .render import num
from .state import iso_us

if TYPE_CHECKING:
    from .sim import CoinbaseSim

V3 = "/api/v3/brokerage"
MAX_CANDLES = 350
GRANULARITY = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900, "THIRTY_MINUTE": 1800,
               "ONE_HOUR": 3600, "TWO_HOUR": 7200, "SIX_HOUR": 21600, "ONE_DAY": 86400}
PUBLIC_LIMIT, PUBLIC_PERIOD = 10, 1.0
_PUBLIC = re.compile(rf"^{V3}/market/products(?:/(?P<id>[^/]+)(?P<candles>/candles)?)?$")
_PRIVATE = re.compile(rf"^{V3}/(?:products(?:/(?P<id>[^/]+)(?P<candles>/candles)?)?|(?P<bba>best_bid_ask))$")


def is_public(path: str) -> bool:
    return _PUBLIC.match(path) is not None


def is_market(path: str) -> bool:
    return _PRIVATE.match(path) is not None


def route(sim: "CoinbaseSim", request: Request) -> Response:
    match = _PUBLIC.match(request.path) or _PRIVATE.match(request.path)
    if request.method != "GET":
        raise v3_error(405, "UNIMPLEMENTED", "method not supported by the sandbox")
    now_us = int(sim.clock.now() * 1_000_000)
    listed = sim.catalogue()
    if match.groupdict().get("bba"):
        return best_bid_ask(listed, request, now_us)
    if match["id"] is None:
        return _products(listed, request, now_us)
    if match["id"] not in listed:
        raise v3_error(404, "NOT_FOUND", f"ProductID {match['id']} could not be found")
    if match["candles"]:
        return candles(match["id"], request, now_us)
    return Response.json(product(match["id"], now_us))


def product(product_id: str, now_us: int) -> dict[str, Any]:
    base, quote = market.split(product_id)
    increment = num(market.quantum(product_id))
    return {
        "product_id": product_id, "price": num(market.price(product_id, now_us)),
        "price_percentage_change_24h": "0", "volume_24h": "0", "volume_percentage_change_24h": "0",
        "base_increment": "0.00000001", "quote_increment": increment, "quote_min_size": "1",
        "quote_max_size": "10000000", "base_min_size": "0.00000001", "base_max_size": "1000000",
        "base_name": base, "quote_name": quote, "watched": False, "is_disabled": False, "new": False,
        "status": "online", "cancel_only": False, "limit_only": False, "post_only": False,
        "trading_disabled": False, "auction_mode": False, "product_type": "SPOT",
        "quote_currency_id": quote, "base_currency_id": base, "fcm_trading_session_details": None,
        "mid_market_price": "", "alias": "", "alias_to": [], "base_display_symbol": base,
        "quote_display_symbol": quote, "view_only": False, "price_increment": increment,
        "display_name": product_id, "product_venue": "CBE",
    }


def _products(listed: list[str], request: Request, now_us: int) -> Response:
    wanted = request.args("product_ids")
    known = set(listed)
    names = [p for p in wanted if p in known] if wanted else listed
    if request.arg("product_type") not in (None, "", "SPOT"):
        names = []
    offset = int_arg(request, "offset", 0, 1_000_000) if request.arg("offset") else 0
    limit = int_arg(request, "limit", len(names) or 1, 100_000)
    names = names[offset:offset + limit]
    return Response.json({"products": [product(p, now_us) for p in names], "num_products": len(names)})


def best_bid_ask(listed: list[str], request: Request, now_us: int) -> Response:
    known = set(listed)
    books = []
    for p in [p for p in (request.args("product_ids") or listed) if p in known]:
        price = num(market.price(p, now_us))
        books.append({"product_id": p, "bids": [{"price": price, "size": "1"}], "asks": [{"price": price, "size": "1"}],
                      "time": iso_us(now_us)})
    return Response.json({"pricebooks": books})


def _seconds(request: Request, name: str) -> int:
    value = request.arg(name)
    if not value or not value.isdigit():
        raise v3_error(400, "INVALID_ARGUMENT", f"{name} is required and must be a UNIX timestamp in seconds")
    return int(value)


def candles(product_id: str, request: Request, now_us: int) -> Response:
    start, end = _seconds(request, "start"), _seconds(request, "end")
    granularity = GRANULARITY.get(request.arg("granularity") or "")
    if granularity is None:
        raise v3_error(400, "INVALID_ARGUMENT", "granularity is invalid")
    if granularity != prices.DAY:
        raise v3_error(400, "INVALID_ARGUMENT", "the sandbox serves ONE_DAY candles only")
    limit = int_arg(request, "limit", MAX_CANDLES, MAX_CANDLES) if request.arg("limit") else MAX_CANDLES
    if end < start or (end - start) // granularity + 1 > min(limit, MAX_CANDLES):
        raise v3_error(400, "INVALID_ARGUMENT", "start and end argument is invalid - number of candles requested "
                                                "should be less than 350")
    today = prices.day_of(now_us / 1e6)
    first, last = -(-start // prices.DAY), min(end // prices.DAY, today)
    out = []
    for day in range(last, first - 1, -1):
        o, h, low, c = market.bar(product_id, day)
        if day == today:
            c = market.price(product_id, now_us)
        out.append({"start": str(day * prices.DAY), "low": num(low), "high": num(h), "open": num(o), "close": num(c),
                    "volume": num(prices.volume(product_id, day))})
    return Response.json({"candles": out})


def public_rate_exceeded() -> SimError:
    return SimError(Response.json({"error": "RESOURCE_EXHAUSTED", "error_details": "Too many requests",
                                   "message": "Too many requests"}, 429))
