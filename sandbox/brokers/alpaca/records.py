"""Compact records (slots, integer times) rendered into Alpaca's JSON on demand.

A 200,000-activity account keeps ~350,000 of these, so they hold Decimals and integer
microseconds, never pre-rendered dicts; a page renders only its own 100-500 rows.
Field names and value types follow docs/brokers.md §1.4 (decimals are strings).
"""
from __future__ import annotations

import uuid
from decimal import Decimal

from .times import rfc3339
from .universe import AssetInfo

ZERO = Decimal("0")
_CLIENT_NS = uuid.UUID("6f1b7d52-6a5e-4c52-9d7c-2b0a4c0e9a11")


def dec(value: Decimal | None) -> str | None:
    """A decimal string as Alpaca writes it: no exponent, no trailing zeros past the point."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class Fill:
    """A FILL activity (one execution of an order)."""

    __slots__ = ("id", "t_us", "asset", "side", "qty", "price", "partial", "leaves", "cum", "order_id")
    kind = "FILL"
    status = "executed"

    def __init__(self, id, t_us, asset: AssetInfo, side, qty, price, partial, leaves, cum, order_id):
        self.id, self.t_us, self.asset, self.side = id, t_us, asset, side
        self.qty, self.price, self.partial, self.leaves, self.cum = qty, price, partial, leaves, cum
        self.order_id = order_id

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side == "buy" else -self.qty

    def render(self) -> dict:
        return {"id": self.id, "activity_type": "FILL", "transaction_time": rfc3339(self.t_us),
                "type": "partial_fill" if self.partial else "fill", "price": dec(self.price),
                "qty": dec(self.qty), "side": self.side, "symbol": self.asset.symbol,
                "leaves_qty": dec(self.leaves), "cum_qty": dec(self.cum), "order_id": self.order_id,
                "order_status": "partially_filled" if self.partial else "filled"}


class Nta:
    """A non-trade activity: DIV, FEE, CFEE, CSD, SPLIT, ... `date` is a New York date."""

    __slots__ = ("id", "t_us", "kind", "date", "net", "asset", "qty", "price", "per_share", "description",
                 "status", "holding_qty")

    def __init__(self, id, t_us, kind, date, net, *, asset: AssetInfo | None = None, qty=None, price=None,
                 per_share=None, description="", status="executed", holding_qty=None):
        self.id, self.t_us, self.kind, self.date, self.net = id, t_us, kind, date, net
        self.asset, self.qty, self.price, self.per_share = asset, qty, price, per_share
        self.description, self.status = description, status
        # The signed change of the holding this row makes (None: it moves cash only).
        self.holding_qty = holding_qty

    def render(self) -> dict:
        row = {"id": self.id, "activity_type": self.kind, "date": self.date, "net_amount": dec(self.net)}
        if self.asset is not None:
            # Non-trade rows spell crypto without the slash (docs' CFEE example: "ETHUSD").
            row["symbol"] = self.asset.position_symbol
        if self.qty is not None:
            row["qty"] = dec(self.qty)
        if self.price is not None:
            row["price"] = dec(self.price)
        if self.per_share is not None:
            row["per_share_amount"] = dec(self.per_share)
        row["description"] = self.description
        row["status"] = self.status
        return row


class Order:
    __slots__ = ("id", "asset", "side", "type", "tif", "qty", "notional", "filled_qty", "avg_price",
                 "limit_price", "status", "submitted_us", "updated_us", "filled_us", "canceled_us",
                 "expired_us", "failed_us", "intent")

    def __init__(self, id, asset: AssetInfo, side, type, tif, submitted_us, *, qty=None, notional=None,
                 limit_price=None, intent=None):
        self.id, self.asset, self.side, self.type, self.tif = id, asset, side, type, tif
        self.qty, self.notional, self.limit_price = qty, notional, limit_price
        self.filled_qty, self.avg_price = ZERO, None
        self.status = "new"
        self.submitted_us = self.updated_us = submitted_us
        self.filled_us = self.canceled_us = self.expired_us = self.failed_us = None
        self.intent = intent

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def render(self) -> dict:
        t = lambda us: None if us is None else rfc3339(us)  # noqa: E731
        submitted = rfc3339(self.submitted_us)
        return {
            "id": self.id, "client_order_id": str(uuid.uuid5(_CLIENT_NS, self.id)),
            "created_at": submitted, "updated_at": rfc3339(self.updated_us), "submitted_at": submitted,
            "filled_at": t(self.filled_us), "expired_at": t(self.expired_us), "canceled_at": t(self.canceled_us),
            "failed_at": t(self.failed_us), "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": self.asset.asset_id, "symbol": self.asset.symbol, "asset_class": self.asset.asset_class,
            "notional": dec(self.notional), "qty": dec(self.qty), "filled_qty": dec(self.filled_qty),
            "filled_avg_price": dec(self.avg_price), "order_class": "", "order_type": self.type,
            "type": self.type, "side": self.side, "time_in_force": self.tif, "limit_price": dec(self.limit_price),
            "stop_price": None, "status": self.status, "extended_hours": False, "legs": None,
            "trail_percent": None, "trail_price": None, "hwm": None,
            "position_intent": self.intent, "subtag": None, "source": None,
        }


# Alpaca order statuses that are still working (docs/brokers.md §1.4 enum).
OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled", "accepted_for_bidding",
                           "pending_cancel", "pending_replace", "held", "calculated", "stopped",
                           "suspended", "done_for_day"})

# brokersync's normalised order status, for truth().
NORMALISED_STATUS = {"filled": "filled", "partially_filled": "partially_filled", "canceled": "canceled",
                     "expired": "expired", "rejected": "rejected", "replaced": "other"}


def normalised_status(status: str) -> str:
    if status in NORMALISED_STATUS:
        return NORMALISED_STATUS[status]
    return "open" if status in OPEN_STATUSES else "other"


class Holding:
    """One open position: signed quantity, average entry, last price."""

    __slots__ = ("asset", "qty", "avg", "price", "lastday")

    def __init__(self, asset: AssetInfo, price: Decimal):
        self.asset, self.qty, self.avg, self.price, self.lastday = asset, ZERO, price, price, price

    def render(self) -> dict:
        qty, price, avg = self.qty, self.price, self.avg
        market = qty * price
        cost = qty * avg
        pl = market - cost
        plpc = (pl / abs(cost)).quantize(Decimal("0.0001")) if cost else ZERO
        intraday = qty * (price - self.lastday)
        change = ((price - self.lastday) / self.lastday).quantize(Decimal("0.0001")) if self.lastday else ZERO
        cents = Decimal("0.01")
        return {
            "asset_id": self.asset.asset_id, "symbol": self.asset.position_symbol, "exchange": self.asset.exchange,
            "asset_class": self.asset.asset_class, "asset_marginable": not self.asset.is_crypto,
            "qty": dec(qty), "qty_available": dec(qty), "side": "long" if qty > 0 else "short",
            "avg_entry_price": dec(avg), "cost_basis": dec(cost.quantize(cents)),
            "market_value": dec(market.quantize(cents)), "unrealized_pl": dec(pl.quantize(cents)),
            "unrealized_plpc": dec(plpc), "unrealized_intraday_pl": dec(intraday.quantize(cents)),
            "unrealized_intraday_plpc": dec(change), "current_price": dec(price),
            "lastday_price": dec(self.lastday), "change_today": dec(change),
        }
