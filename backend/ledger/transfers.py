"""Transfers between a user's own connections: a withdrawal at one, the deposit at another.

A matched pair moves lots with their original dates and basis (it is not a sale); the
difference between what left and what arrived is the network fee (a disposal). A movement
with no counterpart is what it looks like: a deposit from outside (a lot of unknown basis)
or a withdrawal to outside.

Pairs are found in three passes, deterministically (the same movements always give the same
pairs, whatever order they come in):
0. inside one connection, an amount moved out and the same amount moved in within
   `INTERNAL_WINDOW` (Kraken's spot <-> staking allocations, Coinbase's staking transfers): a
   move between two wallets of one account, which changes nothing the ledger holds;
1. the same on-chain transaction hash on both sides, where both feeds carry one;
2. otherwise the same asset, the deposit arriving within `WINDOW` after the withdrawal
   (or up to `EARLY` before it: two brokers' clocks and booking times differ), and no more
   than the fee lost on the way (`MAX_FEE_SHARE` of what was sent, or the fee the withdrawal
   reports); the closest in time wins, each deposit is used once.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

# Chain confirmations and exchange crediting take minutes to hours; ACATS takes up to a week.
WINDOW = timedelta(days=8)
EARLY = timedelta(hours=1)
# Network fees are a small share of what is sent (chain fees, ACATS fees are cash): beyond
# this the two legs are not one transfer.
MAX_FEE_SHARE = Decimal("0.05")
INTERNAL_WINDOW = timedelta(hours=1)
MOVEMENT_TYPES = ("transfer", "deposit", "withdrawal")
NOT_COUNTED = ("canceled", "cancelled", "failed", "rejected", "pending")


@dataclass(frozen=True)
class Movement:
    """One leg that moved an asset into or out of a connection, as the matcher sees it."""

    id: int                         # BrokerTransaction pk
    connection_id: int
    asset_id: int
    quantity: Decimal               # signed: negative left the connection, positive arrived
    occurred_at: datetime
    fee: Decimal | None = None      # the withdrawal's own fee in the asset, where the feed says
    tx_hash: str = ""


@dataclass(frozen=True)
class TransferMatch:
    withdrawal_id: int
    deposit_id: int
    asset_id: int
    sent: Decimal                   # positive
    received: Decimal               # positive
    fee: Decimal                    # sent - received, lost on the way
    matched_by: str                 # "internal", "tx_hash" or "amount_time"

    @property
    def internal(self) -> bool:
        """Both legs in one connection: nothing moved as far as lots are concerned."""
        return self.matched_by == "internal"


def match_transfers(movements: Iterable[Movement]) -> list[TransferMatch]:
    items = sorted(movements, key=lambda m: (m.occurred_at, m.id))
    withdrawals = [m for m in items if m.quantity < 0]
    deposits = [m for m in items if m.quantity > 0]
    used: set[int] = set()
    matches: dict[int, TransferMatch] = {}
    for w in withdrawals:
        d = next((d for d in deposits if d.id not in used and d.connection_id == w.connection_id
                  and d.asset_id == w.asset_id and d.quantity == -w.quantity
                  and abs(d.occurred_at - w.occurred_at) <= INTERNAL_WINDOW), None)
        if d is not None:
            matches[w.id] = _match(w, d, "internal")
            used.add(d.id)
    by_hash = {(d.asset_id, d.tx_hash.lower()): d for d in deposits if d.tx_hash}
    for w in withdrawals:
        if w.id in matches:
            continue
        d = by_hash.get((w.asset_id, w.tx_hash.lower())) if w.tx_hash else None
        if d is not None and d.connection_id != w.connection_id and d.id not in used and _fits(w, d, by_hash=True):
            matches[w.id] = _match(w, d, "tx_hash")
            used.add(d.id)
    for w in withdrawals:
        if w.id in matches:
            continue
        candidates = [d for d in deposits if d.id not in used and _fits(w, d, by_hash=False)]
        if candidates:
            d = min(candidates, key=lambda d: (abs(d.occurred_at - w.occurred_at), -d.quantity, d.id))
            matches[w.id] = _match(w, d, "amount_time")
            used.add(d.id)
    return sorted(matches.values(), key=lambda m: (m.withdrawal_id, m.deposit_id))


def unmatched(movements: Iterable[Movement], matches: Iterable[TransferMatch]) -> list[Movement]:
    """Movements that no pair explains, oldest first."""
    paired = {i for m in matches for i in (m.withdrawal_id, m.deposit_id)}
    return sorted((m for m in movements if m.id not in paired), key=lambda m: (m.occurred_at, m.id))


def _fits(w: Movement, d: Movement, *, by_hash: bool) -> bool:
    if d.asset_id != w.asset_id or d.connection_id == w.connection_id:
        return False
    sent, received = -w.quantity, d.quantity
    if received > sent:
        return False
    if by_hash:
        return True
    if not (w.occurred_at - EARLY <= d.occurred_at <= w.occurred_at + WINDOW):
        return False
    allowed = max(sent * MAX_FEE_SHARE, w.fee or Decimal(0))
    return sent - received <= allowed


def _match(w: Movement, d: Movement, how: str) -> TransferMatch:
    sent, received = -w.quantity, d.quantity
    return TransferMatch(withdrawal_id=w.id, deposit_id=d.id, asset_id=w.asset_id, sent=sent, received=received,
                         fee=sent - received, matched_by=how)


# -- from stored rows ------------------------------------------------------------------------
def tx_hash_of(broker: str, raw: dict[str, Any]) -> str:
    """The on-chain hash a feed carries, where it carries one (Binance `txId`, Coinbase v2
    `network.hash`); "" otherwise (Kraken's ledger has none)."""
    if not isinstance(raw, dict):
        return ""
    if broker == "binance":
        value = raw.get("txId")
    elif broker == "coinbase":
        network = raw.get("network")
        value = network.get("hash") if isinstance(network, dict) else None
    else:
        value = raw.get("tx_hash") or raw.get("txid_onchain")
    value = str(value or "").strip()
    # Binance writes "Internal transfer" (or "Off-chain transfer ...") for moves that never touch a chain.
    return "" if not value or " " in value else value


def movements_for_owner(owner_id: int) -> list[Movement]:
    """Every counted movement of an asset in or out of the owner's connections."""
    from backend.sync.models import BrokerTransaction

    rows = (BrokerTransaction.objects.filter(connection__owner_id=owner_id, type__in=MOVEMENT_TYPES,
                                             asset__isnull=False, quantity__isnull=False)
            .exclude(status__in=NOT_COUNTED).exclude(quantity=0)
            .values_list("id", "connection_id", "connection__broker", "asset_id", "quantity", "occurred_at", "fee",
                         "raw"))
    return [Movement(id=pk, connection_id=conn, asset_id=asset, quantity=qty, occurred_at=at,
                     fee=abs(fee) if fee else None, tx_hash=tx_hash_of(broker, raw))
            for pk, conn, broker, asset, qty, at, fee, raw in rows.iterator(chunk_size=5000)]
