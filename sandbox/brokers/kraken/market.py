"""The public side of the simulated Kraken: assets, pairs and prices shared by every account.

Asset ids follow Kraken (docs/brokers.md §4.7): legacy coins carry an X prefix and
fiat a Z prefix (XXBT, XETH, ZUSD), newer coins none (DOT, SOL, USDT); staked and
auto-earn balances are read-only shadows with a suffix (DOT.S, ETH2.S, USDT.F).
Coins past the fixed list are invented deterministically (QAAA, QAAB, ...) so that an
account can hold up to 2,000 of them. Prices are fixed per coin: the sandbox needs
consistent valuations, not a market.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from decimal import Decimal

from ... import prices

SCALE_DECIMALS = 10                 # every amount is an int of 1e-10 units (Kraken's crypto ledger precision)
SCALE = 10 ** SCALE_DECIMALS
FIAT_DECIMALS = 4                   # ZUSD ledger/balance precision: "241983.1415" (§4.4)
LOT_DECIMALS = 8                    # trade volumes: "0.02000000" (§4.4 TradesHistory)


@dataclass(frozen=True)
class Coin:
    code: str                       # Kraken asset id: XXBT, DOT, QABC
    altname: str                    # XBT
    canonical: str                  # our code: BTC (the sim's own table, not backend/brokers/symbols.py)
    price: str                      # USD price, as Kraken would print it
    stake: str = ""                 # staked shadow asset (".S")
    earn: str = ""                  # auto-earn shadow asset (".F")


@dataclass(frozen=True)
class Fiat:
    code: str
    altname: str
    withdraw_fee: int               # in 1e-10 units


@dataclass(frozen=True)
class Pair:
    key: str                        # XXBTZUSD (trades, ledger) ...
    altname: str                    # XBTUSD (order descr.pair)
    base: str                       # asset ids
    quote: str
    pair_decimals: int
    cost_decimals: int
    price_units: int                # price * 10**pair_decimals

    @property
    def wsname(self) -> str:
        return f"{self.altname[:-len(self.quote_alt)]}/{self.quote_alt}"

    @property
    def quote_alt(self) -> str:
        return {"ZUSD": "USD", "ZEUR": "EUR", "XXBT": "XBT"}.get(self.quote, self.quote)


FIATS = {"ZUSD": Fiat("ZUSD", "USD", 5 * SCALE), "ZEUR": Fiat("ZEUR", "EUR", SCALE * 35 // 100),
         "ZGBP": Fiat("ZGBP", "GBP", SCALE * 35 // 100)}
FIAT_CANONICAL = {"ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP"}
# Fiat pairs Kraken lists (AssetPairs ZEURZUSD, ZGBPZUSD): what converts EUR and GBP.
FIAT_PAIRS = (("ZEUR", "ZUSD", 5), ("ZGBP", "ZUSD", 5))
EUR_PER_USD = (92, 100)

# The first coins an account holds, in this order (real Kraken ids and altnames).
REAL_COINS = (
    Coin("XXBT", "XBT", "BTC", "61250.0"),
    Coin("XETH", "ETH", "ETH", "3150.00", stake="ETH2.S"),
    Coin("SOL", "SOL", "SOL", "142.50", stake="SOL.S"),
    Coin("DOT", "DOT", "DOT", "6.8500", stake="DOT.S"),
    Coin("USDT", "USDT", "USDT", "1.0001", earn="USDT.F"),
    Coin("XXRP", "XRP", "XRP", "0.52310"),
    Coin("ADA", "ADA", "ADA", "0.451200", stake="ADA.S"),
    Coin("XLTC", "LTC", "LTC", "81.20"),
    Coin("XXDG", "XDG", "DOGE", "0.143200"),
    Coin("LINK", "LINK", "LINK", "14.820"),
    Coin("ATOM", "ATOM", "ATOM", "8.4120", stake="ATOM.S"),
    Coin("XXLM", "XLM", "XLM", "0.109400"),
    Coin("AVAX", "AVAX", "AVAX", "31.55"),
    Coin("UNI", "UNI", "UNI", "7.4200"),
    Coin("USDC", "USDC", "USDC", "1.0000"),
    Coin("XTZ", "XTZ", "XTZ", "0.81200", stake="XTZ.S"),
)
# OHLC "returns up to 720 of the most recent entries (older data cannot be retrieved,
# regardless of the value of since)" (docs.kraken.com api-reference get-ohlc-data).
OHLC_DEPTH = 720
OHLC_INTERVALS = frozenset({1, 5, 15, 30, 60, 240, 1440, 10080, 21600})
# Crypto-quoted pairs the generator trades (base, quote).
CROSS_PAIRS = (("XETH", "XXBT"), ("SOL", "XXBT"), ("DOT", "XXBT"))
EUR_PAIRS = ("XXBT", "XETH")


def _is_legacy(code: str) -> bool:
    """XXBT, XETH, ZUSD: the 4-letter prefixed ids whose pairs are keyed XXBTZUSD, not XBTUSD."""
    return len(code) == 4 and code[0] in "XZ"


def _price_decimals(price: float) -> int:
    """Kraken pair_decimals shrink as the price grows (XBTUSD 1, ETHUSD 2, XRPUSD 5)."""
    for bound, decimals in ((10_000, 1), (100, 2), (1, 4), (0.01, 5)):
        if price >= bound:
            return decimals
    return 7


def _invented(index: int) -> Coin:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    a, rest = divmod(index, 26 * 26)
    code = "Q" + letters[a % 26] + letters[(rest // 26)] + letters[rest % 26]
    digest = int(hashlib.sha256(code.encode()).hexdigest()[:8], 16)
    exponent = (digest % 6000) / 1000 - 3                     # USD 0.001 .. 1000
    price = 10 ** exponent
    decimals = _price_decimals(price)
    units = max(1, round(price * 10 ** decimals))
    return Coin(code, code, code, f"{units / 10 ** decimals:.{decimals}f}")


def price_units(text: str) -> tuple[int, int]:
    whole, _, frac = text.partition(".")
    return int(whole + frac), len(frac)


class Market:
    """The coin universe; grows when an account needs more coins. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.coins: list[Coin] = []
        self.by_code: dict[str, Coin] = {}
        self.shadows: dict[str, Coin] = {}                  # DOT.S -> DOT
        self.pairs: dict[str, Pair] = {}
        self.by_assets: dict[tuple[str, str], Pair] = {}
        self.by_altname: dict[str, Pair] = {}
        self._payloads: dict[str, dict] = {}
        self.ensure(len(REAL_COINS))
        for base, quote, decimals in FIAT_PAIRS:
            self._add(base, quote, decimals, round(prices.REFERENCE_USD[FIAT_CANONICAL[base]] * 10 ** decimals))

    def ensure(self, n: int) -> list[Coin]:
        """The first n coins (creating invented ones as needed)."""
        with self.lock:
            while len(self.coins) < n:
                i = len(self.coins)
                coin = REAL_COINS[i] if i < len(REAL_COINS) else _invented(i - len(REAL_COINS))
                self.coins.append(coin)
                self.by_code[coin.code] = coin
                for shadow in (coin.stake, coin.earn):
                    if shadow:
                        self.shadows[shadow] = coin
                self._add_pairs(coin)
                self._payloads.clear()
            return self.coins[:n]

    def _add_pairs(self, coin: Coin) -> None:
        units, decimals = price_units(coin.price)
        self._add(coin.code, "ZUSD", decimals, units)
        if coin.code in EUR_PAIRS:
            self._add(coin.code, "ZEUR", decimals, units * EUR_PER_USD[0] // EUR_PER_USD[1])
        for base, quote in CROSS_PAIRS:
            if coin.code in (base, quote) and base in self.by_code and quote in self.by_code:
                b, bd = price_units(self.by_code[base].price)
                q, qd = price_units(self.by_code[quote].price)
                self._add(base, quote, 5, b * 10 ** qd * 10 ** 5 // (q * 10 ** bd))

    def _add(self, base: str, quote: str, decimals: int, units: int) -> None:
        base_alt = self.by_code[base].altname if base in self.by_code else FIATS[base].altname
        quote_alt = {"ZUSD": "USD", "ZEUR": "EUR"}.get(quote) or self.by_code[quote].altname
        altname = base_alt + quote_alt
        key = base + quote if _is_legacy(base) and _is_legacy(quote) else altname
        cost_decimals = 5 if quote in FIATS else 8
        pair = Pair(key, altname, base, quote, decimals, cost_decimals, units)
        self.pairs[key] = pair
        self.by_assets[(base, quote)] = pair
        self.by_altname[altname] = pair

    # -- the sandbox market (sandbox/prices.py) ---------------------------------------------
    def leg(self, code: str) -> prices.Leg:
        if code in FIAT_CANONICAL:
            return prices.Leg(FIAT_CANONICAL[code])
        coin = self.by_code[code]
        return prices.Leg(coin.canonical, float(coin.price))

    def price_at(self, pair: Pair, t: float) -> int:
        """The pair's price at unix time t, in units of 10**-pair_decimals (a fill's price)."""
        value = prices.pair_price(self.leg(pair.base), self.leg(pair.quote), t)
        return max(1, round(value * 10 ** pair.pair_decimals))

    def bar(self, pair: Pair, day: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        tick = Decimal(1).scaleb(-pair.pair_decimals)
        return prices.bar_ticks(prices.pair_bar(self.leg(pair.base), self.leg(pair.quote), day), tick)

    def coin_of(self, code: str) -> Coin:
        """The coin behind an asset id, shadow balances included (DOT.S -> DOT)."""
        return self.by_code.get(code) or self.shadows[code]

    def usd_pair(self, base: str) -> Pair:
        return self.by_assets[(base, "ZUSD")]

    def pair_for(self, base: str, quote: str) -> Pair | None:
        return self.by_assets.get((base, quote))

    # -- public payloads --------------------------------------------------------------
    def assets_payload(self) -> dict:
        with self.lock:
            if "assets" not in self._payloads:
                self._payloads["assets"] = self._assets()
            return self._payloads["assets"]

    def _assets(self) -> dict:
        out = {code: _asset(fiat.altname, FIAT_DECIMALS, 2) for code, fiat in FIATS.items()}
        for coin in self.coins:
            out[coin.code] = _asset(coin.altname, SCALE_DECIMALS, 5)
            for shadow in (coin.stake, coin.earn):
                if shadow:
                    out[shadow] = _asset(shadow, SCALE_DECIMALS, 5)
        return out

    def pairs_payload(self) -> dict:
        with self.lock:
            if "pairs" not in self._payloads:
                self._payloads["pairs"] = {p.key: _pair_info(p) for p in self.pairs.values()}
            return self._payloads["pairs"]

    def ticker_payload(self, now: float, keys: list[str] | None = None) -> dict:
        """Ticker at the sandbox clock: the last trade ("c") is the market's price now."""
        with self.lock:
            pairs = [self.pairs[k] for k in keys] if keys is not None else list(self.pairs.values())
        return {p.key: _ticker(p, self.price_at(p, now), self.bar(p, prices.day_of(now))) for p in pairs}

    def ohlc(self, pair: Pair, now: float, since: int | None) -> tuple[list[list], int]:
        """Daily entries of the last OHLC_DEPTH days (today's, not yet committed, last), from
        `since` on; and `last`, the time of the newest committed entry (Kraken's paging id)."""
        today = prices.day_of(now)
        first = today - OHLC_DEPTH + 1
        if since is not None:
            first = max(first, since // prices.DAY)
        rows = []
        for day in range(first, today + 1):
            o, h, low, c = self.bar(pair, day)
            if day == today:
                c = Decimal(fmt_int(self.price_at(pair, now), pair.pair_decimals))
            volume = prices.volume(pair.base, day)
            rows.append([day * prices.DAY, str(o), str(h), str(low), str(c), str(((h + low) / 2).quantize(o)),
                         f"{volume:.8f}", 100 + day % 900])
        return rows, (today - 1) * prices.DAY

    def pair_key(self, name: str) -> str | None:
        """A pair key from a key (XXBTZUSD) or altname (XBTUSD), as Kraken's `pair` params accept."""
        pair = self.pairs.get(name) or self.by_altname.get(name)
        return pair.key if pair else None

    def asset_id(self, name: str) -> str | None:
        """An asset id from an id (XXBT) or altname (XBT)."""
        assets = self.assets_payload()
        if name in assets:
            return name
        return next((code for code, info in assets.items() if info["altname"] == name), None)


def _asset(altname: str, decimals: int, display: int) -> dict:
    # Shape from KSDK market.get_assets docstring.
    return {"aclass": "currency", "altname": altname, "decimals": decimals, "display_decimals": display,
            "collateral_value": 1.0 if altname in ("XBT", "USD", "EUR") else 0.7, "status": "enabled"}


def _pair_info(p: Pair) -> dict:
    # Shape from KSDK market.get_asset_pairs docstring (fees lists deprecated, empty).
    return {"altname": p.altname, "wsname": p.wsname, "aclass_base": "currency", "base": p.base,
            "aclass_quote": "currency", "quote": p.quote, "lot": "unit", "cost_decimals": p.cost_decimals,
            "pair_decimals": p.pair_decimals, "lot_decimals": LOT_DECIMALS, "lot_multiplier": 1,
            "leverage_buy": [], "leverage_sell": [], "fees": [], "fees_maker": [],
            "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001",
            "costmin": "0.5", "tick_size": fmt_int(1, p.pair_decimals), "status": "online"}


def _ticker(p: Pair, units: int, bar: tuple) -> dict:
    price = fmt_int(units, p.pair_decimals)
    o, h, low, _ = (str(v) for v in bar)
    return {"a": [price, "1", "1.000"], "b": [price, "1", "1.000"], "c": [price, "0.01000000"],
            "v": ["100.00000000", "250.00000000"], "p": [price, price], "t": [120, 300],
            "l": [low, low], "h": [h, h], "o": o}


def fmt_int(units: int, decimals: int) -> str:
    """An integer count of 10**-decimals as Kraken prints it: "-24.5000"."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10 ** decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}" if decimals else f"{sign}{whole}"


def fmt_amount(units: int, decimals: int) -> str:
    """A 1e-10-unit amount printed with `decimals` places (it must be a multiple of them)."""
    return fmt_int(units // 10 ** (SCALE_DECIMALS - decimals) if units >= 0
                   else -((-units) // 10 ** (SCALE_DECIMALS - decimals)), decimals)


def asset_decimals(code: str) -> int:
    return FIAT_DECIMALS if code in FIATS else SCALE_DECIMALS
