"""Non-trade activities (NTAs) as Alpaca posts them: field shapes from docs/brokers.md §1.4.

Each kind needs something to apply to (a dividend a long equity, an in-kind fee a coin);
when there is none yet, a cash-only row takes its place so the activity count stays exact.
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from .desk import CENT, CRYPTO_QTY, between
from .records import ZERO

if TYPE_CHECKING:
    from .play import Player

FOUR_DP = Decimal("0.0001")


def _money(player: "Player", low: float, high: float) -> Decimal:
    return Decimal(f"{player.rng.uniform(low, high):.2f}")


def post_nta(player: "Player", kind: str, t: int, offset: int | None) -> int:
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise ValueError(f"no generator for activity {kind}")
    return handler(player, t, offset)


def _long_equity(player: "Player"):
    asset = player.longs.choice(player.rng)
    return asset if asset is not None and player.ledger.holdings.get(asset.symbol) else None


def deposit0(p: "Player", t: int, offset) -> int:
    opening = Decimal(100_000 + 5_000 * len(p.universe["held"]))
    return p.desk.nta("CSD", t, opening, offset_us=offset).t_us


def cash_row(kind: str, low: float, high: float, description: str = "", status: str = "executed"):
    def make(p: "Player", t: int, offset) -> int:
        net = _money(p, low, high)
        return p.desk.nta(kind, t, net, offset_us=offset, description=description, status=status).t_us
    return make


def dividend(kind: str, sign: int, description: str = ""):
    def make(p: "Player", t: int, offset) -> int:
        asset = _long_equity(p)
        if asset is None:
            return _HANDLERS["INT"](p, t, offset)
        held = p.ledger.holdings[asset.symbol].qty
        per_share = Decimal(f"{p.rng.uniform(0.05, 1.5):.4f}")
        net = (held * per_share).quantize(CENT)
        if sign < 0:
            per_share, net = -(per_share * Decimal("0.3")).quantize(FOUR_DP), -(net * Decimal("0.3")).quantize(CENT)
        net = net or (CENT * sign)
        status = "correct" if p.rng.random() < 0.03 else "executed"
        return p.desk.nta(kind, t, net, offset_us=offset, asset=asset, qty=held, per_share=per_share,
                          description=description, status=status).t_us
    return make


def fee(p: "Player", t: int, offset) -> int:
    asset = _long_equity(p) if p.rng.random() < 0.5 else None
    text = p.rng.choice(("REG fee", "TAF fee", "ADR fee"))
    return p.desk.nta("FEE", t, -_money(p, 0.01, 2.5), offset_us=offset, asset=asset, description=text).t_us


def div_fee(p: "Player", t: int, offset) -> int:
    asset = _long_equity(p)
    return p.desk.nta("DIVFEE", t, -_money(p, 0.01, 1.0), offset_us=offset, asset=asset,
                      description="ADR custody fee").t_us


def crypto_fee(p: "Player", t: int, offset) -> int:
    """Charged in the received coin: a negative qty of it, net_amount 0 (crypto activities docs)."""
    asset = p.coins.choice(p.rng)
    held = p.ledger.holdings[asset.symbol].qty if asset else ZERO
    if asset is None or held <= CRYPTO_QTY:
        return fee(p, t, offset)
    rate = Decimal(f"{p.rng.uniform(0.0015, 0.0025):.4f}")
    qty = max(CRYPTO_QTY, (held * rate).quantize(CRYPTO_QTY))
    price = Decimal(f"{p.px.get(asset.symbol, asset.base_price):.2f}")  # last fill's price
    return p.desk.nta("CFEE", t, ZERO, offset_us=offset, asset=asset, qty=-qty, price=price,
                      description="Coin Pair Transaction Fee (Non USD)", holding_qty=-qty).t_us


def acats(status: str):
    def make(p: "Player", t: int, offset) -> int:
        asset = _long_equity(p)
        if asset is None:
            return _HANDLERS["ACATC" if status == "executed" else "CSD_CANCELED"](p, t, offset)
        qty = Decimal(between(p.rng, 1, 51))
        return p.desk.nta("ACATS", t, ZERO, offset_us=offset, asset=asset, qty=qty, description="ACATS IN",
                          status=status, holding_qty=qty).t_us
    return make


def split(p: "Player", t: int, offset) -> int:
    asset = _long_equity(p)
    if asset is None:
        t = _HANDLERS["INT"](p, t, offset)
        return _HANDLERS["INT"](p, t + 1000, offset)
    ratio = Decimal(p.rng.choice((2, 3, 4)))
    remove, add = p.desk.split(asset, ratio, t, offset)
    return add.t_us


_HANDLERS = {
    "DEPOSIT0": deposit0,
    "DIV": dividend("DIV", 1), "DIVCGL": dividend("DIVCGL", 1, "Long term capital gain distribution"),
    "DIVNRA": dividend("DIVNRA", -1, "NRA withholding"),
    "FEE": fee, "DIVFEE": div_fee, "CFEE": crypto_fee,
    "INT": cash_row("INT", 0.01, 25, "Interest credit"),
    "CSD": cash_row("CSD", 100, 10_000), "CSW": lambda p, t, o: p.desk.nta(
        "CSW", t, -_money(p, 100, 2_000), offset_us=o).t_us,
    "JNLC": lambda p, t, o: p.desk.nta("JNLC", t, _money(p, 10, 2_000) * p.rng.choice((1, -1)), offset_us=o,
                                       description="Cash journal").t_us,
    "ACATC": cash_row("ACATC", 100, 5_000, "ACATS IN (cash)"),
    "ACATS": acats("executed"), "ACATS_CANCELED": acats("canceled"),
    "CSD_CANCELED": cash_row("CSD", 100, 5_000, status="canceled"),
    # Not an activity brokersync maps: must arrive as OTHER with its raw record.
    "MEM": lambda p, t, o: p.desk.nta("MEM", t, ZERO, offset_us=o, description="Account memo").t_us,
    "SPLIT": split,
}
