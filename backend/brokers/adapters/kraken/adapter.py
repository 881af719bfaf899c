"""Kraken Spot REST (docs/brokers.md §4).

    verify      Balance, then one probe per permission a sync needs, then whether the key may
                trade or withdraw (probes that change nothing, docs/brokers.md §4.8). Kraken has no endpoint
                that returns an account id: ours is derived from a hash of the API key, so a
                new key for the same Kraken account shows up as a new account id.
    positions   Balance, valued with Ticker. Staked (.S) and auto-earn (.F) shadow balances
                are merged into their coin (DOT + DOT.S = one DOT position), matching the
                ledger rows, which move value between the two and sum to the merged total.
    transactions  the Ledger, one Transaction per row (see mapping.py), oldest first, with
                TradesHistory joined by refid for price/side/order id; paging in paging.py.
    orders      ClosedOrders by close time since the cursor, then OpenOrders, then
                QueryOrders for ids we still hold as open that neither list returned.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from ...base import BrokerAdapter
from ...dtos import (AccountInfo, CredentialField, Credentials, Order, Page, Position, PositionSnapshot,
                     RepullWindow, SkippedRecord, Transaction)
from ...errors import AuthError, PermanentError
from ...http import BrokerSession
from ...nonce import default_nonce_source
from ...symbols import FIAT
from .assets import FEE_CREDITS, AssetBook, last_price
from .client import KrakenClient, vendor_errors
from .mapping import Unparseable, kraken_order, ledger_transaction, to_datetime
from .paging import OffsetWalk, Source, TradeLookup, _time

DENIED = "EGeneral:Permission denied"
# Kraken's names for the key permissions a sync needs (KSDK spot/user.py docstrings).
FUNDS, LEDGER = "Query Funds", "Query Ledger Entries"
OPEN, CLOSED = "Query Open Orders & Trades", "Query Closed Orders & Trades"
PROBES = ((LEDGER, "Ledgers"), (CLOSED, "TradesHistory"), (CLOSED, "ClosedOrders"), (OPEN, "OpenOrders"))
# Rights a sync must not have, each probed by a call that changes nothing (docs/brokers.md §4.8):
# an order that is only validated (validate=true), and below Kraken's minimum at a price of
# 1 USD besides, so it could never fill even if it were placed; a withdrawal quote for a
# withdrawal key no account has.
TRADE_PROBE = ("AddOrder", {"pair": "XXBTZUSD", "type": "buy", "ordertype": "limit", "price": "1",
                            "volume": "0.00000001", "validate": True})
WITHDRAW_PROBE = ("WithdrawInfo", {"asset": "XBT", "key": "brokersync-permission-check", "amount": "0.0001"})
LEDGER_SOURCE = Source("Ledgers", "ledger", "time")
CLOSED_SOURCE = Source("ClosedOrders", "closed", "closetm", (("closetime", "close"),))
QUERY_ORDERS_MAX = 50           # txids per QueryOrders call
TICKER_PAIRS_MAX = 50           # past this, one Ticker call for every pair is cheaper than a long URL
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _Books:
    """The cached AssetBook for one fetch, reloaded at most once if it misses a code or
    pair (a coin listed since it was cached)."""

    def __init__(self, client: KrakenClient):
        self.client = client
        self.book: AssetBook | None = None
        self.refreshed = False

    def get(self, codes: Iterable[str] = (), pairs: Iterable[str] = ()) -> AssetBook:
        if self.book is None:
            self.book = self.client.book()
        book = self.book
        stale = any(c and c != FEE_CREDITS and not book.knows(c) for c in codes) or \
            any(p and book.pair(p) is None for p in pairs)
        if stale and not self.refreshed:
            self.book, self.refreshed = self.client.book(refresh=True), True
        return self.book


def derived_account_id(api_key: str) -> str:
    return "K-" + hashlib.sha256(api_key.encode()).hexdigest()[:20]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _watermark(cursor: dict[str, Any]) -> datetime:
    text = cursor.get("watermark")
    return datetime.fromisoformat(text) if text else EPOCH


class KrakenAdapter(BrokerAdapter):
    key = "kraken"
    display_name = "Kraken"
    environments = ("live",)
    credential_fields = (
        CredentialField("api_key", "API key", help_text=(
            "Kraken > Settings > API. Give the key Query Funds, Query Ledger Entries, Query Open Orders & "
            "Trades and Query Closed Orders & Trades, nothing else, and use it for brokersync only.")),
        CredentialField("api_secret", "Private key (base64)", help_text="Shown once by Kraken when the key is created."),
    )
    rate_limit_note = ("Per API key: a call counter, +1 per call and +2 for Ledgers/QueryLedgers/TradesHistory, "
                       "decaying 0.33/s up to 15 (Starter tier; Intermediate 20 and 0.5/s, Pro 20 and 1/s). "
                       "Public calls about 1/s per IP. Nonces come from one Redis counter per key.")
    vendor_errors: ClassVar = staticmethod(vendor_errors)

    def __init__(self, *, credentials: Credentials, environment: str, session: BrokerSession, nonces: Any = None):
        super().__init__(credentials=credentials, environment=environment, session=session)
        self._nonces = nonces           # RedisNonceSource in production; injected in tests
        self.client = KrakenClient(session, credentials, self._nonce_source)

    def _nonce_source(self):
        if self._nonces is None:
            self._nonces = default_nonce_source()
        return self._nonces

    # -- verify ---------------------------------------------------------------------------
    def verify_credentials(self) -> AccountInfo:
        try:
            balances = self.client.private("Balance")
        except AuthError as exc:
            if exc.code == DENIED:
                raise AuthError(f"kraken: the API key lacks {FUNDS}", code=DENIED) from None
            raise
        missing: list[str] = []
        for permission, method in PROBES:
            if permission in missing:
                continue
            try:
                self.client.private(method)
            except AuthError as exc:
                if exc.code != DENIED:
                    raise
                missing.append(permission)
        if missing:
            needed = ", ".join((FUNDS, LEDGER, OPEN, CLOSED))
            raise AuthError(f"kraken: the API key lacks {', '.join(missing)}; a sync needs {needed}", code=DENIED)
        can_trade, can_withdraw = self._allowed(*TRADE_PROBE), self._allowed(*WITHDRAW_PROBE)
        warnings = []
        if can_trade:
            warnings.append("This key can trade (Create & Modify Orders). A sync needs a read-only key.")
        if can_withdraw:
            warnings.append("This key can withdraw funds (Withdraw Funds). A sync needs a read-only key; "
                            "please replace it.")
        return AccountInfo(account_id=derived_account_id(self.credentials.api_key), currency="USD",
                           warnings=tuple(warnings), can_trade=can_trade, can_withdraw=can_withdraw,
                           raw={"account_id_source": "sha256 of the API key (Kraken returns no account id)",
                                "assets": sorted(balances)})

    def _allowed(self, method: str, params: dict[str, Any]) -> bool:
        """Kraken checks the key's permission before the arguments: "Permission denied" is the
        one answer that means no; a refusal of the arguments (EOrder:, EFunding:) means yes."""
        try:
            self.client.private(method, params)
        except AuthError as exc:
            if exc.code != DENIED:
                raise
            return False
        except PermanentError:
            return True
        return True

    # -- positions ------------------------------------------------------------------------
    def fetch_positions(self) -> PositionSnapshot:
        before = self.session.requests_made
        balances = self.client.private("Balance")
        book = _Books(self.client).get(codes=balances)
        holdings: dict[str, dict[str, Any]] = {}
        cash: dict[str, Decimal] = {}
        skipped: list[SkippedRecord] = []
        for code, text in balances.items():
            if code == FEE_CREDITS:
                continue
            try:
                quantity = Decimal(str(text))
            except InvalidOperation:
                skipped.append(SkippedRecord(f"kraken balance {code}: not a number", {code: text}))
                continue
            symbol = book.canonical(code)
            if symbol in FIAT:
                cash[symbol] = cash.get(symbol, Decimal(0)) + quantity
                continue
            entry = holdings.setdefault(symbol, {"quantity": Decimal(0), "balances": {}})
            entry["quantity"] += quantity
            entry["balances"][code] = str(text)
        held = {symbol: entry for symbol, entry in holdings.items() if entry["quantity"]}
        prices = self._prices(book, held)
        positions = [self._position(book, entry, prices.get(symbol)) for symbol, entry in sorted(held.items())]
        return PositionSnapshot(positions, cash, skipped, requests=self.session.requests_made - before)

    def _position(self, book: AssetBook, entry: dict[str, Any], price: Decimal | None) -> Position:
        codes = list(entry["balances"])
        spot = next((c for c in codes if "." not in c), codes[0])
        quantity = entry["quantity"]
        return Position(asset=book.asset_ref(spot), broker_symbol=spot, quantity=quantity, current_price=price,
                        market_value=quantity * price if price is not None else None,
                        raw={"balances": entry["balances"]})

    def _prices(self, book: AssetBook, held: dict[str, Any]) -> dict[str, Decimal]:
        routes = {symbol: book.price_route(symbol) for symbol in held}
        keys = sorted({key for route in routes.values() if route for key in route})
        if not keys:
            return {}
        params = {"pair": ",".join(keys)} if len(keys) <= TICKER_PAIRS_MAX else None
        ticker = self.client.public("Ticker", params)
        prices = {symbol: last_price(ticker, route) for symbol, route in routes.items() if route}
        return {symbol: price for symbol, price in prices.items() if price is not None}

    # -- transactions ---------------------------------------------------------------------
    def fetch_transactions(self, cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        cursor = cursor or {}
        watermark = _watermark(cursor)
        trades = TradeLookup(self.client)
        books = _Books(self.client)
        before = self.session.requests_made
        for records, state in OffsetWalk(self.client, LEDGER_SOURCE, cursor.get("ledger")).pages():
            items: list[Transaction] = []
            skipped: list[SkippedRecord] = []
            if records:
                book = books.get(codes={str(r.get("asset", "")) for _, r, _ in records if isinstance(r, dict)})
                items, skipped = self._transactions(records, book, trades)
            if state["time"]:
                watermark = max(watermark, to_datetime(state["time"]))
            yield Page(items, {"watermark": _iso(watermark), "ledger": state}, skipped,
                       requests=self.session.requests_made - before)
            before = self.session.requests_made

    def _transactions(self, records, book: AssetBook, trades: TradeLookup):
        refs = {r["refid"]: t for _, r, t in records
                if isinstance(r, dict) and r.get("type") == "trade" and r.get("refid")}
        found = trades.find(refs) if refs else {}
        items: list[Transaction] = []
        skipped: list[SkippedRecord] = []
        for ledger_id, row, _ in records:
            try:
                trade = found.get(row.get("refid")) if isinstance(row, dict) else None
                items.append(ledger_transaction(ledger_id, row, book, trade))
            except (Unparseable, KeyError, TypeError, ValueError) as exc:
                skipped.append(SkippedRecord(f"kraken ledger {ledger_id}: {exc}", {"id": ledger_id, "record": row}))
        return items, skipped

    def repull_transactions(self, windows: Sequence[RepullWindow],
                            cursor: dict[str, Any] | None) -> Iterator[Page[Transaction]]:
        from .repull import repull

        return repull(self, windows)

    # -- orders ---------------------------------------------------------------------------
    def fetch_orders(self, cursor: dict[str, Any] | None,
                     open_order_ids: Sequence[str] = ()) -> Iterator[Page[Order]]:
        cursor = dict(cursor or {})
        watermark = _watermark(cursor)
        books = _Books(self.client)
        before = self.session.requests_made
        seen: set[str] = set()
        state = cursor.get("closed")
        for records, state in OffsetWalk(self.client, CLOSED_SOURCE, state).pages():
            items, skipped = self._orders(records, books)
            seen.update(rid for rid, _, _ in records)
            if state["time"]:
                watermark = max(watermark, to_datetime(state["time"]))
            yield Page(items, {**cursor, "watermark": _iso(watermark), "closed": state}, skipped,
                       requests=self.session.requests_made - before)
            before = self.session.requests_made
        items, skipped, opened = self._open_orders(cursor, set(open_order_ids), seen, books)
        if opened["time"]:
            watermark = max(watermark, to_datetime(opened["time"]))
        yield Page(items, {"watermark": _iso(watermark), "closed": state, "open": opened}, skipped,
                   requests=self.session.requests_made - before)

    def _open_orders(self, cursor, wanted: set[str], seen: set[str], books: _Books):
        """Open orders that are new since the cursor or that we hold as open, plus the
        current state of held ones no list returned (QueryOrders)."""
        state = cursor.get("open") or {"time": None, "edge": []}
        since = Decimal(state["time"]) if state["time"] else None
        edge = set(state["edge"])
        opened = self.client.private("OpenOrders").get("open") or {}
        fresh = [(txid, data, _time(data, "opentm")) for txid, data in opened.items()]
        records = [r for r in fresh if r[0] in wanted or since is None or r[2] is None
                   or (r[2] > math.floor(since) and r[0] not in edge)]
        leftover = sorted(wanted - set(opened) - seen)
        for i in range(0, len(leftover), QUERY_ORDERS_MAX):
            result = self.client.private("QueryOrders", {"txid": ",".join(leftover[i:i + QUERY_ORDERS_MAX])})
            records += [(txid, data, None) for txid, data in result.items()]
        items, skipped = self._orders(records, books)
        return items, skipped, _advance_open(state, fresh)

    def _orders(self, records, books: _Books) -> tuple[list[Order], list[SkippedRecord]]:
        pairs = {str(d["descr"].get("pair", "")) for _, d, _ in records
                 if isinstance(d, dict) and isinstance(d.get("descr"), dict)}
        book = books.get(pairs=pairs)
        items, skipped = [], []
        for txid, data, _ in records:
            try:
                items.append(kraken_order(txid, data, book))
            except (Unparseable, KeyError, TypeError, ValueError) as exc:
                skipped.append(SkippedRecord(f"kraken order {txid}: {exc}", {"txid": txid, "record": data}))
        return items, skipped


def _advance_open(state: dict[str, Any], fresh: list) -> dict[str, Any]:
    """The newest open time seen and the ids opened after its second (as in paging.py)."""
    times = [t for _, _, t in fresh if t is not None]
    if state["time"]:
        times.append(Decimal(state["time"]))
    if not times:
        return {"time": None, "edge": []}
    newest = max(times)
    second = math.floor(newest)
    edge = {txid for txid, _, t in fresh if t is not None and t > second}
    if state["time"] and math.floor(Decimal(state["time"])) == second:
        edge |= set(state["edge"])
    return {"time": str(newest), "edge": sorted(edge)}
