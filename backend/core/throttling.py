"""Throttles per user and per client IP, counted in the cache every web process shares
(settings.CACHES, Redis). A view opts in by naming a scope per method:

    throttle_scopes = {"POST": "connect"}

and its rates are settings.API_THROTTLE_RATES[scope] (per user) and [scope + "_ip"] (per
client IP), read on every request so an operator's override applies at once."""
from __future__ import annotations

import hashlib

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


def client_ip(request: Request) -> str:
    """REMOTE_ADDR, or with settings.TRUSTED_PROXIES in front, the address that many hops from
    the right of X-Forwarded-For (what a client writes further left is not trusted)."""
    hops = settings.TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if addresses:
            return addresses[-min(hops, len(addresses))]
    return request.META.get("REMOTE_ADDR", "")


class _ScopedThrottle(SimpleRateThrottle):
    suffix = ""

    def __init__(self):            # the rate depends on the request's scope: set in allow_request
        pass

    def allow_request(self, request: Request, view) -> bool:
        scope = getattr(view, "throttle_scopes", {}).get(request.method)
        if not scope:
            return True
        self.scope = scope + self.suffix
        self.rate = settings.API_THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_ident(self, request: Request) -> str:
        return client_ip(request)


class UserThrottle(_ScopedThrottle):
    """Per signed-in user (per IP for anyone else)."""

    def get_cache_key(self, request: Request, view) -> str:
        user = request.user
        ident = f"user:{user.pk}" if user and user.is_authenticated else f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class IPThrottle(_ScopedThrottle):
    """Per client IP, whoever is signed in: one address cannot spend many users' allowance."""

    suffix = "_ip"

    def get_cache_key(self, request: Request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UsernameThrottle(_ScopedThrottle):
    """Per username tried at login, from any address: stops guessing one user's password from
    many IPs. The cache key holds a hash of the name, never the name."""

    def get_cache_key(self, request: Request, view) -> str | None:
        name = request.data.get("username") if hasattr(request.data, "get") else None
        if not isinstance(name, str) or not name:
            return None                       # nothing to count: the serializer answers 400
        digest = hashlib.sha256(name.strip().lower().encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}
