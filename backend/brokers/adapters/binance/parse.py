"""Binance records -> brokersync DTOs. Pure functions; no HTTP.

A trade moves up to three assets, so it becomes one Transaction per asset ("leg"), each
signed the way it changes that holding, so reconcile can add quantities per asset:
    trade:{SYMBOL}:{id}        base asset (+qty on a buy); cash `amount` only when the quote is fiat
    trade:{SYMBOL}:{id}:quote  quote asset (-quoteQty on a buy); absent when the quote is fiat
    trade:{SYMBOL}:{id}:fee    commission asset (-commission); absent when zero (BNB is its own leg)
Coin deposits and withdrawals are TRANSFERs (on-chain in/out); a withdrawal's
transactionFee is its own FEE leg (the balance is debited amount + transactionFee).
assetDividend rows (airdrops, distributions, earn payouts) are REWARDs.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ...dtos import Order, Transaction, TransactionType
from ...errors import BadRecord
from ...symbols import FIAT, canonical_code, coin_asset

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Deposit status (wallet docs): 0 pending, 8 waiting user confirm, 1 success,
# 6 credited but cannot withdraw, 2 rejected, 7 wrong deposit.
DEPOSIT_CREDITED = frozenset({1, 6})
DEPOSIT_PENDING = frozenset({0, 8})
DEPOSIT_FAILED = frozenset({2, 7})
# Withdraw status: 0 email sent, 2 awaiting approval, 4 processing (already debited),
# 6 completed; 1 cancelled, 3 rejected, 5 failure (coins returned).
WITHDRAW_OPEN = frozenset({0, 2, 4})
WITHDRAW_DONE = frozenset({6})
WITHDRAW_FAILED = frozenset({1, 3, 5})
ORDER_STATUS = {"NEW": "open", "PENDING_NEW": "open", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
                "CANCELED": "canceled", "PENDING_CANCEL": "open", "REJECTED": "rejected", "EXPIRED": "expired",
                "EXPIRED_IN_MATCH": "expired"}


# -- field readers (raise BadRecord, which the caller turns into a SkippedRecord) -----------
def dec(record: dict, key: str) -> Decimal:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise BadRecord(f"{key} is not a decimal: {value!r}"[:120])
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadRecord(f"{key} is not a decimal: {value!r}"[:120]) from None
    if not number.is_finite():
        raise BadRecord(f"{key} is not finite")
    return number


def integer(record: dict, key: str) -> int:
    value = record.get(key)
    if isinstance(value, bool):
        raise BadRecord(f"{key} is not an integer")
    try:
        return int(value) if isinstance(value, (int, str)) else int(Decimal(value))
    except (TypeError, ValueError, InvalidOperation):
        raise BadRecord(f"{key} is not an integer: {value!r}"[:120]) from None


def text(record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise BadRecord(f"{key} is missing")
    return value


def ms_time(record: dict, key: str) -> datetime:
    return EPOCH + timedelta(milliseconds=integer(record, key))


def utc_text_time(record: dict, key: str) -> datetime:
    """Withdraw history's "2019-10-12 11:12:02" (UTC, no zone given)."""
    try:
        return datetime.strptime(text(record, key), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise BadRecord(f"{key} is not a UTC time: {record.get(key)!r}"[:120]) from None


def to_ms(when: datetime) -> int:
    return (when - EPOCH) // timedelta(milliseconds=1)


def _is_fiat(asset: str) -> bool:
    return canonical_code(asset) in FIAT


def _leg(broker_id: str, kind: TransactionType, broker_type: str, when: datetime, asset: str, change: Decimal,
         raw: dict, **extra: Any) -> Transaction:
    """One asset's change: `quantity` for coins, cash `amount` for fiat."""
    code = canonical_code(asset)
    if code in FIAT:
        return Transaction(broker_id=broker_id, type=kind, broker_type=broker_type, occurred_at=when,
                           amount=change, currency=code, raw=raw, **extra)
    return Transaction(broker_id=broker_id, type=kind, broker_type=broker_type, occurred_at=when,
                       asset=coin_asset(code), quantity=change, raw=raw, **extra)


# -- records --------------------------------------------------------------------------------
def trade_legs(raw: dict, base: str, quote: str) -> list[Transaction]:
    symbol = text(raw, "symbol")
    key = f"trade:{symbol}:{integer(raw, 'id')}"
    buyer = raw.get("isBuyer")
    if not isinstance(buyer, bool):
        raise BadRecord("isBuyer is not a boolean")
    sign = 1 if buyer else -1
    qty, quote_qty, price = dec(raw, "qty"), dec(raw, "quoteQty"), dec(raw, "price")
    commission, fee_asset = dec(raw, "commission"), raw.get("commissionAsset") or ""
    when = ms_time(raw, "time")
    common = {"broker_symbol": symbol, "order_id": f"{symbol}:{integer(raw, 'orderId')}"}
    side, other_side = ("buy", "sell") if buyer else ("sell", "buy")
    legs = [_leg(key, TransactionType.TRADE, "TRADE", when, base, sign * qty, raw, price=price, side=side,
                 **common)]
    if _is_fiat(quote):
        legs[0] = _with_cash(legs[0], -sign * quote_qty, canonical_code(quote))
    else:
        legs.append(_leg(key + ":quote", TransactionType.TRADE, "TRADE", when, quote, -sign * quote_qty, raw,
                         side=other_side, **common))
    if commission:
        if not fee_asset:
            raise BadRecord("commissionAsset is missing")
        legs.append(_leg(key + ":fee", TransactionType.FEE, "COMMISSION", when, fee_asset, -commission, raw,
                         fee=commission, **common))
    return legs


def _with_cash(leg: Transaction, amount: Decimal, currency: str) -> Transaction:
    return replace(leg, amount=amount, currency=currency)


def deposit_legs(raw: dict) -> list[Transaction]:
    """A pending deposit is not credited yet: status "pending" (reconcile does not count
    it) until a later sync reads it again."""
    status = integer(raw, "status")
    if status not in DEPOSIT_CREDITED | DEPOSIT_PENDING | DEPOSIT_FAILED:
        raise BadRecord(f"unknown deposit status {status}")
    state = "executed" if status in DEPOSIT_CREDITED else "pending" if status in DEPOSIT_PENDING else "canceled"
    coin = text(raw, "coin")
    kind = TransactionType.DEPOSIT if _is_fiat(coin) else TransactionType.TRANSFER
    return [_leg(f"deposit:{text(raw, 'id')}", kind, "DEPOSIT", ms_time(raw, "insertTime"), coin,
                 dec(raw, "amount"), raw, broker_symbol=coin, status=state,
                 description=f"deposit via {raw.get('network') or '?'} {raw.get('txId') or ''}".strip())]


def deposit_pending(raw: dict) -> bool:
    return raw.get("status") in DEPOSIT_PENDING


def withdrawal_legs(raw: dict) -> list[Transaction]:
    status = integer(raw, "status")
    if status not in WITHDRAW_OPEN | WITHDRAW_DONE | WITHDRAW_FAILED:
        raise BadRecord(f"unknown withdrawal status {status}")
    coin, key = text(raw, "coin"), f"withdraw:{text(raw, 'id')}"
    when, state = utc_text_time(raw, "applyTime"), "canceled" if status in WITHDRAW_FAILED else "executed"
    kind = TransactionType.WITHDRAWAL if _is_fiat(coin) else TransactionType.TRANSFER
    legs = [_leg(key, kind, "WITHDRAW", when, coin, -dec(raw, "amount"), raw, broker_symbol=coin, status=state,
                 description=f"withdrawal via {raw.get('network') or '?'} {raw.get('txId') or ''}".strip())]
    fee = dec(raw, "transactionFee") if raw.get("transactionFee") not in (None, "") else Decimal(0)
    if fee:
        legs.append(_leg(key + ":fee", TransactionType.FEE, "WITHDRAW_FEE", when, coin, -fee, raw, fee=fee,
                         broker_symbol=coin, status=state))
    return legs


def withdrawal_open(raw: dict) -> bool:
    return raw.get("status") in WITHDRAW_OPEN


def dividend_legs(raw: dict) -> list[Transaction]:
    direction = integer(raw, "direction") if raw.get("direction") is not None else 1
    asset = text(raw, "asset")
    return [_leg(f"dividend:{integer(raw, 'id')}", TransactionType.REWARD, "ASSET_DIVIDEND",
                 ms_time(raw, "divTime"), asset, direction * dec(raw, "amount"), raw, broker_symbol=asset,
                 description=str(raw.get("enInfo") or ""))]


def order(raw: dict, base: str | None) -> Order:
    symbol, status = text(raw, "symbol"), text(raw, "status")
    executed, quote = dec(raw, "executedQty"), dec(raw, "cummulativeQuoteQty")
    updated = ms_time(raw, "updateTime") if raw.get("updateTime") is not None else None
    normal = ORDER_STATUS.get(status, "other")
    return Order(
        broker_id=f"{symbol}:{integer(raw, 'orderId')}", asset=coin_asset(base) if base else None,
        broker_symbol=symbol, side=text(raw, "side").lower(), order_type=text(raw, "type").lower(),
        status=normal, broker_status=status, submitted_at=ms_time(raw, "time"),
        client_order_id=str(raw.get("clientOrderId") or ""), time_in_force=str(raw.get("timeInForce") or ""),
        quantity=dec(raw, "origQty"), notional=_positive(raw, "origQuoteOrderQty"), filled_quantity=executed,
        # cummulativeQuoteQty < 0 means "not available" on some old orders (rest-api.md).
        filled_avg_price=quote / executed if executed > 0 and quote >= 0 else None,
        limit_price=_positive(raw, "price"), stop_price=_positive(raw, "stopPrice"), updated_at=updated,
        filled_at=updated if status == "FILLED" else None, canceled_at=updated if normal == "canceled" else None,
        raw=raw)


def _positive(raw: dict, key: str) -> Decimal | None:
    if raw.get(key) in (None, ""):
        return None
    value = dec(raw, key)
    return value if value > 0 else None
