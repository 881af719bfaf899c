"""Where each simulated API listens: one port per base URL, so every path is the real one.

The control API listens on the base port; each broker environment on base + offset.
backend/config/settings/brokers.py derives the same URLs from BROKER_SANDBOX.
"""
import random
import socket

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700

# endpoint name -> (broker, environment, port offset)
ENDPOINTS: dict[str, tuple[str, str, int]] = {
    "alpaca-paper": ("alpaca", "paper", 1),
    "alpaca-live": ("alpaca", "live", 2),
    "coinbase": ("coinbase", "live", 3),
    "binance": ("binance", "live", 4),
    "kraken": ("kraken", "live", 5),
}


def endpoint_name(broker: str, environment: str) -> str:
    for name, (b, env, _) in ENDPOINTS.items():
        if b == broker and env == environment:
            return name
    raise KeyError(f"{broker}/{environment}")


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def free_port_block(host: str = DEFAULT_HOST) -> int:
    """A base port with every endpoint's port after it free, for a sandbox that other
    processes (the Celery worker under test) must reach by the same derived URLs."""
    size = max(offset for *_, offset in ENDPOINTS.values()) + 1
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        if all(port_free(host, base + i) for i in range(size)):
            return base
    raise RuntimeError("no free port block for the sandbox")
