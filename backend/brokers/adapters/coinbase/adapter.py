"""Coinbase Advanced Trade v3 + the v2 Coinbase App endpoints a sync still needs.

Positions come from v3 accounts (available + hold), valued with v3 product prices.
Transactions are v3 fills plus v2 wallet rows (deposits, withdrawals, sends, receives,
rewards, converts), minus the v2 rows that repeat fills. Orders come from
orders/historical/batch. Facts and their sources: docs docs/brokers.md §2.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import requests

from ...base import BrokerAdapter
from ...dtos import AccountInfo, CredentialField, Order, Page, Position, PositionSnapshot, SkippedRecord, Transaction
from ...errors import AuthError, BadRecord, BrokerError, PermanentError, RateLimited, TransientError
from ...symbols import FIAT, canonical_code, coin_asset
from . import parse
from .auth import JwtSigner
from .streams import NewestFirstWalk, newest
from .wallets import WalletPass

V3 = "/api/v3/brokerage"
ACCOUNTS_LIMIT = 250                # documented maximum [CB-PG list-accounts.md]
FILLS_LIMIT = 250                   # max not documented; ccxt pages fills by 250
ORDERS_LIMIT = 1000                 # max not documented; ccxt pages orders by 1000
ORDER_IDS_PER_REQUEST = 50          # keeps the query string well under common 8 KB URL limits
PRODUCT_IDS_PER_REQUEST = 100       # above this, one unfiltered SPOT listing is cheaper
CHECKPOINT_ITEMS = 1000             # v2 rows per Page (the cursor carries every wallet's position)
STABLE_USD = {"USDC": Decimal(1)}   # Coinbase converts USDC 1:1 with USD; there is no USDC-USD book
PARSE_ERRORS = (BadRecord, KeyError, TypeError, ValueError, ArithmeticError, AttributeError)

AUTH_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "authentication_error", "invalid_token",
                        "expired_token", "revoked_token", "invalid_scope", "two_factor_required"})
RATE_CODES = frozenset({"RESOURCE_EXHAUSTED", "rate_limit_exceeded"})


class CoinbaseAdapter(BrokerAdapter):
    key = "coinbase"
    display_name = "Coinbase"
    environments = ("live",)
    credential_fields = (
        CredentialField("api_key", "API key name",
                        help_text="organizations/{org_id}/apiKeys/{key_id}, from a CDP API key with View only"),
        CredentialField("api_secret", "Private key (PEM)", multiline=True,
                        help_text="-----BEGIN EC PRIVATE KEY----- ... (the ECDSA key; paste it whole)"),
    )
    rate_limit_note = ("Advanced Trade v3: 30 requests/second per key on private endpoints; "
                       "v2 Coinbase App endpoints: 10,000 requests/hour per key.")

    def __init__(self, **kw):
        super().__init__(**kw)
        self._signer: JwtSigner | None = None

    # -- HTTP ---------------------------------------------------------------------------------
    def _sign(self, method, path, params, data, headers):
        if self._signer is None:
            self._signer = JwtSigner(self.credentials.api_key, self.credentials.api_secret, self.session.base_url)
        return self._signer(method, path, params, data, headers)

    def _get(self, path: str, params: list[tuple[str, Any]] | None = None) -> dict:
        body = self.session.get_json(path, params=params or None, sign=self._sign)
        if not isinstance(body, dict):
            raise TransientError(f"coinbase: unexpected body from {path}")
        return body

    # -- verify ---------------------------------------------------------------------------------
    def verify_credentials(self) -> AccountInfo:
        permissions = self._get(f"{V3}/key_permissions")
        portfolio = permissions.get("portfolio_uuid")
        if not permissions.get("can_view") or not portfolio:
            raise AuthError("coinbase: this key cannot view the account; create a key with the View permission")
        self._get(f"{V3}/accounts", [("limit", 1)])      # the key really reads balances
        warnings = []
        if permissions.get("can_trade"):
            warnings.append("This key can trade; a sync needs a view-only key.")
        if permissions.get("can_transfer"):
            warnings.append("This key can transfer funds; a sync needs a view-only key.")
        return AccountInfo(account_id=str(portfolio), currency="USD", warnings=tuple(warnings), raw=permissions,
                           can_trade=bool(permissions.get("can_trade")),
                           can_withdraw=bool(permissions.get("can_transfer")))

    # -- positions --------------------------------------------------------------------------------
    def _v3_accounts(self) -> list[dict]:
        """Every v3 account, left in `handoff` for the transactions step of the same execution
        (its wallets' balances tell which v2 wallets moved)."""
        listing = self._list_v3_accounts()
        self.handoff["coinbase_v3_accounts"] = listing
        return listing

    def _list_v3_accounts(self) -> list[dict]:
        found, cursor = [], None
        while True:
            params = [("limit", ACCOUNTS_LIMIT)] + ([("cursor", cursor)] if cursor else [])
            body = self._get(f"{V3}/accounts", params)
            page = [a for a in body.get("accounts") or [] if isinstance(a, dict)]
            found += page
            cursor = body.get("cursor")
            if not page or not body.get("has_next") or not cursor:
                return found

    def _prices(self, symbols: list[str]) -> dict[str, Decimal]:
        wanted = [s for s in symbols if s not in STABLE_USD]
        if not wanted:
            return dict(STABLE_USD)
        if len(wanted) <= PRODUCT_IDS_PER_REQUEST:
            params = [("product_ids", f"{s}-USD") for s in wanted]
        else:
            params = [("product_type", "SPOT")]
        prices = dict(STABLE_USD)
        for product in self._get(f"{V3}/products", params).get("products") or []:
            base, _, quote = str(product.get("product_id", "")).partition("-")
            try:
                if quote == "USD" and product.get("price") not in (None, ""):
                    prices[canonical_code(base)] = parse.dec(product["price"], "price")
            except BadRecord:
                continue
        return prices

    def fetch_positions(self) -> PositionSnapshot:
        start = self.session.requests_made
        held: dict[str, tuple[Decimal, list[dict]]] = {}
        cash: dict[str, Decimal] = {}
        skipped = []
        for raw in self._v3_accounts():
            try:
                currency, total = parse.account_balance(raw)
            except PARSE_ERRORS as exc:
                skipped.append(SkippedRecord(reason=f"account: {exc}", raw=raw))
                continue
            symbol = canonical_code(currency)
            if symbol in FIAT:
                cash[symbol] = cash.get(symbol, Decimal(0)) + total
            elif total != 0:
                qty, raws = held.get(symbol, (Decimal(0), []))
                held[symbol] = (qty + total, raws + [raw])
        prices = self._prices(sorted(held)) if held else {}
        positions = [self._position(symbol, qty, raws, prices.get(symbol)) for symbol, (qty, raws) in held.items()]
        return PositionSnapshot(positions=positions, cash=cash, skipped=skipped,
                                requests=self.session.requests_made - start)

    @staticmethod
    def _position(symbol: str, qty: Decimal, raws: list[dict], price: Decimal | None) -> Position:
        currencies = [str(r.get("currency")) for r in raws]
        broker_symbol = symbol if symbol in currencies else currencies[0]
        return Position(asset=coin_asset(symbol), broker_symbol=broker_symbol, quantity=qty,
                        market_value=qty * price if price is not None else None, current_price=price,
                        raw=raws[0] if len(raws) == 1 else {"accounts": raws})

    # -- transactions -------------------------------------------------------------------------------
    def fetch_transactions(self, cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        cursor = cursor or {}
        fills = NewestFirstWalk(cursor.get("fills"), time_key="sequence_timestamp", id_key="entry_id")
        wallets = WalletPass(cursor.get("v2"), self._get, full_pass_seconds=_full_pass_seconds())
        watermark = cursor.get("watermark")
        mark = self.session.requests_made

        def page(items, skipped) -> Page[Transaction]:
            """A checkpoint: both streams' positions as they stand after `items`."""
            nonlocal watermark, mark
            times = [parse.format_time(t.occurred_at) for t in items]
            watermark = newest(watermark, *times, wallets.newest_row)
            spent, mark = self.session.requests_made - mark, self.session.requests_made
            return Page(items=items, skipped=skipped, requests=spent,
                        cursor={"watermark": watermark, "fills": fills.state(), "v2": wallets.state()})

        for raws in fills.pages(self._fetch_fills):
            items, skipped = _parse_all(raws, parse.fill_transactions, "fill")
            if items or skipped:
                yield page(items, skipped)
        yield from self._wallet_pages(wallets, page)

    def _fetch_fills(self, since: str | None, page_cursor: str | None) -> tuple[list[dict], str]:
        params: list[tuple[str, Any]] = [("limit", FILLS_LIMIT)]
        if since:
            params.append(("start_sequence_timestamp", since))
        if page_cursor:
            params.append(("cursor", page_cursor))
        body = self._get(f"{V3}/orders/historical/fills", params)
        records = [f for f in body.get("fills") or [] if isinstance(f, dict)]
        return records, str(body.get("cursor") or "") if records else ""

    def _wallet_pages(self, wallets: WalletPass, page) -> Iterator[Page[Transaction]]:
        # the positions step's listing when it ran just before in this execution, else our own
        accounts = self.handoff.pop("coinbase_v3_accounts", None)
        balances = _balance_marks(accounts if accounts is not None else self._list_v3_accounts())
        moved = wallets.moved_wallets(balances)
        listed = wallets.wallets() if moved is None else None
        due, sweep = wallets.due(listed) if listed is not None else (moved, False)
        items: list[Transaction] = []
        skipped: list[SkippedRecord] = []
        for wallet in due:
            for raws in wallets.rows(str(wallet["id"])):
                rows, bad = _parse_all(raws, lambda r: [t for t in [parse.v2_transaction(r)] if t], "v2 row")
                items += rows
                skipped += bad
                if len(items) + len(skipped) >= CHECKPOINT_ITEMS:
                    yield page(items, skipped)
                    items, skipped = [], []
        if listed is not None:
            wallets.finish(listed, sweep)
        wallets.remember(balances, listed)
        yield page(items, skipped)          # always: the final cursor covers everything seen

    def repull_transactions(self, windows, cursor) -> Iterator[Page[Transaction]]:
        from .repull import repull

        return repull(self, windows)

    # -- orders -----------------------------------------------------------------------------------
    def fetch_orders(self, cursor: dict[str, Any] | None,
                     open_order_ids: Sequence[str] = ()) -> Iterator[Page[Order]]:
        walk = NewestFirstWalk(cursor, time_key="created_time", id_key="order_id")
        watermark = (cursor or {}).get("watermark")
        mark = self.session.requests_made
        seen_ids: set[str] = set()
        for raws in walk.pages(self._fetch_orders):
            items, skipped = _parse_all(raws, lambda r: [parse.order(r)], "order")
            seen_ids.update(o.broker_id for o in items)
            watermark = newest(watermark, *(parse.format_time(o.submitted_at) for o in items))
            if items or skipped or walk.done:
                refreshed, bad = self._refresh(open_order_ids, seen_ids, incremental=bool(cursor)) \
                    if walk.done else ([], [])
                yield Page(items=items + refreshed, skipped=skipped + bad,
                           cursor={"watermark": watermark, **walk.state()},
                           requests=self.session.requests_made - mark)
                mark = self.session.requests_made

    def _fetch_orders(self, since: str | None, page_cursor: str | None) -> tuple[list[dict], str]:
        params: list[tuple[str, Any]] = [("limit", ORDERS_LIMIT)]
        if since:
            params.append(("start_date", since))
        if page_cursor:
            params.append(("cursor", page_cursor))
        body = self._get(f"{V3}/orders/historical/batch", params)
        records = [o for o in body.get("orders") or [] if isinstance(o, dict)]
        return records, str(body.get("cursor") or "") if records and body.get("has_next") else ""

    def _list_orders(self, params: list[tuple[str, Any]]) -> list[dict]:
        found, cursor = [], None
        while True:
            body = self._get(f"{V3}/orders/historical/batch",
                             params + [("limit", ORDERS_LIMIT)] + ([("cursor", cursor)] if cursor else []))
            page = [o for o in body.get("orders") or [] if isinstance(o, dict)]
            found += page
            cursor = body.get("cursor")
            if not page or not body.get("has_next") or not cursor:
                return found

    def _refresh(self, open_order_ids: Sequence[str], seen_ids: set[str], *,
                 incremental: bool) -> tuple[list[Order], list[SkippedRecord]]:
        """Orders stored as open last time: one OPEN listing tells which are still open;
        the others are fetched by id (they filled, were cancelled or expired)."""
        known = set(open_order_ids)
        stale = [i for i in open_order_ids if i not in seen_ids]
        raws: list[dict] = []
        if stale and incremental:
            open_now = self._list_orders([("order_status", "OPEN")])
            still_open = {str(o.get("order_id")) for o in open_now}
            # an open order neither stored nor in this walk (older than the cursor): take it too
            have = seen_ids | known
            raws += [o for o in open_now if str(o.get("order_id")) not in have]
            stale = [i for i in stale if i not in still_open]
        for start in range(0, len(stale), ORDER_IDS_PER_REQUEST):
            chunk = stale[start:start + ORDER_IDS_PER_REQUEST]
            raws += self._list_orders([("order_ids", i) for i in chunk])
        return _parse_all(raws, lambda r: [parse.order(r)], "order")

    # -- errors -----------------------------------------------------------------------------------
    @staticmethod
    def vendor_errors(response: requests.Response, body: Any) -> BrokerError | None:
        status = response.status_code
        if status < 400:
            return None
        code, message = _error_code(body)
        code = code or None
        if status == 429 or code in RATE_CODES:
            return RateLimited("coinbase: rate limit reached", retry_after=_reset_seconds(response),
                               status=status, code=code)
        if status == 401:
            return AuthError("coinbase: the API key was rejected (401 Unauthorized): wrong key name or "
                             "private key, a revoked key, or a clock more than a minute off", status=401, code=code)
        if status == 403 or code in AUTH_CODES:
            return AuthError(f"coinbase: the key lacks a required permission ({message or code or status})",
                             status=status, code=code)
        if status >= 500:
            return TransientError(f"coinbase: HTTP {status} {code or ''}".strip(), status=status, code=code)
        return PermanentError(f"coinbase: HTTP {status} {code}: {message}"[:300], status=status, code=code)


def _balance_marks(accounts: list[dict]) -> dict[str, str]:
    """{currency: "total balance@newest updated_at"} from v3 accounts: what moves when a
    wallet books anything. An account that does not parse marks its currency as unknown,
    so it always reads as moved."""
    totals: dict[str, Decimal] = {}
    times: dict[str, str] = {}
    for raw in accounts:
        try:
            currency, total = parse.account_balance(raw)
        except PARSE_ERRORS:
            currency, total = str(raw.get("currency") or "?"), None
        if total is None or currency in times and times[currency] == "?":
            times[currency] = "?"
            continue
        totals[currency] = totals.get(currency, Decimal(0)) + total
        times[currency] = max(times.get(currency, ""), str(raw.get("updated_at") or ""))
    return {c: "?" if t == "?" else f"{totals[c].normalize()}@{t}" for c, t in times.items()}


def _full_pass_seconds() -> float:
    """COINBASE_WALLET_FULL_PASS_HOURS: every v2 wallet is read at least this often."""
    try:
        from django.conf import settings

        return float(getattr(settings, "COINBASE_WALLET_FULL_PASS_HOURS", 24)) * 3600
    except Exception:  # noqa: BLE001 - used without Django settings: the default
        return 24 * 3600.0


def _error_code(body: Any) -> tuple[str, str]:
    """v3: {"error", "error_details", "message"}; v2: {"errors": [{"id", "message"}]}."""
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list) and body["errors"] and isinstance(body["errors"][0], dict):
            first = body["errors"][0]
            return str(first.get("id") or ""), str(first.get("message") or "")[:200]
        if body.get("error"):
            return str(body["error"]), str(body.get("error_details") or body.get("message") or "")[:200]
    return "", ""


def _reset_seconds(response: requests.Response) -> float:
    """x-ratelimit-reset: seconds until the window resets (an epoch value is converted)."""
    for header in ("x-ratelimit-reset", "Retry-After"):
        try:
            value = float(response.headers.get(header) or "nan")
        except ValueError:
            continue
        if value == value:                 # not NaN
            return max(0.0, value - time.time()) if value > 1e9 else value
    return 1.0


def _parse_all(raws: list[dict], parser, what: str) -> tuple[list, list[SkippedRecord]]:
    items, skipped = [], []
    for raw in raws:
        try:
            items += parser(raw)
        except PARSE_ERRORS as exc:
            skipped.append(SkippedRecord(reason=f"{what}: {exc}", raw=raw))
    return items, skipped
