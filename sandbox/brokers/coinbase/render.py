"""Records -> the JSON Coinbase sends. Field names and value types follow docs/brokers.md §2.4
(decimals are strings, `number_of_fills` is a string, `size` is an int, camelCase
`fillSource` among snake_case fields); values are rendered only when a page is served."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from .state import FIAT, Book, Fill, Order, V2Tx, Wallet, iso_s, iso_us, split_product

ZERO = Decimal(0)
FINISHED = frozenset({"FILLED", "CANCELLED", "EXPIRED", "FAILED"})


def num(value: Decimal) -> str:
    """Plain notation always: str(Decimal('1E-8')) would be '1E-8'."""
    return format(value, "f")


def num16(value: Decimal) -> str:
    """v3 account balances carry 16 decimals ("0.0123000000000000")."""
    return format(value, ".16f")


# -- v3 --------------------------------------------------------------------------------------
def v3_account(book: Book, w: Wallet, holds: dict[str, Decimal]) -> dict[str, Any]:
    hold = min(holds.get(w.currency, ZERO), max(w.balance, ZERO))
    fiat = w.currency in FIAT
    return {
        "uuid": w.uuid, "name": f"{w.currency} Wallet", "currency": w.currency,
        "available_balance": {"value": num16(w.balance - hold), "currency": w.currency},
        "default": w.currency == "USD", "active": True,
        "created_at": iso_us(w.created), "updated_at": iso_us(w.updated), "deleted_at": None,
        "type": "ACCOUNT_TYPE_FIAT" if fiat else "ACCOUNT_TYPE_CRYPTO", "ready": True,
        "hold": {"value": num16(hold), "currency": w.currency},
        "retail_portfolio_id": book.portfolio_uuid, "platform": "ACCOUNT_PLATFORM_CONSUMER",
    }


def fill(book: Book, f: Fill) -> dict[str, Any]:
    commission = num(f.commission)
    return {
        "entry_id": f.entry_id, "trade_id": f.trade_id, "order_id": f.order.order_id,
        "trade_time": iso_us(f.t), "trade_type": "FILL", "price": num(f.price), "size": num(f.size),
        "commission": commission, "product_id": f.product, "sequence_timestamp": iso_us(f.t),
        "liquidity_indicator": "MAKER" if f.order.kind == "LIMIT" else "TAKER", "size_in_quote": False,
        "user_id": book.user_id, "side": f.side, "retail_portfolio_id": book.portfolio_uuid,
        "fillSource": "FILL_SOURCE_UNKNOWN",
        "commission_detail_total": {"total_commission": commission, "gst_commission": "0",
                                    "withholding_commission": "0", "client_commission": "0"},
    }


def _configuration(o: Order) -> dict[str, Any]:
    if o.kind == "MARKET":
        return {"market_market_ioc": {"base_size": num(o.base_size)}}
    body = {"base_size": num(o.base_size), "limit_price": num(o.limit_price), "post_only": False}
    if o.tif == "GOOD_UNTIL_DATE_TIME":
        return {"limit_limit_gtd": {**body, "end_time": iso_us(o.end_t)}}
    return {"limit_limit_gtc": body}


def order(book: Book, o: Order) -> dict[str, Any]:
    filled, value, fees = o.filled_size(), o.filled_value(), o.total_fees()
    average = (value / filled).quantize(Decimal("0.0000000001")) if filled else ZERO
    held = o.remaining() if o.side == "SELL" else o.remaining() * (o.limit_price or ZERO)
    return {
        "order_id": o.order_id, "product_id": o.product, "user_id": book.user_id,
        "order_configuration": _configuration(o), "side": o.side, "client_order_id": o.client_order_id,
        "status": o.status, "time_in_force": o.tif, "created_time": iso_us(o.created),
        "completion_percentage": num((filled * 100 / o.base_size).quantize(Decimal("0.01"))),
        "filled_size": num(filled), "average_filled_price": num(average), "fee": "",
        "number_of_fills": str(len(o.fills)), "filled_value": num(value), "pending_cancel": False,
        "size_in_quote": False, "total_fees": num(fees), "size_inclusive_of_fees": False,
        "total_value_after_fees": num(value + fees if o.side == "BUY" else value - fees),
        "trigger_status": "INVALID_ORDER_TYPE", "order_type": o.kind,
        "reject_reason": "REJECT_REASON_UNSPECIFIED", "settled": o.status in FINISHED, "product_type": "SPOT",
        "reject_message": "", "cancel_message": "User requested cancel" if o.status == "CANCELLED" else "",
        "order_placement_source": "RETAIL_ADVANCED", "is_liquidation": False,
        "outstanding_hold_amount": num(held if o.status == "OPEN" else ZERO),
        "last_fill_time": iso_us(o.fills[-1].t) if o.fills else None, "edit_history": [],
        "leverage": "", "margin_type": "UNKNOWN_MARGIN_TYPE", "retail_portfolio_id": book.portfolio_uuid,
    }


# -- v2 --------------------------------------------------------------------------------------
def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": num(amount), "currency": currency}


def v2_account(w: Wallet) -> dict[str, Any]:
    fiat = w.currency in FIAT
    return {
        "id": w.v2_id, "name": f"{w.currency} Wallet", "primary": w.currency == "BTC",
        "type": "fiat" if fiat else "wallet",
        "currency": {"code": w.currency, "name": w.currency, "color": "#0052FF", "sort_index": 100,
                     "exponent": 2 if fiat else 8, "type": "fiat" if fiat else "crypto",
                     "slug": w.currency.lower()},
        "balance": money(w.balance, w.currency),
        "created_at": iso_s(w.created), "updated_at": iso_s(w.updated),
        "resource": "account", "resource_path": f"/v2/accounts/{w.v2_id}",
        "allow_deposits": True, "allow_withdrawals": True,
    }


def _details(tx: V2Tx) -> dict[str, Any]:
    cur = tx.wallet.currency
    if tx.type == "advanced_trade_fill":
        f = tx.ref
        return {"advanced_trade_fill": {"fill_price": num(f.price), "product_id": f.product,
                                        "order_id": f.order.order_id, "commission": num(f.commission),
                                        "order_side": f.side.lower()},
                "details": {"title": f"{'Bought' if f.side == 'BUY' else 'Sold'} {split_product(f.product)[0]}",
                            "subtitle": "Using Advanced Trade"}}
    tx_hash = hashlib.sha256(tx.id.encode()).hexdigest()
    if tx.type == "send":
        return {"network": {"status": "confirmed" if tx.status == "completed" else "off_blockchain",
                            "hash": tx_hash, "transaction_fee": money(tx.fee, cur),
                            "transaction_amount": money(-tx.amount - tx.fee, cur)},
                "to": {"resource": "address", "address": tx_hash[:34], "currency": cur},
                "details": {"title": f"Sent {cur}", "subtitle": f"To {cur} address"}}
    if tx.type == "receive":
        return {"network": {"status": "confirmed", "hash": tx_hash},
                "from": {"resource": "address", "currency": cur},
                "details": {"title": f"Received {cur}", "subtitle": f"From {cur} address"}}
    if tx.type in ("trade", "staking_transfer"):
        key = "trade" if tx.type == "trade" else "staking_transfer"
        return {key: {"id": tx.peer, "resource": key},
                "details": {"title": "Converted" if tx.type == "trade" else "Staked", "subtitle": cur}}
    titles = {"fiat_deposit": ("Deposited funds", "From bank account"),
              "fiat_withdrawal": ("Withdrew funds", "To bank account"),
              "earn_payout": ("Earned rewards", f"{cur} staking"),
              "incentives_rewards_payout": ("Reward", "Coinbase incentive")}
    title, subtitle = titles.get(tx.type, (tx.type, cur))
    return {"details": {"title": title, "subtitle": subtitle}}


def v2_transaction(tx: V2Tx) -> dict[str, Any]:
    cur = tx.wallet.currency
    return {
        "id": tx.id, "type": tx.type, "status": tx.status,
        "amount": money(tx.amount, cur), "native_amount": money(tx.native, "USD"),
        "description": None, "created_at": iso_s(tx.t), "updated_at": iso_s(tx.t),
        "resource": "transaction", "resource_path": f"/v2/accounts/{tx.wallet.v2_id}/transactions/{tx.id}",
        "instant_exchange": False, **_details(tx),
    }
