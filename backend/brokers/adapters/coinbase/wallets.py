"""The v2 side of the transaction stream: deposits, withdrawals, sends, receives, rewards.

v2 keeps one history per currency wallet, so reading everything costs one request chain
per wallet. To keep an incremental sync small, a wallet is only read when it is new or
its `updated_at` (from the wallet listing) is after the newest `updated_at` seen when the
previous pass finished. A wallet exactly at that time is read again too (v2 times have
whole seconds, so a second booking in the same second would not move it), unless it was
read more than EDGE_MARGIN after that second ended: then it is listed in `edge` and
skipped. Because the filter leans on Coinbase bumping `updated_at` on every booking (true
in the sandbox, not documented), every wallet is read at least once per SWEEP_INTERVAL.

Between full passes the v2 listing itself is skipped: the v3 accounts listing (which the
positions step reads anyway, 250 to a page against v2's 100) tells each currency's balance
and `updated_at`. Only wallets of a currency whose balance or `updated_at` moved since the
last pass are read, by the v2 ids the last listing gave; a moved currency without a known
id (a new wallet) lists v2 again. Every wallet is read at each full pass
(COINBASE_WALLET_FULL_PASS_HOURS, default 24).

State: {"after": {wallet id: last tx id or ""}, "updated": iso, "edge": [wallet ids], "swept": iso,
        "v3": {currency: "balance@updated_at"}, "ids": {currency: [v2 wallet ids]}}.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from ...errors import PermanentError
from .parse import format_time, parse_time

log = logging.getLogger("brokersync.coinbase")

V2_PAGE_LIMIT = 100                 # the v2 maximum [CB-PG coinbase-app pagination]
SWEEP_INTERVAL = 24 * 3600          # read every wallet at least daily (see module doc), unless set
EDGE_MARGIN = 5                     # seconds; covers one whole v2 second plus clock skew

GetJson = Callable[[str, list[tuple[str, Any]]], dict]


class WalletPass:
    def __init__(self, state: dict | None, get_json: GetJson, *, clock: Callable[[], float] = time.time,
                 full_pass_seconds: float = SWEEP_INTERVAL):
        state = dict(state or {})
        self.after: dict[str, str] = dict(state.get("after") or {})
        self.updated: str | None = state.get("updated")
        self.swept: str | None = state.get("swept")
        self.edge: list[str] = list(state.get("edge") or [])
        self.balances: dict[str, str] | None = state.get("v3")
        self.ids: dict[str, list[str]] = dict(state.get("ids") or {})
        self.get_json = get_json
        self.clock = clock
        self.full_pass_seconds = full_pass_seconds
        self.newest_row: str | None = None
        self.listed_at = clock()

    def state(self) -> dict[str, Any]:
        """A snapshot: a Page's cursor must not change after it was handed out."""
        return {"after": dict(self.after), "updated": self.updated, "edge": list(self.edge), "swept": self.swept,
                "v3": dict(self.balances) if self.balances is not None else None,
                "ids": {k: list(v) for k, v in self.ids.items()}}

    # -- which wallets moved, from the v3 balances ----------------------------------------------
    def moved_wallets(self, balances: dict[str, str]) -> list[dict] | None:
        """The wallets to read between full passes: those of every currency whose v3 balance
        or `updated_at` moved since the last pass ([] when none did). None: a full pass is
        due, or a moved currency has no known v2 wallet (list v2 again)."""
        if self.balances is None or self._sweep_due():
            return None
        moved = sorted(code for code, mark in balances.items() if self.balances.get(code) != mark or mark == "?")
        if any(code not in self.ids for code in moved):
            return None
        return [{"id": wallet_id} for code in moved for wallet_id in self.ids[code]]

    def remember(self, balances: dict[str, str], listed: list[dict] | None) -> None:
        """The balances this pass read up to, and the v2 wallet ids of each currency (when v2
        was listed)."""
        self.balances = dict(balances)
        if listed is not None:
            ids: dict[str, list[str]] = {}
            for w in listed:
                ids.setdefault(wallet_code(w), []).append(str(w["id"]))
            self.ids = ids

    # -- which wallets --------------------------------------------------------------------
    def wallets(self) -> list[dict]:
        self.listed_at = self.clock()
        found, after = [], None
        while True:
            params = [("limit", V2_PAGE_LIMIT)] + ([("starting_after", after)] if after else [])
            body = self.get_json("/v2/accounts", params)
            page = [w for w in body.get("data") or [] if isinstance(w, dict) and w.get("id")]
            found += page
            after = (body.get("pagination") or {}).get("next_starting_after")
            if not page or not after:
                return found

    def _sweep_due(self) -> bool:
        if self.updated is None or self.swept is None:
            return True
        return self.clock() - parse_time(self.swept).timestamp() >= self.full_pass_seconds

    def due(self, wallets: list[dict]) -> tuple[list[dict], bool]:
        sweep = self._sweep_due()
        if sweep:
            return wallets, True
        since, edge = parse_time(self.updated), set(self.edge)
        chosen = []
        for w in wallets:
            wallet_id = str(w["id"])
            try:
                changed = parse_time(w.get("updated_at"))
                touched = changed > since or (changed == since and wallet_id not in edge)
            except Exception:
                touched = True          # cannot tell: read it
            if touched or wallet_id not in self.after:
                chosen.append(w)
        return chosen, False

    def finish(self, wallets: list[dict], sweep: bool) -> None:
        """Called once every due wallet has been read: move the high-water mark."""
        times = {}
        for w in wallets:
            try:
                times[str(w["id"])] = parse_time(w.get("updated_at"))
            except Exception:
                continue
        if times:
            top = max(list(times.values()) + ([parse_time(self.updated)] if self.updated else []))
            self.updated = format_time(top)
            settled = self.listed_at - top.timestamp() >= EDGE_MARGIN
            self.edge = sorted(i for i, t in times.items() if t == top and i in self.after) if settled else []
        if sweep:
            self.swept = format_time(datetime.fromtimestamp(self.clock(), tz=timezone.utc))

    # -- one wallet's new rows --------------------------------------------------------------
    def rows(self, wallet_id: str) -> Iterator[list[dict]]:
        """Pages of raw rows after the wallet's last seen id, oldest first; `after` moves
        with each page."""
        path = f"/v2/accounts/{wallet_id}/transactions"
        after = self.after.get(wallet_id) or None
        while True:
            params = [("limit", V2_PAGE_LIMIT), ("order", "asc")] + ([("starting_after", after)] if after else [])
            try:
                body = self.get_json(path, params)
            except PermanentError:
                if not after:
                    raise
                # The remembered row is gone (Coinbase answers 400 for an unknown id):
                # read the wallet from the start; rows already stored are upserted by id.
                log.warning("coinbase.v2_cursor_reset wallet=%s", wallet_id)
                after = None
                continue
            data = [r for r in body.get("data") or [] if isinstance(r, dict)]
            if data:
                after = str(data[-1].get("id") or after)
                self.after[wallet_id] = after
                self._note(data[-1])
            else:
                self.after.setdefault(wallet_id, "")
            yield data
            if not data or not (body.get("pagination") or {}).get("next_starting_after"):
                return

    def _note(self, raw: dict) -> None:
        try:
            at = parse_time(raw.get("created_at"))
        except Exception:
            return
        if self.newest_row is None or at > parse_time(self.newest_row):
            self.newest_row = format_time(at)


def wallet_code(wallet: dict) -> str:
    currency = wallet.get("currency")
    return str(currency.get("code") if isinstance(currency, dict) else currency or "")
