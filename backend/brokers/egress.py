"""The address a worker's broker requests leave from.

Binance counts request weight per egress IP for every user together (and Kraken's public
calls and the market-data sources count per IP too), so one address bounds the whole
fleet. `BROKER_EGRESS_IP`, set per worker process, is bound as the source address of every
broker connection that process opens and names the limiter's per-IP scopes: N workers on
N addresses get N budgets. `BINANCE_EGRESS_IP` only names the scope (a NAT address the
operator knows requests leave from) without binding anything.
"""
from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


class SourceAddressAdapter(HTTPAdapter):
    """Every connection of its pools opened from `source_ip` (any free port)."""

    def __init__(self, source_ip: str, **kw):
        self.source_ip = source_ip
        super().__init__(**kw)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        pool_kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def bound_session(source_ip: str) -> requests.Session:
    session = requests.Session()
    adapter = SourceAddressAdapter(source_ip)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _setting(name: str) -> str:
    """Settings are read when asked, so adapters import without Django."""
    try:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return ""
    try:
        return str(getattr(settings, name, "") or "")
    except ImproperlyConfigured:
        return ""


def bound_ip() -> str:
    """The source address this process binds its broker connections to ("" = the OS picks)."""
    return _setting("BROKER_EGRESS_IP")


def egress_ip() -> str:
    """The IP our requests leave from: the scope of budgets a broker counts per IP."""
    return bound_ip() or _setting("BINANCE_EGRESS_IP") or "default"


def broker_http() -> requests.Session:
    """A fresh HTTP session for broker requests, bound to this process's egress address.
    Without proxy variables in the environment it does not consult the environment on every
    request (proxies, ~/.netrc): that was 12% of requests' CPU per request, and a broker
    must never be sent credentials from a netrc file. With them, requests reads them as usual."""
    ip = bound_ip()
    session = bound_session(ip) if ip else requests.Session()
    if not requests.utils.getproxies():
        session.trust_env = False
    return session
