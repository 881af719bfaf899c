"""Alpaca Trading API v2 (paper and live): account, positions, activities, orders.

Facts relied on (docs/brokers.md §1):
- Auth is two static headers; paper and live are different hosts with different keys.
- Activities page with `page_token` = the id of the last row; with direction=asc a page
  starts after the token. Ids are `<17-digit stamp>::<uuid>` and sort in time order, so
  the cursor keeps the last id and an incremental sync asks only for what follows it.
- Orders have no cursor: paging moves `after` (exclusive, on submitted_at). Several orders
  can share a submitted_at, so the next window starts 1 us *before* the last one seen and
  the repeats are dropped; nothing is lost at a page boundary.
- Decimals are strings, times RFC3339 with up to nanoseconds, NTA `date` a plain date.
- Errors are `{"code": <8 digits>, "message": ...}`; 429 comes with X-Ratelimit-Reset.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import requests

from ..base import BrokerAdapter
from ..dtos import (AccountInfo, AssetClass, AssetRef, CredentialField, Order, Page, Position, PositionSnapshot,
                    RepullWindow, SkippedRecord, Transaction, TransactionType)
from ..errors import AuthError, BrokerError, PermanentError, RateLimited, TransientError
from ..symbols import coin_asset

log = logging.getLogger("brokersync.alpaca")

ACTIVITY_PAGE_SIZE = 100          # documented default and maximum of page_size
PAGES_PER_CHECKPOINT = 5          # 500 activities per saved Page: few commits, little redone after a crash
ORDER_PAGE_LIMIT = 500            # documented maximum of `limit` on GET /v2/orders
OPEN_LIST_THRESHOLD = 3           # more open orders to refresh than this: list status=open instead of one GET each
RATE_WINDOW_SECONDS = 60.0        # Alpaca's limit is per minute: a reset is never further away than this
DEFAULT_RATE_WAIT = 3.0           # alpaca-py's APCA_RETRY_WAIT, used when a 429 carries no reset header
ONE_US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")   # longest first: BTCUSDT is BTC/USDT
_CRYPTO_PAIR = re.compile(r"^[A-Z0-9]{2,10}?(USDT|USDC|USD|BTC|ETH)$")
_OPTION_SYMBOL = re.compile(r"^[A-Z.]{1,6}\d{6}[CP]\d{8}$")          # OCC: AAPL240315C00150000
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?)?$")

# Activity code -> TransactionType for the codes that are not DIV*/INT* (prefix rules below).
ACTIVITY_TYPES: dict[str, TransactionType] = {
    "FILL": TransactionType.TRADE,
    "FEE": TransactionType.FEE, "CFEE": TransactionType.FEE, "DIVFEE": TransactionType.FEE,
    "PTC": TransactionType.FEE,                       # pass-through charge
    "CSD": TransactionType.DEPOSIT, "CSW": TransactionType.WITHDRAWAL,
    "SPLIT": TransactionType.SPLIT, "SSP": TransactionType.SPLIT,
    "ACATC": TransactionType.TRANSFER, "ACATS": TransactionType.TRANSFER,
    "JNL": TransactionType.TRANSFER, "JNLC": TransactionType.TRANSFER, "JNLS": TransactionType.TRANSFER,
}
# Non-trade codes whose `qty` is a change of the holding (for the others, e.g. DIV, it is
# the number of shares a payment was computed on, which must not be added up).
HOLDING_KINDS = frozenset({"SPLIT", "SSP", "ACATS", "JNLS", "SPIN", "SSO", "REORG", "MA", "NC", "SC",
                           "OPASN", "OPEXP", "OPEXC", "OPXRC", "OPTRD", "SWP", "VOF"})
FEE_IN_KIND = frozenset({"CFEE", "FEE"})             # crypto fees are charged in the received coin

ORDER_STATUSES = {"filled": "filled", "partially_filled": "partially_filled", "canceled": "canceled",
                  "expired": "expired", "rejected": "rejected", "replaced": "other"}
OPEN_ORDER_STATUSES = frozenset({"new", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel",
                                 "pending_replace", "held", "calculated", "stopped", "suspended", "done_for_day"})


class AlpacaAdapter(BrokerAdapter):
    key = "alpaca"
    display_name = "Alpaca"
    environments = ("paper", "live")
    credential_fields = (
        CredentialField("api_key", "API key ID", secret=False,
                        help_text="Starts with PK for paper trading, AK for live. Paper and live keys differ."),
        CredentialField("api_secret", "API secret key", help_text="Shown once, when the key is generated."),
    )
    rate_limit_note = ("200 requests per minute per account (fixed 60 s window); every response carries "
                       "X-Ratelimit-Limit / -Remaining / -Reset; over it: 429 code 42910000.")

    # -- the four questions -----------------------------------------------------------------
    def verify_credentials(self) -> AccountInfo:
        body = self._get("/v2/account")
        if not isinstance(body, dict) or not body.get("id"):
            raise TransientError("alpaca: /v2/account answered without an account id")
        warnings = ["Alpaca keys can always place orders; brokersync only reads with them."]
        if body.get("status") not in (None, "ACTIVE"):
            warnings.append(f"account status is {body.get('status')}")
        if body.get("account_blocked") or body.get("trading_blocked"):
            warnings.append("the account is blocked")
        return AccountInfo(account_id=str(body["id"]), currency=str(body.get("currency") or "USD"),
                           warnings=tuple(warnings), raw=body, can_trade=True)     # no read-only keys exist

    def fetch_positions(self) -> PositionSnapshot:
        rows = self._get_list("/v2/positions")
        account = self._get("/v2/account")
        if not isinstance(account, dict):
            raise TransientError("alpaca: /v2/account body is not an object")
        positions, skipped = [], []
        for raw in rows:
            try:
                positions.append(parse_position(raw))
            except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
                skipped.append(SkippedRecord(f"unparseable position: {type(exc).__name__}", _as_dict(raw)))
        cash = {}
        try:
            cash[str(account.get("currency") or "USD")] = Decimal(str(account["cash"]))
        except (KeyError, InvalidOperation):
            skipped.append(SkippedRecord("account without a readable cash balance", account))
        return PositionSnapshot(positions=positions, cash=cash, skipped=skipped, requests=2)

    def fetch_transactions(self, cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        cursor = cursor or {}
        last_id = cursor.get("last_id") or None
        watermark = parse_time(cursor["watermark"]) if cursor.get("watermark") else None
        items: list[Transaction] = []
        skipped: list[SkippedRecord] = []
        pages = 0
        while True:
            params: dict[str, Any] = {"direction": "asc", "page_size": ACTIVITY_PAGE_SIZE}
            if last_id:
                params["page_token"] = last_id
            elif watermark is not None:      # a cursor from before last_id existed: resume by time
                params["after"] = _rfc3339(watermark - ONE_US)
            body = self._get_list("/v2/account/activities", params)
            pages += 1
            for raw in body:
                record = parse_activity(raw)
                if isinstance(record, SkippedRecord):
                    skipped.append(record)
                    continue
                items.append(record)
                watermark = record.occurred_at if watermark is None else max(watermark, record.occurred_at)
            last_id = _next_token(body, last_id)
            done = len(body) < ACTIVITY_PAGE_SIZE       # a short page is the end; an empty one too
            if done or pages >= PAGES_PER_CHECKPOINT:
                yield Page(items=items, cursor=_cursor(watermark, last_id=last_id), skipped=skipped, requests=pages)
                items, skipped, pages = [], [], 0
            if done:
                return

    def fetch_orders(self, cursor: dict[str, Any] | None,
                     open_order_ids: Sequence[str] = ()) -> Iterator[Page[Order]]:
        watermark = parse_time(cursor["watermark"]) if cursor and cursor.get("watermark") else None
        seen: set[str] = set()
        for orders, skipped, newest in self._order_windows("all", watermark, seen):
            if newest is not None:
                watermark = newest if watermark is None else max(watermark, newest)
            yield Page(items=orders, cursor=_cursor(watermark), skipped=skipped, requests=1)
        remaining = [oid for oid in dict.fromkeys(open_order_ids) if oid not in seen]
        if len(remaining) > OPEN_LIST_THRESHOLD:
            # One listing of what is still working beats one GET per stored open order.
            for orders, skipped, _ in self._order_windows("open", None, seen):
                yield Page(items=orders, cursor=_cursor(watermark), skipped=skipped, requests=1)
            remaining = [oid for oid in remaining if oid not in seen]
        if remaining:
            yield self._refresh_orders(remaining, watermark)

    def repull_transactions(self, windows: Sequence[RepullWindow],
                            cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        from .alpaca_repull import repull

        return repull(self, windows)

    # -- orders helpers -----------------------------------------------------------------------
    def _order_windows(self, status: str, watermark: datetime | None,
                       seen: set[str]) -> Iterator[tuple[list[Order], list[SkippedRecord], datetime | None]]:
        """Pages of GET /v2/orders, oldest first, moving `after` to 1 us before the last
        submitted_at seen (so orders sharing it on the next page are not skipped)."""
        after = watermark - ONE_US if watermark is not None and watermark > EPOCH else None
        while True:
            params: dict[str, Any] = {"status": status, "direction": "asc", "limit": ORDER_PAGE_LIMIT}
            if after is not None:
                params["after"] = _rfc3339(after)
            body = self._get_list("/v2/orders", params)
            orders, skipped = [], []
            newest = None
            for raw in body:
                record = parse_order(raw)
                if isinstance(record, SkippedRecord):
                    skipped.append(record)
                    continue
                newest = record.submitted_at if newest is None else max(newest, record.submitted_at)
                if record.broker_id not in seen:
                    seen.add(record.broker_id)
                    orders.append(record)
            yield orders, skipped, newest
            if len(body) < ORDER_PAGE_LIMIT or newest is None:
                return
            next_after = newest - ONE_US
            if after is not None and next_after <= after:
                # 500+ orders in one microsecond: the window cannot move without skipping some.
                log.warning("alpaca.orders_same_instant_overflow submitted_at=%s", newest.isoformat())
                next_after = newest
            after = next_after

    def _refresh_orders(self, order_ids: list[str], watermark: datetime | None) -> Page[Order]:
        orders, skipped = [], []
        for oid in order_ids:
            try:
                raw = self._get(f"/v2/orders/{quote(oid, safe='')}")
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                skipped.append(SkippedRecord(f"order {oid} is not found at Alpaca", {"id": oid}))
                continue
            record = parse_order(raw)
            (skipped if isinstance(record, SkippedRecord) else orders).append(record)
        return Page(items=orders, cursor=_cursor(watermark), skipped=skipped, requests=len(order_ids))

    # -- HTTP ---------------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        headers = {"APCA-API-KEY-ID": self.credentials.api_key, "APCA-API-SECRET-KEY": self.credentials.api_secret}
        return self.session.get_json(path, params=params, headers=headers, cost=1)

    def _get_list(self, path: str, params: dict[str, Any] | None = None) -> list:
        body = self._get(path, params)
        if not isinstance(body, list):
            raise TransientError(f"alpaca: {path} answered with a {type(body).__name__}, not a list")
        return body

    @staticmethod
    def vendor_errors(response: requests.Response, body: Any) -> BrokerError | None:
        """Alpaca's {code, message} errors (docs/brokers.md §1.6) -> error kinds."""
        status = response.status_code
        if status < 400:
            return None
        code = body.get("code") if isinstance(body, dict) else None
        message = str(body.get("message") or "")[:200] if isinstance(body, dict) else ""
        if status == 401 or code == 40110000:
            return AuthError("alpaca: request is not authorized (wrong or revoked key, or a key of the "
                             "other environment)", status=status, code=code)
        if status == 403:
            text = message or ("HTML error page" if body is None else "forbidden")
            return AuthError(f"alpaca: forbidden: {text}", status=status, code=code)
        if status == 429:
            return RateLimited("alpaca: rate limit exceeded", retry_after=rate_wait(response), status=status,
                               code=code)
        if status >= 500:
            return TransientError(f"alpaca: HTTP {status}: {message or 'server error'}", status=status, code=code)
        return PermanentError(f"alpaca: HTTP {status} code {code}: {message}", status=status, code=code)


# -- parsing (module functions: the tests feed them the documentation's payloads) -------------
def parse_time(text: str) -> datetime:
    """RFC3339 with up to nanoseconds (cut to microseconds), or a plain date (UTC midnight)."""
    match = _RFC3339.match(str(text).strip())
    if not match:
        raise ValueError(f"not an RFC3339 time: {text!r}")
    day, hh, mm, ss, frac, zone = match.groups()
    y, mo, d = (int(p) for p in day.split("-"))
    micros = int((frac or "0")[:6].ljust(6, "0"))
    dt = datetime(y, mo, d, int(hh or 0), int(mm or 0), int(ss or 0), micros, tzinfo=timezone.utc)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def asset_for(symbol: str, asset_class: str | None = None, exchange: str = "") -> AssetRef:
    """AAPL -> equity; BTC/USD and (for crypto rows) BTCUSD -> BTC; OCC symbols -> option."""
    if "/" in symbol:
        base, _, quote_ccy = symbol.partition("/")
        return coin_asset(base, quote=quote_ccy or "USD")
    if asset_class == "crypto":
        for quote_ccy in CRYPTO_QUOTES:
            if symbol.endswith(quote_ccy) and len(symbol) > len(quote_ccy):
                return coin_asset(symbol[: -len(quote_ccy)], quote=quote_ccy)
        return coin_asset(symbol)
    if asset_class == "us_option" or _OPTION_SYMBOL.match(symbol):
        return AssetRef(symbol=symbol, asset_class=AssetClass.OPTION, exchange=exchange)
    return AssetRef(symbol=symbol, asset_class=AssetClass.EQUITY, exchange=exchange)


def parse_position(raw: dict) -> Position:
    symbol = raw["symbol"]
    qty = Decimal(str(raw["qty"]))
    if raw.get("side") == "short" and qty > 0:      # the docs say shorts are negative; never trust a sign twice
        qty = -qty
    exchange = "" if raw.get("asset_class") == "crypto" else str(raw.get("exchange") or "")
    return Position(asset=asset_for(symbol, raw.get("asset_class"), exchange), broker_symbol=symbol, quantity=qty,
                    avg_entry_price=_decimal(raw.get("avg_entry_price")), cost_basis=_decimal(raw.get("cost_basis")),
                    market_value=_decimal(raw.get("market_value")), current_price=_decimal(raw.get("current_price")),
                    raw=raw)


def transaction_type(kind: str, net: Decimal | None) -> TransactionType:
    if kind in ACTIVITY_TYPES:
        return ACTIVITY_TYPES[kind]
    if kind.startswith("DIV"):
        return TransactionType.DIVIDEND
    if kind.startswith("INT"):
        return TransactionType.INTEREST
    if kind == "TRANS" and net is not None:         # older docs: TRANS = CSD + CSW
        return TransactionType.DEPOSIT if net >= 0 else TransactionType.WITHDRAWAL
    return TransactionType.OTHER


def parse_activity(raw: Any) -> Transaction | SkippedRecord:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("activity_type"), str):
        return SkippedRecord("activity without id or activity_type", _as_dict(raw))
    try:
        return _trade(raw) if raw["activity_type"] == "FILL" else _non_trade(raw)
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        return SkippedRecord(f"unparseable {raw['activity_type']} activity {raw['id']}: {type(exc).__name__}", raw)


def _trade(raw: dict) -> Transaction:
    qty, price, side = Decimal(str(raw["qty"])), Decimal(str(raw["price"])), raw["side"]
    if side not in ("buy", "sell"):
        raise ValueError(f"side {side!r}")
    signed = qty if side == "buy" else -qty
    symbol = raw["symbol"]
    return Transaction(broker_id=raw["id"], type=TransactionType.TRADE, broker_type="FILL",
                       occurred_at=parse_time(raw["transaction_time"]), asset=asset_for(symbol),
                       broker_symbol=symbol, quantity=signed, price=price, amount=-(signed * price),
                       side=side, order_id=str(raw.get("order_id") or ""), status="executed",
                       description=str(raw.get("type") or ""), raw=raw)


def _non_trade(raw: dict) -> Transaction:
    kind = raw["activity_type"]
    net = _decimal(raw.get("net_amount"))
    symbol = str(raw.get("symbol") or "")
    crypto = kind == "CFEE" or (kind in FEE_IN_KIND and bool(_CRYPTO_PAIR.match(symbol)) and len(symbol) >= 6)
    asset = asset_for(symbol, "crypto" if crypto else None) if symbol else None
    qty = _decimal(raw.get("qty"))
    holding_change = kind in HOLDING_KINDS or (crypto and kind in FEE_IN_KIND)
    price = _decimal(raw.get("price"))
    if price is None:
        price = _decimal(raw.get("per_share_amount"))
    return Transaction(broker_id=raw["id"], type=transaction_type(kind, net), broker_type=kind,
                       occurred_at=parse_time(raw["date"]), asset=asset, broker_symbol=symbol,
                       quantity=qty if holding_change else None, price=price, amount=net,
                       status=str(raw.get("status") or "executed"), description=str(raw.get("description") or ""),
                       raw=raw)


def normalised_order_status(status: str) -> str:
    if status in ORDER_STATUSES:
        return ORDER_STATUSES[status]
    return "open" if status in OPEN_ORDER_STATUSES else "other"


def parse_order(raw: Any) -> Order | SkippedRecord:
    if not isinstance(raw, dict) or not raw.get("id"):
        return SkippedRecord("order without id", _as_dict(raw))
    try:
        symbol = str(raw["symbol"])
        status = str(raw["status"])
        when = lambda key: parse_time(raw[key]) if raw.get(key) else None  # noqa: E731
        return Order(broker_id=str(raw["id"]), asset=asset_for(symbol, raw.get("asset_class")), broker_symbol=symbol,
                     side=str(raw.get("side") or ""), order_type=str(raw.get("type") or raw.get("order_type") or ""),
                     status=normalised_order_status(status), broker_status=status,
                     submitted_at=when("submitted_at") or parse_time(raw["created_at"]),
                     client_order_id=str(raw.get("client_order_id") or ""),
                     time_in_force=str(raw.get("time_in_force") or ""), quantity=_decimal(raw.get("qty")),
                     notional=_decimal(raw.get("notional")),
                     filled_quantity=_decimal(raw.get("filled_qty")) or Decimal("0"),
                     filled_avg_price=_decimal(raw.get("filled_avg_price")),
                     limit_price=_decimal(raw.get("limit_price")), stop_price=_decimal(raw.get("stop_price")),
                     updated_at=when("updated_at"), filled_at=when("filled_at"), canceled_at=when("canceled_at"),
                     raw=raw)
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        return SkippedRecord(f"unparseable order {raw.get('id')}: {type(exc).__name__}", raw)


def rate_wait(response: requests.Response) -> float:
    """Seconds until the window resets: Retry-After if sent, else X-Ratelimit-Reset (unix
    seconds), never more than one window (a reset further away is a clock mismatch)."""
    headers = response.headers
    try:
        if headers.get("Retry-After"):
            return min(RATE_WINDOW_SECONDS, max(0.0, float(headers["Retry-After"])))
        if headers.get("X-Ratelimit-Reset"):
            return min(RATE_WINDOW_SECONDS, max(0.0, float(headers["X-Ratelimit-Reset"]) - time.time()))
    except ValueError:
        pass
    return DEFAULT_RATE_WAIT


def _next_token(body: list, previous: str | None) -> str | None:
    if not body:
        return previous
    last = body[-1].get("id") if isinstance(body[-1], dict) else None
    if not isinstance(last, str) or not last:
        raise TransientError("alpaca: an activity page ends with a row without id; cannot page on")
    if last == previous:
        raise TransientError("alpaca: activity paging did not move past its token")
    return last


def _cursor(watermark: datetime | None, **extra: Any) -> dict[str, Any]:
    return {"watermark": (watermark or EPOCH).isoformat(), **extra}


def _as_dict(raw: Any) -> dict:
    return raw if isinstance(raw, dict) else {"value": raw}
