"""What an account holds, in brokersync's normalised terms, for tests to compare rows with.

The conventions mirror what the Coinbase adapter promises (and are checked by its tests):
  fills     `fill:<entry_id>` TRADE on the base coin: quantity = signed size, amount = the
            signed quote change, commission included. When the quote is a coin (ETH-BTC,
            BTC-USDC) a second row `fill:<entry_id>:quote` carries that coin's change as
            its quantity (amount None), so every coin's rows add up to its balance.
  v2 rows   `v2:<id>`; on a fiat wallet the signed amount is `amount` (symbol ""), on a
            coin wallet it is `quantity`. `advanced_trade_fill` rows duplicate fills: absent.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from backend.brokers.symbols import canonical_code

from .api import ACCOUNTS_MAX, FILLS_MAX, ORDERS_MAX
from .paging import V2_MAX_LIMIT
from .render import num
from .state import FIAT, Book, Order, split_product

V2_TYPES = {"fiat_deposit": "deposit", "fiat_withdrawal": "withdrawal", "send": "transfer",
            "receive": "transfer", "staking_transfer": "transfer", "earn_payout": "reward",
            "incentives_rewards_payout": "reward", "trade": "trade"}
V2_STATUS = {"completed": "executed", "canceled": "canceled", "failed": "canceled", "expired": "canceled"}
QUOTE_CASH = FIAT


def order_status(o: Order) -> str:
    if o.status == "OPEN":
        return "partially_filled" if o.fills else "open"
    return {"FILLED": "filled", "CANCELLED": "canceled", "EXPIRED": "expired", "FAILED": "rejected"}.get(
        o.status, "other")


def _fill_rows(book: Book) -> list[dict[str, Any]]:
    rows = []
    for f in book.fills:
        base, quote = split_product(f.product)
        change = f.quote_change()
        rows.append({"broker_id": f"fill:{f.entry_id}", "type": "trade", "symbol": canonical_code(base),
                     "quantity": num(f.size if f.side == "BUY" else -f.size), "amount": num(change),
                     "status": "executed"})
        if quote not in QUOTE_CASH:
            rows.append({"broker_id": f"fill:{f.entry_id}:quote", "type": "trade",
                         "symbol": canonical_code(quote), "quantity": num(change), "amount": None,
                         "status": "executed"})
    return rows


def _v2_rows(book: Book) -> list[dict[str, Any]]:
    rows = []
    for w in book.wallet_list:
        fiat = w.currency in FIAT
        for tx in w.txs:
            if tx.type == "advanced_trade_fill":
                continue
            rows.append({"broker_id": f"v2:{tx.id}", "type": V2_TYPES.get(tx.type, "other"),
                         "symbol": "" if fiat else canonical_code(w.currency),
                         "quantity": None if fiat else num(tx.amount), "amount": num(tx.amount) if fiat else None,
                         "status": V2_STATUS.get(tx.status, tx.status)})
    return rows


def positions(book: Book) -> dict[str, Decimal]:
    held: dict[str, Decimal] = {}
    for w in book.wallet_list:
        if w.currency not in FIAT:
            symbol = canonical_code(w.currency)
            held[symbol] = held.get(symbol, Decimal(0)) + w.balance
    return {symbol: qty for symbol, qty in held.items() if qty != 0}


def truth(book: Book) -> dict[str, Any]:
    return {
        "broker_account_id": book.portfolio_uuid,
        "positions": [{"symbol": s, "quantity": num(q)} for s, q in sorted(positions(book).items())],
        "cash": {w.currency: num(w.balance) for w in book.wallet_list if w.currency in FIAT},
        "transactions": _fill_rows(book) + _v2_rows(book),
        "orders": [{"broker_id": o.order_id, "status": order_status(o)} for o in book.orders],
        "minimum": minimum(book),
    }


def _pages(n: int, size: int) -> int:
    """Every list here says whether more follows (v3 `has_next` / a non-empty `cursor`, v2
    `next_starting_after`), so n records need ceil(n / size) pages; an empty list one."""
    return max(1, -(-n // size))


def minimum(book: Book) -> dict[str, Any]:
    """The fewest requests a complete first sync of the account can make, at the largest
    page each list serves (api.py / paging.py).

    Counted:
      v3 accounts      GET /api/v3/brokerage/accounts at 250: ceil(wallets / 250)
      v3 fills         GET .../orders/historical/fills at 250: ceil(fills / 250)
      v3 orders        GET .../orders/historical/batch at 1000: ceil(orders / 1000)
      v2 wallets       GET /v2/accounts at 100: ceil(wallets / 100)
      v2 histories     GET /v2/accounts/{id}/transactions at 100, for every wallet (one
                       request for an empty one): the sum of ceil(rows / 100), where rows
                       include the two `advanced_trade_fill` twins every fill leaves in
                       the v2 lists. They repeat v3 fills, but v2 cannot filter them out,
                       so a sync must page through them to reach the deposits, sends and
                       rewards between them.
    Coinbase weighs no request: cost = requests. Not counted: verifying the key, the
    product prices that value positions (the truth holds quantities only), and reading
    orders by id (a first sync holds no open orders to refresh). `detail` splits the
    count; `v2` matters on its own because v2 allows 10,000 requests an hour per key,
    v3 30 a second.
    """
    wallets = len(book.wallet_list)
    detail = {"v3_accounts": _pages(wallets, ACCOUNTS_MAX), "v3_fills": _pages(len(book.fills), FILLS_MAX),
              "v3_orders": _pages(len(book.orders), ORDERS_MAX), "v2_accounts": _pages(wallets, V2_MAX_LIMIT),
              "v2_transactions": sum(_pages(len(w.txs), V2_MAX_LIMIT) for w in book.wallet_list)}
    requests = sum(detail.values())
    return {"requests": requests, "cost": float(requests), "detail": detail,
            "v2": detail["v2_accounts"] + detail["v2_transactions"]}
