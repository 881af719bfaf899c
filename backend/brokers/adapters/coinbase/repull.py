"""Coinbase's re-pull: v3 fills by time, and the v2 rows of the wallets of the assets asked for.

- Fills: GET orders/historical/fills with `start_sequence_timestamp` / `end_sequence_timestamp`
  (RFC3339; the window's products, else every product; newest first, paged by `cursor`
  until it is empty).
- v2 rows have no time filter: each wanted wallet's transactions are read newest first
  (`order=desc`, 100 a page, `starting_after`) until a row older than the window's start.
  A window that can only miss fills (a short-filled order) skips them.
v2 times have whole seconds, so the window is widened by a second on each side.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ...dtos import Page, RepullWindow, Transaction
from ...symbols import canonical_code
from ...windows import merged
from . import parse
from .wallets import V2_PAGE_LIMIT, WalletPass

if TYPE_CHECKING:
    from .adapter import CoinbaseAdapter

PAD = timedelta(seconds=1)
# v2 rows besides Coinbase App buys and converts (parse.V2_TYPES): a window that can only
# miss a fill of a v3 order (kinds trade and fee) skips the wallets.
V2_KINDS = ("deposit", "withdrawal", "transfer", "reward", "interest", "other")


def repull(adapter: "CoinbaseAdapter", windows: Sequence[RepullWindow]) -> Iterator[Page[Transaction]]:
    spans = merged(windows, before=PAD, after=PAD)
    v2_spans = [s for s in spans if s.wants(*V2_KINDS)]
    wanted = set().union(*(s.assets for s in v2_spans)) if v2_spans else set()
    wallets = [w for w in WalletPass(None, adapter._get).wallets() if _code(w) in wanted] if wanted else []
    for span in spans:
        if span.wants("trade", "fee"):
            yield from _fills(adapter, span.start, span.end, span.symbols)
        if span in v2_spans:
            for wallet in wallets:
                if _code(wallet) in span.assets:
                    yield from _wallet_rows(adapter, str(wallet["id"]), span.start, span.end)


def _fills(adapter: "CoinbaseAdapter", start: datetime | None, end: datetime | None,
           products: frozenset[str]) -> Iterator[Page[Transaction]]:
    from .adapter import FILLS_LIMIT, V3, _parse_all

    cursor = None
    while True:
        params: list[tuple[str, Any]] = [("limit", FILLS_LIMIT)] + [("product_ids", p) for p in sorted(products)]
        if start is not None:
            params.append(("start_sequence_timestamp", parse.format_time(start)))
        if end is not None:
            params.append(("end_sequence_timestamp", parse.format_time(end)))
        if cursor:
            params.append(("cursor", cursor))
        body = adapter._get(f"{V3}/orders/historical/fills", params)
        raws = [f for f in body.get("fills") or [] if isinstance(f, dict)]
        items, skipped = _parse_all(raws, parse.fill_transactions, "fill")
        yield Page(items=items, cursor={}, skipped=skipped, requests=1)
        cursor = str(body.get("cursor") or "")
        if not raws or not cursor:
            return


def _wallet_rows(adapter: "CoinbaseAdapter", wallet_id: str, start: datetime | None,
                 end: datetime | None) -> Iterator[Page[Transaction]]:
    from .adapter import _parse_all

    after = None
    while True:
        params: list[tuple[str, Any]] = [("limit", V2_PAGE_LIMIT), ("order", "desc")]
        if after:
            params.append(("starting_after", after))
        body = adapter._get(f"/v2/accounts/{wallet_id}/transactions", params)
        raws = [r for r in body.get("data") or [] if isinstance(r, dict)]
        inside = [r for r in raws if _within(r, start, end)]
        items, skipped = _parse_all(inside, lambda r: [t for t in [parse.v2_transaction(r)] if t], "v2 row")
        yield Page(items=items, cursor={}, skipped=skipped, requests=1)
        after = (body.get("pagination") or {}).get("next_starting_after")
        if not raws or not after or (start is not None and not _within(raws[-1], start, None)):
            return


def _within(raw: dict, start: datetime | None, end: datetime | None) -> bool:
    try:
        at = parse.parse_time(raw.get("created_at"))
    except Exception:               # unreadable time: keep it; the parser reports the row
        return True
    return (start is None or at >= start) and (end is None or at <= end)


def _code(wallet: dict) -> str:
    currency = wallet.get("currency")
    code = currency.get("code") if isinstance(currency, dict) else currency
    return canonical_code(str(code or ""))
