"""Binance Spot: /api/v3 for balances, trades and orders, /sapi for the wallet.

Auth: X-MBX-APIKEY header; SIGNED calls add recvWindow and timestamp (ms) and sign the
exact query string (+ body) with HMAC-SHA256, hex (rest-api.md "SIGNED Endpoint
security"). The server rejects a timestamp outside its recvWindow (-1021): on that
answer the adapter reads /api/v3/time once, keeps the offset, and signs again.

Rate limits: request weight per egress IP across every user and key (6,000 a minute),
so `rate_scope` is the IP, and every call passes its weight as `cost`. /sapi weights
are counted by Binance apart from /api: IP-weighted ones per endpoint (12,000 a minute;
deposits cost 1, dividends 10) pass cost 0 to the /api budget; the UID-weighted withdraw
history (18,000 of 180,000 a minute per account) goes through a second session whose
scope is the account (limiter rule "binance-uid"), so a 429 there never blocks the IP.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from ...base import BrokerAdapter, egress_ip
from ...dtos import AccountInfo, CredentialField, Order, Page, Position, PositionSnapshot, SkippedRecord, Transaction
from ...errors import AuthError, BadRecord, BrokerError, PermanentError, RateLimited, TransientError
from ...http import BrokerSession
from ...symbols import FIAT, canonical_code, coin_asset
from . import weights
from .markets import Markets
from .orders import OrderSync
from .parse import dec
from .transactions import TransactionSync

UID_BUDGET = "binance-uid"               # settings.BROKER_RATE_LIMITS key for UID-weighted /sapi calls
VERIFY_BUDGET = "binance-verify"         # ... for key checks: a reserved slice of the IP's weight
RECV_WINDOW_MS = 5000                   # Binance's default; its docs advise 5,000 or less
MARKETS_TTL = 3600.0                    # exchangeInfo changes on listings/delistings only
SHARED_MARKETS_TTL = 300.0              # how long another sync's exchangeInfo is reused (a new listing waits this long)
ACCOUNT_REUSE_SECONDS = 60.0            # how long one execution's steps share an account read
USD_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD")     # pairs that price a coin in (near) dollars
USD_STABLECOINS = frozenset(USD_QUOTES)
_BANNED_UNTIL = re.compile(r"banned until (\d{13})")
# Codes (errors.md) -> kind. -1021 is the clock; 5xx-style codes mean "unknown, try again".
_AUTH = {-2014: "API-key format invalid", -2015: "invalid API key, IP or permissions",
         -1022: "signature rejected: the API secret is wrong"}
_TRANSIENT = frozenset({-1000, -1001, -1006, -1007, -1008, -1021})


class BinanceAdapter(BrokerAdapter):
    key = "binance"
    display_name = "Binance"
    environments = ("live",)
    credential_fields = (
        CredentialField("api_key", "API key", secret=False,
                        help_text="Create a read-only key (Enable Reading only) under API Management."),
        CredentialField("api_secret", "Secret key"),
    )
    rate_limit_note = ("Request weight, 6,000 per minute per egress IP shared by every user "
                       "(X-MBX-USED-WEIGHT-1M); over it 429, then 418 IP bans of 2 minutes up to 3 days. "
                       "Trades are fetched per symbol at 20 weight each. /sapi wallet history is counted "
                       "apart (withdraw history: 18,000 UID weight, about 10 calls a minute).")

    def __init__(self, *, history_days: int = 730, deep_scan: bool = False, **kw):
        """`history_days`: how far back the first sync walks deposits, withdrawals and
        dividends (their APIs need time windows; trades are walked by id from the first)."""
        super().__init__(**kw)
        self.history_days = history_days
        self.deep_scan = deep_scan
        self._clock_offset_ms = 0
        self._markets: tuple[float, Markets] | None = None
        self._uid_session: BrokerSession | None = None
        # Learnt by fetch_transactions, read by fetch_orders of the same run: symbols with
        # trades (for a first orders sync) and symbols with new trades this run.
        self.trade_symbols: set[str] = set()
        self.new_trade_symbols: set[str] = set()
        self.trades_known = False               # trade_symbols holds every pair with trades
        self.trades_snapshot: dict[str, int] | None = None   # {symbol: next fromId}, from prime()

    @classmethod
    def adapter_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """{"deep": true} walks every candidate pair (and every pair quoted in a held common
        quote asset) instead of only those reconcile says can hold trades."""
        return {"deep_scan": options.get("deep") is True}

    def prime(self, cursors: dict[str, dict[str, Any]]) -> None:
        """What the transactions step of this run (another adapter, maybe another process)
        stored: the pairs with trades, and which of them have new trades since the orders
        step last looked, so fetch_orders never repeats the wallet-history discovery."""
        tx = cursors.get("transactions") or {}
        if tx.get("balances") is None or "pass" in tx:
            return                                          # no completed trades pass to lean on
        trades = {s: n for s, n in (tx.get("trades") or {}).items() if n}
        seen = (cursors.get("orders") or {}).get("trades_seen") or {}
        self.trade_symbols = set(trades)
        self.new_trade_symbols = {s for s, n in trades.items() if seen.get(s) != n}
        self.trades_snapshot = trades
        self.trades_known = True

    @classmethod
    def rate_scope(cls, credentials, environment) -> str:
        return f"binance:ip:{egress_ip()}"

    # -- HTTP ---------------------------------------------------------------------------------
    @property
    def requests_made(self) -> int:
        return self.session.requests_made + (self._uid_session.requests_made if self._uid_session else 0)

    def call(self, path: str, params: Sequence[tuple[str, Any]] = (), *, cost: float, signed: bool = True,
             uid: bool = False, budget: tuple[str, str] | None = None) -> Any:
        """GET with Binance signing; one clock resync when the server says -1021.
        `uid`: the endpoint is weighted per account, not per IP. `budget`: (rule, scope) to
        spend instead of the session's own (key checks spend their reserved slice)."""
        session = self._uid_budget() if uid else self.session
        for attempt in (1, 2):
            try:
                return session.get_json(path, params=list(params), cost=cost, sign=self._sign if signed else None,
                                        budget=budget)
            except TransientError as exc:
                if exc.code != -1021 or attempt == 2:
                    raise
                self._sync_clock()
        raise AssertionError("unreachable")

    def _uid_budget(self) -> BrokerSession:
        if self._uid_session is None:
            s = self.session
            digest = hashlib.sha256(self.credentials.api_key.encode()).hexdigest()[:16]
            self._uid_session = BrokerSession(broker=UID_BUDGET, base_url=s.base_url, scope=f"binance:uid:{digest}",
                                              limiter=s.limiter, policy=s.policy, vendor_errors=s.vendor_errors,
                                              secrets=s.secrets, sleep=s.sleep, http=s.http)
        return self._uid_session

    def _sign(self, method: str, path: str, params: Any, data: Any, headers: dict) -> tuple[Any, Any, dict]:
        query = urlencode(list(params or []) + [("recvWindow", RECV_WINDOW_MS), ("timestamp", self.server_ms())])
        body = urlencode(data) if isinstance(data, (dict, list)) else (data or "")
        signature = hmac.new(self.credentials.api_secret.encode(), (query + body).encode(), hashlib.sha256)
        headers = {**headers, "X-MBX-APIKEY": self.credentials.api_key}
        return f"{query}&signature={signature.hexdigest()}", data, headers

    def _sync_clock(self) -> None:
        sent = time.time()
        server = self.call("/api/v3/time", cost=weights.SERVER_TIME, signed=False)["serverTime"]
        self._clock_offset_ms = int(server) - int((sent + time.time()) / 2 * 1000)

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self._clock_offset_ms

    def account_body(self) -> dict:
        """/api/v3/account (20). The steps of one task execution share a read while it is
        under ACCOUNT_REUSE_SECONDS old: positions, then the transactions and the orders
        passes each read it, 40 weight a sync more than needed. A balance that moved since
        is seen by the next sync, which compares with the older read (it walks more, never less)."""
        kept = self.handoff.get("binance_account")
        if kept is not None and time.monotonic() - kept[0] < ACCOUNT_REUSE_SECONDS:
            return kept[1]
        body = self.call("/api/v3/account", [("omitZeroBalances", "true")], cost=weights.ACCOUNT)
        if not isinstance(body, dict) or not isinstance(body.get("balances"), list):
            raise TransientError("binance: account answer without balances")
        self.handoff["binance_account"] = (time.monotonic(), body)
        return body

    def markets(self) -> Markets:
        if self._markets is None:
            self._markets = SHARED_MARKETS.get(self.session.base_url)
        if self._markets is None or time.monotonic() - self._markets[0] > MARKETS_TTL:
            body = self.call("/api/v3/exchangeInfo", cost=weights.EXCHANGE_INFO, signed=False)
            self._markets = (time.monotonic(), Markets.from_exchange_info(body))
            SHARED_MARKETS.put(self.session.base_url, self._markets)
            self._learn_weight_limit(body)
        return self._markets[1]

    def _learn_weight_limit(self, exchange_info: dict) -> None:
        """The real REQUEST_WEIGHT budget is whatever exchangeInfo says today (6,000/min in
        the docs' example, 1,200 in older docs): teach it to the shared limiter."""
        limiter = self.session.limiter
        reserved = limiter.rule_for(VERIFY_BUDGET) if limiter is not None else None
        for rule in exchange_info.get("rateLimits") or []:
            if rule.get("rateLimitType") == "REQUEST_WEIGHT" and rule.get("interval") == "MINUTE" \
                    and int(rule.get("intervalNum", 1)) == 1 and limiter is not None:
                # Syncs get the IP's budget less the slice key checks keep for themselves.
                limiter.learn_limit(self.key, float(rule["limit"]) - (reserved.limit if reserved else 0))

    def cached_markets(self) -> Markets | None:
        return self._markets[1] if self._markets else None

    # -- the four questions ---------------------------------------------------------------------
    def verify_credentials(self) -> AccountInfo:
        """apiRestrictions first (1 /sapi weight: a bad key ends there, costing no /api weight),
        then the account for its uid (20). Both spend the key checks' own budget, never the
        syncs' share of the IP's weight."""
        budget = (VERIFY_BUDGET, f"binance:verify:ip:{egress_ip()}")
        restrictions = self.call("/sapi/v1/account/apiRestrictions", cost=weights.API_RESTRICTIONS, budget=budget)
        if not restrictions.get("enableReading", True):
            raise AuthError("binance: this key cannot read the account (Enable Reading is off)")
        account = self.call("/api/v3/account", [("omitZeroBalances", "true")], cost=weights.ACCOUNT, budget=budget)
        if not isinstance(account, dict) or "uid" not in account:
            raise TransientError("binance: account answer without uid")
        can_trade, can_withdraw = bool(restrictions.get("enableSpotAndMarginTrading")), \
            bool(restrictions.get("enableWithdrawals"))
        warnings = []
        if can_trade:
            warnings.append("This key can trade (spot and margin). A sync needs a read-only key.")
        if can_withdraw:
            warnings.append("This key can withdraw funds. A sync needs a read-only key; please replace it.")
        return AccountInfo(account_id=str(account["uid"]), currency="USD", warnings=tuple(warnings),
                           can_trade=can_trade, can_withdraw=can_withdraw,
                           raw={"accountType": account.get("accountType"), "permissions": account.get("permissions"),
                                "canTrade": account.get("canTrade"), "restrictions": restrictions})

    def fetch_positions(self) -> PositionSnapshot:
        start = self.requests_made
        positions, cash, skipped = [], {}, []
        for row in self.account_body()["balances"]:
            try:
                asset, total = str(row["asset"]), dec(row, "free") + dec(row, "locked")
            except (KeyError, TypeError, BadRecord) as exc:
                skipped.append(SkippedRecord(reason=f"balance: {exc}", raw=row if isinstance(row, dict) else {}))
                continue
            if not total:
                continue
            if canonical_code(asset) in FIAT:
                cash[canonical_code(asset)] = total
            else:
                positions.append(Position(asset=coin_asset(asset), broker_symbol=asset, quantity=total, raw=row))
        positions = self._priced(positions) if positions else positions
        return PositionSnapshot(positions=positions, cash=cash, skipped=skipped, requests=self.requests_made - start)

    def _priced(self, positions: list[Position]) -> list[Position]:
        """Value each coin in US dollars from one all-symbols ticker call (weight 4):
        its USDT/USDC/FDUSD pair, stablecoins at 1, None where Binance has no such pair."""
        prices = {row["symbol"]: Decimal(str(row["price"]))
                  for row in self.call("/api/v3/ticker/price", cost=weights.TICKER_ALL, signed=False)
                  if isinstance(row, dict) and "symbol" in row and "price" in row}
        priced = []
        for p in positions:
            code = p.broker_symbol.upper()
            price = Decimal(1) if code in USD_STABLECOINS else next(
                (prices[code + quote] for quote in USD_QUOTES if code + quote in prices), None)
            priced.append(replace(p, current_price=price, market_value=None if price is None else p.quantity * price))
        return priced

    def fetch_transactions(self, cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        return TransactionSync(self, cursor).run()

    def fetch_orders(self, cursor: dict[str, Any] | None,
                     open_order_ids: Sequence[str] = ()) -> Iterator[Page[Order]]:
        return OrderSync(self, cursor, open_order_ids).run()

    def repull_transactions(self, windows, cursor) -> Iterator[Page[Transaction]]:
        from .repull import Repull

        return Repull(self, cursor).run(windows)

    # -- errors ---------------------------------------------------------------------------------
    @staticmethod
    def vendor_errors(response, body) -> BrokerError | None:
        """Binance's {"code": <negative>, "msg": ...} bodies and its 429/418/403 answers."""
        status = response.status_code
        code = body.get("code") if isinstance(body, dict) else None
        is_error = status >= 400 or (isinstance(code, int) and code < 0 and "msg" in body)
        if not is_error:
            return None
        msg = str(body.get("msg", ""))[:200] if isinstance(body, dict) else ""
        text = f"binance {code}: {msg}" if code is not None else f"binance: HTTP {status}"
        if status == 418:
            return RateLimited(text, retry_after=_ban_wait(response, msg), banned=True, status=status, code=code)
        if status == 429 or code in (-1003, -1015):
            return RateLimited(text, retry_after=_retry_after(response), status=status, code=code)
        if code in _AUTH:
            return AuthError(f"binance {code}: {_AUTH[code]}", status=status, code=code)
        if code in _TRANSIENT or status >= 500:
            return TransientError(text, status=status, code=code)
        if status == 403:                   # Binance: the WAF limit, not a permission problem
            return RateLimited(text + " (WAF limit)", retry_after=60.0, status=status, code=code)
        if code is not None:
            return PermanentError(text, status=status, code=code)
        return None


def _header_seconds(response) -> float:
    try:
        return float(response.headers.get("Retry-After") or 0)
    except ValueError:
        return 0.0


def _retry_after(response) -> float:
    """Retry-After, or the end of Binance's fixed minute when it is missing or 0 (seen)."""
    wait = _header_seconds(response)
    return wait if wait > 0 else max(1.0, 60 - time.time() % 60)


def _ban_wait(response, msg: str) -> float:
    match = _BANNED_UNTIL.search(msg)
    if match:
        return max(1.0, int(match.group(1)) / 1000 - time.time())
    wait = _header_seconds(response)
    return wait if wait > 0 else 120.0          # a ban is at least 2 minutes


class _SharedMarkets:
    """exchangeInfo is public and the same for every user: the syncs of one process share
    one parsed copy per base URL for SHARED_MARKETS_TTL. Fetched by every sync, its ~1 MB
    was a tenth of a fleet worker's CPU, and 20 of the IP's weight each time. Markets is
    not changed once built, so threads read it freely."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_url: dict[str, tuple[float, Markets]] = {}

    def get(self, base_url: str) -> tuple[float, Markets] | None:
        with self._lock:
            found = self._by_url.get(base_url)
        return found if found is not None and time.monotonic() - found[0] <= SHARED_MARKETS_TTL else None

    def put(self, base_url: str, entry: tuple[float, Markets]) -> None:
        with self._lock:
            self._by_url[base_url] = entry

    def clear(self) -> None:
        with self._lock:
            self._by_url.clear()


SHARED_MARKETS = _SharedMarkets()
