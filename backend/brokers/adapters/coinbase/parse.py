"""Coinbase JSON records -> DTOs. Every parser raises BadRecord when a record cannot be
understood; the caller turns that into a SkippedRecord and carries on.

Conventions (the sandbox's truth() promises the same, so tests compare them):
  v3 fill    `fill:<entry_id>`: TRADE on the base coin, quantity = signed size, amount =
             signed quote change with the commission included, fee = commission.
             A coin-quoted product (ETH-BTC, BTC-USDC) adds `fill:<entry_id>:quote`, a
             TRADE row whose quantity is the quote coin's change (amount None), so each
             coin's rows add up to its balance.
  v2 row     `v2:<id>`: a fiat wallet's signed amount goes to `amount`, a coin wallet's to
             `quantity`. `advanced_trade_fill` rows repeat v3 fills and are dropped.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ...dtos import Order, Transaction, TransactionType
from ...errors import BadRecord
from ...symbols import FIAT, canonical_code, coin_asset

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")

# v2 types that repeat what v3 fills already report.
V2_DUPLICATES = frozenset({"advanced_trade_fill"})
V2_TYPES = {
    "fiat_deposit": TransactionType.DEPOSIT, "fiat_withdrawal": TransactionType.WITHDRAWAL,
    "send": TransactionType.TRANSFER, "receive": TransactionType.TRANSFER, "transfer": TransactionType.TRANSFER,
    "request": TransactionType.TRANSFER, "staking_transfer": TransactionType.TRANSFER,
    "unstaking_transfer": TransactionType.TRANSFER, "exchange_deposit": TransactionType.TRANSFER,
    "exchange_withdrawal": TransactionType.TRANSFER, "pro_deposit": TransactionType.TRANSFER,
    "pro_withdrawal": TransactionType.TRANSFER, "vault_withdrawal": TransactionType.TRANSFER,
    "intx_deposit": TransactionType.TRANSFER, "intx_withdrawal": TransactionType.TRANSFER,
    "earn_payout": TransactionType.REWARD, "incentives_rewards_payout": TransactionType.REWARD,
    "staking_reward": TransactionType.REWARD, "inflation_reward": TransactionType.REWARD,
    "interest": TransactionType.INTEREST, "incentives_shared_clawback": TransactionType.REWARD,
    "clawback": TransactionType.REWARD,
    # Coinbase App buys/sells and Convert: one row per wallet, not repeated in v3 fills.
    "buy": TransactionType.TRADE, "sell": TransactionType.TRADE, "trade": TransactionType.TRADE,
    "retail_simple_dust": TransactionType.TRADE,
    "subscription": TransactionType.FEE, "subscription_rebate": TransactionType.FEE,
}
V2_STATUS = {"completed": "executed", "canceled": "canceled", "cancelled": "canceled", "failed": "canceled",
             "expired": "canceled"}
ORDER_STATUS = {"OPEN": "open", "PENDING": "open", "QUEUED": "open", "EDIT_QUEUED": "open",
                "CANCEL_QUEUED": "open", "FILLED": "filled", "CANCELLED": "canceled", "EXPIRED": "expired",
                "FAILED": "rejected"}


def parse_time(value: Any) -> datetime:
    """RFC3339 with up to nanoseconds -> aware UTC datetime (microseconds kept)."""
    m = _RFC3339.match(value) if isinstance(value, str) else None
    if not m:
        raise BadRecord(f"not an RFC3339 time: {value!r}")
    offset = "+00:00" if m[4] in "Zz" else m[4]
    try:
        dt = datetime.fromisoformat(f"{m[1]}T{m[2]}{offset}")
    except ValueError:
        raise BadRecord(f"not an RFC3339 time: {value!r}") from None
    return dt.replace(microsecond=int((m[3] or "0")[:6].ljust(6, "0"))).astimezone(timezone.utc)


def format_time(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dec(value: Any, what: str = "number") -> Decimal:
    """Coinbase sends numbers as strings; floats never reach here (JSON floats parse as Decimal)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise BadRecord(f"bad {what}: {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise BadRecord(f"bad {what}: {value!r}") from None
    if not result.is_finite():
        raise BadRecord(f"bad {what}: {value!r}")
    return result


def opt_dec(value: Any, what: str = "number") -> Decimal | None:
    return None if value in (None, "") else dec(value, what)


def _field(record: dict, *path: str) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise BadRecord(f"missing {'.'.join(path)}")
        value = value[key]
    return value


def is_fiat(currency: str) -> bool:
    return canonical_code(currency) in FIAT


# -- v3 fills ----------------------------------------------------------------------------------
def fill_transactions(raw: dict) -> list[Transaction]:
    entry_id, product = str(_field(raw, "entry_id")), str(_field(raw, "product_id"))
    base, sep, quote = product.partition("-")
    side = str(_field(raw, "side")).upper()
    if not sep or side not in ("BUY", "SELL"):
        raise BadRecord(f"bad product or side: {product!r} {side!r}")
    price, size = dec(_field(raw, "price"), "price"), dec(_field(raw, "size"), "size")
    commission = opt_dec(raw.get("commission"), "commission") or Decimal(0)
    if raw.get("size_in_quote") is True:
        if price == 0:
            raise BadRecord("size_in_quote fill with price 0")
        size = size / price            # `size` was in the quote currency
    notional = size * price
    quantity, change = (size, -notional - commission) if side == "BUY" else (-size, notional - commission)
    trade_type = str(raw.get("trade_type") or "FILL")
    if trade_type == "REVERSAL":       # undoes an earlier fill: every sign flips
        quantity, change = -quantity, -change
    occurred = parse_time(_field(raw, "trade_time"))
    order_id = str(raw.get("order_id") or "")
    rows = [Transaction(
        broker_id=f"fill:{entry_id}", type=TransactionType.TRADE, broker_type=trade_type, occurred_at=occurred,
        asset=coin_asset(base, quote=canonical_code(quote)), broker_symbol=product, quantity=quantity,
        price=price, amount=change, fee=commission, currency=canonical_code(quote), side=side.lower(),
        order_id=order_id, raw=raw)]
    if not is_fiat(quote):
        rows.append(Transaction(
            broker_id=f"fill:{entry_id}:quote", type=TransactionType.TRADE, broker_type=trade_type,
            occurred_at=occurred, asset=coin_asset(quote), broker_symbol=product, quantity=change,
            currency=canonical_code(quote), side="sell" if side == "BUY" else "buy", order_id=order_id,
            description=f"{quote} side of {product} fill {entry_id}", raw=raw))
    return rows


# -- v2 transactions ---------------------------------------------------------------------------
def _native_price(raw: dict, amount: Decimal) -> tuple[Decimal | None, str]:
    native = raw.get("native_amount")
    if not isinstance(native, dict) or amount == 0:
        return None, "USD"
    value = opt_dec(native.get("amount"), "native_amount")
    currency = str(native.get("currency") or "USD")
    if not value:
        return None, currency
    return (abs(value) / abs(amount)).quantize(Decimal("0.00000001")), currency


def v2_transaction(raw: dict) -> Transaction | None:
    """None for rows that duplicate v3 fills."""
    kind = str(_field(raw, "type"))
    if kind in V2_DUPLICATES:
        return None
    amount = dec(_field(raw, "amount", "amount"), "amount")
    currency = str(_field(raw, "amount", "currency"))
    status = str(raw.get("status") or "")
    network = raw.get("network") if isinstance(raw.get("network"), dict) else {}
    fee = opt_dec((network.get("transaction_fee") or {}).get("amount"), "transaction_fee") if isinstance(
        network.get("transaction_fee"), dict) else None
    title = (raw.get("details") or {}).get("title") if isinstance(raw.get("details"), dict) else None
    common = dict(broker_id=f"v2:{_field(raw, 'id')}", type=V2_TYPES.get(kind, TransactionType.OTHER),
                  broker_type=kind, occurred_at=parse_time(_field(raw, "created_at")), broker_symbol=currency,
                  fee=fee or None, status=V2_STATUS.get(status, status or "pending"),
                  description=str(title or ""), raw=raw)
    if is_fiat(currency):
        return Transaction(**common, amount=amount, currency=canonical_code(currency))
    price, native_currency = _native_price(raw, amount)
    return Transaction(**common, asset=coin_asset(currency), quantity=amount, price=price, currency=native_currency)


# -- v3 orders ---------------------------------------------------------------------------------
def _configuration(raw: dict) -> dict:
    config = raw.get("order_configuration")
    if isinstance(config, dict):
        for body in config.values():
            if isinstance(body, dict):
                return body
    return {}


def order(raw: dict) -> Order:
    order_id, product = str(_field(raw, "order_id")), str(_field(raw, "product_id"))
    base, _, quote = product.partition("-")
    broker_status = str(_field(raw, "status"))
    filled = opt_dec(raw.get("filled_size"), "filled_size") or Decimal(0)
    status = ORDER_STATUS.get(broker_status, "other")
    if status == "open" and filled > 0:
        status = "partially_filled"
    body = _configuration(raw)
    last_fill = raw.get("last_fill_time")
    last_fill_at = parse_time(last_fill) if last_fill else None
    return Order(
        broker_id=order_id, asset=coin_asset(base, quote=canonical_code(quote or "USD")), broker_symbol=product,
        side=str(raw.get("side") or "").lower(), order_type=str(raw.get("order_type") or "").lower(),
        status=status, broker_status=broker_status, submitted_at=parse_time(_field(raw, "created_time")),
        client_order_id=str(raw.get("client_order_id") or ""), time_in_force=str(raw.get("time_in_force") or ""),
        quantity=opt_dec(body.get("base_size"), "base_size"), notional=opt_dec(body.get("quote_size"), "quote_size"),
        filled_quantity=filled,
        filled_avg_price=opt_dec(raw.get("average_filled_price"), "average_filled_price") if filled else None,
        limit_price=opt_dec(body.get("limit_price"), "limit_price"),
        stop_price=opt_dec(body.get("stop_price"), "stop_price"),
        updated_at=last_fill_at, filled_at=last_fill_at if broker_status == "FILLED" else None, raw=raw)


# -- v3 accounts -------------------------------------------------------------------------------
def account_balance(raw: dict) -> tuple[str, Decimal]:
    """(currency, total) where total = available + hold, as ccxt's balance parser adds them."""
    currency = str(_field(raw, "currency"))
    available = dec(_field(raw, "available_balance", "value"), "available_balance")
    hold = opt_dec((raw.get("hold") or {}).get("value") if isinstance(raw.get("hold"), dict) else None, "hold")
    return currency, available + (hold or Decimal(0))
