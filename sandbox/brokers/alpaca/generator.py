"""The deterministic history of a new account (same seed and sizes -> same bytes).

Plan first, then play: a list of actions (open a position, trade, close one of the
"closed" symbols, a non-trade activity) gets ranks that put opens early and closes late,
is sorted, spread over weekdays (non-trade rows posted 10:00-12:00 UTC, trades
14:00-20:00 UTC, so New York ids never hit a DST fold), and is then played by the
Player, which keeps holdings and cash. The activity count is exact whenever it can hold
the mandatory rows (one opening fill per position, one deposit, one closing fill per
closed symbol).
"""
from __future__ import annotations

import gc
import math
import random
from datetime import date, timedelta

from itertools import accumulate

from .desk import Desk, between, weighted
from .ledger import Ledger
from .play import Player
from .times import DAY_US, US, ny_offset_us
from .universe import CRYPTO, crypto, equity

HISTORY_END = date(2026, 9, 30)     # fixed, so a seed means the same account on any day
NTA_WINDOW = (10 * 3600 * US, 2 * 3600 * US)
TRADE_WINDOW = (14 * 3600 * US, 6 * 3600 * US)
ACTIONS_PER_DAY = 130
MIN_DAYS, MAX_DAYS = 20, 1300        # up to ~5 years of weekdays

# Rows every account of a reasonable size shows at least once, most important first.
REQUIRED_NTA = ("DIV", "SPLIT", "CFEE", "FEE", "MEM", "CSD_CANCELED", "INT", "CSW", "JNLC", "ACATS", "ACATC",
                "DIVNRA", "DIVCGL", "CSD", "DIVFEE", "ACATS_CANCELED")
RANDOM_NTA = (("DIV", 40), ("FEE", 12), ("CFEE", 8), ("INT", 8), ("CSD", 6), ("CSW", 4), ("JNLC", 4),
              ("ACATS", 3), ("ACATC", 2), ("DIVNRA", 5), ("DIVCGL", 2), ("DIVFEE", 2), ("MEM", 1),
              ("CSD_CANCELED", 1), ("SPLIT", 1))
FILL_SHARE = 0.75
FILLS_PER_ORDER = ((1, 85), (2, 12), (3, 3))


def generate(seed: int, positions: int, activities: int) -> tuple[Ledger, Player, int, int]:
    """A new account's ledger, its player (for advance) and when its history starts and ends (us)."""
    rng = random.Random(f"alpaca-history:{seed}:{positions}:{activities}")
    collecting = gc.isenabled()
    gc.disable()                     # ~10^6 young objects that all live on: GC passes only cost time
    try:
        universe = _universe(rng, positions)
        actions, opens = _plan(rng, universe, activities)
        player = Player(Desk(Ledger(), rng), rng, universe)
        player.queue_opens(opens)
        start_us, end_us = _play(rng, player, actions)
        player.open_orders_at(end_us + 600 * US, count=min(12, 2 + positions // 200))
    finally:
        if collecting:
            gc.enable()
    return player.ledger, player, start_us, player.ledger.order_us[-1]


def _universe(rng: random.Random, positions: int) -> dict:
    n_crypto = 0 if positions == 0 else min(12, max(1, positions // 8))
    n_equity = positions - n_crypto
    n_closed = max(1, positions // 20)
    n_short = positions // 10 if positions >= 10 else (1 if n_equity >= 2 else 0)
    pool = n_equity + n_closed + max(10, n_equity // 5)
    picked = [equity(i) for i in rng.sample(range(pool), n_equity + n_closed)]
    held, closed = picked[:n_equity], picked[n_equity:]
    shorts = {a.symbol for a in rng.sample(held, n_short)}
    coins = [crypto(i) for i in rng.sample(range(len(CRYPTO)), n_crypto)]
    used = {a.symbol for a in picked}
    spare = [equity(i) for i in range(pool + 60) if equity(i).symbol not in used][:60]
    return {"held": held + coins, "closed": closed, "shorts": shorts, "spare": spare}


def _plan(rng: random.Random, universe: dict, activities: int) -> tuple[list[list], list]:
    opens = universe["held"] + universe["closed"]
    rng.shuffle(opens)
    actions: list[list] = [[-1.0, "nta", "DEPOSIT0"]]
    actions += [[rng.random() * 0.5, "open", None] for _ in opens]
    actions += [[0.6 + rng.random() * 0.4, "close", None] for _ in universe["closed"]]
    budget = activities - len(actions)
    for kind in REQUIRED_NTA:
        cost = 2 if kind == "SPLIT" else 1
        if cost <= budget:
            actions.append([0.55 + rng.random() * 0.45, "nta", kind])
            budget -= cost
    kinds, weights = zip(*RANDOM_NTA)
    kind_cum = tuple(accumulate(weights))
    sizes, size_weights = zip(*FILLS_PER_ORDER)
    size_cum = tuple(accumulate(size_weights))
    while budget > 0:
        if rng.random() < FILL_SHARE:
            n = min(budget, weighted(rng, sizes, size_cum))
            actions.append([rng.random(), "trade", n])
            budget -= n
        else:
            kind = weighted(rng, kinds, kind_cum)
            if kind == "SPLIT" and budget < 2:
                kind = "INT"
            actions.append([rng.random(), "nta", kind])
            budget -= 2 if kind == "SPLIT" else 1
    actions.sort(key=lambda a: a[0])
    for action in reversed(actions):          # the newest single trade leaves its order working
        if action[1] == "trade" and action[2] == 1:
            action[2] = "open-partial"
            break
    return actions, opens


def _weekdays(count: int) -> list[date]:
    days, day = [], HISTORY_END
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def _play(rng: random.Random, player: Player, actions: list[list]) -> tuple[int, int]:
    n_days = min(MAX_DAYS, max(MIN_DAYS, math.ceil(len(actions) / ACTIONS_PER_DAY)))
    days = _weekdays(n_days)
    per_day: list[list[list]] = [[] for _ in days]
    for k, action in enumerate(actions):
        per_day[k * n_days // len(actions)].append(action)
    end_us = 0
    for day, todays in zip(days, per_day):
        day_us = (day - date(1970, 1, 1)).days * DAY_US
        offset = ny_offset_us(day_us + 12 * 3600 * US)       # constant over both windows
        ntas = [a for a in todays if a[1] == "nta"]
        trades = [a for a in todays if a[1] != "nta"]
        for t_us, action in zip(_slots(rng, day_us, NTA_WINDOW, len(ntas)), ntas):
            end_us = player.nta(action[2], t_us, offset)
        for t_us, action in zip(_slots(rng, day_us, TRADE_WINDOW, len(trades)), trades):
            end_us = player.act(action[1], action[2], t_us, offset)
        end_us = max(end_us, day_us + sum(TRADE_WINDOW))
    start_us = (days[0] - date(1970, 1, 1)).days * DAY_US + 9 * 3600 * US
    return start_us, end_us


def _slots(rng: random.Random, day_us: int, window: tuple[int, int], n: int) -> list[int]:
    """n increasing times in the window, each near the start of its own equal share."""
    if n == 0:
        return []
    start, length = window
    width = length // n
    return [day_us + start + k * width + between(rng, 0, max(1, width // 8)) for k in range(n)]
