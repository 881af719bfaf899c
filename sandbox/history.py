"""The sandbox's own truth for value history: for a generated account, its holdings at the
end of each UTC day (replayed from its own generated records, never from what brokersync
stored) and each holding's close that day from the sandbox market, so its value per day.

    GET /control/accounts/{id}/history[?from=YYYY-MM-DD&to=YYYY-MM-DD&currency=EUR]
    {"days": [{"day", "holdings": {code: qty}, "closes": {code: {"quote", "close"}},
               "value": {currency: amount}, "unpriced": [code held], "moved_unpriced": [code moved that day]
               [, "rates": {currency: rate into `currency`}, "total": amount in `currency`]}]}

Value is per currency: cash counts in its own currency, a holding in the quote of the market
the broker itself lists it in (Binance: USDT; the others: USD; IBKR: Alpaca's US listing).
With `currency`, each day's total is converted at the market model's own closes of each
currency (unrounded: a venue lists them at its tick). A day's close is that day's bar close
(an equity on a weekend or holiday: the last weekday's, as a price store's lookback does).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from . import prices

EPOCH = date(1970, 1, 1)
# (unix seconds, code, is cash, quantity change)
Movement = tuple[float, str, bool, Decimal]
# code, day -> (quote, close) or None when the broker's market does not price it
CloseOf = Callable[[str, int], "tuple[str, Decimal] | None"]


def daily_values(movements: Iterable[Movement], close_of: CloseOf, *, first: date | None = None,
                 last: date | None = None) -> list[dict[str, Any]]:
    moves = sorted(movements, key=lambda m: m[0])
    if not moves:
        return []
    start = first or (EPOCH + timedelta(days=math.floor(moves[0][0] / prices.DAY)))
    end = last or (EPOCH + timedelta(days=math.floor(moves[-1][0] / prices.DAY)))
    holdings: dict[str, Decimal] = defaultdict(Decimal)
    cash: set[str] = set()
    days, i = [], 0
    day = EPOCH + timedelta(days=math.floor(moves[0][0] / prices.DAY))
    while day <= end:
        boundary = ((day - EPOCH).days + 1) * prices.DAY
        moved = set()
        while i < len(moves) and moves[i][0] < boundary:
            _, code, is_cash, change = moves[i]
            holdings[code] += change
            if is_cash:
                cash.add(code)
            else:
                moved.add(code)
            i += 1
        if day >= start:
            entry = _day(day, holdings, cash, close_of)
            entry["moved_unpriced"] = sorted(c for c in moved if close_of(c, (day - EPOCH).days) is None)
            days.append(entry)
        day += timedelta(days=1)
    return days


def _day(day: date, holdings: dict[str, Decimal], cash: set[str], close_of: CloseOf) -> dict[str, Any]:
    value: dict[str, Decimal] = defaultdict(Decimal)
    closes, unpriced, held = {}, [], {}
    for code, qty in sorted(holdings.items()):
        if qty == 0:
            continue
        held[code] = str(qty)
        if code in cash:
            value[code] += qty
            continue
        close = close_of(code, (day - EPOCH).days)
        if close is None:
            unpriced.append(code)
            continue
        quote, price = close
        closes[code] = {"quote": quote, "close": str(price)}
        value[quote] += qty * price
    return {"day": day.isoformat(), "holdings": held, "closes": closes,
            "value": {k: str(v) for k, v in sorted(value.items())}, "unpriced": unpriced}


def last_weekday(day: int) -> int:
    while (EPOCH + timedelta(days=day)).weekday() >= 5:
        day -= 1
    return day


# -- each simulator's movements and closes ------------------------------------------------------
def alpaca(account) -> tuple[list[Movement], CloseOf]:
    from .brokers.alpaca.marketdata import _bar
    from .brokers.alpaca.records import Fill
    from .brokers.alpaca.universe import lookup

    moves: list[Movement] = []
    for a in account.ledger.acts:
        t = a.t_us / 1e6
        if isinstance(a, Fill):
            moves += [(t, a.asset.canonical, False, a.signed_qty), (t, "USD", True, -(a.signed_qty * a.price))]
        elif a.status != "canceled":
            moves.append((t, "USD", True, a.net))
            if a.holding_qty:
                moves.append((t, a.asset.canonical, False, a.holding_qty))
    infos = {a.asset.canonical: a.asset for a in account.ledger.acts if getattr(a, "asset", None) is not None}

    def close_of(code: str, day: int):
        info = infos.get(code) or lookup(code)
        if info is None:
            return None
        return "USD", Decimal(str(_bar(info, day if info.is_crypto else last_weekday(day))["c"]))
    return moves, close_of


def kraken(account, market, today: int) -> tuple[list[Movement], CloseOf]:
    """Kraken's OHLC answers only its newest OHLC_DEPTH days: an older day's close is the
    next venue's that lists the coin (Coinbase's USD book, else Binance's USDT pair)."""
    from .brokers.coinbase import market as coinbase
    from .brokers.kraken.market import FIAT_CANONICAL, OHLC_DEPTH, SCALE

    def code_of(asset: str) -> str:
        return FIAT_CANONICAL.get(asset) or market.coin_of(asset).canonical

    moves = [(row.t4 / 1e4, code_of(row.asset), row.asset in FIAT_CANONICAL,
              Decimal(row.amount - row.fee) / SCALE) for row in account.ledger.items]
    usd = {c.canonical: market.usd_pair(c.code) for c in market.coins}

    reach = today - OHLC_DEPTH + 1
    listed = set(coinbase.catalogue(set()))

    def close_of(code: str, day: int):
        pair = usd.get(code)
        if pair is None:
            return None
        if day >= reach:
            return "USD", market.bar(pair, day)[3]
        if f"{code}-USD" in listed:
            return "USD", coinbase.bar(f"{code}-USD", day)[3]
        return _binance_close(code, day)
    return moves, close_of


def coinbase(book) -> tuple[list[Movement], CloseOf]:
    from backend.brokers.symbols import canonical_code

    from .brokers.coinbase import market
    from .brokers.coinbase.state import FIAT

    moves = [(tx.t / 1e6, canonical_code(w.currency), w.currency in FIAT, tx.amount)
             for w in book.wallet_list for tx in w.txs if tx.status == "completed"]

    def close_of(code: str, day: int):
        if code == "USDC":
            # A stablecoin is priced like any coin: Coinbase has no USDC-USD book, its price
            # is the USDC-EUR book's (in euros, converted like any currency).
            return "EUR", market.bar("USDC-EUR", day)[3]
        return "USD", market.bar(f"{code}-USD", day)[3]
    return moves, close_of


def binance(account) -> tuple[list[Movement], CloseOf]:
    from .brokers.binance.universe import UNIT

    moves: list[Movement] = []
    unit = Decimal(UNIT)
    for book in account.books.values():
        info = book.info
        for tr in book.trades:
            sign = 1 if tr.is_buyer else -1
            t = tr.time / 1000
            moves += [(t, info.base, False, sign * tr.qty / unit), (t, info.quote, False, -sign * tr.quote_qty / unit)]
            if tr.commission:
                moves.append((t, tr.commission_asset, False, -tr.commission / unit))
    for d in account.deposits.items:
        if d.credited:
            moves.append((d.insert_time / 1000, d.coin, False, d.amount / unit))
    for w in account.withdrawals.items:
        if w.debited:
            moves.append((w.apply_time / 1000, w.coin, False, -(w.amount + w.fee) / unit))
    for dv in account.dividends.items:
        moves.append((dv.div_time / 1000, dv.asset, False, dv.direction * dv.amount / unit))

    def close_of(code: str, day: int):
        if code == "USDT":
            return "USDT", Decimal(1)                  # the quote itself: counted in its own currency
        return _binance_close(code, day)
    return moves, close_of


def _binance_close(code: str, day: int) -> "tuple[str, Decimal] | None":
    from .brokers.binance.universe import UNIT, bar_units, universe

    for quote in ("USDT", "USDC", "FDUSD", "BTC"):
        info = universe().find(code, quote)
        if info is not None and info.trading:
            return quote, Decimal(bar_units(code, quote, day)[3]) / Decimal(UNIT)
    return None


def ibkr(account) -> tuple[list[Movement], CloseOf]:
    """IBKR has no market data of its own: a US-listed stock is priced by Alpaca's market
    (its close there); anything else (a listing abroad, an option, a bond) is unpriced."""
    from .brokers.alpaca.marketdata import _bar
    from .brokers.alpaca.universe import lookup

    moves: list[Movement] = []
    for e in account.events:
        if e.holding is not None:
            moves.append((e.at, e.holding[0], False, e.holding[1]))
        moves += [(e.at, currency, True, change) for currency, change in e.cash]
    instruments = account.instruments

    def close_of(code: str, day: int):
        inst = instruments.get(code)
        if inst is None or inst.category != "STK" or inst.currency != "USD":
            return None
        info = lookup(inst.symbol)
        if info is None or info.is_crypto:
            return None
        return "USD", Decimal(str(_bar(info, last_weekday(day))["c"]))
    return moves, close_of


def in_currency(days: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    """Each day's value converted into `base` at the market model's own closes of each
    currency that day (unrounded: a venue lists them at its tick), as `total`, with the rates."""
    for entry in days:
        day = (date.fromisoformat(entry["day"]) - EPOCH).days
        rates = {code: _rate(code, base, day) for code in entry["value"]}
        entry["rates"] = {code: str(rate) for code, rate in rates.items()}
        entry["total"] = str(sum((Decimal(v) * rates[code] for code, v in entry["value"].items()), Decimal(0)))
    return days


def _rate(code: str, base: str, day: int) -> Decimal:
    if code == base:
        return Decimal(1)
    return Decimal(repr(prices.usd_bar(code, day)[3])) / Decimal(repr(prices.usd_bar(base, day)[3]))


def for_account(sim, account_id: str, *, first: date | None = None, last: date | None = None,
                currency: str | None = None) -> list[dict]:
    """The daily history of one sandbox account, whichever simulator holds it; with
    `currency`, each day's total in it too."""
    if sim.name == "alpaca":
        moves, close_of = alpaca(sim.account(account_id))
    elif sim.name == "kraken":
        moves, close_of = kraken(sim.account(account_id), sim.market, prices.day_of(sim.clock.now()))
    elif sim.name == "coinbase":
        moves, close_of = coinbase(sim.book(account_id))
    elif sim.name == "binance":
        moves, close_of = binance(sim._account(account_id))
    elif sim.name == "ibkr":
        moves, close_of = ibkr(sim.account(account_id))
    else:
        raise ValueError(f"no history truth for {sim.name}")
    days = daily_values(moves, close_of, first=first, last=last)
    return in_currency(days, currency) if currency else days
