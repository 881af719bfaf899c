"""Kraken records -> our DTOs.

One ledger row is one Transaction (broker_id = the ledger id). A spot trade therefore
arrives as two rows sharing `refid` (the trade txid), one per asset; we keep both instead
of folding them into one trade, because that is what keeps every holding exact: a coin
row carries the signed change of that coin (`quantity`), a fiat row the signed change of
cash (`amount`), each net of the row's fee, so that for every asset the sum over its
rows is its balance. Coin-for-coin trades (ETH/XBT) need no special case.
TradesHistory, joined by refid, adds price, side and order id.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ...dtos import Order, Transaction, TransactionType
from .assets import FEE_CREDITS, AssetBook

T = TransactionType
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Ledger `type` -> our type (§4.4 list); deposit/withdrawal/earn depend on the row, below.
_TYPES = {
    "trade": T.TRADE, "spend": T.TRADE, "receive": T.TRADE, "conversion": T.TRADE,
    "staking": T.REWARD, "reward": T.REWARD, "dividend": T.DIVIDEND,
    "transfer": T.TRANSFER, "custodytransfer": T.TRANSFER, "allocation": T.TRANSFER, "deallocation": T.TRANSFER,
    "rollover": T.FEE,
}
_OPPOSITE = {"buy": "sell", "sell": "buy"}
_ORDER_STATUS = {"pending": "open", "closed": "filled", "canceled": "canceled", "expired": "expired"}


class Unparseable(ValueError):
    pass


def to_datetime(value: Any) -> datetime:
    """Kraken's float seconds (already Decimal from the JSON parser) -> aware UTC, exact to the µs."""
    try:
        seconds = Decimal(str(value))
    except InvalidOperation:
        raise Unparseable(f"bad time {value!r}") from None
    whole = int(seconds // 1)
    micros = int(((seconds - whole) * 1_000_000).to_integral_value())
    return _EPOCH + timedelta(seconds=whole, microseconds=micros)


def _dec(record: dict, key: str, default: str | None = None) -> Decimal:
    value = record.get(key, default)
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Unparseable(f"bad {key} {value!r}") from None


def transaction_type(row: dict, fiat: bool) -> TransactionType:
    kind, subtype = row.get("type", ""), row.get("subtype", "")
    if kind == "deposit":
        return T.DEPOSIT if fiat else T.TRANSFER
    if kind == "withdrawal":
        return T.WITHDRAWAL if fiat else T.TRANSFER
    if kind == "earn":
        return T.REWARD if subtype == "reward" else T.TRANSFER
    return _TYPES.get(kind, T.OTHER)


def ledger_transaction(ledger_id: str, row: Any, book: AssetBook, trade: dict | None) -> Transaction:
    if not isinstance(row, dict) or not row.get("asset"):
        raise Unparseable("ledger row without asset")
    code = str(row["asset"])
    amount, fee = _dec(row, "amount"), _dec(row, "fee", "0")
    net = amount - fee
    fiat = book.is_fiat(code)
    raw = {"id": ledger_id, **row}
    common = {"broker_id": ledger_id, "type": transaction_type(row, fiat), "broker_type": str(row.get("type", "")),
              "occurred_at": to_datetime(row.get("time")), "broker_symbol": code, "fee": fee or None,
              "raw": raw, "description": str(row.get("subtype") or "")}
    legs = _trade_leg(book, code, trade, net) if trade else {}
    if trade:
        raw["trade"] = trade
    if code == FEE_CREDITS:          # fee credits: neither a holding nor cash
        return Transaction(**common, currency=code)
    if fiat:                         # FX pairs (EURUSD) make a fiat row the base leg: the price stays in raw
        legs.pop("currency", None)
        legs.pop("price", None)
        return Transaction(**common, amount=net, currency=book.canonical(code), **legs)
    legs.setdefault("side", ("buy" if net > 0 else "sell") if common["type"] == T.TRADE else "")
    currency = legs.pop("currency", book.canonical(code))
    return Transaction(**common, asset=book.asset_ref(code, currency), quantity=net, currency=currency, **legs)


def _trade_leg(book: AssetBook, code: str, trade: dict, net: Decimal) -> dict[str, Any]:
    """Side, price and order id for one leg of a trade."""
    sides = book.pair_sides(str(trade.get("pair", "")))
    side = str(trade.get("type", ""))
    out: dict[str, Any] = {"order_id": str(trade.get("ordertxid") or "")}
    if sides is None:
        out["side"] = side
        return out
    base, quote = sides
    if book.canonical(code) == base:
        out.update(side=side, price=_dec(trade, "price"), currency=quote)
    else:                                   # the quote leg: what this asset did is the opposite
        out["side"] = side if book.is_fiat(code) else _OPPOSITE.get(side, "")
    return out


def kraken_order(txid: str, data: Any, book: AssetBook) -> Order:
    if not isinstance(data, dict) or not isinstance(data.get("descr"), dict):
        raise Unparseable("order without descr")
    descr = data["descr"]
    pair = str(descr.get("pair", ""))
    sides = book.pair_sides(pair)
    asset = book.asset_ref(book.pair(pair)[1]["base"], sides[1]) if sides else None
    vol, vol_exec = _dec(data, "vol"), _dec(data, "vol_exec", "0")
    status = str(data.get("status", ""))
    closed_at = to_datetime(data["closetm"]) if data.get("closetm") else None
    limit, stop = _prices(str(descr.get("ordertype", "")), descr)
    return Order(
        broker_id=txid, asset=asset, broker_symbol=pair, side=str(descr.get("type", "")),
        order_type=str(descr.get("ordertype", "")), status=_status(status, vol_exec), broker_status=status,
        submitted_at=to_datetime(data.get("opentm")), client_order_id=str(data.get("cl_ord_id") or data.get("userref") or ""),
        time_in_force="GTD" if data.get("expiretm") else "GTC", quantity=vol, filled_quantity=vol_exec,
        filled_avg_price=_dec(data, "price") if vol_exec else None, limit_price=limit, stop_price=stop,
        updated_at=closed_at, filled_at=closed_at if status == "closed" else None,
        canceled_at=closed_at if status in ("canceled", "expired") else None, raw={"txid": txid, **data})


def _status(status: str, vol_exec: Decimal) -> str:
    if status == "open":
        return "partially_filled" if vol_exec else "open"
    return _ORDER_STATUS.get(status, "other")


def _prices(ordertype: str, descr: dict) -> tuple[Decimal | None, Decimal | None]:
    """(limit, stop) from descr: price is the limit for limit orders and the trigger for
    stop/take-profit ones, whose limit (if any) is price2."""
    price, price2 = _dec(descr, "price", "0"), _dec(descr, "price2", "0")
    if ordertype == "limit":
        return price or None, None
    if ordertype in ("stop-loss", "take-profit", "trailing-stop"):
        return None, price or None
    if ordertype in ("stop-loss-limit", "take-profit-limit", "trailing-stop-limit"):
        return price2 or None, price or None
    return None, None
