"""Makes records the way Alpaca would post them and puts them on the ledger: an order with
its fills, a non-trade activity, a split. Used by the history generator and by advance(),
so both keep the positions == sum of history invariant by construction."""
from __future__ import annotations

import random
from bisect import bisect
from decimal import ROUND_DOWN, Decimal

from .ledger import Ledger
from .records import ZERO, Fill, Nta, Order
from .times import activity_id_prefix, ny_date
from .universe import AssetInfo

ONE = Decimal("1")
CENT = Decimal("0.01")
CRYPTO_QTY = Decimal("0.000000001")          # Alpaca quotes crypto qty to 9 decimals (docs/brokers.md §1.7)
FRACTION = Decimal("0.000001")                # fractional equity lots we generate
MS = 1000
LIMIT_UP = Decimal("1.01")


def quantum(qty: Decimal) -> Decimal:
    exponent = qty.as_tuple().exponent
    return Decimal(1).scaleb(min(0, exponent if isinstance(exponent, int) else 0))


def split_qty(qty: Decimal, parts: int) -> list[Decimal]:
    """`qty` in `parts` positive pieces on its own quantum (callers make sure it is big enough)."""
    unit = quantum(qty)
    units = int(qty / unit)
    if parts <= 1 or units < parts:
        return [qty]
    base = units // parts
    pieces = [base * unit] * (parts - 1)
    return pieces + [qty - sum(pieces, ZERO)]


class Desk:
    def __init__(self, ledger: Ledger, rng: random.Random):
        self.ledger = ledger
        self.rng = rng

    def uuid(self) -> str:
        return random_uuid4(self.rng)

    def activity_id(self, t_us: int, offset_us: int | None = None) -> str:
        return f"{activity_id_prefix(t_us, offset_us)}::{self.uuid()}"

    # -- orders and fills ---------------------------------------------------------------
    def trade(self, asset: AssetInfo, side: str, qty: Decimal, price: Decimal, t_us: int, *,
              fills: int = 1, offset_us: int | None = None, submitted_us: int | None = None,
              rest: str = "", notional: Decimal | None = None, order_type: str = "market") -> tuple[Order, int]:
        """An order that executes `qty` in `fills` executions from t_us on.

        rest: "" = the order is filled; "open" = it stays partially_filled; "canceled" = the
        remainder was cancelled. Returns the order and the time of its last event."""
        held = self.ledger.holdings.get(asset.symbol)
        intent = _intent(side, held.qty if held else ZERO) if not asset.is_crypto else None
        order_qty = qty * 2 if rest else qty
        order = Order(self.uuid(), asset, side, order_type, "gtc" if asset.is_crypto else "day",
                      t_us if submitted_us is None else submitted_us,
                      qty=None if notional is not None else order_qty, notional=notional,
                      limit_price=(price * LIMIT_UP).quantize(CENT) if order_type == "limit" else None,
                      intent=intent)
        order.status = {"": "filled", "open": "partially_filled", "canceled": "canceled"}[rest]
        self.ledger.add_order(order)
        t = t_us + between(self.rng, 20, 400) * MS
        pieces = split_qty(qty, fills) if fills > 1 else (qty,)
        last = len(pieces) - 1
        cum = ZERO
        for k, piece in enumerate(pieces):
            cum += piece
            partial = bool(rest) or k < last
            self.ledger.post_fill(Fill(self.activity_id(t, offset_us), t, asset, side, piece, price, partial,
                                       order_qty - cum, cum, order.id))
            if k < last:
                t += between(self.rng, 300, 3000) * MS
        order.filled_qty, order.avg_price, order.updated_us = cum, price, t
        if rest == "canceled":
            order.canceled_us = order.updated_us = t = t + 2000 * MS
        elif not rest:
            order.filled_us = t
        return order, t

    def unfilled_order(self, asset: AssetInfo, side: str, qty: Decimal, price: Decimal, t_us: int,
                       status: str) -> Order:
        """A limit order that never executed: open (new/accepted), canceled, expired or rejected."""
        order = Order(self.uuid(), asset, side, "limit", "gtc" if asset.is_crypto else "day", t_us, qty=qty,
                      limit_price=(price * (Decimal("0.97") if side == "buy" else Decimal("1.03"))).quantize(CENT))
        order.status = "new"
        self.ledger.add_order(order)
        self.close_unfilled(order, status, t_us + between(self.rng, 1, 60) * 1000 * MS)
        return order

    def close_unfilled(self, order: Order, status: str, t_us: int) -> None:
        if status in ("canceled", "expired", "rejected"):
            order.updated_us = t_us
            setattr(order, {"canceled": "canceled_us", "expired": "expired_us", "rejected": "failed_us"}[status], t_us)
        self.ledger.set_order_status(order, status)

    # -- non-trade activities -------------------------------------------------------------
    def nta(self, kind: str, t_us: int, net: Decimal, *, offset_us: int | None = None, **fields) -> Nta:
        record = Nta(self.activity_id(t_us, offset_us), t_us, kind, ny_date(t_us, offset_us).isoformat(), net,
                     **fields)
        self.ledger.post_nta(record)
        return record

    def split(self, asset: AssetInfo, ratio: Decimal, t_us: int, offset_us: int | None = None) -> tuple[Nta, Nta]:
        """Old shares out, new shares in, as two SPLIT rows (see module docs of state.py)."""
        h = self.ledger.holdings[asset.symbol]
        old, new = h.qty, h.qty * ratio
        day = ny_date(t_us, offset_us).isoformat()
        text = f"From QTY:{old} To QTY:{new} Ratio:{ratio}:1"
        remove = Nta(self.activity_id(t_us, offset_us), t_us, "SPLIT", day, ZERO, asset=asset, qty=-old,
                     price=h.price, description=f"REMOVE, {text}", holding_qty=-old)
        t2 = t_us + MS
        add = Nta(self.activity_id(t2, offset_us), t2, "SPLIT", day, ZERO, asset=asset, qty=new,
                  price=(h.price / ratio).quantize(CENT), description=f"ADD, {text}", holding_qty=new)
        self.ledger.post_split(remove, add, ratio)
        return remove, add


def between(rng: random.Random, low: int, high: int) -> int:
    """An int in [low, high): rng.randrange without its checks (the generator calls it ~10^6 times)."""
    return low + int(rng.random() * (high - low))


def weighted(rng: random.Random, items: tuple, cumulative: tuple) -> object:
    """rng.choices(items, cum_weights=cumulative)[0], cheaper."""
    return items[bisect(cumulative, rng.random() * cumulative[-1])]


def random_uuid4(rng: random.Random) -> str:
    """uuid.UUID(int=rng.getrandbits(128), version=4), without the object (hot path)."""
    h = f"{(rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def _intent(side: str, held: Decimal) -> str:
    if side == "buy":
        return "buy_to_close" if held < 0 else "buy_to_open"
    return "sell_to_close" if held > 0 else "sell_to_open"


def crypto_qty(usd: Decimal, price: Decimal) -> Decimal:
    return max(CRYPTO_QTY, (usd / price).quantize(CRYPTO_QTY, rounding=ROUND_DOWN))
