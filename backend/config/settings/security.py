"""The service on the open internet: HTTPS and cookies, the shared cache, throttles, API
tokens and request limits. See the README's "Deploying" section."""
from __future__ import annotations

from datetime import timedelta

from backend.config.env import env

from .base import PRODUCTION, REDIS_URL

# -- HTTPS (production answers `manage.py check --deploy` with no warning) ----------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]          # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
# Behind a proxy that ends TLS: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO, and only if the
# proxy always sets (overwrites) X-Forwarded-Proto; otherwise a client could claim https.
if env("SECURE_PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = (env("SECURE_PROXY_SSL_HEADER"), "https")

# -- the cache every web process shares (throttle counters, failed key checks) -----------
CACHES = {"default": {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": env("CACHE_URL", default=REDIS_URL),
    "KEY_PREFIX": "bs:cache",
}}

# -- throttles (backend/core/throttling.py): per user and per client IP --------------------
# DRF's "N/period" rates. Key checks call brokers whose budgets every user shares, so
# connecting is throttled hardest; login per username stops password guessing.
API_THROTTLE_RATES = {
    "login": "10/hour",           # per username tried
    "login_ip": "30/min",
    "connect": "30/hour",         # POST /connections/ and PATCH with new keys, per user
    "connect_ip": "60/hour",
    "sync": "60/hour",            # POST /connections/{id}/sync/, per user
    "sync_ip": "300/hour",
}
API_THROTTLE_RATES.update(env.json("API_THROTTLE_RATES_JSON", default={}))
# Proxies in front of the web processes that append to X-Forwarded-For: the client IP is the
# address that many hops from the right. 0: REMOTE_ADDR (nothing in front, or a proxy that
# does not say). A wrong value lets clients choose their own IP for the throttles.
TRUSTED_PROXIES = env.int("TRUSTED_PROXIES", default=0)

# -- API tokens (django-rest-knox): stored as SHA-512 digests, with an expiry ------------
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.int("API_TOKEN_TTL_HOURS", default=7 * 24)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# -- Flower (workers/flower.py): its API that applies/revokes tasks and shuts workers down
FLOWER_WRITE_API = env.bool("FLOWER_WRITE_API", default=False)

# -- request limits (backend/core/middleware.py, backend/core/parsers.py) ----------------
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)     # JSON and forms under /api/
API_MAX_UPLOAD_BYTES = env.int("API_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)  # multipart (file imports)
API_MAX_JSON_DEPTH = 32           # our deepest input is 3 levels; 32 leaves room, RecursionError never
# Keys that can trade or withdraw: false warns on the connection, true refuses them (400).
# Alpaca has no read-only keys: with true, no Alpaca account can be connected.
REFUSE_KEYS_THAT_CAN_TRADE = env.bool("REFUSE_KEYS_THAT_CAN_TRADE", default=False)
# A failed key check is answered from the cache for this long (same keys, same answer).
FAILED_KEY_CHECK_TTL = env.int("FAILED_KEY_CHECK_TTL", default=300)
