"""Kraken asset ids and pairs -> our canonical codes, from /0/public/Assets and AssetPairs.

An asset id maps through its `altname` (XXBT -> XBT -> BTC, ZUSD -> USD); shadow balances
(DOT.S staked, USDT.F auto-earn, XBT.M ...) map to their coin, so they merge into one
position (§4.7; backend/brokers/symbols.py strips the suffixes).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...dtos import AssetClass, AssetRef
from ...symbols import FIAT, canonical_code

EXCHANGE = "kraken"
FEE_CREDITS = "KFEE"            # fee credits, not an asset anyone holds (§4.4 Balance example)


class AssetBook:
    def __init__(self, assets: dict[str, Any], pairs: dict[str, Any]):
        self.assets = assets if isinstance(assets, dict) else {}
        self.pairs = pairs if isinstance(pairs, dict) else {}
        self._by_altname = {info.get("altname"): key for key, info in self.pairs.items() if isinstance(info, dict)}
        self._quoted: dict[tuple[str, str], str] = {}
        for key, info in self.pairs.items():
            if isinstance(info, dict) and info.get("base") and info.get("quote"):
                pair = (self.canonical(info["base"]), self.canonical(info["quote"]))
                self._quoted.setdefault(pair, key)

    def knows(self, code: str) -> bool:
        return code in self.assets

    def canonical(self, code: str) -> str:
        info = self.assets.get(code)
        altname = info.get("altname") if isinstance(info, dict) else None
        return canonical_code(altname or code)

    def is_fiat(self, code: str) -> bool:
        return self.canonical(code) in FIAT

    def asset_ref(self, code: str, quote: str = "USD") -> AssetRef:
        canonical = self.canonical(code)
        asset_class = AssetClass.FIAT if canonical in FIAT else AssetClass.CRYPTO
        return AssetRef(symbol=canonical, asset_class=asset_class, exchange=EXCHANGE, currency=quote)

    def pair(self, name: str) -> tuple[str, dict] | None:
        """(pair key, info) by key (XXBTZUSD, in trades) or altname (XBTUSD, in orders)."""
        key = name if name in self.pairs else self._by_altname.get(name)
        return (key, self.pairs[key]) if key else None

    def pair_sides(self, name: str) -> tuple[str, str] | None:
        """(base, quote) canonical codes of a pair."""
        found = self.pair(name)
        if not found:
            return None
        info = found[1]
        return self.canonical(info["base"]), self.canonical(info["quote"])

    def price_route(self, symbol: str) -> list[str] | None:
        """Pair keys whose last prices multiply into a USD price: [XXBTZUSD] or [ETHXBT, XXBTZUSD]."""
        direct = self._quoted.get((symbol, "USD"))
        if direct:
            return [direct]
        via = self._quoted.get((symbol, "BTC"))
        btc = self._quoted.get(("BTC", "USD"))
        return [via, btc] if via and btc else None


def last_price(ticker: dict[str, Any], route: list[str]) -> Decimal | None:
    price = Decimal(1)
    for key in route:
        entry = ticker.get(key)
        if not isinstance(entry, dict) or not entry.get("c"):
            return None
        price *= Decimal(str(entry["c"][0]))
    return price
