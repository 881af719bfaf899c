"""The simulated exchange's public side: coins, symbols, reference prices.

It is the same for every account (exchangeInfo is public), deterministic, and big
enough for a 2,000-coin account: real coins plus invented ones. Symbols are named the
way Binance names them (BASE+QUOTE, no separator), so clients must split them with
exchangeInfo, never by guessing.

Amounts everywhere in the simulator are integers in units of 1e-8 (Binance's 8 dp),
which keeps the generator fast and exact; they become "0.01200000" strings on the wire.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from ... import prices
from ...http import dumps

UNIT = 100_000_000                       # 1e8: Binance amounts have 8 decimal places
DAY_MS = 86_400_000

# Approximate USD prices; only their order of magnitude matters.
REAL_COINS: dict[str, float] = {
    "BTC": 60000, "ETH": 3000, "BNB": 550, "SOL": 150, "XRP": 0.6, "ADA": 0.45, "DOGE": 0.15,
    "DOT": 7, "LTC": 80, "LINK": 15, "AVAX": 35, "MATIC": 0.7, "ATOM": 9, "TRX": 0.12, "UNI": 8,
    "XLM": 0.11, "ETC": 27, "FIL": 6, "NEAR": 6, "ALGO": 0.18, "VET": 0.03, "ICP": 12, "AAVE": 90,
    "SAND": 0.45, "MANA": 0.45, "AXS": 7, "EGLD": 40, "THETA": 2, "XTZ": 0.9, "EOS": 0.8,
    "CAKE": 2.5, "RUNE": 5, "KSM": 30, "ZEC": 25, "DASH": 30, "NEO": 15, "CHZ": 0.1, "ENJ": 0.3,
    "BAT": 0.25, "ARB": 1.1, "OP": 2.5, "APT": 9, "SUI": 1.2, "PEPE": 0.00001, "SHIB": 0.00002,
}
STABLES: dict[str, float] = {"USDT": 1.0, "FDUSD": 1.0, "USDC": 1.0, "BUSD": 1.0}
DELISTED_COINS: dict[str, float] = {"BCC": 300.0}     # Bitcoin Cash's old ticker, delisted in 2018
INVENTED_COINS = 2_100                  # 2,000 held positions plus closed ones
# BUSD pairs went to status BREAK in December 2023; they stay in exchangeInfo.
BUSD_DELISTED = ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "LTC", "LINK", "DOT")

_CONSONANTS = "BDFGKLMNPRSTVZ"
_VOWELS = "AEIOU"


@dataclass(frozen=True)
class SymbolInfo:
    symbol: str
    base: str
    quote: str
    status: str                         # TRADING, or BREAK for delisted pairs

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


def invented_code(index: int) -> str:
    """A pronounceable 6-letter code (KOMIRU...), a bijection of `index` so none repeat."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]         # 70
    n = (index * 7919 + 1234) % (70 ** 3)                              # 7919 is coprime with 70**3
    return "".join(syllables[(n // 70 ** k) % 70] for k in (2, 1, 0))


def stable_hash(text: str) -> int:
    """A stable hash (Python's hash() changes per process)."""
    return zlib.crc32(text.encode())


@lru_cache(maxsize=1)
def invented_coins() -> tuple[str, ...]:
    return tuple(invented_code(i) for i in range(INVENTED_COINS))


@lru_cache(maxsize=None)
def base_usd(coin: str) -> float:
    for table in (STABLES, REAL_COINS, DELISTED_COINS):
        if coin in table:
            return table[coin]
    return 10 ** ((stable_hash(coin) % 5500) / 1000 - 3)                       # 0.001 .. ~300 USD


def usd_price(coin: str, time_ms: int) -> float:
    """The sandbox market's USD price (sandbox/prices.py): the same path every simulator and
    market-data endpoint uses, so a fill lies inside the day's kline."""
    return prices.usd(coin, time_ms / 1000, ref=base_usd(coin))


def price_units(base: str, quote: str, time_ms: int) -> int:
    """Price of one `base` in `quote`, in 1e-8 units (never below one unit)."""
    return max(1, round(usd_price(base, time_ms) / usd_price(quote, time_ms) * UNIT))


def bar_units(base: str, quote: str, day: int) -> tuple[int, int, int, int]:
    """The day's kline (open, high, low, close) in 1e-8 units: every fill of the day lies inside."""
    bar = prices.pair_bar(prices.Leg(base, base_usd(base)), prices.Leg(quote, base_usd(quote)), day)
    o, h, low, c = prices.bar_ticks(bar, Decimal(1).scaleb(-8))
    return int(o * UNIT), int(h * UNIT), max(1, int(low * UNIT)), int(c * UNIT)


class Universe:
    """All coins and symbols, with lookups by symbol and by asset."""

    def __init__(self):
        self.symbols: dict[str, SymbolInfo] = {}
        self.by_asset: dict[str, list[SymbolInfo]] = {}
        self._build()
        self._all_symbols_json: bytes | None = None

    def _add(self, base: str, quote: str, status: str = "TRADING") -> None:
        info = SymbolInfo(base + quote, base, quote, status)
        if info.symbol in self.symbols:
            return
        self.symbols[info.symbol] = info
        self.by_asset.setdefault(base, []).append(info)
        self.by_asset.setdefault(quote, []).append(info)

    def _build(self) -> None:
        for base, quote in (("BTC", "USDT"), ("ETH", "USDT"), ("BNB", "USDT"), ("ETH", "BTC"), ("BNB", "BTC"),
                            ("BNB", "ETH"), ("BTC", "FDUSD"), ("FDUSD", "USDT"), ("USDC", "USDT"),
                            ("EUR", "USDT")):          # EURUSDT: the euro's price at Binance
            self._add(base, quote)
        for i, coin in enumerate(REAL_COINS):
            self._add(coin, "USDT")
            if REAL_COINS[coin] >= 0.05 and coin != "BTC":
                self._add(coin, "BTC")
            if i % 3 == 0 and REAL_COINS[coin] >= 0.5 and coin not in ("ETH", "BTC"):
                self._add(coin, "ETH")
            if i % 4 == 1 and REAL_COINS[coin] >= 0.5 and coin != "BNB":
                self._add(coin, "BNB")
        for coin in BUSD_DELISTED:
            self._add(coin, "BUSD", "BREAK")
        self._add("BUSD", "USDT", "BREAK")
        for coin in DELISTED_COINS:
            self._add(coin, "BTC", "BREAK")
            self._add(coin, "USDT", "BREAK")
        for i, coin in enumerate(invented_coins()):
            self._add(coin, "USDT")
            if i % 3 == 0 and base_usd(coin) >= 0.05:
                self._add(coin, "BTC")
            if i % 7 == 0 and base_usd(coin) >= 0.5:
                self._add(coin, "BNB")

    def get(self, symbol: str) -> SymbolInfo | None:
        return self.symbols.get(symbol)

    def pairs_of(self, asset: str) -> list[SymbolInfo]:
        return self.by_asset.get(asset, [])

    def find(self, base: str, quote: str) -> SymbolInfo | None:
        return self.symbols.get(base + quote)

    # -- exchangeInfo -----------------------------------------------------------------------
    def exchange_info_body(self, server_time: int, weight_limit: int, symbols: list[str] | None = None) -> bytes:
        """The whole document. The full symbol list (~1 MB) is rendered once and spliced in."""
        chosen = [self.symbols[s] for s in symbols] if symbols is not None else None
        head = dumps(self._info_document(server_time, weight_limit, chosen or []))
        if chosen is not None:
            return head
        if self._all_symbols_json is None:
            self._all_symbols_json = dumps([_symbol_document(s) for s in self.symbols.values()])
        return head.replace(b'"symbols":[]', b'"symbols":' + self._all_symbols_json, 1)

    def _info_document(self, server_time: int, weight_limit: int, symbols: list[SymbolInfo]) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": server_time,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_document(s) for s in symbols],   # the last key: see exchange_info_body
        }


def _symbol_document(s: SymbolInfo) -> dict:
    return {
        "symbol": s.symbol, "status": s.status,
        "baseAsset": s.base, "baseAssetPrecision": 8, "quoteAsset": s.quote, "quotePrecision": 8,
        "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": s.trading, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "1000000.00000000",
             "tickSize": "0.00000001"},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000000.00000000",
             "stepSize": "0.00000001"},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


@lru_cache(maxsize=1)
def universe() -> Universe:
    return Universe()


def fmt(units: int) -> str:
    """1e-8 units as Binance prints them: '0.01200000'."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // UNIT}.{units % UNIT:08d}"
