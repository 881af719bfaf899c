"""Reconcile-guided choice of the pairs a first sync walks with myTrades.

Nothing in Binance's API lists the pairs a user traded, and each pair costs 20 weight,
most of it answering nothing. But the account already tells where its trades must be:
every asset's balance is what its deposits, withdrawals and dividends moved, plus what
its trades moved. So a first sync (after the wallet history) keeps, per asset, the sum
of every executed leg seen so far (`explained`), and compares it with the balance the
pass started from:

  residual(asset) = balance - explained          an asset "reconciles" at 0

  - A pair is walked while one of its assets does not reconcile, on every candidate pair
    of that asset (correctness first: nothing that could explain it is left out).
  - A pair whose two assets both reconcile is skipped, recorded in the coverage map with
    its reason; a later sync walks it when both its balances move (a trade moves both).
  - Pairs most likely to explain an unreconciled asset go first: both assets unreconciled,
    both held or moved, trading, then by quote (USDT, BTC, ETH, BNB, ...). Walking a
    likely pair first lets its assets reconcile before the unlikely pairs come up.
  - The walk stops when every asset reconciles (or no candidate touches one that does not).
  - A commission paid in a third asset (BNB on BTCUSDT) moves it from any pair: while
    such an asset does not reconcile, every candidate stays eligible (walked last).

What stays invisible without the per-connection "deep" option: trades on a pair that net
to exactly zero on both of its assets (a round trip at one price and no fee, or a coin
bought and sold back to zero that was never deposited, withdrawn or paid out).
Dust conversions are not read, so an account that converted dust to BNB does not
reconcile BNB: its pairs, and every pair once BNB paid a commission, are walked.
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ...dtos import Transaction
from ...symbols import FIAT, canonical_code
from .markets import Markets

SKIPPED_RECONCILED = "both assets reconcile"
QUOTE_RANK = {q: i for i, q in enumerate(("USDT", "BTC", "ETH", "BNB", "USDC", "FDUSD", "BUSD", "TUSD", "DAI",
                                          "EUR", "TRY", "BRL", "JPY"))}


def leg_changes(leg: Transaction) -> Iterable[tuple[str, Decimal]]:
    """(asset code, signed change of its balance) of one executed leg: a coin's quantity,
    a fiat amount (a trade on a fiat-quoted pair moves both)."""
    if leg.status != "executed":
        return ()
    changes = []
    if leg.asset is not None and leg.quantity is not None and leg.asset.symbol not in FIAT:
        changes.append((leg.asset.symbol, leg.quantity))
    if leg.amount is not None and leg.currency:
        changes.append((canonical_code(leg.currency), leg.amount))
    return changes


class Walk:
    """The reconcile state of a first pass, kept in the pass's cursor (plain JSON) so a
    pass resumed by another process goes on from it; Decimals and the pairs' assets are
    kept parsed here, since every walked pair asks for the next one."""

    def __init__(self, state: dict):
        self.state = state
        state.setdefault("explained", {})
        state.setdefault("fee_assets", [])
        state.setdefault("skipped", {})
        self.balances = {canonical_code(a): Decimal(q) for a, q in state["baseline"].items()}
        self.explained = {a: Decimal(v) for a, v in state["explained"].items()}
        self._open: set[str] | None = None
        self._pairs: dict[str, tuple[str, str, bool, int]] = {}

    def add(self, legs: Iterable[Transaction], pair: Iterable[str | None] = ()) -> None:
        """`pair`: the trade's base and quote, to tell a commission paid in a third asset."""
        own = {canonical_code(a) for a in pair if a}
        for leg in legs:
            for asset, change in leg_changes(leg):
                total = self.explained[asset] = self.explained.get(asset, Decimal(0)) + change
                self.state["explained"][asset] = str(total)
                self._open = None
            if leg.broker_type == "COMMISSION" and leg.asset is not None and leg.asset.symbol not in own \
                    and leg.asset.symbol not in self.state["fee_assets"]:
                self.state["fee_assets"].append(leg.asset.symbol)

    def residuals(self) -> dict[str, Decimal]:
        zero = Decimal(0)
        return {a: r for a in self.balances.keys() | self.explained.keys()
                if (r := self.balances.get(a, zero) - self.explained.get(a, zero))}

    def open_assets(self) -> set[str]:
        if self._open is None:
            self._open = set(self.residuals())
        return self._open

    def next_symbol(self, todo: list[str], markets: Markets) -> str | None:
        """The most likely pair of `todo` to explain an unreconciled asset; None when none can."""
        open_ = self.open_assets()
        if not open_:
            return None
        any_pair = bool(open_ & set(self.state["fee_assets"]))
        best, best_key = None, None
        for symbol in todo:
            pair = self._pair(symbol, markets)
            if pair is None:
                return symbol                          # not listed: the walk records it as failed
            base, quote, trading, rank = pair
            touching = (base in open_) + (quote in open_)
            if not touching and not any_pair:
                continue
            known = (base in self.balances or base in self.explained) + \
                (quote in self.balances or quote in self.explained)
            key = (-touching, -known, not trading, rank, symbol)
            if best_key is None or key < best_key:
                best, best_key = symbol, key
        return best

    def _pair(self, symbol: str, markets: Markets) -> tuple[str, str, bool, int] | None:
        if symbol not in self._pairs:
            market = markets.get(symbol)
            if market is None:
                return None
            self._pairs[symbol] = (canonical_code(market.base), canonical_code(market.quote), market.trading,
                                   QUOTE_RANK.get(market.quote, len(QUOTE_RANK)))
        return self._pairs[symbol]

    def skip_rest(self, todo: list[str]) -> None:
        for symbol in todo:
            self.state["skipped"][symbol] = SKIPPED_RECONCILED
        todo.clear()

    def unreconciled(self) -> dict[str, str]:
        return {a: format(r.normalize(), "f") for a, r in sorted(self.residuals().items())}
