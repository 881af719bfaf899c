"""One deterministic market for the whole sandbox: every simulator fills at, and every
market-data endpoint serves, prices from this model.

Each asset has a USD path keyed by its canonical code (BTC is one path at Alpaca, Binance,
Kraken and Coinbase). Daily closes come from the code alone: a slow mean-reverting wave plus
hashed day noise around a reference level, so any day is computed in O(1) without walking
from an origin. Within a UTC day the price goes from the previous close (the open) to the
day's close with a bounded wiggle, so

    low(day) <= price(t) <= high(day)    for every t in the day,

and a fill drawn at time t lies inside that day's bar on every broker, whatever its tick
(bars round their high up and their low down; fills round to nearest). A pair's price is
base / quote in USD; its bar bounds are the base's bounds over the quote's. The latest price
is simply `price(t)` at the sandbox clock, so advancing the clock moves it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache

DAY = 86_400

# Reference USD levels for codes more than one simulator lists (so BTC agrees everywhere);
# a simulator's own invented codes pass their level in as `ref`.
REFERENCE_USD: dict[str, float] = {
    "BTC": 60000, "ETH": 3000, "BNB": 550, "SOL": 150, "XRP": 0.55, "ADA": 0.45, "DOGE": 0.15, "DOT": 7,
    "LTC": 80, "LINK": 15, "AVAX": 35, "MATIC": 0.7, "ATOM": 9, "TRX": 0.12, "UNI": 8, "XLM": 0.11, "ETC": 27,
    "FIL": 6, "NEAR": 6, "ALGO": 0.18, "AAVE": 95, "XTZ": 0.9, "BCH": 350, "MKR": 2400, "YFI": 7000,
    "SUSHI": 1.1, "BAT": 0.25, "CRV": 0.45, "GRT": 0.2, "ARB": 1.1, "OP": 2.5, "APT": 9, "SUI": 1.2,
    "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "USDT": 1.0, "USDC": 1.0, "FDUSD": 1.0, "BUSD": 1.0,
}
FIAT = frozenset({"USD", "EUR", "GBP"})
STABLE = frozenset({"USDT", "USDC", "FDUSD", "BUSD"})
# Daily volatility by kind (log units): crypto ~3%, equities ~1.5% (long-run realised
# figures of the asset classes, rounded), FX majors ~0.4%, a stablecoin ~0.03% of its peg.
VOL = {"crypto": 0.03, "equity": 0.015, "fiat": 0.004, "stable": 0.0003}
WAVE = {"crypto": 0.35, "equity": 0.2, "fiat": 0.05, "stable": 0.0005}      # slow swing amplitude


def kind_of(code: str, equity: bool = False) -> str:
    if code in FIAT:
        return "fiat"
    if code in STABLE:
        return "stable"
    return "equity" if equity else "crypto"


def _mix(x: int) -> int:
    """splitmix64: a fast, well-spread integer hash (the sandbox calls this ~10^6 times)."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _unit(x: int) -> float:
    """A hash mapped to [-1, 1)."""
    return (_mix(x) >> 11) / float(1 << 52) - 1.0


@dataclass(frozen=True, eq=False)      # hashed by identity: one cached instance per asset
class _Path:
    seed: int
    ref: float
    vol: float
    wave: float
    period1: float
    period2: float
    phase1: float
    phase2: float
    wiggles: int
    closes: dict = field(default_factory=dict, repr=False)      # day -> close, filled on use


@lru_cache(maxsize=None)
def _path(code: str, ref: float, kind: str) -> _Path:
    seed = _mix(int.from_bytes(code.encode()[:24].ljust(24, b"\0"), "big") & 0xFFFFFFFFFFFFFFFF ^ len(code))
    h = [_mix(seed + i) for i in range(5)]
    return _Path(seed=seed, ref=ref, vol=VOL[kind], wave=WAVE[kind],
                 period1=60 + h[0] % 300, period2=500 + h[1] % 900,
                 phase1=(h[2] % 1000) / 1000 * 2 * math.pi, phase2=(h[3] % 1000) / 1000 * 2 * math.pi,
                 wiggles=3 + h[4] % 6)


def _ref(code: str, ref: float | None) -> float:
    found = REFERENCE_USD.get(code)
    return float(found if found is not None else (ref if ref is not None else 1.0))


def _close(p: _Path, day: int) -> float:
    """The close of UTC day number `day` (days since 1970-01-01), computed once per asset and day."""
    found = p.closes.get(day)
    if found is None:
        found = p.closes[day] = _compute_close(p, day)
    return found


def _compute_close(p: _Path, day: int) -> float:
    swing = p.wave * (0.7 * math.sin(2 * math.pi * day / p.period1 + p.phase1)
                      + 0.3 * math.sin(2 * math.pi * day / p.period2 + p.phase2))
    return p.ref * math.exp(swing + p.vol * 1.2 * _unit(p.seed ^ (day * 0x632BE59BD9B4E019)))


def _bounds(p: _Path, day: int) -> tuple[float, float, float, float]:
    """(open, high bound, low bound, close) of a UTC day in USD."""
    o, c = _close(p, day - 1), _close(p, day)
    w = p.vol * 0.5 * min(o, c)
    return o, max(o, c) + w, min(o, c) - w, c


def _at(p: _Path, t: float) -> float:
    day = math.floor(t / DAY)
    f = t / DAY - day
    closes = p.closes                          # inlined _close: the generators call this ~10^6 times
    o = closes.get(day - 1)
    if o is None:
        o = _close(p, day - 1)
    c = closes.get(day)
    if c is None:
        c = _close(p, day)
    w = p.vol * 0.5 * (o if o < c else c)
    phase = (p.seed ^ day) % 1000 * _PHASE
    return o + (c - o) * f + w * math.sin(math.pi * f) * math.sin(_TAU * p.wiggles * f + phase)


_TAU = 2 * math.pi
_PHASE = _TAU / 1000


# -- public: USD per unit ------------------------------------------------------------------
@lru_cache(maxsize=None)
def _path_for(code: str, ref: float | None, equity: bool) -> _Path:
    return _path(code, _ref(code, ref), kind_of(code, equity))


def usd(code: str, t: float, *, ref: float | None = None, equity: bool = False) -> float:
    """One `code` in USD at `t` (unix seconds)."""
    if code == "USD":
        return 1.0
    return _at(_path_for(code, ref, equity), t)


def usd_bar(code: str, day: int, *, ref: float | None = None, equity: bool = False) -> tuple[float, float, float, float]:
    if code == "USD":
        return 1.0, 1.0, 1.0, 1.0
    return _bounds(_path_for(code, ref, equity), day)


@dataclass(frozen=True)
class Leg:
    """One side of a pair: its code and the level an invented code starts from."""

    code: str
    ref: float | None = None
    equity: bool = False


def pair_price(base: Leg, quote: Leg, t: float) -> float:
    return usd(base.code, t, ref=base.ref, equity=base.equity) / usd(quote.code, t, ref=quote.ref,
                                                                        equity=quote.equity)


def pair_bar(base: Leg, quote: Leg, day: int) -> tuple[float, float, float, float]:
    """(open, high, low, close) of base in quote on UTC day `day`: high and low bound every
    price `pair_price` gives inside the day."""
    bo, bh, bl, bc = usd_bar(base.code, day, ref=base.ref, equity=base.equity)
    qo, qh, ql, qc = usd_bar(quote.code, day, ref=quote.ref, equity=quote.equity)
    return bo / qo, bh / ql, bl / qh, bc / qc


def day_of(t: float) -> int:
    return math.floor(t / DAY)


# -- rounding to a venue's tick -----------------------------------------------------------------
def to_tick(value: float, tick: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """`value` on the grid of `tick`, rounded to nearest (half up), up or down. Integer
    steps on the float keep the order every bar relies on: for x <= y,
    floor(x) <= round(x) <= ceil(x) <= ceil(y). (Decimal(repr(x)).quantize took a third of
    a large account's generation time.)"""
    exponent = _exponent(tick)
    scaled = value * 10.0 ** -exponent
    if rounding == ROUND_CEILING:
        units = math.ceil(scaled)
    elif rounding == ROUND_FLOOR:
        units = math.floor(scaled)
    else:
        units = math.floor(scaled + 0.5)
    return Decimal(units).scaleb(exponent)


@lru_cache(maxsize=64)
def _exponent(tick: Decimal) -> int:
    return tick.normalize().as_tuple().exponent


def bar_ticks(bar: tuple[float, float, float, float], tick: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """A bar at a venue's tick: the high rounded up and the low down, so a fill rounded to
    the nearest tick still lies inside."""
    o, h, low, c = bar
    return (to_tick(o, tick), to_tick(h, tick, ROUND_CEILING), to_tick(low, tick, ROUND_FLOOR), to_tick(c, tick))


def volume(code: str, day: int) -> Decimal:
    """A plausible daily volume (bars need one; nothing depends on it)."""
    return Decimal(1000 + _mix(hash_code(code) ^ day) % 100_000).scaleb(-2)


@lru_cache(maxsize=None)
def hash_code(code: str) -> int:
    return _path(code, 1.0, "crypto").seed
