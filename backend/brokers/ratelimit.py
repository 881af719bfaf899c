"""One rate limiter shared by every worker process, kept in Redis.

Celery's own `rate_limit` counts per worker process, so it cannot hold a broker's
budget across workers. This limiter is acquired right before every broker request,
keyed by the scope the broker really counts in (Alpaca: per account/key, Binance: per
egress IP across all users, Kraken and Coinbase: per key), and it learns from the
broker's answers: remaining/used-weight headers move it, a 429 or 418 blocks the whole
scope until the wait is over.

Two algorithms, both exact:
  window  sliding window of total cost per `period` seconds (Alpaca, Binance, Coinbase).
          Sliding is never looser than the broker's fixed windows.
  leaky   a counter that decays `decay` per second and may not pass `limit` (Kraken's
          documented call counter, where history calls cost 2).

Rules are data (settings.BROKER_RATE_LIMITS); the clock is injectable so tests move it.
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import redis

_WINDOW_ACQUIRE = """
local zkey, bkey = KEYS[1], KEYS[2]
local now, period, limit, cost, member = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local blocked = tonumber(redis.call('GET', bkey) or '0')
if blocked > now then return tostring(blocked - now) end
redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - period)
local entries = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], '|([%d%.]+)$')) end
if used + cost <= limit then
  redis.call('ZADD', zkey, now, member .. '|' .. cost)
  redis.call('PEXPIRE', zkey, math.ceil(period * 1000) + 1000)
  return '0'
end
local need, freed = used + cost - limit, 0
for i = 1, #entries, 2 do
  freed = freed + tonumber(string.match(entries[i], '|([%d%.]+)$'))
  if freed >= need then return tostring(math.max(0.001, tonumber(entries[i + 1]) + period - now)) end
end
return tostring(period)
"""

_WINDOW_USED = """
local zkey, now, period = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - period)
local entries = redis.call('ZRANGE', zkey, 0, -1)
local used = 0
for i = 1, #entries do used = used + tonumber(string.match(entries[i], '|([%d%.]+)$')) end
return tostring(used)
"""

_LEAKY_ACQUIRE = """
local hkey, bkey = KEYS[1], KEYS[2]
local now, limit, decay, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local blocked = tonumber(redis.call('GET', bkey) or '0')
if blocked > now then return tostring(blocked - now) end
local v = redis.call('HMGET', hkey, 'c', 't')
local c, t = tonumber(v[1] or '0'), tonumber(v[2] or ARGV[1])
c = math.max(0, c - decay * math.max(0, now - t))
if c + cost <= limit + 1e-9 then
  redis.call('HSET', hkey, 'c', tostring(c + cost), 't', ARGV[1])
  redis.call('EXPIRE', hkey, math.ceil(limit / decay) + 5)
  return '0'
end
redis.call('HSET', hkey, 'c', tostring(c), 't', ARGV[1])
return tostring(math.max(0.001, (c + cost - limit) / decay))
"""


_SLOT_TAKE = """
local key, now, expires, holder, most = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZSCORE', key, holder) or redis.call('ZCARD', key) < most then
  redis.call('ZADD', key, expires, holder)
  redis.call('PEXPIRE', key, math.ceil((expires - now) * 1000) + 1000)
  return 1
end
return 0
"""


# Slots with a wait queue. A step that finds every slot of its scope held joins the queue
# (ordered by arrival; `member` is "<holder>|<what to wake>") with a lease, and gives its
# thread back. Whenever a slot frees (released, or expired and noticed by the next claim),
# the script hands it to the live waiters in arrival order: the slot is reserved for the
# waiter's holder, a wake mark is left for it, and the caller wakes it at once. A waiter
# whose lease ran out (its run ended, its retry was lost) is dropped when it is reached.
_GRANT = """
local function keep(slots, now)
  local longest = redis.call('ZRANGE', slots, -1, -1, 'WITHSCORES')
  if longest[2] then redis.call('PEXPIRE', slots, math.ceil((tonumber(longest[2]) - now) * 1000) + 1000) end
end
local function grant(slots, waiters, leases, now, most, reserve, wake, caller, caller_expires)
  local woken, got = {}, 0
  local free = most - redis.call('ZCARD', slots)
  if free <= 0 then return got, woken end
  local queue = redis.call('ZRANGE', waiters, 0, -1)
  for i = 1, #queue do
    if free <= 0 then break end
    local w = queue[i]
    redis.call('ZREM', waiters, w)
    local lease = tonumber(redis.call('HGET', leases, w) or '0')
    redis.call('HDEL', leases, w)
    if lease >= now then
      local holder = string.match(w, '^([^|]+)')
      if w == caller then
        redis.call('ZADD', slots, caller_expires, holder)
        got = 1
      else
        redis.call('ZADD', slots, reserve, holder)
        redis.call('SET', wake .. w, '1', 'EX', 86400)
        table.insert(woken, w)
      end
      free = free - 1
    end
  end
  keep(slots, now)
  return got, woken
end
"""

_SLOT_CLAIM = _GRANT + """
local slots, waiters, leases = KEYS[1], KEYS[2], KEYS[3]
local now, expires, holder, most = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local member, lease, reserve, wake, arrival = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
if redis.call('ZSCORE', slots, holder) then
  redis.call('ZADD', slots, expires, holder)
  redis.call('ZREM', waiters, member)
  redis.call('HDEL', leases, member)
  keep(slots, now)
  return {1}
end
if not redis.call('ZSCORE', waiters, member) then redis.call('ZADD', waiters, arrival, member) end
redis.call('HSET', leases, member, lease)
local ttl = math.ceil((lease - now) * 1000) + 60000
redis.call('PEXPIRE', waiters, ttl)
redis.call('PEXPIRE', leases, ttl)
local got, woken = grant(slots, waiters, leases, now, most, reserve, wake, member, expires)
table.insert(woken, 1, got)
return woken
"""

_SLOT_RELEASE = _GRANT + """
local slots, waiters, leases = KEYS[1], KEYS[2], KEYS[3]
local now, holder, most, reserve, wake = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
redis.call('ZREM', slots, holder)
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
local _, woken = grant(slots, waiters, leases, now, most, reserve, wake, '', 0)
return woken
"""

SLOT_RESERVE_SECONDS = 120.0       # a woken waiter's slot is kept this long for its task to start


@dataclass(frozen=True)
class SlotClaim:
    taken: bool
    woken: tuple[str, ...] = ()    # waiters handed a slot by this call: the caller wakes them


LEARNED_LIMIT_TTL = 24 * 3600     # re-learned whenever exchangeInfo is read (hourly per worker)
LIMIT_CACHE_SECONDS = 60.0         # per process, so acquire() stays one Redis round trip


@dataclass(frozen=True)
class RateRule:
    algorithm: str            # "window" | "leaky"
    limit: float              # window: total cost per period; leaky: counter maximum
    period: float = 60.0      # window only, seconds (pad it a little past the broker's window)
    decay: float = 1.0        # leaky only, counter units per second
    max_active_steps: int = 0  # sync steps spending one scope's budget at once (0: no cap)

    @classmethod
    def from_setting(cls, data: dict) -> "RateRule":
        return cls(**{k: data[k] for k in ("algorithm", "limit", "period", "decay", "max_active_steps") if k in data})


class RateLimiter:
    """acquire() returns 0.0 when the request may go now, otherwise the seconds to wait
    (nothing is reserved in that case)."""

    def __init__(self, client: redis.Redis, rules: dict[str, RateRule], *,
                 clock: Callable[[], float] = time.time, prefix: str = "bs:rl"):
        self.redis = client
        self.rules = rules
        self.clock = clock
        self.prefix = prefix
        self._window = client.register_script(_WINDOW_ACQUIRE)
        self._window_used = client.register_script(_WINDOW_USED)
        self._slot_take = client.register_script(_SLOT_TAKE)
        self._slot_claim = client.register_script(_SLOT_CLAIM)
        self._slot_release = client.register_script(_SLOT_RELEASE)
        self._leaky = client.register_script(_LEAKY_ACQUIRE)
        self._limits: dict[str, tuple[float, float]] = {}

    def _keys(self, scope: str) -> tuple[str, str]:
        return f"{self.prefix}:{scope}", f"{self.prefix}:block:{scope}"

    def rule_for(self, broker: str) -> RateRule | None:
        return self.rules.get(broker)

    def acquire(self, broker: str, scope: str, cost: float = 1) -> float:
        rule = self.rules.get(broker)
        if rule is None:
            return 0.0
        key, block = self._keys(scope)
        now = self.clock()
        limit = self._limit(broker, rule)
        if rule.algorithm == "leaky":
            wait = self._leaky(keys=[key, block], args=[now, limit, rule.decay, cost])
        else:
            wait = self._window(keys=[key, block], args=[now, rule.period, limit, cost, uuid.uuid4().hex[:12]])
        return float(wait)

    def take_slot(self, broker: str, scope: str, holder: str, ttl: float) -> bool:
        """One of the broker's `max_active_steps` slots in `scope` for `holder` (a run), for
        `ttl` seconds: True when taken or renewed, False when all are held. Always True
        when the rule sets no cap. A holder that dies loses its slot when the ttl ends."""
        rule = self.rules.get(broker)
        if rule is None or rule.max_active_steps <= 0:
            return True
        now = self.clock()
        return bool(self._slot_take(keys=[f"{self.prefix}:slots:{scope}"],
                                    args=[now, now + ttl, holder, rule.max_active_steps]))

    def release_slot(self, broker: str, scope: str, holder: str) -> None:
        rule = self.rules.get(broker)
        if rule is not None and rule.max_active_steps > 0:
            self.redis.zrem(f"{self.prefix}:slots:{scope}", holder)

    def _slot_keys(self, scope: str) -> list[str]:
        return [f"{self.prefix}:slots:{scope}", f"{self.prefix}:slotwait:{scope}",
                f"{self.prefix}:slotwait-lease:{scope}"]

    def claim_slot(self, broker: str, scope: str, member: str, ttl: float, lease: float,
                   arrival: float | None = None) -> SlotClaim:
        """A slot for `member`'s holder (the part before "|") for `ttl` seconds, or a place in
        the scope's wait queue, kept for `lease` seconds, behind those who came first
        (`arrival`, default now: a run passes when it started, so its later steps are not sent
        behind runs that started after it). The claim may also hand freed slots to waiters
        ahead: the caller wakes `woken`."""
        rule = self.rules.get(broker)
        if rule is None or rule.max_active_steps <= 0:
            return SlotClaim(True)
        now = self.clock()
        holder = member.split("|", 1)[0]
        answer = self._slot_claim(keys=self._slot_keys(scope),
                                  args=[now, now + ttl, holder, rule.max_active_steps, member, now + lease,
                                        now + SLOT_RESERVE_SECONDS, f"{self.prefix}:slotwake:",
                                        now if arrival is None else arrival])
        return SlotClaim(bool(int(answer[0])), tuple(_text(w) for w in answer[1:]))

    def release_slot_and_wake(self, broker: str, scope: str, holder: str) -> tuple[str, ...]:
        """Give the holder's slot back; returns the waiters it (and any expired slot) went to."""
        rule = self.rules.get(broker)
        if rule is None or rule.max_active_steps <= 0:
            return ()
        answer = self._slot_release(keys=self._slot_keys(scope),
                                    args=[self.clock(), holder, rule.max_active_steps,
                                          self.clock() + SLOT_RESERVE_SECONDS, f"{self.prefix}:slotwake:"])
        return tuple(_text(w) for w in answer)

    def was_woken(self, member: str) -> bool:
        """Whether `member` was handed a slot (and woken) while it waited; the mark is used up."""
        return bool(self.redis.delete(f"{self.prefix}:slotwake:{member}"))

    def waiters(self, scope: str) -> list[str]:
        return [_text(w) for w in self.redis.zrange(f"{self.prefix}:slotwait:{scope}", 0, -1)]

    def learn_limit(self, broker: str, limit: float) -> None:
        """The broker told us its real budget (Binance's exchangeInfo): every worker uses it.
        Never above the configured rule, which is the operator's ceiling."""
        rule = self.rules.get(broker)
        if rule is None or limit <= 0:
            return
        self.redis.set(f"{self.prefix}:limit:{broker}", repr(min(limit, rule.limit)), ex=LEARNED_LIMIT_TTL)
        self._limits.pop(broker, None)

    def _limit(self, broker: str, rule: RateRule) -> float:
        cached = self._limits.get(broker)
        now = time.monotonic()
        if cached is None or now - cached[0] > LIMIT_CACHE_SECONDS:
            learned = self.redis.get(f"{self.prefix}:limit:{broker}")
            cached = (now, float(learned) if learned else rule.limit)
            self._limits[broker] = cached
        return cached[1]

    def used(self, broker: str, scope: str) -> float:
        rule = self.rules.get(broker)
        if rule is None or rule.algorithm != "window":
            return 0.0
        key, _ = self._keys(scope)
        return float(self._window_used(keys=[key], args=[self.clock(), rule.period]))

    def block(self, scope: str, seconds: float) -> None:
        """Stop every request in `scope` for `seconds` (after a 429, or a Binance 418 ban)."""
        _, block = self._keys(scope)
        until = self.clock() + max(0.0, seconds)
        current = float(self.redis.get(block) or 0)
        if until > current:
            self.redis.set(block, repr(until), px=int(math.ceil(seconds * 1000)) + 1000)

    def blocked_for(self, scope: str) -> float:
        _, block = self._keys(scope)
        return max(0.0, float(self.redis.get(block) or 0) - self.clock())

    def observe_used(self, broker: str, scope: str, *, used: float, resets_in: float) -> None:
        """The broker told us how much of the window is spent (Alpaca remaining, Binance
        used weight). If it counts more than we do (another process or app shares the
        key or IP), add the difference as phantom cost that expires with its window."""
        rule = self.rules.get(broker)
        if rule is None or rule.algorithm != "window":
            return
        mine = self.used(broker, scope)
        extra = used - mine
        if extra <= 0:
            return
        key, _ = self._keys(scope)
        # Scored so that it leaves our sliding window exactly when the broker's resets.
        score = self.clock() + max(0.0, resets_in) - rule.period
        self.redis.zadd(key, {f"phantom-{uuid.uuid4().hex[:12]}|{extra:g}": score})

    def strikes(self, scope: str, *, reset: bool = False) -> int:
        """Consecutive 429s in a scope, for our own backoff when the broker's wait is 0."""
        key = f"{self.prefix}:strikes:{scope}"
        if reset:
            self.redis.delete(key)
            return 0
        n = self.redis.incr(key)
        self.redis.expire(key, 600)
        return int(n)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
