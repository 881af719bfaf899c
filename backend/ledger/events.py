"""Stored transaction rows -> ordered ledger events. Pure: no Django, no database.

How each feed's rows become one economic event (see the adapters for how the rows are made):
- Alpaca: one FILL row is one trade (cash `amount` in USD); a split arrives as a pair of
  SPLIT rows (old shares out, new shares in) and becomes one split event, with any cash in
  lieu (CIL) of the same asset and day; DIV* / INT* rows are income, DIVROC lowers basis,
  DIVFEE is a fee; CFEE is a fee paid in the coin; ACATS / JNLS move shares in or out.
- Coinbase: a v3 fill is one row (a second `:quote` row when the quote is a coin); v2
  sends/receives are transfers; staking and earn payouts are rewards.
- Binance: a trade is a base leg, a quote leg and a fee leg sharing the trade id
  (`trade:<symbol>:<id>`, `:quote`, `:fee`): one event; the fee netted into the traded asset
  it was paid in, or a disposal of a third asset (BNB). Asset dividends are rewards.
- Kraken: a trade is two ledger rows sharing `refid` (each net of its fee): one event.
  Staking allocations come back from the transfer matcher as internal moves (no event).
- IBKR corporate actions: rows of one action (its `actionID`) are one event. A spin-off (SO)
  names its parent in the description ("XYZ(US...) SPINOFF 1 FOR 5 ..."): the new shares take
  a share of the parent's basis. Old shares out and new ones in are a stock-for-stock merger;
  old shares out for cash alone, a cash merger (a sale).
- Imports and manual entries: an opening holding (or a transfer in) with a unit cost opens
  a lot with that basis; without one, like any deposit from outside, its basis is unknown.
- Fiat currencies are cash for every broker, never lots: IBKR stores its forex balances as
  assets (EUR, GBP from an "EUR.USD" trade), and `fiat_as_cash` turns those rows into cash rows
  as Alpaca's and Kraken's cash already are (a currency conversion opens and closes no lots).
Events are ordered by (time, kind, stable key), never by arrival: the same rows always give
the same events.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from .engine.types import ZERO, Event, Kind, Leg
from .transfers import Movement, match_transfers

NOT_COUNTED = ("canceled", "cancelled", "failed", "rejected", "pending")
# Imports and manual entries (connections.models.FEEDLESS_KINDS): an opening holding or a
# transfer in carries its unit cost as `price` when the file or the user gave one.
FEEDLESS = ("csv", "manual")
# Alpaca dividend codes (Alpaca's activity types docs) -> income kind; DIVROC is not income,
# nor a DIV whose activity_sub_type is ROC (Alpaca changelog 2026-08-12: return of capital
# is now reported as DIV / ROC). INTNRA / INTTW withhold tax on interest.
INTEREST_KINDS = {"INTNRA": "interest_withholding", "INTTW": "interest_withholding"}
DIVIDEND_KINDS = {
    "DIV": "dividend", "DIVTXEX": "tax_exempt_dividend", "DIVCGL": "capital_gain_long",
    "DIVCGS": "capital_gain_short", "DIVNRA": "withholding", "DIVTW": "withholding",
    "DIVFT": "foreign_tax_withheld", "DIVFEE": "dividend_fee", "DIVWH": "withholding",
    # IBKR Flex CashTransaction types (the adapter files all three as dividend rows).
    "Dividends": "dividend", "Withholding Tax": "withholding", "Payment In Lieu Of Dividends": "payment_in_lieu",
}
SPINOFF_CODE = "CorporateAction:SO"         # IBKR (ibflex enums.Reorg SPINOFF)
_RATIO = re.compile(r"Ratio:\s*([0-9.]+)\s*:\s*([0-9.]+)")


@dataclass(slots=True)
class Row:
    """What the ledger reads of one BrokerTransaction."""

    id: int
    connection_id: int
    broker: str
    broker_id: str
    type: str
    broker_type: str
    occurred_at: datetime
    asset_id: int | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    currency: str = "USD"
    description: str = ""
    status: str = "executed"
    refid: str = ""                 # Kraken: the trade txid both legs share
    sub_type: str = ""              # Alpaca's activity_sub_type (DIV / ROC is a return of capital)
    tx_hash: str = ""               # on-chain hash, where the feed carries one
    action_id: str = ""             # IBKR: the corporate action its rows share
    parent_asset_id: int | None = None  # IBKR spin-off: the parent's asset (from the action's description)

    @property
    def key(self) -> str:
        return f"{self.connection_id}:{self.broker_id}"


def fiat_as_cash(row: Row, code: str) -> Row:
    """A row whose asset is the fiat currency `code`: its quantity is cash in `code` unless the
    row already carries its cash (a conversion's other side, e.g. the USD paid for EUR)."""
    if row.amount:
        return replace(row, asset_id=None, quantity=None)
    return replace(row, asset_id=None, quantity=None, amount=row.quantity, currency=code)


def group_key(row: Row) -> str:
    """Rows that are one economic event share a group key."""
    if row.type == "split" or row.broker_type == "CIL":
        return f"{row.connection_id}:split:{row.asset_id}:{row.occurred_at.date()}"
    if row.type == "other" and row.action_id:        # IBKR: one corporate action, one row per security
        return f"{row.connection_id}:action:{row.action_id}"
    if row.type in ("trade", "fee"):
        if row.broker == "kraken" and row.refid and row.type == "trade":
            return f"{row.connection_id}:ref:{row.refid}"
        if row.broker_id.startswith(("trade:", "fill:")):
            return f"{row.connection_id}:" + re.sub(r":(quote|fee)$", "", row.broker_id)
    return row.key


def build_events(rows: Iterable[Row], *, fiat: frozenset[str]) -> list[Event]:
    counted = [r for r in rows if r.status not in NOT_COUNTED]
    movements = [r for r in counted if r.type in ("transfer", "deposit", "withdrawal")
                 and r.asset_id is not None and r.quantity]
    events = _transfer_events(movements)
    moved = {r.id for r in movements}
    groups: dict[str, list[Row]] = {}
    for row in counted:
        if row.id not in moved:
            key = group_key(row)
            members = groups.get(key)
            if members is None:
                groups[key] = [row]
            else:
                members.append(row)
    for members in groups.values():
        if len(members) > 1:
            members.sort(key=lambda r: (r.occurred_at, r.broker_id))
        event = _event(members, fiat)
        if event is not None:
            events.append(event)
    return sorted(events, key=Event.order.fget)


def _cash(rows: Iterable[Row], fiat: frozenset[str]) -> tuple[tuple[str, Decimal], ...]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.amount and row.currency in fiat:
            totals[row.currency] += row.amount
    return tuple(sorted((c, a) for c, a in totals.items() if a))


def _legs(rows: Iterable[Row]) -> tuple[Leg, ...]:
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.asset_id is not None and row.quantity:
            totals[row.asset_id] += row.quantity
    return tuple(Leg(a, q) for a, q in sorted(totals.items()) if q)


def _event(rows: list[Row], fiat: frozenset[str]) -> Event | None:
    lead = rows[0]
    if len(rows) == 1 and lead.type == "trade":            # most rows: one fill, one event
        legs = (Leg(lead.asset_id, lead.quantity),) if lead.asset_id is not None and lead.quantity else ()
        cash = ((lead.currency, lead.amount),) if lead.amount and lead.currency in fiat else ()
        return Event(Kind.TRADE, lead.occurred_at, lead.connection_id, lead.key, lead.id, legs=legs, cash=cash)
    base = dict(at=lead.occurred_at, connection_id=lead.connection_id, key=lead.key, tx_id=lead.id)
    kinds = {r.type for r in rows}
    if "split" in kinds:
        splits = [r for r in rows if r.type == "split"]
        return Event(Kind.SPLIT, **base, legs=_legs(splits), cash=_cash([r for r in rows if r.type != "split"], fiat),
                     asset_id=splits[0].asset_id, ratio=_split_ratio(splits))
    if "trade" in kinds:
        trades = [r for r in rows if r.type == "trade"]
        traded = {r.asset_id for r in trades}
        fees_in_kind = [r for r in rows if r.type != "trade" and r.asset_id not in traded]
        netted = [r for r in rows if r.type == "trade" or r.asset_id in traded]
        return Event(Kind.TRADE, **base, legs=_legs(netted), fee_legs=_legs(fees_in_kind), cash=_cash(rows, fiat))
    if kinds == {"other"} and len(rows) > 1:          # a merger: old shares out, new ones in, cash
        return Event(Kind.ADJUST, **base, legs=_legs(rows), cash=_cash(rows, fiat)) if _legs(rows) else None
    return _single(lead, base, fiat)


def _single(row: Row, base: dict, fiat: frozenset[str]) -> Event | None:
    legs, cash = _legs([row]), _cash([row], fiat)
    code = row.broker_type
    if row.type == "dividend" and (code == "DIVROC" or row.sub_type.upper() == "ROC"):
        return Event(Kind.ROC, **base, cash=cash, asset_id=row.asset_id) if cash else None
    if row.type in ("dividend", "interest", "reward"):
        kind = (INTEREST_KINDS.get(code, "interest") if row.type == "interest" else "reward" if row.type == "reward"
                else DIVIDEND_KINDS.get(code, "dividend"))
        if not legs and not cash:
            return None
        price_currency = row.currency if row.price is not None and row.currency in fiat else ""
        return Event(Kind.INCOME, **base, legs=legs, cash=cash, income_kind=kind, asset_id=row.asset_id,
                     price=row.price if price_currency else None, price_currency=price_currency)
    if row.type == "fee":
        if not legs and not cash:
            return None
        return Event(Kind.FEE, **base, legs=tuple(l for l in legs if l.quantity < 0), cash=cash,
                     income_kind=DIVIDEND_KINDS.get(code, "fee"), asset_id=row.asset_id)
    if row.type == "other" and legs and row.broker_type == SPINOFF_CODE and row.parent_asset_id is not None \
            and len(legs) == 1 and legs[0].quantity > 0:
        return Event(Kind.SPINOFF, **base, legs=legs, asset_id=row.parent_asset_id)
    if row.type == "other" and legs:
        return Event(Kind.ADJUST, **base, legs=legs, cash=cash)
    return None                       # cash deposits, withdrawals, journals: no lot changes


def _split_ratio(rows: list[Row]) -> Decimal | None:
    for row in rows:
        found = _RATIO.search(row.description or "")
        if found and Decimal(found.group(2)):
            return Decimal(found.group(1)) / Decimal(found.group(2))
    return None


def _transfer_events(rows: list[Row]) -> list[Event]:
    by_id = {r.id: r for r in rows}
    movements = [Movement(id=r.id, connection_id=r.connection_id, asset_id=r.asset_id, quantity=r.quantity,
                          occurred_at=r.occurred_at, tx_hash=r.tx_hash) for r in rows]
    matches = match_transfers(movements)
    pair_of = {m.deposit_id: m for m in matches if not m.internal}
    internal = {i for m in matches if m.internal for i in (m.withdrawal_id, m.deposit_id)}
    events = []
    for row in rows:
        if row.id in internal:
            continue
        base = dict(connection_id=row.connection_id, key=row.key, tx_id=row.id,
                    legs=(Leg(row.asset_id, row.quantity),))
        if row.quantity < 0:
            events.append(Event(Kind.TRANSFER_OUT, at=row.occurred_at, **base))
            continue
        match = pair_of.get(row.id)
        if match is None:
            priced = row.broker in FEEDLESS and row.price is not None and row.price >= 0
            events.append(Event(Kind.TRANSFER_IN, at=row.occurred_at, **base, price=row.price if priced else None,
                                price_currency=row.currency if priced else ""))
            continue
        sent = by_id[match.withdrawal_id]
        events.append(Event(Kind.TRANSFER_IN, at=max(row.occurred_at, sent.occurred_at), **base,
                            withdrawal_key=sent.key, fee_quantity=max(match.fee, ZERO)))
    return events
