"""Where each simulated API listens: one port per base URL, so every path is the real one.

The control API listens on the base port; each broker environment on base + offset.
backend/config/settings/brokers.py derives the same URLs from BROKER_SANDBOX.
"""
import random
import socket
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700

# endpoint name -> (broker, environment, port offset)
ENDPOINTS: dict[str, tuple[str, str, int]] = {
    "alpaca-paper": ("alpaca", "paper", 1),
    "alpaca-live": ("alpaca", "live", 2),
    "coinbase": ("coinbase", "live", 3),
    "binance": ("binance", "live", 4),
    "kraken": ("kraken", "live", 5),
    "alpaca-data": ("alpaca", "data", 6),      # Alpaca Market Data (data.alpaca.markets)
    "ibkr": ("ibkr", "live", 7),               # Interactive Brokers Flex Web Service
}


def endpoint_name(broker: str, environment: str) -> str:
    for name, (b, env, _) in ENDPOINTS.items():
        if b == broker and env == environment:
            return name
    raise KeyError(f"{broker}/{environment}")


def port_free(host: str, port: int) -> bool:
    """Nothing holds the port: no listener, and no connection bound to it either (a bind
    test, not a connect test: an outgoing connection's local port also makes bind fail)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections: a block chosen there can be taken
    by any client between the check and the bind."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(host: str = DEFAULT_HOST) -> int:
    """A base port with every endpoint's port after it free, for a sandbox that other
    processes (the Celery worker under test) must reach by the same derived URLs. Chosen
    below the ephemeral range when there is room there."""
    size = max(offset for *_, offset in ENDPOINTS.values()) + 1
    low, high = _ephemeral_range()
    start, stop = (20000, low - size) if low - size > 21000 else (high + 1, 65535 - size)
    for _ in range(200):
        base = random.randrange(start, stop)
        if all(port_free(host, base + i) for i in range(size)):
            return base
    raise RuntimeError("no free port block for the sandbox")
