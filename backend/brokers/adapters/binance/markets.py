"""Which symbols to ask myTrades/allOrders about: Binance's blind spot.

Nothing in the API lists the symbols a user traded, and each symbol costs 20 weight.
So the candidates are derived, and the choice is recorded as coverage:

  full sync    every pair whose two assets are held, moved (deposit, withdrawal,
               dividend) or common quote assets, with at least one side held or moved.
               Delisted pairs (status not TRADING) only when both sides are held or moved.
               discovery.py walks only those that can explain a balance that does not
               add up yet (all of them with deep_scan).
  incremental  trades move both assets of their pair, so only pairs whose two assets
               changed balance since the last completed sync (balances are compared,
               one /account call) can have new trades.
  deep_scan    adds every TRADING pair quoted in a held/moved common quote asset: finds
               coins bought and sold back to zero that never left or entered the
               account, at ~20 weight per pair.

What stays unseen: a coin never deposited, withdrawn or paid out, bought and sold to
exactly zero between two syncs (or before the first one) without deep_scan, and trades
that net to zero on both assets of a pair (discovery.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from ...errors import TransientError

# Quote assets common enough to pair with any held coin (Binance's main quote markets).
COMMON_QUOTES = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL",
                           "JPY", "DAI"})


@dataclass(frozen=True)
class Market:
    symbol: str
    base: str
    quote: str
    status: str

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


class Markets:
    def __init__(self, markets: Iterable[Market]):
        self.by_symbol = {m.symbol: m for m in markets}

    @classmethod
    def from_exchange_info(cls, body: Any) -> "Markets":
        rows = body.get("symbols") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise TransientError("binance: exchangeInfo without a symbol list")
        return cls(Market(str(r["symbol"]), str(r["baseAsset"]), str(r["quoteAsset"]), str(r.get("status", "")))
                   for r in rows if isinstance(r, dict) and {"symbol", "baseAsset", "quoteAsset"} <= r.keys())

    def get(self, symbol: str) -> Market | None:
        return self.by_symbol.get(symbol)

    def full(self, assets: set[str], *, deep: bool = False) -> set[str]:
        wide = assets | COMMON_QUOTES
        chosen = set()
        for m in self.by_symbol.values():
            if m.trading:
                if (m.base in assets or m.quote in assets) and m.base in wide and m.quote in wide:
                    chosen.add(m.symbol)
                elif deep and m.quote in assets and m.quote in COMMON_QUOTES:
                    chosen.add(m.symbol)
            elif m.base in assets and m.quote in assets:
                chosen.add(m.symbol)
        return chosen

    def changed(self, dirty: set[str], *, deep: bool = False) -> set[str]:
        chosen = {m.symbol for m in self.by_symbol.values() if m.base in dirty and m.quote in dirty}
        if deep:
            chosen |= {m.symbol for m in self.by_symbol.values()
                       if m.trading and m.quote in dirty and m.quote in COMMON_QUOTES}
        return chosen

    def quoted_in(self, assets: set[str]) -> bool:
        return any(m.quote in assets for m in self.by_symbol.values())

    def based_in(self, assets: set[str]) -> list[str]:
        return sorted(m.symbol for m in self.by_symbol.values() if m.trading and m.base in assets)


def balance_totals(account_body: Any) -> tuple[dict[str, str], set[str]]:
    """{asset: free+locked} for non-zero balances, and the assets with something locked."""
    totals: dict[str, str] = {}
    locked: set[str] = set()
    for row in account_body.get("balances") or []:
        try:
            free, held = Decimal(str(row["free"])), Decimal(str(row["locked"]))
        except (KeyError, ArithmeticError, TypeError, ValueError):
            continue
        if free + held:
            totals[str(row["asset"])] = format((free + held).normalize(), "f")
        if held:
            locked.add(str(row["asset"]))
    return totals, locked


def changed_assets(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {a for a in before.keys() | after.keys()
            if Decimal(before.get(a, "0")) != Decimal(after.get(a, "0"))}
