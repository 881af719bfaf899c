"""The public side of the simulated Coinbase: which products exist and their prices.

Prices come from the sandbox's one market (sandbox/prices.py) so that fills, best bid/ask
and candles agree. Coinbase runs USDC and USD as one book (BTC-USDC is an alias of
BTC-USD, docs.cdp.coinbase.com "USDC-USD conversion"), so USDC is priced at exactly 1 USD
here and there is no USDC-USD product. Coinbase lists no EUR-USD or GBP-USD book: euro and
pound prices come from the stablecoin books quoted in them (USDT-EUR, USDC-EUR, USDC-GBP)
and from coins quoted in them (BTC-EUR, BTC-GBP).
"""
from __future__ import annotations

import hashlib
from decimal import Decimal
from functools import lru_cache

from ... import prices

CENT, MICRO, SATOSHI = Decimal("0.01"), Decimal("0.000001"), Decimal("0.00000001")
QUOTE_FIAT = frozenset({"USD", "EUR", "GBP"})
# (code, starting USD price): real listings first, then invented codes.
CORE_COINS = [("BTC", "42000"), ("ETH", "2300"), ("SOL", "95"), ("USDC", "1"), ("ADA", "0.5"),
              ("DOGE", "0.08"), ("LTC", "70"), ("DOT", "6.5"), ("AVAX", "30"), ("LINK", "14"),
              ("XLM", "0.12"), ("ATOM", "9.5"), ("UNI", "6"), ("MATIC", "0.8"), ("ALGO", "0.18"), ("FIL", "5")]
CROSS_PRODUCTS = ("ETH-BTC", "SOL-BTC", "BTC-USDC", "ETH-USDC")
# Books quoted in other fiat and the stablecoin books (what converts EUR, GBP and USDT).
FIAT_PRODUCTS = ("BTC-EUR", "BTC-GBP", "ETH-EUR", "USDT-USD", "USDT-EUR", "USDC-EUR", "USDC-GBP")
_CORE = dict(CORE_COINS)


def split(product: str) -> tuple[str, str]:
    base, _, quote = product.partition("-")
    return base, quote


def invented_price(code: str) -> Decimal:
    """An invented coin's starting USD level, from its code alone (so every account and the
    market data agree on it)."""
    return Decimal(int(hashlib.sha256(code.encode()).hexdigest()[:8], 16) % 50_000 + 1) / 100


def reference(code: str) -> Decimal:
    """A code's starting USD level: Coinbase's own list, then the sandbox market's (USDT, EUR:
    a stablecoin is not an invented coin, and its book's tick follows from its $1 level)."""
    if code in _CORE:
        return Decimal(_CORE[code])
    if code in prices.REFERENCE_USD:
        return Decimal(str(prices.REFERENCE_USD[code]))
    return invented_price(code)


@lru_cache(maxsize=None)
def leg(code: str) -> prices.Leg:
    if code in ("USD", "USDC"):
        return prices.Leg("USD")
    if code in QUOTE_FIAT or code == "USDT":
        return prices.Leg(code)
    return prices.Leg(code, float(reference(code)))


def quantum(product: str) -> Decimal:
    """The product's price increment: cents for fiat-quoted books at $10 and up, else 1e-6;
    satoshis for coin-quoted books."""
    base, quote = split(product)
    if quote in QUOTE_FIAT or quote == "USDC":
        return CENT if reference(base) >= 10 else MICRO
    return SATOSHI


def price(product: str, t_us: int) -> Decimal:
    base, quote = split(product)
    return prices.to_tick(prices.pair_price(leg(base), leg(quote), t_us / 1e6), quantum(product))


def bar(product: str, day: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    base, quote = split(product)
    return prices.bar_ticks(prices.pair_bar(leg(base), leg(quote), day), quantum(product))


def catalogue(extra: set[str]) -> list[str]:
    """Every product the market lists: the core coins against USD, the crosses, the fiat
    and stablecoin books, and the invented coins some account trades."""
    names = [f"{c}-USD" for c, _ in CORE_COINS if c != "USDC"] + list(CROSS_PRODUCTS) + list(FIAT_PRODUCTS)
    return names + sorted(extra - set(names))
