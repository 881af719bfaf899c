"""The tradable assets the simulator knows: equities (real tickers first, then synthetic
ones, so 2,000+ positions fit) and Alpaca's crypto pairs. Asset ids are global, as at
Alpaca, so they depend on the symbol only."""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from ... import prices

# (ticker, exchange, rough price in USD)
REAL_EQUITIES = (
    ("AAPL", "NASDAQ", 190), ("MSFT", "NASDAQ", 410), ("AMZN", "NASDAQ", 180), ("GOOGL", "NASDAQ", 165),
    ("META", "NASDAQ", 480), ("NVDA", "NASDAQ", 120), ("TSLA", "NASDAQ", 240), ("JPM", "NYSE", 200),
    ("V", "NYSE", 275), ("JNJ", "NYSE", 155), ("WMT", "NYSE", 68), ("PG", "NYSE", 165), ("XOM", "NYSE", 115),
    ("KO", "NYSE", 62), ("PEP", "NASDAQ", 170), ("T", "NYSE", 18), ("VZ", "NYSE", 40), ("INTC", "NASDAQ", 31),
    ("CSCO", "NASDAQ", 48), ("ORCL", "NYSE", 125), ("IBM", "NYSE", 185), ("DIS", "NYSE", 100),
    ("NFLX", "NASDAQ", 630), ("ADBE", "NASDAQ", 510), ("CRM", "NYSE", 260), ("AMD", "NASDAQ", 160),
    ("QCOM", "NASDAQ", 190), ("TXN", "NASDAQ", 195), ("HD", "NYSE", 350), ("MCD", "NYSE", 260),
    ("NKE", "NYSE", 90), ("BA", "NYSE", 180), ("CAT", "NYSE", 340), ("GE", "NYSE", 160), ("MMM", "NYSE", 100),
    ("CVX", "NYSE", 155), ("PFE", "NYSE", 28), ("MRK", "NYSE", 125), ("ABBV", "NYSE", 170),
    ("SBUX", "NASDAQ", 80), ("SPY", "ARCA", 540), ("QQQ", "NASDAQ", 470), ("IWM", "ARCA", 205),
)
EXCHANGES = ("NYSE", "NASDAQ", "ARCA", "AMEX", "BATS")

# (coin, rough price) for Alpaca's USD pairs; stablecoins left out (their positions are cash-like).
CRYPTO = (
    ("BTC", 60000), ("ETH", 3000), ("LTC", 80), ("BCH", 350), ("SOL", 150), ("DOGE", 0.15), ("AVAX", 35),
    ("LINK", 15), ("UNI", 8), ("AAVE", 100), ("DOT", 7), ("XRP", 0.55), ("MKR", 2400), ("YFI", 7000),
    ("SUSHI", 1.1), ("BAT", 0.25), ("CRV", 0.45), ("GRT", 0.2), ("XTZ", 0.9),
)


_RESERVED = frozenset([t for t, _, _ in REAL_EQUITIES] + [c for c, _ in CRYPTO])


@dataclass(frozen=True)
class AssetInfo:
    symbol: str            # as orders and FILLs spell it: "AAPL", "BTC/USD"
    position_symbol: str   # as positions spell it: "AAPL", "BTCUSD"
    canonical: str         # brokersync's canonical code: "AAPL", "BTC"
    asset_class: str       # "us_equity" | "crypto"
    exchange: str          # "NASDAQ", ..., "CRYPTO"
    base_price: float
    asset_id: str

    @property
    def is_crypto(self) -> bool:
        return self.asset_class == "crypto"


def _asset_id(symbol: str) -> str:
    return str(uuid.UUID(int=random.Random(f"alpaca-asset:{symbol}").getrandbits(128), version=4))


def _synthetic_ticker(i: int) -> str:
    """AAB, AAC, ... then 4 letters: stable, and never one of the real tickers above."""
    letters = []
    n = i + 26 * 26 + 1                      # start at 3 letters
    while n:
        n, r = divmod(n, 26)
        letters.append(chr(65 + r))
    return "".join(reversed(letters))


@lru_cache(maxsize=None)
def equity(i: int) -> AssetInfo:
    """The i-th equity of the universe (0..): real tickers first."""
    if i < len(REAL_EQUITIES):
        ticker, exchange, price = REAL_EQUITIES[i]
    else:
        j = i - len(REAL_EQUITIES)
        ticker = _synthetic_ticker(j)
        while ticker in _RESERVED:           # a real ticker or a coin code (canonical symbols must not clash)
            j += 100_000
            ticker = _synthetic_ticker(j)
        rng = random.Random(f"alpaca-equity:{ticker}")
        exchange, price = rng.choice(EXCHANGES), round(rng.uniform(5, 400), 2)
    return AssetInfo(ticker, ticker, ticker, "us_equity", exchange, float(price), _asset_id(ticker))


@lru_cache(maxsize=None)
def crypto(i: int) -> AssetInfo:
    coin, price = CRYPTO[i]
    return AssetInfo(f"{coin}/USD", f"{coin}USD", coin, "crypto", "CRYPTO", float(price), _asset_id(f"{coin}/USD"))


@lru_cache(maxsize=None)
def lookup(symbol: str) -> AssetInfo | None:
    """Any spelling Alpaca accepts for /v2/assets/{symbol}: AAPL, BTC/USD, BTCUSD."""
    for i in range(len(CRYPTO)):
        info = crypto(i)
        if symbol in (info.symbol, info.position_symbol):
            return info
    for i in range(len(REAL_EQUITIES)):
        if REAL_EQUITIES[i][0] == symbol:
            return equity(i)
    if symbol.isalpha() and symbol.isupper() and 3 <= len(symbol) <= 5:
        n = 0
        for ch in symbol:
            n = n * 26 + (ord(ch) - 65)
        index = n - (26 * 26 + 1) + len(REAL_EQUITIES)
        if index >= len(REAL_EQUITIES) and equity(index).symbol == symbol:
            return equity(index)
    return None


def leg(info: AssetInfo) -> prices.Leg:
    """The asset in the sandbox's one market model (crypto by coin code, so BTC agrees with
    every exchange; equities by ticker)."""
    return prices.Leg(info.canonical, info.base_price, equity=not info.is_crypto)


def market_price(info: AssetInfo, t: float) -> float:
    """USD price of the asset at unix time `t` in the sandbox market."""
    return prices.pair_price(leg(info), prices.Leg("USD"), t)


def tick_for(price: float) -> Decimal:
    return CENT if price >= 1 else MICRO


def price_tick(price: float) -> Decimal:
    """A fill price at Alpaca's tick: cents from $1 up, else 6 decimals."""
    return prices.to_tick(price, tick_for(price))


CENT, MICRO = Decimal("0.01"), Decimal("0.000001")
