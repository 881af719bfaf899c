"""The HTTP side: v3 Advanced Trade and v2 Coinbase App routes over a Book.

Each handler takes (book, request, match) and returns a Response or raises SimError.
Auth and rate limits are applied before routing, in CoinbaseSim.handle.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.http import Request, Response

from . import render
from .paging import (cursor_arg, int_arg, newest_first, take, time_arg, v2_error, v2_page, v3_error)
from .state import OPEN, Book, iso_us

V3 = "/api/v3/brokerage"
ACCOUNTS_DEFAULT, ACCOUNTS_MAX = 49, 250       # [CB-PG list-accounts.md]
# Not documented: ccxt pages fills by 250 and orders by 1000; the sandbox clamps there.
FILLS_DEFAULT, FILLS_MAX = 100, 250
ORDERS_DEFAULT, ORDERS_MAX = 100, 1000
ORDER_STATUSES = frozenset({"OPEN", "FILLED", "CANCELLED", "EXPIRED", "FAILED", "UNKNOWN_ORDER_STATUS",
                            "PENDING", "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"})
PRODUCT_TYPES = frozenset({"SPOT", "FUTURE", "UNKNOWN_PRODUCT_TYPE"})
SORT_BY = frozenset({"UNKNOWN_SORT_BY", "TRADE_TIME", "PRICE", "LIMIT_PRICE", "LAST_FILL_TIME"})


def key_permissions(book: Book, request: Request, m) -> Response:
    return Response.json({"can_view": book.can_view, "can_trade": book.can_trade,
                          "can_transfer": book.can_transfer, "portfolio_uuid": book.portfolio_uuid,
                          "portfolio_type": "DEFAULT"})


def accounts(book: Book, request: Request, m) -> Response:
    limit = int_arg(request, "limit", ACCOUNTS_DEFAULT, ACCOUNTS_MAX)
    start = 0
    if request.arg("cursor"):
        after = book.by_uuid.get(request.arg("cursor"))
        if after is None:
            raise v3_error(400, "INVALID_ARGUMENT", "invalid cursor")
        start = after.idx + 1
    page = book.wallet_list[start:start + limit]
    more = start + limit < len(book.wallet_list)
    holds = book.holds()
    return Response.json({"accounts": [render.v3_account(book, w, holds) for w in page], "has_next": more,
                          "cursor": page[-1].uuid if more else "", "size": len(page)})


def account(book: Book, request: Request, m) -> Response:
    w = book.by_uuid.get(m["id"])
    if w is None:
        raise v3_error(404, "NOT_FOUND", "account not found")
    return Response.json({"account": render.v3_account(book, w, book.holds())})


def _check_sort(request: Request) -> None:
    if request.arg("sort_by") and request.arg("sort_by") not in SORT_BY:
        raise v3_error(400, "INVALID_ARGUMENT", "invalid sort_by")


def fills(book: Book, request: Request, m) -> Response:
    """Newest first. `start_sequence_timestamp`/`end_sequence_timestamp` keep fills strictly
    after / before them (the docs' words); `cursor` is "" once there is nothing more."""
    _check_sort(request)
    limit = int_arg(request, "limit", FILLS_DEFAULT, FILLS_MAX)
    start, end = time_arg(request, "start_sequence_timestamp"), time_arg(request, "end_sequence_timestamp")
    lo, hi = book.fills_between(None if start is None else start + 1, end)
    cursor = cursor_arg(request)
    hi = hi if cursor is None else min(hi, cursor)
    order_ids, trade_ids, products = request.args("order_ids"), request.args("trade_ids"), request.args("product_ids")
    chosen = None
    if order_ids or trade_ids:
        chosen = [f.seq for oid in order_ids if oid in book.orders_by_id for f in book.orders_by_id[oid].fills]
        chosen += [book.fill_by_trade[t] for t in trade_ids if t in book.fill_by_trade]
    lists = [book.product_fills.get(p, []) for p in products] if products and chosen is None else None
    wanted, dropped = set(products), book.faults.dropped
    in_products = (lambda i: book.fills[i].product in wanted) if products and chosen is not None else (lambda i: True)
    keep = (lambda i: in_products(i) and book.fills[i].entry_id not in dropped) if dropped else in_products
    page, more = take(newest_first(lo, hi, chosen=chosen, lists=lists), keep, limit)
    return Response.json({"fills": [render.fill(book, book.fills[i]) for i in page],
                          "cursor": str(page[-1]) if more else ""})


def _order_filter(book: Book, request: Request) -> Callable[[int], bool]:
    statuses = set(request.args("order_status"))
    if statuses - ORDER_STATUSES:
        raise v3_error(400, "INVALID_ARGUMENT", "invalid order_status")
    product_type = request.arg("product_type")
    if product_type and product_type not in PRODUCT_TYPES:
        raise v3_error(400, "INVALID_ARGUMENT", "invalid product_type")
    products, side = set(request.args("product_ids")), request.arg("order_side")
    types = set(request.args("order_types"))

    def keep(i: int) -> bool:
        o = book.orders[i]
        return ((not statuses or o.status in statuses) and (not products or o.product in products)
                and (not side or o.side == side) and (not types or o.kind in types)
                and product_type in (None, "", "SPOT"))
    return keep


def orders(book: Book, request: Request, m) -> Response:
    """Newest first by created_time; `start_date` inclusive, `end_date` exclusive."""
    _check_sort(request)
    limit = int_arg(request, "limit", ORDERS_DEFAULT, ORDERS_MAX)
    lo, hi = book.orders_between(time_arg(request, "start_date"), time_arg(request, "end_date"))
    cursor = cursor_arg(request)
    hi = hi if cursor is None else min(hi, cursor)
    keep = _order_filter(book, request)
    ids, statuses = request.args("order_ids"), set(request.args("order_status"))
    chosen = None
    if ids:
        chosen = [book.orders_by_id[i].idx for i in ids if i in book.orders_by_id]
    elif statuses == {OPEN}:
        chosen = [o.idx for o in book.open_orders.values()]
    page, more = take(newest_first(lo, hi, chosen=chosen), keep, limit)
    return Response.json({"orders": [render.order(book, book.orders[i]) for i in page], "sequence": "0",
                          "has_next": more, "cursor": str(page[-1]) if more else ""})


def order(book: Book, request: Request, m) -> Response:
    o = book.orders_by_id.get(m["id"])
    if o is None:
        raise v3_error(404, "unknown", "order with this orderID was not found")
    return Response.json({"order": render.order(book, o)})


# -- v2 ----------------------------------------------------------------------------------------
def _v2_wallet(book: Book, m):
    w = book.by_v2.get(m["id"])
    if w is None:
        raise v2_error(404, "not_found", "Not found")
    return w


def v2_accounts(book: Book, request: Request, m) -> Response:
    index = {w.v2_id: w.idx for w in book.wallet_list}
    return Response.json(v2_page(book.wallet_list, index.get, request, "/v2/accounts", render.v2_account,
                                 ident=lambda w: w.v2_id))


def v2_account(book: Book, request: Request, m) -> Response:
    return Response.json({"data": render.v2_account(_v2_wallet(book, m))})


def v2_transactions(book: Book, request: Request, m) -> Response:
    w = _v2_wallet(book, m)
    txs, position = w.txs, w.pos.get
    dropped = book.faults.dropped
    if dropped:                                      # a record fault: the feed leaves these rows out
        txs = [t for t in w.txs if t.id not in dropped]
        position = {t.id: i for i, t in enumerate(txs)}.get
    return Response.json(v2_page(txs, position, request, f"/v2/accounts/{w.v2_id}/transactions",
                                 render.v2_transaction))


def v2_transaction(book: Book, request: Request, m) -> Response:
    w = _v2_wallet(book, m)
    pos = w.pos.get(m["tx"])
    if pos is None:
        raise v2_error(404, "not_found", "Not found")
    return Response.json({"data": render.v2_transaction(w.txs[pos])})


_ID = r"(?P<id>[^/]+)"
ROUTES: list[tuple[re.Pattern, Callable[[Book, Request, Any], Response]]] = [
    (re.compile(rf"^{V3}/key_permissions$"), key_permissions),
    (re.compile(rf"^{V3}/accounts$"), accounts),
    (re.compile(rf"^{V3}/accounts/{_ID}$"), account),
    (re.compile(rf"^{V3}/orders/historical/fills$"), fills),
    (re.compile(rf"^{V3}/orders/historical/batch$"), orders),
    (re.compile(rf"^{V3}/orders/historical/{_ID}$"), order),
    (re.compile(r"^/v2/accounts$"), v2_accounts),
    (re.compile(rf"^/v2/accounts/{_ID}$"), v2_account),
    (re.compile(rf"^/v2/accounts/{_ID}/transactions$"), v2_transactions),
    (re.compile(rf"^/v2/accounts/{_ID}/transactions/(?P<tx>[^/]+)$"), v2_transaction),
]


def route(book: Book, request: Request) -> Response:
    if request.method != "GET":
        # A view-only sync never writes; anything else is outside what the sandbox models.
        raise v3_error(405, "UNIMPLEMENTED", "method not supported by the sandbox")
    for pattern, handler in ROUTES:
        match = pattern.match(request.path)
        if match:
            return handler(book, request, match)
    if request.path.startswith("/v2/"):
        raise v2_error(404, "not_found", "Not found")
    raise v3_error(404, "NOT_FOUND", "Not Found")
