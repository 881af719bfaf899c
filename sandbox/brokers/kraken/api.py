"""Kraken's REST surface: routes, auth, the per-key call counter, paging and error bodies.

Everything answers HTTP 200 with {"error": [...], "result": {...}}; errors are strings in
`error` and `result` is absent (§4.6). Auth checks follow the documented order of what can
be wrong with a request: key, signature, nonce, then the call counter and permissions.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from bisect import bisect_left, bisect_right
from decimal import Decimal
from typing import TYPE_CHECKING, Callable, NamedTuple

from sandbox.http import Request, Response, SimError

from .market import OHLC_INTERVALS, asset_decimals, fmt_amount
from .state import PAGE, T4, Account, Series, balance_payload, held_in_orders, render_ledger, render_order, render_trade

if TYPE_CHECKING:
    from .sim import KrakenSim

# Public endpoints: ~1 call/s per IP (Kraken support, quoted in discosultan/KrakenCore#1).
# The burst is our guess: ccxt#20648 shows ~100 calls at 3/s before the first refusal.
PUBLIC_MAX, PUBLIC_DECAY = 30.0, 1.0
LEDGER_TYPES = {"all", "trade", "deposit", "withdrawal", "transfer", "margin", "adjustment", "rollover", "credit",
                "settled", "staking", "dividend", "sale", "nft_rebate", "conversion", "allocation", "deallocation",
                "earn"}
TRADE_TYPES = {"all", "any position", "closed position", "closing position", "no position"}
_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def error(*messages: str) -> Response:
    return Response.json({"error": list(messages)})


def ok(result) -> Response:
    return Response.json({"error": [], "result": result})


def invalid(message: str = "EGeneral:Invalid arguments") -> SimError:
    return SimError(error(message))


def sign(secret: bytes, path: str, nonce: str, body: bytes) -> str:
    """API-Sign: base64(HMAC-SHA512(secret, path + SHA256(nonce + body))) (§4.2)."""
    digest = hashlib.sha256(nonce.encode() + body).digest()
    return base64.b64encode(hmac.new(secret, path.encode() + digest, hashlib.sha512).digest()).decode()


class Method(NamedTuple):
    handler: Callable[[Account, dict], object]
    cost: int                               # call-counter cost (§4.5)
    permissions: frozenset[str]


# -- paging ------------------------------------------------------------------------------
def _bound(value: str | None, series: Series, find: Callable[[str], tuple[object, int] | None]) -> int | None:
    """Index just past the last record at or before `value` (a unix time or a record id):
    the first index a `start` (exclusive) keeps, and the end an `end` (inclusive) keeps."""
    if value in (None, ""):
        return None
    if _NUMBER.match(value):
        cut = int(Decimal(value) * T4)
        return bisect_right(series.times, cut)
    found = find(value)
    if found is None:
        raise invalid()
    return series.index_of(*found) + 1


def window(series: Series, form: dict, find, subset: list[int] | None = None) -> tuple[int, list]:
    """(count, records newest first) for one page of `series` between start and end at ofs."""
    lo = _bound(form.get("start"), series, find) or 0
    hi = _bound(form.get("end"), series, find)
    hi = len(series) if hi is None else hi
    ofs = _int(form.get("ofs", "0"))
    if subset is not None:
        lo, hi = bisect_left(subset, lo), bisect_left(subset, hi)
    count = max(0, hi - lo)
    top = hi - ofs
    picks = range(top - 1, max(lo, top - PAGE) - 1, -1)
    if subset is not None:
        return count, [series.items[subset[i]] for i in picks]
    return count, [series.items[i] for i in picks]


def _int(value) -> int:
    text = str(value)
    if not text.isdigit():
        raise invalid()
    return int(text)


def _flag(form: dict, name: str) -> bool:
    return str(form.get(name, "false")).lower() in ("true", "1")


def _ids(form: dict, name: str, limit: int) -> list[str]:
    ids = [i for i in str(form.get(name) or "").split(",") if i]
    if not ids or len(ids) > limit:
        raise invalid()
    return ids


def _paged(key: str, count: int, items: dict, form: dict) -> dict:
    result = {key: items}
    if not _flag(form, "without_count"):
        result["count"] = count
    return result


# -- private methods ---------------------------------------------------------------------
def balance(account: Account, form: dict):
    return balance_payload(account) or None


def balance_ex(account: Account, form: dict):
    held = held_in_orders(account)
    payload = balance_payload(account)
    return {code: {"balance": text, "hold_trade": fmt_amount(held.get(code, 0), asset_decimals(code))}
            for code, text in payload.items()}


def _ledger_subset(account: Account, form: dict) -> list[int] | None:
    type_ = form.get("type", "all") or "all"
    if type_ not in LEDGER_TYPES:
        raise invalid()
    assets = [a for a in str(form.get("asset", "all") or "all").split(",") if a]
    subset = None if type_ == "all" else account.ledger_index("type", type_)
    if assets and assets != ["all"]:
        ids = {account.market.asset_id(a) for a in assets}
        if None in ids:
            raise invalid("EQuery:Unknown asset")
        merged = sorted(i for code in ids for i in account.ledger_index("asset", code))
        subset = merged if subset is None else sorted(set(merged).intersection(subset))
    dropped = account.faults.dropped
    if dropped:                 # a record fault: the rows are left out before offsets and count
        rows = account.ledger.items
        subset = [i for i in (range(len(rows)) if subset is None else subset) if rows[i].id not in dropped]
    return subset


def ledgers(account: Account, form: dict):
    def find(ledger_id):
        position = account.ledger_by_id.get(ledger_id)
        return None if position is None else (account.ledger.items[position], account.ledger.times[position])

    count, rows = window(account.ledger, form, find, _ledger_subset(account, form))
    over = account.overrides
    return _paged("ledger", count, {r.id: render_ledger(r, over.get(r.id)) for r in rows}, form)


def query_ledgers(account: Account, form: dict):
    out = {}
    for ledger_id in _ids(form, "id", 20):
        position = account.ledger_by_id.get(ledger_id)
        if position is not None and ledger_id not in account.faults.dropped:
            out[ledger_id] = render_ledger(account.ledger.items[position], account.overrides.get(ledger_id))
    return out


def trades_history(account: Account, form: dict):
    type_ = form.get("type", "all") or "all"
    if type_ not in TRADE_TYPES:
        raise invalid()
    if type_ in ("any position", "closed position", "closing position"):
        return _paged("trades", 0, {}, form)             # spot only: no margin positions

    def find(txid):
        trade = account.trades_by_id.get(txid)
        return None if trade is None else (trade, trade.t4)

    count, trades = window(account.trades, form, find)
    with_ledgers = _flag(form, "ledgers")
    return _paged("trades", count, {t.txid: render_trade(t, with_ledgers, account.overrides.get(t.txid))
                                    for t in trades}, form)


def query_trades(account: Account, form: dict):
    out = {}
    for txid in _ids(form, "txid", 20):
        trade = account.trades_by_id.get(txid)
        if trade is not None:
            out[txid] = render_trade(trade, overrides=account.overrides.get(txid))
    return out


def closed_orders(account: Account, form: dict):
    closetime = form.get("closetime", "both") or "both"
    if closetime not in ("both", "open", "close"):
        raise invalid()
    by_open = closetime == "open"
    series = account.closed_by_open if by_open else account.closed

    def find(txid):
        order = account.orders.get(txid)
        if order is None or order.closetm is None:
            return None
        return order, order.opentm if by_open else order.closetm

    if closetime == "both" and (form.get("start") or form.get("end")):
        count, orders = _both(account, form, find)
    else:
        count, orders = window(series, form, find)
    with_trades = _flag(form, "trades")
    return _paged("closed", count, {o.txid: render_order(o, with_trades, account.overrides.get(o.txid))
                                    for o in orders}, form)


def _both(account: Account, form: dict, find) -> tuple[int, list]:
    """closetime=both: orders opened or closed in the range, newest close first."""
    wide = dict(form, ofs="0")
    seen = {}
    for series in (account.closed, account.closed_by_open):
        lo = _bound(wide.get("start"), series, find) or 0
        hi = _bound(wide.get("end"), series, find)
        for order in series.items[lo: len(series) if hi is None else hi]:
            seen[order.txid] = order
    ordered = sorted(seen.values(), key=lambda o: o.closetm, reverse=True)
    ofs = _int(form.get("ofs", "0"))
    return len(ordered), ordered[ofs: ofs + PAGE]


def open_orders(account: Account, form: dict):
    with_trades = _flag(form, "trades")
    orders = sorted(account.open_orders.values(), key=lambda o: o.opentm, reverse=True)
    return {"open": {o.txid: render_order(o, with_trades, account.overrides.get(o.txid)) for o in orders}}


def query_orders(account: Account, form: dict):
    with_trades = _flag(form, "trades")
    out = {}
    for txid in _ids(form, "txid", 50):
        order = account.orders.get(txid)
        if order is not None:
            out[txid] = render_order(order, with_trades, account.overrides.get(txid))
    return out


def add_order(account: Account, form: dict):
    """Only validated orders (validate=true): the sandbox never places one. Kraken checks the
    key's permission first (api.METHODS), then the arguments; below the pair's minimum is
    EOrder:Order minimum not met (docs/brokers.md §4.8)."""
    if not _flag(form, "validate"):
        raise invalid("EGeneral:Invalid arguments:the sandbox only validates orders (validate=true)")
    try:
        volume, price = Decimal(str(form["volume"])), Decimal(str(form.get("price") or "0"))
    except (KeyError, ArithmeticError):
        raise invalid() from None
    if volume < ORDER_MINIMUM:
        raise invalid("EOrder:Order minimum not met")
    return {"descr": {"order": f"{form.get('type', 'buy')} {volume} {form.get('pair', '')} @ "
                               f"{form.get('ordertype', 'limit')} {price}"}}


def withdraw_info(account: Account, form: dict):
    """No sandbox account has withdrawal keys (addresses): a key with Withdraw Funds gets
    Kraken's answer for a name it does not know."""
    raise invalid("EFunding:Unknown withdraw key")


ORDER_MINIMUM = Decimal("0.0001")        # XBT/USD ordermin (AssetPairs); enough for the probe
_TRADE = frozenset({"trade"})
_WITHDRAW = frozenset({"withdraw"})
_FUNDS = frozenset({"query_funds"})
_LEDGER = frozenset({"query_funds", "query_ledger"})
_OPEN = frozenset({"query_open"})
_CLOSED = frozenset({"query_closed"})
_BOTH = frozenset({"query_open", "query_closed"})
# Permissions per method from KSDK spot/user.py docstrings; costs from Kraken's rate-limit page.
METHODS: dict[str, Method] = {
    "Balance": Method(balance, 1, _FUNDS),
    "BalanceEx": Method(balance_ex, 1, _FUNDS),
    "Ledgers": Method(ledgers, 2, _LEDGER),
    "QueryLedgers": Method(query_ledgers, 2, _LEDGER),
    "TradesHistory": Method(trades_history, 2, _CLOSED),
    "QueryTrades": Method(query_trades, 1, _BOTH),
    "ClosedOrders": Method(closed_orders, 1, _CLOSED),
    "OpenOrders": Method(open_orders, 1, _OPEN),
    "QueryOrders": Method(query_orders, 1, _BOTH),
    # Create & Modify Orders / Withdraw Funds (docs.kraken.com api-keys). AddOrder spends the
    # trading limiter, not the call counter.
    "AddOrder": Method(add_order, 0, _TRADE),
    "WithdrawInfo": Method(withdraw_info, 1, _WITHDRAW),
}


# -- the doorway -------------------------------------------------------------------------
class KrakenApi:
    def __init__(self, sim: "KrakenSim"):
        self.sim = sim

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/0/private/"):
            return self.private(path, request)
        if path.startswith("/0/public/"):
            return self.public(path.rsplit("/", 1)[1], request)
        return Response.text("Not Found", 404)

    # -- private --------------------------------------------------------------------------
    def private(self, path: str, request: Request) -> Response:
        sim = self.sim
        with sim.lock:
            account = sim.by_key.get(request.header("API-Key") or "")
            if account is None or account.revoked:
                return sim.refuse("EAPI:Invalid key")
            if request.method != "POST":
                return sim.refuse("EAPI:Bad request")
            try:
                form = request.form()
            except (ValueError, AttributeError):
                return sim.refuse("EAPI:Bad request")
            nonce = str(form.get("nonce") or "")
            if not nonce.isdigit() or int(nonce) >= 2 ** 64:
                return sim.refuse("EAPI:Invalid nonce")
            expected = sign(account.signing_key(), path, nonce, request.body)
            if not hmac.compare_digest(expected, request.header("API-Sign") or ""):
                return sim.refuse("EAPI:Invalid signature")
            if int(nonce) <= sim.nonces.get(account.api_key, 0):
                return sim.refuse("EAPI:Invalid nonce")
            sim.nonces[account.api_key] = int(nonce)
            method = METHODS.get(path.rsplit("/", 1)[1])
            if method is None:
                return sim.refuse("EGeneral:Unknown method")
            if not sim.spend(account, method.cost):
                return sim.refuse("EAPI:Rate limit exceeded")
            if not method.permissions <= account.permissions:
                return sim.refuse("EGeneral:Permission denied")
            result = method.handler(account, form)
        return Response.json({"error": []}) if result is None else ok(result)

    # -- public ---------------------------------------------------------------------------
    def public(self, name: str, request: Request) -> Response:
        sim = self.sim
        with sim.lock:
            if not sim.spend_public(request.client_ip):
                return sim.refuse("EGeneral:Too many requests")
        args = {k: v[0] for k, v in request.query.items()}
        if request.method == "POST" and request.body:
            args.update(request.form())
        market = sim.market
        if name == "Time":
            now = sim.clock.now()
            return ok({"unixtime": int(now), "rfc1123": _rfc1123(now)})
        if name == "Assets":
            return ok(_pick(market.assets_payload(), args.get("asset"), market.asset_id, "EQuery:Unknown asset"))
        if name == "AssetPairs":
            return ok(_pick(market.pairs_payload(), args.get("pair"), market.pair_key, "EQuery:Unknown asset pair"))
        if name == "Ticker":
            keys = _pair_keys(market, args.get("pair"))
            return ok(market.ticker_payload(sim.clock.now(), keys))
        if name == "OHLC":
            return ok(_ohlc(market, args, sim.clock.now()))
        return Response.json({"error": ["EGeneral:Unknown method"]}, 404)


def _pick(payload: dict, wanted: str | None, resolve, unknown: str) -> dict:
    if not wanted:
        return payload
    out = {}
    for name in wanted.split(","):
        key = resolve(name)
        if key is None or key not in payload:
            raise SimError(error(unknown))
        out[key] = payload[key]
    return out


def _pair_keys(market, wanted: str | None) -> list[str] | None:
    if not wanted:
        return None
    keys = [market.pair_key(name) for name in wanted.split(",")]
    if None in keys:
        raise SimError(error("EQuery:Unknown asset pair"))
    return keys


def _ohlc(market, args: dict, now: float) -> dict:
    """One pair per call; daily (1440) and the other documented intervals are accepted, the
    sandbox serves daily entries only."""
    keys = _pair_keys(market, args.get("pair"))
    if not keys or len(keys) != 1:
        raise invalid()
    interval, since = args.get("interval", "1"), args.get("since")
    if not interval.isdigit() or int(interval) not in OHLC_INTERVALS or (since and not _NUMBER.match(since)):
        raise invalid()
    if int(interval) != 1440:
        raise invalid("EGeneral:Invalid arguments:interval not served by the sandbox")
    rows, last = market.ohlc(market.pairs[keys[0]], now, int(Decimal(since)) if since else None)
    return {keys[0]: rows, "last": last}


def _rfc1123(now: float) -> str:
    from email.utils import formatdate
    return formatdate(now, usegmt=True)
