"""Interactive Brokers through the Flex Web Service (v3): an Activity Flex Query, read by date window.

    verify       one small statement: the pair (token, query id) works and names the account
    positions    a statement of the last week: OpenPositions and the cash of each currency
    transactions statements over date windows of at most 365 days (IBKR's limit): a first sync
                 reads the newest window first (its AccountInformation says when the account
                 opened), then every older window back to that date, or as far as IBKR keeps
                 statements, oldest first; a re-sync asks for the days since the last
                 statement's end with one day of overlap. IBKR's own ids (tradeID,
                 transactionID, actionID) are the broker ids, so the overlap is deduplicated.
    orders       the executed orders of the same windows; their statements are fetched again
                 by the reference codes the transactions step recorded (no new statement).

Generation takes time: GetStatement answers 1019 until the statement is ready. The client
polls a few times in place; then the step gives its thread back with the reference code saved
in its cursor, and the retry asks for that same statement (never a new one).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

from ...base import BrokerAdapter
from ...dtos import AccountInfo, CredentialField, Credentials, Order, Page, PositionSnapshot, SkippedRecord
from ...errors import PermanentError
from ...http import BrokerSession
from . import mapping
from .flex import FlexClient, StillGenerating, Window, vendor_errors
from .mapping import EASTERN, Unparseable
from .statement import Row, Statement, read_statement

log = logging.getLogger("brokersync.ibkr")

MAX_WINDOW_DAYS = 365               # "From Date / To Date override: up to 365 days" (Flex Web Service guide)
# "Saved Flex Queries are available for the four previous calendar years and from the start of
# the current calendar year" (IBKR's Activity Flex Queries page): a first sync reads back to there.
HISTORY_YEARS = 4
POSITIONS_DAYS = 7                  # a week, so a weekend or a holiday still ends on a business day
OVERLAP = timedelta(days=1)         # a re-sync re-reads the last statement's final day
# A statement fetched by the transactions step is read again by the orders step of the same
# run by its reference code; an older code is not trusted to show the account as it is now.
REF_REUSE_SECONDS = 1800
# The positions step fetches the statement the transactions step will read next (same window)
# and leaves its reference code here, in this process, for the steps that follow it.
RECENT_SECONDS = 600
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TRANSACTION_SECTIONS = (("Trades", "Trade", mapping.trade), ("CashTransactions", None, mapping.cash_transaction),
                        ("CorporateActions", None, mapping.corporate_action), ("Transfers", None, mapping.transfer))
PARSE_ERRORS = (Unparseable, KeyError, TypeError, ValueError, ArithmeticError)


def ibkr_today() -> date:
    """IBKR's statements are dated in US Eastern time."""
    return datetime.now(EASTERN).date()


def newest_window(today: date) -> Window:
    return Window(today - timedelta(days=MAX_WINDOW_DAYS - 1), today)


def backfill_windows(today: date, opened: date | None) -> list[Window]:
    """Windows older than the newest one, oldest first, back to the account's opening (or as far
    as IBKR keeps statements). Aligned on the newest window, so each is a full 365 days."""
    earliest = date(today.year - HISTORY_YEARS, 1, 1)
    if opened is not None:
        earliest = max(earliest, opened)
    windows, end = [], newest_window(today).start - timedelta(days=1)
    while end >= earliest:
        start = max(earliest, end - timedelta(days=MAX_WINDOW_DAYS - 1))
        windows.append(Window(start, end))
        end = start - timedelta(days=1)
    return windows[::-1]


def forward_windows(start: date, today: date) -> list[Window]:
    """From `start` to today in windows of at most 365 days."""
    windows, start = [], min(start, today)
    while start <= today:
        end = min(today, start + timedelta(days=MAX_WINDOW_DAYS - 1))
        windows.append(Window(start, end))
        start = end + timedelta(days=1)
    return windows


class _Recent:
    """Reference codes the positions step fetched, per token scope and window, for a few minutes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._refs: dict[tuple[str, str], tuple[str, float]] = {}

    def put(self, scope: str, window: Window, reference: str) -> None:
        with self._lock:
            self._refs[(scope, window.key())] = (reference, time.monotonic() + RECENT_SECONDS)
            for key in [k for k, (_, until) in self._refs.items() if until < time.monotonic()]:
                del self._refs[key]

    def get(self, scope: str, window: Window) -> str | None:
        with self._lock:
            reference, until = self._refs.get((scope, window.key()), ("", 0.0))
        return reference if until >= time.monotonic() else None


_RECENT = _Recent()


def _cache():
    from django.core.cache import cache

    return cache


def _pending_check_key(scope: str, window: Window) -> str:
    """The scope is a digest of the token, never the token."""
    return f"ibkr:keycheck:pending:{scope}:{window.key()}"


class IbkrAdapter(BrokerAdapter):
    key = "ibkr"
    display_name = "Interactive Brokers"
    environments = ("live",)
    credential_fields = (
        CredentialField("api_secret", "Flex token", help_text=(
            "Client Portal > Settings > Flex Web Service: activate it and generate a token. Choose a long expiry "
            "(the default is 6 hours) and no IP restriction, or brokersync's address.")),
        CredentialField("api_key", "Activity Flex Query id", secret=False, help_text=(
            "Client Portal > Performance & Reports > Flex Queries: an Activity Flex Query for one account, XML, "
            "with Account Information, Open Positions, Cash Report, Trades (executions and orders), Cash "
            "Transactions, Corporate Actions and Transfers.")),
    )
    rate_limit_note = ("Per Flex token: one request per second and 10 per minute (IBKR code 1018 past that). "
                       "Each statement is a SendRequest plus GetStatement polls while it is generated (1019). "
                       "Activity data is updated once a day, after the close: a daily sync interval is enough.")
    vendor_errors: ClassVar = staticmethod(vendor_errors)
    reports_working_orders = False

    def __init__(self, *, credentials: Credentials, environment: str, session: BrokerSession):
        super().__init__(credentials=credentials, environment=environment, session=session)
        self.client = FlexClient(session, credentials)
        self._shared_refs: dict[str, str] = {}
        self._through: date | None = None

    @classmethod
    def rate_scope(cls, credentials: Credentials, environment: str) -> str:
        """IBKR counts per token (api_secret), not per query id."""
        digest = hashlib.sha256(credentials.api_secret.encode()).hexdigest()[:16]
        return f"{cls.key}:{environment}:token:{digest}"

    def prime(self, cursors: dict[str, dict[str, Any]]) -> None:
        """The orders step reads the statements the transactions step fetched in this run; the
        positions step learns which window the transactions step will read next."""
        transactions = cursors.get("transactions") or {}
        self._through = date.fromisoformat(transactions["through"]) if transactions.get("through") else None
        edge = datetime.now(timezone.utc) - timedelta(seconds=REF_REUSE_SECONDS)
        for key, reference, issued in transactions.get("refs", []):
            if datetime.fromisoformat(issued) >= edge:
                self._shared_refs[key] = reference

    # -- the four questions ---------------------------------------------------------------
    def verify_credentials(self) -> AccountInfo:
        """One statement of the last week. A key check never waits long in place: while IBKR
        generates the statement (1019) it answers StillGenerating (the API's 503 with
        Retry-After), and the reference code is kept in the shared cache, so the client's retry
        (from any web process) fetches that statement instead of asking for a new one, which
        would be just as slow to generate."""
        window = self._recent_window()
        pending = _pending_check_key(self.session.scope, window)
        try:
            _, statement = self._statement(window, _cache().get(pending))
        except StillGenerating as exc:
            _cache().set(pending, exc.reference, RECENT_SECONDS)
            raise
        _cache().delete(pending)
        return AccountInfo(account_id=statement.account_id, currency=statement.currency or "USD",
                           raw={"from": statement.from_date.isoformat(), "to": statement.to_date.isoformat()})

    def fetch_positions(self) -> PositionSnapshot:
        """From the statement of the window the transactions step reads next (it ends today, so
        its OpenPositions are the current ones), which that step then reads by reference."""
        before = self.session.requests_made
        window = self._next_window()
        reference, statement = self._statement(window)
        _RECENT.put(self.session.scope, window, reference)
        positions, cash, skipped = [], {}, []
        for row in statement.rows("OpenPositions"):
            try:
                found = mapping.position(row)
            except PARSE_ERRORS as exc:
                skipped.append(SkippedRecord(f"ibkr open position: {exc}", row.raw))
                continue
            if found is not None:
                positions.append(found)
        for row in statement.rows("CashReport"):
            balance = mapping.cash_balance(row)
            if balance is not None:
                cash[balance[0]] = cash.get(balance[0], Decimal(0)) + balance[1]
        if not statement.rows("CashReport"):
            cash = _forex_balances(statement)
        return PositionSnapshot(positions, cash, skipped, requests=self.session.requests_made - before)

    def fetch_transactions(self, cursor: dict[str, Any] | None) -> Iterator[Page]:
        return self._pages(cursor, _transactions, record_refs=True)

    def fetch_orders(self, cursor: dict[str, Any] | None, open_order_ids: Sequence[str] = ()) -> Iterator[Page[Order]]:
        """Executed orders only: an Activity statement has no working or cancelled orders, so
        `open_order_ids` (none are ever stored as open) needs no refresh."""
        return self._pages(cursor, _orders, record_refs=False)

    # -- statements -----------------------------------------------------------------------
    def _next_window(self) -> Window:
        today = ibkr_today()
        if self._through is None:
            return newest_window(today)
        ahead = forward_windows(self._through - OVERLAP, today)
        return ahead[0] if len(ahead) == 1 else self._recent_window()

    def _recent_window(self) -> Window:
        today = ibkr_today()
        return Window(today - timedelta(days=POSITIONS_DAYS - 1), today)

    def _statement(self, window: Window, reference: str | None = None) -> tuple[str, Statement]:
        """(reference code, statement) of `window`. One an earlier step of this task execution
        read is used as it is; otherwise a known reference code is fetched first; if IBKR no
        longer knows it (1017, or 1003), a new statement is asked for."""
        read = self.handoff.setdefault("ibkr_statements", {})      # window -> (reference, statement)
        if window.key() in read:
            return read[window.key()]              # read by an earlier step of this execution
        if reference:
            try:
                read[window.key()] = reference, read_statement(self.client.poll(reference))
                return read[window.key()]
            except PermanentError as exc:
                if exc.code not in ("1017", "1003"):
                    raise
                log.info("ibkr.reference_expired window=%s", window.key())
        reference = self.client.send_request(window)
        read[window.key()] = reference, read_statement(self.client.poll(reference))
        return read[window.key()]

    def _pages(self, cursor: dict[str, Any] | None, extract: Callable, *, record_refs: bool) -> Iterator[Page]:
        state = _WalkState(cursor, self._shared_refs, record_refs, self.session.requests_made,
                           lambda window: _RECENT.get(self.session.scope, window))
        today = ibkr_today()
        if state.through is None:
            newest = newest_window(today)
            probe = yield from self._fetch(newest, state)
            windows = [(w, None) for w in backfill_windows(today, probe[1].date_opened)] + [(newest, probe)]
        else:
            windows = [(w, None) for w in forward_windows(state.through - OVERLAP, today)]
        for window, fetched in windows:
            fetched = fetched or (yield from self._fetch(window, state))
            items, skipped = extract(fetched[1])
            state.advance(window, fetched, items)
            yield Page(items, state.cursor(), skipped, requests=state.requests(self.session))

    def _fetch(self, window: Window, state: "_WalkState"):
        """Fetch one window's statement; if IBKR is still generating it, save the reference code
        on a page of its own before giving the thread back."""
        try:
            return self._statement(window, state.known_reference(window))
        except StillGenerating as exc:
            yield Page([], state.cursor(pending={"window": window.key(), "ref": exc.reference}),
                       requests=state.requests(self.session))
            raise


class _WalkState:
    """A stream's cursor while its windows are read: how far statements reached (`through`),
    the newest record (`watermark`), a statement still being generated (`pending`) and, for the
    transactions stream, the reference codes of this walk (`refs`) for the orders step."""

    def __init__(self, cursor: dict[str, Any] | None, shared: dict[str, str], record_refs: bool, requests: int,
                 recent: Callable[[Window], str | None]):
        cursor = cursor or {}
        self.watermark = datetime.fromisoformat(cursor["watermark"]) if cursor.get("watermark") else EPOCH
        self.through = date.fromisoformat(cursor["through"]) if cursor.get("through") else None
        self.pending = cursor.get("pending") or {}
        self.shared = shared
        self.refs: list[list[str]] | None = [] if record_refs else None
        self._counted = requests
        self.recent = recent

    def known_reference(self, window: Window) -> str | None:
        if self.pending.get("window") == window.key():
            return self.pending.get("ref")
        return self.shared.get(window.key()) or self.recent(window)

    def advance(self, window: Window, fetched: tuple[str, Statement], items: list) -> None:
        reference, statement = fetched
        self.pending = {}
        self.through = max(self.through, statement.to_date) if self.through else statement.to_date
        newest = [t for t in (_time_of(i) for i in items) if t is not None]
        if newest:
            self.watermark = max(self.watermark, *newest)
        if self.refs is not None:
            self.refs.append([window.key(), reference, datetime.now(timezone.utc).isoformat()])

    def cursor(self, pending: dict | None = None) -> dict[str, Any]:
        cursor: dict[str, Any] = {"watermark": self.watermark.isoformat()}
        if self.through is not None:
            cursor["through"] = self.through.isoformat()
        if pending or self.pending:
            cursor["pending"] = pending or self.pending
        if self.refs:
            cursor["refs"] = self.refs
        return cursor

    def requests(self, session: BrokerSession) -> int:
        made, self._counted = session.requests_made - self._counted, session.requests_made
        return made


def _time_of(item: Any) -> datetime | None:
    return getattr(item, "occurred_at", None) or getattr(item, "filled_at", None)


def _collect(rows: list[Row], convert: Callable, label: str) -> tuple[list, list[SkippedRecord]]:
    items, skipped = [], []
    for row in rows:
        try:
            items.append(convert(row))
        except PARSE_ERRORS as exc:
            skipped.append(SkippedRecord(f"ibkr {label}: {exc}", row.raw))
    return items, skipped


def _transactions(statement: Statement) -> tuple[list, list[SkippedRecord]]:
    items, skipped = [], []
    for section, tag, convert in TRANSACTION_SECTIONS:
        rows = statement.rows(section, tag)
        if section == "CashTransactions":
            # With both levels in the query, SUMMARY rows repeat the DETAIL ones.
            rows = [r for r in rows if r.text("levelOfDetail") in ("", "DETAIL")]
        found, lost = _collect(rows, convert, section)
        items += found
        skipped += lost
    items.sort(key=lambda t: (t.occurred_at, t.broker_id))
    return items, skipped


def _orders(statement: Statement) -> tuple[list, list[SkippedRecord]]:
    items, skipped = _collect(statement.rows("Trades", "Order"), mapping.order, "order")
    items.sort(key=lambda o: (o.submitted_at, o.broker_id))
    return items, skipped


def _forex_balances(statement: Statement) -> dict[str, Decimal]:
    """Without a Cash Report: the Forex Balances section's lots, summed per currency."""
    cash: dict[str, Decimal] = {}
    for row in statement.rows("FxPositions"):
        currency, quantity = row.text("fxCurrency"), mapping.dec(row, "quantity")
        if currency and quantity is not None:
            cash[currency] = cash.get(currency, Decimal(0)) + quantity
    return cash
