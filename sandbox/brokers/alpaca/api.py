"""The HTTP surface of Alpaca Trading API v2: auth headers, the per-account rate window,
routes, query validation and Alpaca's error bodies (docs/brokers.md §1.2-§1.6).

Choices where the docs are silent: a page_size above 100 (limit above 500) is served at
the maximum rather than refused; activity after/until compare with the instant in the
activity id (a FILL's transaction_time, a non-trade row's posting time); `date` selects
one New York calendar day.
"""
from __future__ import annotations

import hmac
import re
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ...http import Request, Response, SimError
from . import faulted
from .records import ZERO, dec
from .times import ny_date, ny_day_bounds_us, parse_date, parse_ns, rfc3339
from .universe import lookup

if TYPE_CHECKING:
    from .sim import AlpacaSim
    from .state import Account

UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
RATE_LIMITED = {"code": 42910000, "message": "rate limit exceeded"}
ORDER_NOT_FOUND = {"code": 40410000, "message": "order is not found."}

# Both documented enums (older SSP/SSO list and alpaca-py's newer one) plus the TRANS/MISC groups.
ACTIVITY_TYPES = frozenset(
    "FILL TRANS MISC ACATC ACATS CFEE CIL CSD CSW DIV DIVCGL DIVCGS DIVFEE DIVFT DIVNRA DIVROC DIVTW DIVTXEX "
    "DIVWH EXTRD FEE FXTRD INT INTNRA INTPNL INTTW JNL JNLC JNLS MA MEM NC OCT OPASN OPCSH OPEXC OPEXP OPTRD "
    "OPXRC PTC PTR REORG SC SPIN SPLIT SSO SSP SWP VOF WH".split())
MAX_PAGE_SIZE = 100              # activities: default and max when `date` is not given
DEFAULT_ORDER_LIMIT, MAX_ORDER_LIMIT = 50, 500

_ACTIVITIES = re.compile(r"^/v2/account/activities(?:/(?P<type>[^/]+))?/?$")
_ORDER = re.compile(r"^/v2/orders/(?P<id>[^/]+)$")
_POSITION = re.compile(r"^/v2/positions/(?P<symbol>.+)$")
_ASSET = re.compile(r"^/v2/assets/(?P<symbol>.+)$")


def _error(status: int, code: int, message: str) -> SimError:
    return SimError(Response.json({"code": code, "message": message}, status))


def _invalid(message: str) -> SimError:
    return _error(422, 42210000, message)


def handle(sim: "AlpacaSim", environment: str, request: Request) -> Response:
    with sim.lock:
        account = _authenticate(sim, environment, request)
        allowed, headers = account.count_request(sim.clock.now())
        if not allowed:
            return Response.json(RATE_LIMITED, 429, headers)
        try:
            response = _route(sim, account, request)
        except SimError as exc:
            response = exc.response
        response.headers.update(headers)
        return response


def _authenticate(sim: "AlpacaSim", environment: str, request: Request) -> "Account":
    key, secret = request.header("APCA-API-KEY-ID"), request.header("APCA-API-SECRET-KEY")
    account = sim.by_key.get((environment, key or ""))
    if account is None or account.revoked or not hmac.compare_digest((secret or "").encode(),
                                                                     account.api_secret.encode()):
        raise SimError(Response.json(UNAUTHORIZED, 401))
    return account


def _route(sim: "AlpacaSim", account: "Account", request: Request) -> Response:
    path = request.path
    if request.method != "GET":
        raise _error(405, 40510000, "method not allowed")
    if path in ("/v2/account", "/v2/account/"):
        return Response.json(_account(sim, account))
    if path in ("/v2/positions", "/v2/positions/"):
        return Response.json(faulted.positions(_sorted_holdings(account), sim.faults_of(account.account_id)))
    if path in ("/v2/orders", "/v2/orders/"):
        return Response.json([o.render() for o in _orders(account, request)])
    match = _ACTIVITIES.match(path)
    if match:
        return Response.json(_activities(sim, account, request, match["type"]))
    match = _ORDER.match(path)
    if match:
        order = account.ledger.order(unquote(match["id"]))
        if order is None:
            raise SimError(Response.json(ORDER_NOT_FOUND, 404))
        return Response.json(order.render())
    match = _POSITION.match(path)
    if match:
        return Response.json(_position(account, unquote(match["symbol"])))
    match = _ASSET.match(path)
    if match:
        return Response.json(_asset(unquote(match["symbol"])))
    raise _error(404, 40410000, "endpoint not found")


# -- account and positions -------------------------------------------------------------------
def _sorted_holdings(account: "Account"):
    return sorted(account.ledger.holdings.values(), key=lambda h: h.asset.position_symbol)


def _account(sim: "AlpacaSim", account: "Account") -> dict:
    ledger, cents = account.ledger, Decimal("0.01")
    long_mv = sum((h.qty * h.price for h in ledger.holdings.values() if h.qty > 0), ZERO)
    short_mv = sum((h.qty * h.price for h in ledger.holdings.values() if h.qty < 0), ZERO)
    last_mv = sum((h.qty * h.lastday for h in ledger.holdings.values()), ZERO)
    cash = ledger.cash
    equity = cash + long_mv + short_mv
    maintenance = (long_mv - short_mv) * Decimal("0.3")
    buying_power = max(ZERO, (equity - maintenance) * 2)
    money = lambda v: dec(v.quantize(cents))  # noqa: E731
    return {
        "id": account.broker_account_id, "account_number": account.account_number, "status": "ACTIVE",
        "crypto_status": "ACTIVE", "currency": "USD", "cash": dec(cash), "buying_power": money(buying_power),
        "regt_buying_power": money(buying_power), "daytrading_buying_power": "0",
        "non_marginable_buying_power": money(max(ZERO, cash)), "effective_buying_power": money(buying_power),
        "options_buying_power": money(max(ZERO, cash)), "accrued_fees": "0", "pending_transfer_in": "0",
        "pending_transfer_out": "0", "portfolio_value": money(equity), "equity": money(equity),
        "last_equity": money(cash + last_mv), "long_market_value": money(long_mv),
        "short_market_value": money(short_mv), "position_market_value": money(long_mv + short_mv),
        "initial_margin": money(maintenance), "maintenance_margin": money(maintenance),
        "last_maintenance_margin": money(maintenance), "sma": "0", "multiplier": "2", "daytrade_count": 0,
        "pattern_day_trader": False, "shorting_enabled": True, "trading_blocked": False,
        "transfers_blocked": False, "account_blocked": False, "trade_suspended_by_user": False,
        "created_at": rfc3339(account.created_us), "balance_asof": ny_date(int(sim.clock.now() * 1e6)).isoformat(),
        "crypto_tier": 1, "options_trading_level": 0,
    }


def _position(account: "Account", symbol: str) -> dict:
    for h in account.ledger.holdings.values():
        if symbol in (h.asset.symbol, h.asset.position_symbol, h.asset.asset_id):
            return h.render()
    raise _error(404, 40410000, "position does not exist")


def _asset(symbol: str) -> dict:
    info = lookup(symbol)
    if info is None:
        raise _error(404, 40410000, "asset not found")
    return {"id": info.asset_id, "class": info.asset_class, "exchange": info.exchange, "symbol": info.symbol,
            "name": f"{info.canonical} {'Coin' if info.is_crypto else 'Inc. Common Stock'}", "status": "active",
            "tradable": True, "marginable": not info.is_crypto, "maintenance_margin_requirement": 30,
            "shortable": not info.is_crypto, "easy_to_borrow": not info.is_crypto, "fractionable": True,
            "attributes": []}


# -- query parameters ---------------------------------------------------------------------------
def _time_arg(request: Request, name: str) -> int | None:
    value = request.arg(name)
    if value in (None, ""):
        return None
    try:
        return parse_ns(value)
    except ValueError:
        raise _invalid(f"Invalid format for parameter {name}: error parsing '{value}' as RFC3339 or 2006-01-02 time")


def _direction(request: Request) -> bool:
    """True for ascending."""
    direction = request.arg("direction", "desc") or "desc"
    if direction not in ("asc", "desc"):
        raise _invalid("invalid direction")
    return direction == "asc"


def _int_arg(request: Request, name: str, default: int | None, maximum: int) -> int | None:
    value = request.arg(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise _invalid(f"invalid {name}")
    if number < 1:
        raise _invalid(f"{name} must be >= 1")
    return min(number, maximum)              # a larger page size is served at the maximum


def _csv(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


# -- activities -----------------------------------------------------------------------------------
def _activity_kinds(account: "Account", request: Request, path_type: str | None) -> set[str] | None:
    category = request.arg("category")
    types = [path_type] if path_type else _csv(request.args("activity_types"))
    if category and types:
        raise _invalid("category and activity_types are mutually exclusive")
    if category:
        if category not in ("trade_activity", "non_trade_activity"):
            raise _invalid(f"invalid category: {category}")
        types = ["FILL"] if category == "trade_activity" else [k for k in account.ledger.by_kind if k != "FILL"]
    if not types:
        return None
    kinds: set[str] = set()
    for kind in types:
        if kind not in ACTIVITY_TYPES:
            raise _error(422, 40010001, f"invalid activity type: {kind}")
        if kind == "TRANS":
            kinds |= {"TRANS", "CSD", "CSW"}
        elif kind == "MISC":
            kinds |= {k for k in account.ledger.by_kind if k not in ("FILL", "CSD", "CSW", "TRANS")
                      and not k.startswith("DIV")}
        else:
            kinds.add(kind)
    return kinds


def _activities(sim: "AlpacaSim", account: "Account", request: Request, path_type: str | None) -> list[dict]:
    kinds = _activity_kinds(account, request, path_type)
    after, until = _time_arg(request, "after"), _time_arg(request, "until")
    ascending = _direction(request)
    day = request.arg("date")
    size = _int_arg(request, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    if day:
        try:
            start_us, end_us = ny_day_bounds_us(parse_date(day[:10]))
        except ValueError:
            raise _invalid(f"Invalid format for parameter date: error parsing '{day}'")
        after = max(after if after is not None else -1, start_us * 1000 - 1)
        until = min(until if until is not None else end_us * 1000, end_us * 1000)
        size = _int_arg(request, "page_size", None, 10**9)    # a whole day, unless a page size is asked for
    query = dict(kinds=kinds, after_ns=after, until_ns=until, token=request.arg("page_token") or None,
                 ascending=ascending, size=size)
    faults = sim.faults_of(account.account_id)
    if faults:
        return faulted.activity_page(account.ledger, faults, **query)
    return [a.render() for a in account.ledger.activity_page(**query)]


# -- orders -------------------------------------------------------------------------------------------
def _orders(account: "Account", request: Request):
    status = request.arg("status", "open") or "open"
    if status not in ("open", "closed", "all"):
        raise _invalid(f"invalid status: {status}")
    symbols = None
    wanted = _csv(request.args("symbols"))
    if wanted:
        symbols = set()
        for symbol in wanted:
            info = lookup(symbol)
            symbols.add(info.symbol if info else symbol)
    return account.ledger.order_page(status=status, after_ns=_time_arg(request, "after"),
                                     until_ns=_time_arg(request, "until"), ascending=_direction(request),
                                     limit=_int_arg(request, "limit", DEFAULT_ORDER_LIMIT, MAX_ORDER_LIMIT),
                                     symbols=symbols)
