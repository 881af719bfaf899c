"""One simulated Kraken account: its ledger, trades, orders and balances, kept sorted so
that a page is a bisect and a slice, never a scan of the whole history.

Times are ints of 1e-4 s ("t4"): Kraken prints ledger times with four decimals
(1688464484.1787, §4.4), and a 4-decimal float survives JSON exactly.
Amounts are ints of 1e-10 units (market.SCALE).
"""
from __future__ import annotations

import base64
import hashlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ...record_faults import AccountFaults
from .market import FIATS, LOT_DECIMALS, Market, Pair, asset_decimals, fmt_amount, fmt_int

T4 = 10_000
PAGE = 50                               # Ledgers / TradesHistory / ClosedOrders page size (KSDK "50 results")
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"     # base32, as Kraken ids use
_MASK80 = (1 << 80) - 1
_PAIRS = [a + b for a in ID_ALPHABET for b in ID_ALPHABET]     # 10 bits -> 2 chars
_MULT = 0x9E3779B97F4A7C15F39CC0605CEDC835 & _MASK80 | 1      # odd: n -> n*MULT is a bijection mod 2**80

# Key permissions as Kraken's key settings name them (KSDK docstrings).
PERMISSIONS = ("query_funds", "query_ledger", "query_open", "query_closed", "trade", "withdraw")
READ_ONLY = ("query_funds", "query_ledger", "query_open", "query_closed")
# Tier -> (counter max, decay per second), docs.kraken.com ratelimits (§4.5). "none" is the
# sandbox's own switch for benchmarks that measure us, not Kraken's budget.
TIERS = {"starter": (15.0, 0.33), "intermediate": (20.0, 0.5), "pro": (20.0, 1.0), "none": (float("inf"), 1.0)}


class IdMaker:
    """Kraken-looking ids (L4UESK-KG3EQ-UFO4T5): a keyed bijection of a counter, so they are
    unique, deterministic for a seed, and cheap."""

    def __init__(self, seed: int, kind: str, prefix: str):
        self.prefix = prefix
        self.key = int(hashlib.sha256(f"kraken:{seed}:{kind}".encode()).hexdigest()[:20], 16)
        self.n = 0

    def next(self) -> str:
        self.n += 1
        x = (self.n * _MULT + self.key) & _MASK80
        x ^= x >> 37
        p = _PAIRS
        chars = (p[x >> 70] + p[(x >> 60) & 1023] + p[(x >> 50) & 1023] + p[(x >> 40) & 1023]
                 + p[(x >> 30) & 1023] + p[(x >> 20) & 1023] + p[(x >> 10) & 1023] + p[x & 1023])
        if self.prefix == "Q":          # deposit/withdrawal refs are 7-6-6: QDFN2EK-XMFWQ4-GPB7SG
            tail = ID_ALPHABET[self.n % 32] + ID_ALPHABET[(self.n >> 5) % 32]
            chars += tail
            return f"Q{chars[:6]}-{chars[6:12]}-{chars[12:18]}"
        return f"{self.prefix}{chars[:5]}-{chars[5:10]}-{chars[10:16]}"


class LedgerRow(NamedTuple):
    id: str
    refid: str
    t4: int
    type: str
    subtype: str
    asset: str
    amount: int
    fee: int
    balance: int


@dataclass
class Trade:
    txid: str
    ordertxid: str
    pair: Pair
    t4: int
    side: str
    ordertype: str
    price: int                          # pair decimals
    cost: int                           # 1e-10 units of the quote
    fee: int
    vol: int                            # 1e-10 units of the base
    trade_id: int
    maker: bool
    ledger_ids: list[str] = field(default_factory=list)


@dataclass
class Order:
    txid: str
    pair: Pair
    side: str
    ordertype: str
    price: int                          # limit (or stop) price, pair decimals; 0 for market
    price2: int
    vol: int
    opentm: int
    status: str = "open"
    vol_exec: int = 0
    cost: int = 0
    fee: int = 0
    closetm: int | None = None
    reason: str | None = None
    expiretm: int = 0
    userref: int = 0
    trades: list[str] = field(default_factory=list)


class Series:
    """Records sorted by time (ties keep insertion order), bisectable by time."""

    def __init__(self, items: list | None = None, times: list[int] | None = None):
        self.items: list = items or []
        self.times: list[int] = times or []

    def add(self, item, t4: int) -> None:
        if not self.times or t4 >= self.times[-1]:
            self.items.append(item)
            self.times.append(t4)
            return
        i = bisect_right(self.times, t4)
        self.items.insert(i, item)
        self.times.insert(i, t4)

    def remove(self, item, t4: int) -> None:
        i = self.index_of(item, t4)
        del self.items[i]
        del self.times[i]

    def index_of(self, item, t4: int) -> int:
        i = bisect_left(self.times, t4)
        while self.items[i] is not item:
            i += 1
        return i

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Account:
    account_id: str
    seed: int
    api_key: str
    api_secret: str
    permissions: frozenset[str]
    tier: str
    market: Market
    revoked: bool = False
    ledger: Series = field(default_factory=Series)
    ledger_by_id: dict[str, int] = field(default_factory=dict)      # id -> position (append-only)
    trades: Series = field(default_factory=Series)
    trades_by_id: dict[str, Trade] = field(default_factory=dict)
    closed: Series = field(default_factory=Series)                  # by closetm
    closed_by_open: Series = field(default_factory=Series)          # by opentm (closetime=open)
    orders: dict[str, Order] = field(default_factory=dict)
    open_orders: dict[str, Order] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)                   # coin codes meant to stay non-zero
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)   # test hook: corrupt a record
    faults: AccountFaults = field(default_factory=AccountFaults)          # record faults (sandbox/record_faults.py)
    _indexes: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    @property
    def broker_account_id(self) -> str:
        # Kraken has no account id endpoint; the adapter derives this from the key (same formula).
        return "K-" + hashlib.sha256(self.api_key.encode()).hexdigest()[:20]

    @property
    def last_t4(self) -> int:
        return max(self.ledger.times[-1] if self.ledger.times else 0,
                   self.closed.times[-1] if self.closed.times else 0,
                   max((o.opentm for o in self.open_orders.values()), default=0))

    def ledger_index(self, field_name: str, value: str) -> list[int]:
        """Positions of ledger rows whose `field_name` (asset/type) is `value`, built lazily."""
        key = (field_name, value)
        if key not in self._indexes:
            self._indexes[key] = [i for i, row in enumerate(self.ledger.items) if getattr(row, field_name) == value]
        return self._indexes[key]

    def note_ledger_append(self, position: int, row: LedgerRow) -> None:
        for (field_name, value), positions in self._indexes.items():
            if getattr(row, field_name) == value:
                positions.append(position)

    def signing_key(self) -> bytes:
        return base64.b64decode(self.api_secret)


# -- rendering: records -> Kraken JSON -----------------------------------------------------
def t4_float(t4: int) -> float:
    return t4 / T4


def render_ledger(row: LedgerRow, overrides: dict | None = None) -> dict:
    d = asset_decimals(row.asset)
    out = {"refid": row.refid, "time": t4_float(row.t4), "type": row.type, "subtype": row.subtype,
           "aclass": "currency", "asset": row.asset, "amount": fmt_amount(row.amount, d),
           "fee": fmt_amount(row.fee, d), "balance": fmt_amount(row.balance, d)}
    if overrides:
        out.update(overrides)
    return out


def render_trade(trade: Trade, with_ledgers: bool = False, overrides: dict | None = None) -> dict:
    p = trade.pair
    out = {"ordertxid": trade.ordertxid, "postxid": "TKH2SE-M7IF5-CFI7LT", "pair": p.key,
           "time": t4_float(trade.t4), "type": trade.side, "ordertype": trade.ordertype,
           "price": fmt_int(trade.price, p.pair_decimals), "cost": fmt_amount(trade.cost, p.cost_decimals),
           "fee": fmt_amount(trade.fee, p.cost_decimals), "vol": fmt_amount(trade.vol, LOT_DECIMALS),
           "margin": fmt_int(0, p.cost_decimals), "leverage": "0", "misc": "", "trade_id": trade.trade_id,
           "maker": trade.maker}
    if with_ledgers:
        out["ledgers"] = list(trade.ledger_ids)
    if overrides:
        out.update(overrides)
    return out


def render_order(order: Order, with_trades: bool = False, overrides: dict | None = None) -> dict:
    p = order.pair
    price = fmt_int(order.price, p.pair_decimals)
    vol = fmt_amount(order.vol, LOT_DECIMALS)
    desc = f"{order.side} {vol} {p.altname} @ " + (f"limit {price}" if order.ordertype != "market" else "market")
    avg = (order.cost * 10 ** p.pair_decimals // order.vol_exec) if order.vol_exec else 0
    out = {"refid": None, "userref": order.userref, "cl_ord_id": None, "status": order.status,
           "opentm": t4_float(order.opentm), "starttm": 0, "expiretm": t4_float(order.expiretm) if order.expiretm else 0,
           "descr": {"pair": p.altname, "type": order.side, "ordertype": order.ordertype, "price": price,
                     "price2": fmt_int(order.price2, p.pair_decimals), "leverage": "none", "order": desc, "close": ""},
           "vol": vol, "vol_exec": fmt_amount(order.vol_exec, LOT_DECIMALS),
           "cost": fmt_amount(order.cost, p.cost_decimals), "fee": fmt_amount(order.fee, p.cost_decimals),
           "price": fmt_int(avg, p.pair_decimals), "stopprice": fmt_int(0, p.pair_decimals),
           "limitprice": fmt_int(0, p.pair_decimals), "misc": "", "oflags": "fciq", "reason": order.reason}
    if order.closetm is not None:
        out["closetm"] = t4_float(order.closetm)
    if with_trades and order.trades:
        out["trades"] = list(order.trades)
    if overrides:
        out.update(overrides)
    return out


def balance_payload(account: Account) -> dict[str, str]:
    return {code: fmt_amount(units, asset_decimals(code)) for code, units in account.balances.items()}


def held_in_orders(account: Account) -> dict[str, int]:
    """BalanceEx hold_trade: what open orders reserve (sells hold the base, buys the quote)."""
    held: dict[str, int] = {}
    for order in account.open_orders.values():
        left = order.vol - order.vol_exec
        if order.side == "sell":
            held[order.pair.base] = held.get(order.pair.base, 0) + left
        else:
            quote_units = left * order.price // 10 ** order.pair.pair_decimals
            step = 10 ** (10 - (4 if order.pair.quote in FIATS else 8))
            held[order.pair.quote] = held.get(order.pair.quote, 0) + quote_units // step * step
    return held
