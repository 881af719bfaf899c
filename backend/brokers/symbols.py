"""One canonical code per coin, whatever an exchange calls it.

Kraken prefixes legacy assets (XXBT, XETH, ZUSD, ZEUR) and says XBT for BTC and XDG
for DOGE; Coinbase once said CGLD for CELO. The exchange's own symbol is kept on the
row; the canonical code is what Asset rows are keyed on.
"""
from __future__ import annotations

from .dtos import AssetClass, AssetRef

ALIASES = {"XBT": "BTC", "XXBT": "BTC", "XDG": "DOGE", "XXDG": "DOGE", "CGLD": "CELO",
           "XETH": "ETH", "XLTC": "LTC", "XXRP": "XRP", "XXLM": "XLM", "XETC": "ETC",
           "XZEC": "ZEC", "XXMR": "XMR", "XREP": "REP", "XMLN": "MLN"}
FIAT = frozenset({"USD", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF"})
KRAKEN_FIAT = {"Z" + f: f for f in FIAT}
# Kraken's read-only shadow balances: staked (.S), opt-in rewards (.M), yield (.B), auto-earn (.F).
KRAKEN_SUFFIXES = (".S", ".M", ".B", ".F", ".P", ".HOLD")


def canonical_code(code: str) -> str:
    """BTC for XBT/XXBT/BTC, USD for ZUSD, ETH for XETH/ETH2.S... (upper-cased)."""
    code = code.upper()
    for suffix in KRAKEN_SUFFIXES:
        if code.endswith(suffix):
            code = code[: -len(suffix)]
            break
    if code == "ETH2":
        return "ETH"
    if code in KRAKEN_FIAT:
        return KRAKEN_FIAT[code]
    return ALIASES.get(code, code)


def coin_asset(code: str, *, quote: str = "USD", exchange: str = "") -> AssetRef:
    """The AssetRef of a coin or fiat balance."""
    canonical = canonical_code(code)
    asset_class = AssetClass.FIAT if canonical in FIAT else AssetClass.CRYPTO
    return AssetRef(symbol=canonical, asset_class=asset_class, exchange=exchange, currency=quote)
