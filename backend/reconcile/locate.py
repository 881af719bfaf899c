"""Where a difference comes from: the evidence the rules weigh and the window it lies in.

Windows, most precise first (the first that applies is the break's window and what the
re-pull asks for again):
- an order the broker says filled more than its stored fills add up to: a fill of its pair
  is missing between its submission and its last fill. The other assets and cash its
  pair's trades move (the quote, the fee asset) are located "via" that order: they are
  the missing fill's other legs, asked for in the same window on the same pair;
- the split events whose change the difference matches;
- the unmatched transfer leg elsewhere that explains it (its matching window);
- an open break's own window (the next sync asks for it again);
- otherwise everything fetched since the connection's last reconcile (`ReconcileMark`):
  then every asset either added up or had an open break, so what is new lies after it.
  A first reconcile has no mark: the whole history.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Max, Min

from backend.connections.models import BrokerConnection
from backend.ledger.transfers import match_transfers, movements_for_owner, unmatched
from backend.sync.models import BrokerOrder, BrokerPosition, SyncCursor

from .models import ReconcileMark
from .rules import Difference, Evidence, Movement, SplitEvent, union
from .totals import counted_transactions

Window = tuple[datetime | None, datetime | None]
ORDER_KINDS = frozenset({"trade", "fee"})           # what a short-filled order's window can miss
# Records are filed after the time they carry: Alpaca files a non-trade activity during the
# New York day after its date, Binance credits deposits after confirmations ("some delay in
# the response is normal"). A new difference's window starts this long before the mark.
LATE_FILING = timedelta(days=2)


@dataclass(frozen=True)
class Located:
    """Where a short-filled order puts a difference."""

    window: Window
    symbols: frozenset[str]                 # the order's pair(s), as the broker spells them
    prices: tuple[Decimal, ...] = ()        # the orders' average fill prices
    via: str | None = None                  # a leg: the key of the asset whose order located it
    fee: bool = False                       # a leg the pair's fee rows move (not its quote)
    kinds: frozenset[str] = ORDER_KINDS


class Locator:
    """Evidence for one connection's differences, each query made once per reconcile."""

    def __init__(self, connection: BrokerConnection):
        self.connection = connection
        self._movements: list[Movement] | None = None
        self._located: dict[str, Located] | None = None

    # -- windows ----------------------------------------------------------------------------
    def since_last_reconcile(self) -> Window:
        mark = ReconcileMark.objects.filter(connection=self.connection).first()
        start = mark.through - LATE_FILING if mark and mark.through else None
        return (start, self.transactions_watermark())

    def order_located(self, differences: Iterable[Difference]) -> dict[str, Located]:
        """key -> Located, for the asset differences a short-filled order explains and the
        differences its pair's trades also move."""
        if self._located is None:
            own: dict[str, Located] = {}
            for diff in differences:
                if diff.is_cash:
                    continue
                for order in self._short_filled(diff.asset_id):
                    window = (order.submitted_at, order.filled_at or order.updated_at_broker or order.submitted_at)
                    prices = (order.filled_avg_price,) if order.filled_avg_price else ()
                    found = own.get(diff.key)
                    own[diff.key] = Located(window, frozenset({order.broker_symbol}), prices) if found is None else \
                        replace(found, window=union(found.window, window), symbols=found.symbols | {order.broker_symbol},
                                prices=found.prices + prices)
            legs: dict[str, Located] = {}
            for key, located in own.items():
                for symbol in sorted(located.symbols):
                    trades, fees = self._keys_moved_by(symbol)
                    for leg in sorted((trades | fees) - set(own) - set(legs)):
                        legs[leg] = replace(located, via=key, fee=leg in fees and leg not in trades)
            self._located = {**own, **legs}
        return self._located

    def _short_filled(self, asset_id: int) -> list[BrokerOrder]:
        orders = {o.broker_id: o for o in BrokerOrder.objects.filter(connection=self.connection, asset_id=asset_id,
                                                                     filled_quantity__gt=0)}
        if not orders:
            return []
        filled: dict[str, Decimal] = defaultdict(Decimal)
        rows = (counted_transactions(self.connection).filter(asset_id=asset_id, type="trade", order_id__in=list(orders))
                .values_list("order_id", "quantity"))
        for order_id, quantity in rows:
            filled[order_id] += quantity or 0
        return [o for oid, o in orders.items() if abs(filled[oid]) != o.filled_quantity]

    def _keys_moved_by(self, broker_symbol: str) -> tuple[set[str], set[str]]:
        """(keys the pair's trade rows move, keys its fee rows move): the quote and cash, and
        the asset commissions are paid in."""
        if not broker_symbol:
            return set(), set()
        rows = counted_transactions(self.connection).filter(broker_symbol=broker_symbol)
        found = []
        for kind in ("trade", "fee"):
            of_kind = rows.filter(type=kind)
            assets = of_kind.exclude(asset_id=None).values_list("asset_id", flat=True).distinct()
            currencies = of_kind.exclude(amount=None).values_list("currency", flat=True).distinct()
            found.append({f"asset:{a}" for a in assets} | {f"cash:{c}" for c in currencies})
        return found[0], found[1]

    # -- evidence -----------------------------------------------------------------------------
    def evidence(self, diff: Difference, window: Window, *, fill_missing: bool = False) -> Evidence:
        if diff.is_cash:
            return Evidence(window=window)
        movements = () if fill_missing else self.movements(diff.asset_id)      # a missing fill is no transfer
        return Evidence(splits=self.splits(diff.asset_id), movements=movements, window=window,
                        fill_missing=fill_missing)

    def splits(self, asset_id: int) -> list[SplitEvent]:
        """Split events from the feed's SPLIT rows: each removal paired with the addition that
        follows it (Alpaca posts a split as REMOVE old shares, ADD new shares); withdrawn
        (canceled) rows left out."""
        rows = (self.connection.transactions.filter(asset_id=asset_id, type="split", quantity__isnull=False)
                .exclude(status__in=("canceled", "cancelled")).order_by("occurred_at", "broker_id")
                .values_list("occurred_at", "quantity"))
        events, pending = [], []
        for at, quantity in rows:
            if quantity < 0:
                pending.append((at, -quantity))
            elif pending:
                start, removed = pending.pop(0)
                events.append((start, removed, quantity))
            else:
                events.append((at, Decimal(0), quantity))
        events += [(at, removed, Decimal(0)) for at, removed in pending]
        seen = defaultdict(int)
        for at, removed, added in events:
            seen[(at.date(), removed, added)] += 1
        return [SplitEvent(at, removed, added, duplicated=seen[(at.date(), removed, added)] > 1)
                for at, removed, added in events]

    def movements(self, asset_id: int) -> list[Movement]:
        """Unmatched movements of the asset at the owner's other connections."""
        if self._movements is None:
            everything = movements_for_owner(self.connection.owner_id)
            alone = unmatched(everything, match_transfers(everything))
            brokers = dict(BrokerConnection.objects.filter(owner_id=self.connection.owner_id)
                           .values_list("pk", "broker"))
            self._movements = [Movement(m.id, m.connection_id, brokers.get(m.connection_id, "?"), m.quantity,
                                        m.occurred_at, m.fee, asset_id=m.asset_id)
                                for m in alone if m.connection_id != self.connection.pk]
        return [m for m in self._movements if m.asset_id == asset_id]

    def trade_prices(self, asset_id: int, currency: str) -> list[Decimal]:
        """The asset's trade prices in `currency` here (rows that moved that cash), and the
        broker's average entry and current price: what a missing trade's price could be."""
        span = (counted_transactions(self.connection)
                .filter(asset_id=asset_id, type="trade", currency=currency, amount__isnull=False, price__gt=0)
                .aggregate(low=Min("price"), high=Max("price")))
        prices = [p for p in (span["low"], span["high"]) if p is not None]
        for p in BrokerPosition.objects.filter(connection=self.connection, asset_id=asset_id, is_open=True):
            prices += [v for v in (p.avg_entry_price, p.current_price) if v]
        return [Decimal(p) for p in prices]

    def transactions_watermark(self) -> datetime | None:
        text = (SyncCursor.objects.filter(connection=self.connection, stream="transactions")
                .values_list("watermark", flat=True).first())
        try:
            return datetime.fromisoformat(text) if text else None
        except ValueError:
            return None
