"""Alpaca accounts: keys, the generated books, the per-account rate window, advance()
and truth().

Splits. Alpaca's newer activity enum says `SPLIT` (older docs `SSP`); third-party
fixtures of real accounts show a split as a *pair* of SPLIT rows on the same date: one
removing the old shares (negative `qty`, old `price`) and one adding the new shares
(positive `qty`, new `price`), `net_amount` "0", description "REMOVE, ..." / "ADD, ...".
The simulator posts that pair, so summing `qty` over SPLIT rows gives the share delta
and the position invariant holds.
"""
from __future__ import annotations

import math
import random
import string
from decimal import Decimal
from typing import Any

from .desk import between, random_uuid4
from .generator import generate
from .ledger import Ledger
from .play import Player
from .records import Fill, dec, normalised_status
from .times import US, activity_id_prefix

# Page sizes of a full sync (docs/brokers.md §1.3; api.py serves the same maxima).
ACTIVITY_PAGE, ORDER_PAGE = 100, 500

DEFAULT_RATE_LIMIT = 200          # requests per minute per account (docs/brokers.md §1.5)
RATE_WINDOW = 60.0
ADVANCE_KEYS = {"fills": 3, "new_symbol": True, "dividend": True, "split": True, "close_position": True,
                "orders": 2, "cancel_orders": 1, "deposit": True}

# Activity code -> brokersync TransactionType value, for the codes the generator posts.
TRUTH_TYPES = {"FILL": "trade", "DIV": "dividend", "DIVCGL": "dividend", "DIVNRA": "dividend",
               "DIVFEE": "fee", "FEE": "fee", "CFEE": "fee", "INT": "interest", "CSD": "deposit",
               "CSW": "withdrawal", "JNLC": "transfer", "ACATS": "transfer", "ACATC": "transfer",
               "SPLIT": "split", "MEM": "other"}


class Account:
    def __init__(self, *, number: int, environment: str, seed: int, positions: int, activities: int,
                 rate_limit_per_min: int = DEFAULT_RATE_LIMIT):
        self.account_id = f"alpaca:{number}"
        self.environment = environment
        keys = random.Random(f"alpaca-keys:{environment}:{seed}:{number}")
        alnum = string.ascii_uppercase + string.digits
        self.api_key = ("PK" if environment == "paper" else "AK") + "".join(keys.choices(alnum, k=18))
        self.api_secret = "".join(keys.choices(string.ascii_letters + string.digits, k=40))
        self.broker_account_id = random_uuid4(keys)
        self.account_number = ("PA3" if environment == "paper" else "9") + "".join(keys.choices(alnum, k=9))
        self.revoked = False
        self.rate_limit = int(rate_limit_per_min)
        self.window_end = 0.0
        self.window_used = 0
        ledger, player, created_us, last_us = generate(seed, positions, activities)
        self.ledger: Ledger = ledger
        self.player: Player = player
        self.created_us = created_us
        self.last_us = last_us

    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "api_secret": self.api_secret}

    # -- rate limit: a fixed 60 s window per account --------------------------------------
    def count_request(self, now: float) -> tuple[bool, dict[str, str]]:
        """(allowed, X-Ratelimit-* headers) for one more request at `now`."""
        if now >= self.window_end:
            self.window_end, self.window_used = now + RATE_WINDOW, 0
        self.window_used += 1
        allowed = self.window_used <= self.rate_limit
        return allowed, {"X-Ratelimit-Limit": str(self.rate_limit),
                         "X-Ratelimit-Remaining": str(max(0, self.rate_limit - self.window_used)),
                         "X-Ratelimit-Reset": str(math.ceil(self.window_end))}

    # -- time passing -----------------------------------------------------------------------
    def next_time(self, now_us: int, step_s: float = 1.0) -> int:
        """A time after everything posted so far whose New York id stamp also sorts later
        (a DST fall-back hour repeats wall-clock stamps)."""
        t = max(now_us, self.last_us + int(step_s * US))
        last_id = self.ledger.act_ids[-1] if self.ledger.act_ids else ""
        while activity_id_prefix(t) <= last_id[:17]:
            t += 60 * US
        self.last_us = t
        return t

    def advance(self, now: float, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - set(ADVANCE_KEYS)
        if unknown:
            raise TypeError(f"unknown advance keys: {sorted(unknown)}")
        plan = dict(ADVANCE_KEYS) if not changes else {k: changes.get(k, type(v)()) for k, v in ADVANCE_KEYS.items()}
        return _Advance(self, int(now * US)).run(plan)

    # -- truth ------------------------------------------------------------------------------
    def truth(self) -> dict[str, Any]:
        ledger = self.ledger
        return {
            "broker_account_id": self.broker_account_id,
            "positions": [{"symbol": h.asset.canonical, "quantity": dec(h.qty)}
                          for h in sorted(ledger.holdings.values(), key=lambda h: h.asset.canonical)],
            "cash": {"USD": dec(ledger.cash)},
            "transactions": [_truth_transaction(a) for a in ledger.acts],
            "orders": [{"broker_id": o.id, "status": normalised_status(o.status)} for o in ledger.orders],
            "minimum": minimum(len(ledger.acts), len(ledger.orders)),
        }


def _pages(n: int, size: int) -> int:
    """A stream of n records at `size` a page: Alpaca lists have no "more" flag, so the end
    is known only from a page shorter than `size` (an empty one when n is a multiple)."""
    return n // size + 1


def minimum(activities: int, orders: int) -> dict[str, Any]:
    """The fewest requests a complete first sync of the account can make.

    Counted: GET /v2/positions (1) and GET /v2/account (1: the cash balance the truth
    holds), GET /v2/account/activities at page_size 100 (n // 100 + 1 pages, the last one
    short or empty) and GET /v2/orders?status=all at limit 500 (n // 500 + 1). Alpaca has
    no request weights: cost = requests. Not counted: verifying the key, GET /v2/orders
    one by one (a first sync stores no open orders to refresh), and the overlap a client
    needs when several orders share a submitted_at across a page boundary.
    """
    detail = {"positions": 1, "account": 1, "activities": _pages(activities, ACTIVITY_PAGE),
              "orders": _pages(orders, ORDER_PAGE)}
    requests = sum(detail.values())
    return {"requests": requests, "cost": float(requests), "detail": detail}


def _truth_transaction(a) -> dict[str, Any]:
    if isinstance(a, Fill):
        signed = a.signed_qty
        return {"broker_id": a.id, "type": "trade", "symbol": a.asset.canonical, "quantity": dec(signed),
                "amount": dec(-(signed * a.price)), "status": "executed"}
    return {"broker_id": a.id, "type": TRUTH_TYPES.get(a.kind, "other"),
            "symbol": a.asset.canonical if a.asset else "",
            "quantity": dec(a.holding_qty) if a.holding_qty is not None else None,
            "amount": dec(a.net), "status": a.status}


class _Advance:
    """One advance(): each step gets its own later time; returns what it added."""

    def __init__(self, account: Account, now_us: int):
        self.account, self.now_us = account, now_us
        self.player = account.player
        self.desk, self.rng, self.ledger = self.player.desk, self.player.rng, account.ledger
        self.added: dict[str, Any] = {"activities": [], "orders": [], "canceled_orders": []}

    def t(self) -> int:
        return self.account.next_time(self.now_us, step_s=between(self.rng, 1, 30))

    def run(self, plan: dict[str, Any]) -> dict[str, Any]:
        existing_open = [self.ledger.orders[i] for i in self.ledger.open_orders]
        if plan["deposit"]:
            self.added["activities"].append(self.desk.nta("CSD", self.t(), Decimal("1000")).id)
        if plan["dividend"]:
            self.nta("DIV")
        if plan["split"]:
            self.split()
        for k in range(int(plan["fills"])):
            self.fill(new_symbol=bool(plan["new_symbol"]) and k == 0)
        if plan["close_position"]:
            self.close()
        for _ in range(int(plan["orders"])):
            self.added["orders"] += self.player.open_orders_at(self.t(), count=1)
        for order in existing_open[: int(plan["cancel_orders"])]:
            order.canceled_us = order.updated_us = self.t()
            self.ledger.set_order_status(order, "canceled")
            self.added["canceled_orders"].append(order.id)
        return self.added

    def _new_activities(self, before: int) -> None:
        self.added["activities"] += self.ledger.act_ids[before:]

    def nta(self, kind: str) -> None:
        before = len(self.ledger.acts)
        self.player.nta(kind, self.t(), None)
        self._new_activities(before)

    def split(self) -> None:
        before = len(self.ledger.acts)
        asset = self.player.longs.choice(self.rng)
        if asset is None:
            return
        ratio = Decimal(self.rng.choice((2, 3, 4)))
        self.desk.split(asset, ratio, self.t())
        self.added["split_symbol"] = asset.canonical
        self._new_activities(before)

    def fill(self, new_symbol: bool) -> None:
        before_acts, before_orders = len(self.ledger.acts), len(self.ledger.orders)
        if new_symbol:
            asset = next((a for a in self.player.universe["spare"] if a.symbol not in self.ledger.holdings), None)
            if asset is not None:
                self.player.open(asset, self.t(), None)
                self.added["new_symbol"] = asset.canonical
        else:
            self.player.random_trade(self.t(), None, 1, "")
        self.account.last_us = max(self.account.last_us, self.ledger.act_us[-1], self.ledger.order_us[-1])
        self._new_activities(before_acts)
        self.added["orders"] += [o.id for o in self.ledger.orders[before_orders:]]

    def close(self) -> None:
        before_acts, before_orders = len(self.ledger.acts), len(self.ledger.orders)
        candidates = [a for a in self.player.longs.items
                      if a.canonical not in (self.added.get("split_symbol"), self.added.get("new_symbol"))]
        if not candidates:
            return
        asset = self.rng.choice(sorted(candidates, key=lambda a: a.symbol))
        self.player.close(asset, self.t(), None)
        self.account.last_us = max(self.account.last_us, self.ledger.act_us[-1])
        self.added["closed_symbol"] = asset.canonical
        self._new_activities(before_acts)
        self.added["orders"] += [o.id for o in self.ledger.orders[before_orders:]]

