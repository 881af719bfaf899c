"""Which movements are external flows of what, from the transfers a user's connections pair.

A withdrawal at one of the user's connections matched with a deposit at another
(backend/ledger/transfers.py) is a flow of each connection, but not of a portfolio that holds
both: for the portfolio nothing came in or went out (the network fee lost on the way is a
loss, not a flow). A move inside one connection (spot <-> staking) is no flow of anything.
Every other deposit, withdrawal and transfer is a flow of its connection and its portfolio.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from backend.ledger.transfers import (
    MOVEMENT_TYPES, NOT_COUNTED, WINDOW, Movement, TransferMatch, match_transfers, tx_hash_of,
)
from backend.sync.models import BrokerTransaction

from .activity import day_start

# A rebuild from a day pairs the movements from this long before it: a withdrawal up to
# WINDOW earlier may own a deposit inside the range, and the one before it may have taken
# that withdrawal's alternative; four windows back covers such chains in practice.
PAIRING_MARGIN = 4 * WINDOW


@dataclass(frozen=True)
class FlowScopes:
    internal: frozenset[int]             # legs of a move inside one connection: no flow at all
    within_portfolio: frozenset[int]     # legs of a transfer between two of the portfolio's connections

    def of_connection(self, transaction_id: int) -> bool:
        return transaction_id not in self.internal

    def of_portfolio(self, transaction_id: int) -> bool:
        return transaction_id not in self.internal and transaction_id not in self.within_portfolio


def flow_scopes(*, owner_id: int, connection_ids: Iterable[int], since: date | None) -> FlowScopes:
    movements = movements_since(owner_id=owner_id, since=None if since is None else since - PAIRING_MARGIN)
    where = {m.id: m.connection_id for m in movements}
    mine = set(connection_ids)
    internal, within = set(), set()
    for match in matches_by_asset(movements):
        legs = (match.withdrawal_id, match.deposit_id)
        if match.internal:
            internal.update(legs)
        elif where[match.withdrawal_id] in mine and where[match.deposit_id] in mine:
            within.update(legs)
    return FlowScopes(frozenset(internal), frozenset(within))


def matches_by_asset(movements: Iterable[Movement]) -> list[TransferMatch]:
    """match_transfers asset by asset: a pair never crosses assets, so the pairs are the same,
    and each asset's withdrawals are compared only with that asset's deposits."""
    groups: dict[int, list[Movement]] = defaultdict(list)
    for m in movements:
        groups[m.asset_id].append(m)
    return [match for group in groups.values() for match in match_transfers(group)]


def movements_since(*, owner_id: int, since: date | None) -> list[Movement]:
    """The movements backend.ledger.transfers.movements_for_owner gives, from `since` on
    (that function reads the owner's whole history; an extension by one day needs days)."""
    rows = (BrokerTransaction.objects.filter(connection__owner_id=owner_id, type__in=MOVEMENT_TYPES,
                                             asset__isnull=False, quantity__isnull=False)
            .exclude(status__in=NOT_COUNTED).exclude(quantity=0))
    if since is not None:
        rows = rows.filter(occurred_at__gte=day_start(since))
    rows = rows.values_list("id", "connection_id", "connection__broker", "asset_id", "quantity", "occurred_at", "fee",
                            "raw")
    return [Movement(id=pk, connection_id=conn, asset_id=asset, quantity=qty, occurred_at=at,
                     fee=abs(fee) if fee else None, tx_hash=tx_hash_of(broker, raw))
            for pk, conn, broker, asset, qty, at, fee, raw in rows.iterator(chunk_size=5000)]
