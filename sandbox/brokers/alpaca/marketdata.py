"""Alpaca Market Data (data.alpaca.markets): the endpoint "alpaca-data", environment "data".

    GET /v2/stocks/snapshots?symbols=A,B          {"A": {latestTrade, latestQuote, minuteBar, dailyBar, prevDailyBar}}
    GET /v2/stocks/trades/latest?symbols=A,B      {"trades": {"A": {t, x, p, s, c, i, z}}}
    GET /v2/stocks/bars?symbols=A,B&timeframe=1Day&start=&end=&limit=&page_token=
                                                  {"bars": {"A": [{t, o, h, l, c, v, n, vw}]}, "next_page_token"}
    GET /v1beta3/crypto/us/latest/trades?symbols=BTC/USD
    GET /v1beta3/crypto/us/bars?symbols=BTC/USD&timeframe=1Day&...

Stock endpoints need APCA-API-KEY-ID / APCA-API-SECRET-KEY (a paper or live key); crypto
endpoints take them optionally (alpaca-py's CryptoHistoricalDataClient "does not need any
authentication"). The data API counts requests per key in its own window, apart from the
trading API (Basic plan: 200/min). Bars are paged across symbols, sorted by symbol then
time, `limit` bars a page (default 1,000, at most 10,000: alpaca-py DATA_V2_MAX_LIMIT).
Prices come from the sandbox market (sandbox/prices.py); equity daily bars exist on
weekdays and are stamped at New York midnight, crypto bars at UTC midnight.
"""
from __future__ import annotations

import base64
import hmac
import math
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ... import prices
from ...http import Request, Response, SimError
from .times import NEW_YORK, parse_ns
from .universe import CRYPTO, crypto, leg, lookup, tick_for

if TYPE_CHECKING:
    from .sim import AlpacaSim

DATA_RATE_LIMIT = 200                 # Basic plan: 200 calls/min (docs.alpaca.markets "Market Data API" plans)
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000
FIRST_DAY = date(2016, 1, 1)          # Alpaca's stock history starts in 2016
FEEDS = frozenset({"iex", "sip", "delayed_sip", "otc"})
SESSION_OPEN, SESSION_CLOSE = 13 * 3600 + 1800, 20 * 3600     # the sandbox's session, UTC
FORBIDDEN = {"message": "forbidden"}
TOO_MANY = {"message": "too many requests"}
_EPOCH = date(1970, 1, 1)


def _bad(message: str) -> SimError:
    return SimError(Response.json({"message": message}, 400))


def handle(sim: "AlpacaSim", request: Request) -> Response:
    path = request.path.rstrip("/")
    crypto_path = path.startswith("/v1beta3/crypto/us/")
    with sim.lock:
        key = _key(sim, request, required=not crypto_path)
        allowed, headers = sim.data_window(key or f"ip:{request.client_ip}")
    if not allowed:
        return Response.json(TOO_MANY, 429, headers)
    try:
        response = Response.json(_route(sim, path, request))
    except SimError as exc:
        response = exc.response
    response.headers.update(headers)
    return response


def _key(sim: "AlpacaSim", request: Request, *, required: bool) -> str | None:
    key, secret = request.header("APCA-API-KEY-ID"), request.header("APCA-API-SECRET-KEY")
    if not key and not required:
        return None
    account = sim.by_key.get(("paper", key or "")) or sim.by_key.get(("live", key or ""))
    if account is None or account.revoked or not hmac.compare_digest((secret or "").encode(),
                                                                     account.api_secret.encode()):
        raise SimError(Response.json(FORBIDDEN, 403))
    return key


def _route(sim: "AlpacaSim", path: str, request: Request) -> dict:
    if request.method != "GET":
        raise SimError(Response.json({"message": "method not allowed"}, 405))
    now = sim.clock.now()
    if path == "/v2/stocks/trades/latest":
        return {"trades": {s: _trade(s, _equity(s), _stock_time(now)) for s in _symbols(request, _equity)}}
    if path == "/v2/stocks/snapshots":
        return {s: _snapshot(s, _equity(s), now) for s in _symbols(request, _equity)}
    if path == "/v2/stocks/bars":
        return _bars(request, _equity, now)
    if path == "/v1beta3/crypto/us/latest/trades":
        return {"trades": {s: _trade(s, _coin(s), now) for s in _symbols(request, _coin)}}
    if path == "/v1beta3/crypto/us/bars":
        return _bars(request, _coin, now)
    raise SimError(Response.json({"message": "Not Found"}, 404))


# -- symbols ------------------------------------------------------------------------------
def _equity(symbol: str):
    info = lookup(symbol)
    return info if info is not None and not info.is_crypto else None


def _coin(symbol: str):
    for i in range(len(CRYPTO)):
        if crypto(i).symbol == symbol:
            return crypto(i)
    return None


def _symbols(request: Request, find) -> list[str]:
    """Requested symbols that exist (unknown ones are left out of the answer, as Alpaca does)."""
    names = [p.strip() for v in request.args("symbols") for p in v.split(",") if p.strip()]
    if not names:
        raise _bad("missing symbols")
    return [n for n in dict.fromkeys(names) if find(n) is not None]


# -- prices -------------------------------------------------------------------------------
def _stock_time(now: float) -> float:
    """The last moment stocks traded at or before `now` (the sandbox's weekday session)."""
    t = now
    for _ in range(8):
        day = math.floor(t / prices.DAY)
        start = day * prices.DAY
        weekday = (_EPOCH + timedelta(days=day)).weekday()
        if weekday < 5 and t >= start + SESSION_OPEN:
            return min(t, start + SESSION_CLOSE)
        t = start - 1
    return t


def _price(info, t: float) -> float:
    return prices.pair_price(leg(info), prices.Leg("USD"), t)


def _num(value: float) -> float:
    """Prices go out as JSON numbers at the asset's tick (Alpaca sends floats)."""
    tick = tick_for(value)
    return float(prices.to_tick(value, tick))


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _trade(symbol: str, info, t: float) -> dict[str, Any]:
    price = _num(_price(info, t))
    if info.is_crypto:
        return {"t": _stamp(t), "p": price, "s": 0.01, "tks": "B", "i": int(t)}
    return {"t": _stamp(t), "x": "V", "p": price, "s": 100, "c": ["@"], "i": int(t), "z": "C"}


def _snapshot(symbol: str, info, now: float) -> dict[str, Any]:
    t = _stock_time(now)
    trade = _trade(symbol, info, t)
    day = math.floor(t / prices.DAY)
    previous = _previous_weekday(day)
    return {"latestTrade": trade,
            "latestQuote": {"t": trade["t"], "ax": "V", "ap": trade["p"], "as": 1, "bx": "V", "bp": trade["p"],
                            "bs": 1, "c": ["R"], "z": "C"},
            "minuteBar": {**_bar(info, day), "t": _stamp(t - t % 60), "o": trade["p"], "h": trade["p"],
                          "l": trade["p"], "c": trade["p"]},
            "dailyBar": _bar(info, day), "prevDailyBar": _bar(info, previous)}


def _previous_weekday(day: int) -> int:
    day -= 1
    while (_EPOCH + timedelta(days=day)).weekday() >= 5:
        day -= 1
    return day


def _bar_time(info, day: int) -> str:
    d = _EPOCH + timedelta(days=day)
    if info.is_crypto:
        return f"{d.isoformat()}T00:00:00Z"
    midnight = datetime(d.year, d.month, d.day, tzinfo=NEW_YORK).astimezone(timezone.utc)
    return midnight.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bar(info, day: int) -> dict[str, Any]:
    bar = prices.pair_bar(leg(info), prices.Leg("USD"), day)
    # Each value at its own tick (cents from $1 up): a fill rounded to its tick stays inside.
    o, _, _, c = prices.bar_ticks(bar, tick_for(bar[0]))
    _, h, low, _ = prices.bar_ticks(bar, tick_for(bar[2]))
    h = prices.bar_ticks(bar, tick_for(bar[1]))[1]
    tick = tick_for(bar[2])
    volume = int(prices.volume(info.canonical, day) * 100)
    return {"t": _bar_time(info, day), "o": float(o), "h": float(h), "l": float(low), "c": float(c),
            "v": volume, "n": volume // 50, "vw": float(((h + low) / 2).quantize(tick))}


# -- bars and their paging ----------------------------------------------------------------
def _day_arg(request: Request, name: str, default: int) -> int:
    value = request.arg(name)
    if not value:
        return default
    try:
        return math.floor(parse_ns(value) / 1e9 / prices.DAY)
    except ValueError:
        raise _bad(f"invalid {name}: {value}")


def _bar_days(info, first: int, last: int) -> list[int]:
    first = max(first, (FIRST_DAY - _EPOCH).days)
    days = range(first, last + 1)
    if info.is_crypto:
        return list(days)
    return [d for d in days if (_EPOCH + timedelta(days=d)).weekday() < 5]


def _bars(request: Request, find, now: float) -> dict[str, Any]:
    timeframe = request.arg("timeframe")
    if timeframe not in ("1Day", "1D"):
        raise _bad(f"invalid timeframe: {timeframe}" if timeframe else "missing timeframe")
    if request.arg("feed") and request.arg("feed") not in FEEDS:
        raise _bad(f"invalid feed: {request.arg('feed')}")
    try:
        limit = int(request.arg("limit") or DEFAULT_LIMIT)
    except ValueError:
        raise _bad("invalid limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad(f"invalid limit: value must be between 1 and {MAX_LIMIT}")
    today = math.floor((now if find is _coin else _stock_time(now)) / prices.DAY)
    first, last = _day_arg(request, "start", today), min(_day_arg(request, "end", today), today)
    symbols = sorted(_symbols(request, find))
    after = _token(request.arg("page_token"))
    out: dict[str, list] = {}
    count, next_token = 0, None
    for symbol in symbols:
        info = find(symbol)
        for day in _bar_days(info, first, last):
            if after is not None and (symbol, day) < after:
                continue
            if count == limit:
                next_token = base64.b64encode(f"{symbol}|{day}".encode()).decode()
                break
            out.setdefault(symbol, []).append(_bar(info, day))
            count += 1
        if next_token:
            break
    return {"bars": out, "next_page_token": next_token}


def _token(token: str | None) -> tuple[str, int] | None:
    if not token:
        return None
    try:
        symbol, day = base64.b64decode(token.encode()).decode().split("|")
        return symbol, int(day)
    except (ValueError, UnicodeDecodeError):
        raise _bad("invalid page token")
