"""Where each broker lives and how fast we may talk to it. Rates are data, not code."""
from __future__ import annotations

from backend.config.env import env

# Real hosts. BROKER_SANDBOX=host:port points every broker at the local sandbox instead
# (python -m sandbox); a per-broker *_BASE_URL variable overrides either.
_REAL = {
    "alpaca": {"paper": "https://paper-api.alpaca.markets", "live": "https://api.alpaca.markets",
               "data": "https://data.alpaca.markets"},
    "coinbase": {"live": "https://api.coinbase.com"},
    "binance": {"live": "https://api.binance.com"},
    "kraken": {"live": "https://api.kraken.com"},
    "ibkr": {"live": "https://ndcdyn.interactivebrokers.com"},
}
BROKER_SANDBOX = env("BROKER_SANDBOX", default="")


def _sandbox_urls(hostport: str) -> dict[str, dict[str, str]]:
    from sandbox.endpoints import ENDPOINTS

    host, _, port = hostport.rpartition(":")
    urls: dict[str, dict[str, str]] = {}
    for broker, environment, offset in ENDPOINTS.values():
        urls.setdefault(broker, {})[environment] = f"http://{host}:{int(port) + offset}"
    return urls


BROKER_BASE_URLS = _sandbox_urls(BROKER_SANDBOX) if BROKER_SANDBOX else _REAL
for _broker, _envs in BROKER_BASE_URLS.items():
    for _env in _envs:
        _override = env(f"{_broker.upper()}_{_env.upper()}_BASE_URL", default="")
        if _override:
            _envs[_env] = _override

# The shared limiter's rules (backend/brokers/ratelimit.py), one per broker, with the scope
# the broker counts in. Window periods are padded 1 s past the broker's so requests that
# arrive late never land in the broker's next window twice.
BROKER_RATE_LIMITS = {
    # 200 requests/min per account (docs.alpaca.markets "Rate Limit"; alpaca.markets support)
    "alpaca": {"algorithm": "window", "limit": 200, "period": 61},
    # 30 requests/s per key on private v3 endpoints (ccxt + third-party summaries; unconfirmed)
    "coinbase": {"algorithm": "window", "limit": 30, "period": 1.05},
    # request weight 6,000/min per IP (exchangeInfo REQUEST_WEIGHT; read live value at runtime)
    # max_active_steps: a budget every user shares is spent best by a few steps at a time
    # (each then finishes fast and commits); the others wait for a slot without a thread.
    # Syncs get 5,700 of it: key checks keep 300 ("binance-verify"), so a flood of connects
    # can never eat the syncs' share, and syncs never starve connects.
    "binance": {"algorithm": "window", "limit": 5700, "period": 61, "max_active_steps": 6},
    # Key checks from the web, per IP: apiRestrictions (1) then account (20). 300 a minute is 14
    # checks of good keys or 300 of bad ones (which stop at apiRestrictions); 5% of the IP's weight.
    "binance-verify": {"algorithm": "window", "limit": 300, "period": 61},
    # Binance /sapi UID-weighted calls, per account (withdraw history: 18,000 of 180,000/min)
    "binance-uid": {"algorithm": "window", "limit": 180000, "period": 61},
    # per-key counter max 15 decaying 0.33/s (starter tier, docs.kraken.com ratelimits)
    "kraken": {"algorithm": "leaky", "limit": 15, "decay": 0.33},
    # Kraken public endpoints (Assets, AssetPairs, Ticker), per IP: about one call a second
    # with a small burst (docs.kraken.com: "1 request per second"; the burst is ours)
    "kraken-public": {"algorithm": "leaky", "limit": 30, "decay": 1.0},
    # IBKR Flex Web Service: 10 requests/min per token (code 1018; the 1/s part is paced in the adapter)
    "ibkr": {"algorithm": "window", "limit": 10, "period": 61},
    # Alpaca Market Data, per key, apart from the trading API: 200 calls/min on the Basic
    # plan (docs.alpaca.markets "About Market Data API": plans); raise it for Algo Trader Plus.
    "alpaca-data": {"algorithm": "window", "limit": 200, "period": 61},
    # Coinbase Advanced Trade public market/ endpoints: 10 requests/s per IP
    # (docs.cdp.coinbase.com Advanced Trade "Rate limits": public endpoints)
    "coinbase-public": {"algorithm": "window", "limit": 10, "period": 1.05},
}
# Operators (and the benchmarks) may override rules per broker without a code change:
# BROKER_RATE_LIMITS_JSON='{"alpaca": {"algorithm": "window", "limit": 1000, "period": 60}}'
BROKER_RATE_LIMITS.update(env.json("BROKER_RATE_LIMITS_JSON", default={}))
# The source address this worker process binds its broker connections to, and the scope of
# every per-IP budget (Binance weight, Kraken public, market data): one per worker gives
# each its own budgets (backend/brokers/egress.py). BINANCE_EGRESS_IP only names the scope.
BROKER_EGRESS_IP = env("BROKER_EGRESS_IP", default="")
BINANCE_EGRESS_IP = env("BINANCE_EGRESS_IP", default="")

# Coinbase: between full passes, a sync reads only the v2 wallets whose v3 balance or
# updated_at moved; every wallet is read at least this often.
COINBASE_WALLET_FULL_PASS_HOURS = env.float("COINBASE_WALLET_FULL_PASS_HOURS", default=24.0)

BROKER_SESSION_POLICY = {
    "connect_timeout": env.float("BROKER_CONNECT_TIMEOUT", default=3.05),
    "read_timeout": env.float("BROKER_READ_TIMEOUT", default=20.0),
    "transient_retries": env.int("BROKER_TRANSIENT_RETRIES", default=2),
    "max_inplace_wait": env.float("BROKER_MAX_INPLACE_WAIT", default=10.0),   # > Kraken's 6.06 s per history call
    # threads of one worker process that may sleep on one broker's budget at once
    "max_inplace_waiters": env.int("BROKER_MAX_INPLACE_WAITERS", default=4),
}
# Key checks run in a web request: a spent budget is a 503 with Retry-After at once, never a
# web thread asleep (backend/connections/keycheck.py).
BROKER_KEY_CHECK_POLICY = {
    "connect_timeout": env.float("BROKER_CONNECT_TIMEOUT", default=3.05),
    "read_timeout": env.float("BROKER_KEY_CHECK_READ_TIMEOUT", default=10.0),
    "transient_retries": 1,
    "backoff_cap": 0.5,
    "max_inplace_wait": env.float("BROKER_KEY_CHECK_MAX_WAIT", default=0.5),
    "max_inplace_waiters": 2,
}

# Market data (backend/market/). Alpaca's data API needs a key: the operator's own, else a
# connected user's Alpaca key is used. Public sources need none.
MARKETDATA_ALPACA_KEY_ID = env("MARKETDATA_ALPACA_KEY_ID", default="")
MARKETDATA_ALPACA_SECRET_KEY = env("MARKETDATA_ALPACA_SECRET_KEY", default="")
MARKET_LATEST_EVERY_SECONDS = env.int("MARKET_LATEST_EVERY_SECONDS", default=60)
MARKET_CLOSES_EVERY_SECONDS = env.int("MARKET_CLOSES_EVERY_SECONDS", default=86_400)
MARKET_LATEST_RETENTION_DAYS = env.int("MARKET_LATEST_RETENTION_DAYS", default=7)
# A refresh holds its source's lock at most this long (a killed worker's lock expires).
MARKET_REFRESH_LEASE_SECONDS = env.int("MARKET_REFRESH_LEASE_SECONDS", default=300)
