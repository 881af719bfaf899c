"""The shared limiter, on real Redis, with a clock the test moves (no sleeping)."""
from __future__ import annotations

import threading

import pytest

from backend.brokers.ratelimit import RateLimiter, RateRule


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def limiter(redis_client, clock, **rules) -> RateLimiter:
    return RateLimiter(redis_client, {k: RateRule(**v) for k, v in rules.items()}, clock=clock, prefix="bs:test")


def test_window_allows_the_limit_then_says_how_long_to_wait(redis_client, clock):
    rl = limiter(redis_client, clock, alpaca=dict(algorithm="window", limit=200, period=60))
    assert all(rl.acquire("alpaca", "acct-1") == 0 for _ in range(200))
    wait = rl.acquire("alpaca", "acct-1")
    assert wait == pytest.approx(60, abs=0.01)
    assert rl.acquire("alpaca", "acct-2") == 0               # scopes are independent
    clock.now += 60.01
    assert rl.acquire("alpaca", "acct-1") == 0


def test_window_counts_cost_as_weight(redis_client, clock):
    rl = limiter(redis_client, clock, binance=dict(algorithm="window", limit=100, period=60))
    assert rl.acquire("binance", "ip", cost=20) == 0
    clock.now += 10
    for _ in range(4):
        assert rl.acquire("binance", "ip", cost=20) == 0
    assert rl.acquire("binance", "ip", cost=20) == pytest.approx(50, abs=0.01)   # the first 20 leave at t+60
    assert rl.used("binance", "ip") == 100


def test_window_is_exact_across_threads(redis_client, clock):
    rl = limiter(redis_client, clock, alpaca=dict(algorithm="window", limit=50, period=60))
    granted = []

    def worker():
        for _ in range(20):
            if rl.acquire("alpaca", "shared") == 0:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(granted) == 50                                # 160 asked, exactly the budget granted


def test_leaky_counter_decays_like_krakens(redis_client, clock):
    rl = limiter(redis_client, clock, kraken=dict(algorithm="leaky", limit=15, decay=0.33))
    for _ in range(7):
        assert rl.acquire("kraken", "key", cost=2) == 0     # 14 of 15
    wait = rl.acquire("kraken", "key", cost=2)
    assert wait == pytest.approx(1 / 0.33, rel=1e-3)          # needs one unit to decay
    clock.now += wait
    assert rl.acquire("kraken", "key", cost=2) == 0


def test_block_stops_a_scope_until_the_wait_is_over(redis_client, clock):
    rl = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=60))
    rl.block("ip", 120)                                      # a 418 ban
    assert rl.acquire("binance", "ip") == pytest.approx(120)
    clock.now += 121
    assert rl.acquire("binance", "ip") == 0


def test_broker_reported_usage_tightens_the_budget(redis_client, clock):
    rl = limiter(redis_client, clock, alpaca=dict(algorithm="window", limit=200, period=60))
    rl.acquire("alpaca", "acct")
    rl.observe_used("alpaca", "acct", used=190, resets_in=30)   # another app shares the key
    granted = sum(rl.acquire("alpaca", "acct") == 0 for _ in range(20))
    assert granted == 10
    clock.now += 30.01                                       # the broker's window reset
    assert rl.acquire("alpaca", "acct") == 0


def test_unknown_broker_is_not_limited(redis_client, clock):
    assert limiter(redis_client, clock).acquire("nobody", "x") == 0


def test_a_learned_limit_applies_to_every_limiter_but_never_exceeds_the_rule(redis_client, clock):
    one = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=60))
    other = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=60))
    one.learn_limit("binance", 1200)                         # exchangeInfo said 1,200/min today
    assert sum(other.acquire("binance", "ip", cost=20) == 0 for _ in range(100)) == 60
    one.learn_limit("binance", 1_000_000)
    other._limits.clear()
    clock.now += 61
    assert sum(other.acquire("binance", "ip", cost=20) == 0 for _ in range(400)) == 300


def test_step_slots_cap_the_steps_that_share_one_budget(redis_client, clock):
    rl = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=61, max_active_steps=2),
                 alpaca=dict(algorithm="window", limit=200, period=61))
    assert rl.take_slot("binance", "ip", "run:1", ttl=30) and rl.take_slot("binance", "ip", "run:2", ttl=30)
    assert not rl.take_slot("binance", "ip", "run:3", ttl=30)          # both held
    assert rl.take_slot("binance", "ip", "run:1", ttl=30)              # a holder renews its own
    assert rl.take_slot("binance", "other-ip", "run:3", ttl=30)        # per scope
    rl.release_slot("binance", "ip", "run:2")
    assert rl.take_slot("binance", "ip", "run:3", ttl=30)
    clock.now += 31                                                    # a dead holder's slot expires
    assert rl.take_slot("binance", "ip", "run:4", ttl=30) and rl.take_slot("binance", "ip", "run:5", ttl=30)
    assert all(rl.take_slot("alpaca", "acct", f"run:{i}", ttl=30) for i in range(10))   # no cap in its rule


def test_step_slot_waiters_are_served_in_order_of_arrival(redis_client, clock):
    """A step that finds every slot held joins the queue; each freed slot goes to the waiter
    that came first, reserved for it (a newcomer cannot take it), and the release names the
    waiter to wake."""
    rl = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=60, max_active_steps=1))
    assert rl.claim_slot("binance", "ip", "run:1|positions", ttl=30, lease=100).taken
    for n in (2, 3, 4):
        clock.now += 1
        assert not rl.claim_slot("binance", "ip", f"run:{n}|transactions", ttl=30, lease=100).taken
    assert rl.waiters("ip") == ["run:2|transactions", "run:3|transactions", "run:4|transactions"]
    clock.now += 1
    assert not rl.claim_slot("binance", "ip", "run:3|transactions", ttl=30, lease=100).taken  # asks again: keeps its place
    assert rl.waiters("ip")[1] == "run:3|transactions"

    assert rl.release_slot_and_wake("binance", "ip", "run:1") == ("run:2|transactions",)
    assert rl.was_woken("run:2|transactions") and not rl.was_woken("run:2|transactions")   # used up once
    assert not rl.claim_slot("binance", "ip", "run:9|positions", ttl=30, lease=100).taken   # reserved for run 2
    assert rl.claim_slot("binance", "ip", "run:2|transactions", ttl=30, lease=100).taken
    assert rl.release_slot_and_wake("binance", "ip", "run:2") == ("run:3|transactions",)
    assert rl.waiters("ip") == ["run:4|transactions", "run:9|positions"]


def test_a_waiter_whose_lease_ran_out_is_dropped_and_the_next_one_woken(redis_client, clock):
    rl = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=60, max_active_steps=1))
    assert rl.claim_slot("binance", "ip", "run:1|positions", ttl=300, lease=100).taken
    assert not rl.claim_slot("binance", "ip", "run:2|positions", ttl=300, lease=10).taken     # dies while waiting
    clock.now += 5
    assert not rl.claim_slot("binance", "ip", "run:3|positions", ttl=300, lease=100).taken
    clock.now += 20                                                                          # run 2's lease is over
    assert rl.release_slot_and_wake("binance", "ip", "run:1") == ("run:3|positions",)
    assert rl.waiters("ip") == []


def test_a_slot_that_expired_goes_to_the_first_waiter_at_the_next_claim(redis_client, clock):
    """No release comes from a dead holder: the next claim notices the expired slot and
    hands it to the waiter ahead of it, not to itself."""
    rl = limiter(redis_client, clock, binance=dict(algorithm="window", limit=6000, period=60, max_active_steps=1))
    assert rl.claim_slot("binance", "ip", "run:1|positions", ttl=30, lease=100).taken         # its worker dies
    assert not rl.claim_slot("binance", "ip", "run:2|positions", ttl=30, lease=100).taken
    clock.now += 31
    late = rl.claim_slot("binance", "ip", "run:3|positions", ttl=30, lease=100)
    assert not late.taken and late.woken == ("run:2|positions",)
    assert rl.claim_slot("alpaca", "acct", "run:5|positions", ttl=30, lease=100).taken       # no cap in its rule
