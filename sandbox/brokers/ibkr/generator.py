"""Deterministic IBKR accounts: a USD account trading US, German and British shares, an option
and a Treasury bond, converting USD to EUR and GBP, earning dividends (less withholding tax)
and interest, paying fees, moving shares and cash in and out, and living through a split, a
reverse split, a spin-off and a cash merger. The same seed gives the same account."""
from __future__ import annotations

import random
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from . import records
from .ledger import BASE, EASTERN, Account, Event, Instrument
from .records import money

NAMED = [
    ("AAPL", "STK", "USD", "NASDAQ", "APPLE INC", "US0378331005", "190"),
    ("SAP", "STK", "EUR", "IBIS", "SAP SE", "DE0007164600", "180"),
    ("VOD", "STK", "GBP", "LSE", "VODAFONE GROUP PLC", "GB00BH4HKS39", "0.72"),
    ("AAPL  251219C00200000", "OPT", "USD", "CBOE", "AAPL 19DEC25 200 C", "", "8.5"),
    ("T 4 1/4 11/15/34", "BOND", "USD", "", "T 4 1/4 11/15/34", "US91282CLW90", "98.5"),
    ("MSFT", "STK", "USD", "NASDAQ", "MICROSOFT CORP", "US5949181045", "410"),
    ("SIE", "STK", "EUR", "IBIS", "SIEMENS AG-REG", "DE0007236101", "170"),
    ("HSBA", "STK", "GBP", "LSE", "HSBC HOLDINGS PLC", "GB0005405286", "6.4"),
    ("VTI", "STK", "USD", "ARCA", "VANGUARD TOTAL STOCK MKT ETF", "US9229087690", "250"),
    ("JNJ", "STK", "USD", "NYSE", "JOHNSON & JOHNSON", "US4781601046", "155"),
]
WITHHOLDING = {"USD": Decimal("0.15"), "EUR": Decimal("0.26375"), "GBP": Decimal(0)}
DAY = 86_400


def _instrument(account: Account, spec: tuple, conid: int) -> Instrument:
    symbol, category, currency, exchange, description, isin, _ = spec
    extra: tuple = ()
    multiplier = Decimal(1)
    if category == "OPT":
        multiplier = Decimal(100)
        extra = (("putCall", "C"), ("strike", "200"), ("expiry", "20251219"), ("underlyingSymbol", "AAPL"))
    elif category == "BOND":
        multiplier = Decimal("0.01")        # quoted per 100 of face value
    return Instrument(symbol, category, currency, exchange, str(conid), description, multiplier, isin, extra)


def universe(account: Account, count: int) -> list[tuple[Instrument, Decimal]]:
    """`count` instruments with a starting price: the named ones, then made-up US tickers."""
    out = []
    for i in range(count):
        if i < len(NAMED):
            spec = NAMED[i]
            out.append((_instrument(account, spec, 265598 + i * 1009), Decimal(spec[-1])))
        else:
            ticker = "Z" + "".join(chr(65 + (i // 26 ** k) % 26) for k in range(3))
            spec = (ticker, "STK", "USD", "NYSE", f"{ticker} HOLDINGS INC", "", str(10 + i % 90))
            out.append((_instrument(account, spec, 400000 + i), Decimal(spec[-1])))
    for inst, _ in out:
        account.instruments[inst.key] = inst
    return out


class Builder:
    """Adds events to an account in time order, keeping cash in each currency above zero."""

    def __init__(self, account: Account, rng: random.Random):
        self.account, self.rng = account, rng
        self.fx = {c: Instrument(f"{c}.USD", "CASH", "USD", "IDEALFX", str(12087792 + i), f"{c}.USD")
                   for i, c in enumerate(("EUR", "GBP"))}
        self.prices = account.prices

    def price(self, inst: Instrument) -> Decimal:
        base = self.prices.get(inst.key, Decimal(100))
        step = Decimal(self.rng.randint(-200, 220)) / Decimal(10_000)
        self.prices[inst.key] = max(Decimal("0.05"), (base * (1 + step)).quantize(Decimal("0.0001")))
        return self.prices[inst.key]

    def buy(self, inst: Instrument, at: float, quantity: Decimal) -> None:
        cost = quantity * self.price(inst) * inst.multiplier + Decimal(10)
        if inst.currency != BASE and self.account.cash.get(inst.currency, Decimal(0)) < cost:
            self.convert(inst.currency, at - 60, (cost * 2).quantize(Decimal(1)))
        self.fill(inst, at, quantity)

    def fill(self, inst: Instrument, at: float, quantity: Decimal, splits: int = 1) -> list[Event]:
        """An order of `splits` executions a few seconds apart, then its ORDER row."""
        order_id, price, done = self.account.new_id(), self.prices.get(inst.key) or self.price(inst), []
        half = quantity // 2
        parts = [quantity] if splits == 1 or not half else [half, quantity - half]
        for n, part in enumerate(parts):
            done.append(self.account.add(records.trade(self.account, inst, at + n * 7, part, price, order_id)))
        self.account.add(records.order(self.account, inst, done, order_id, at - 30))
        return done

    def convert(self, currency: str, at: float, amount: Decimal) -> None:
        inst = self.fx[currency]
        self.prices.setdefault(inst.key, records.FX_TO_BASE[currency])
        self.fill(inst, at, amount)

    def sell(self, inst: Instrument, at: float, quantity: Decimal) -> None:
        self.price(inst)
        self.fill(inst, at, -quantity, splits=self.rng.choice((1, 2)))

    def dividend(self, inst: Instrument, at: float) -> None:
        held = self.account.holdings.get(inst.key, Decimal(0))
        if held <= 0 or inst.category != "STK":
            return
        action = self.account.new_id()
        gross = money(held * Decimal(self.rng.randint(10, 90)) / 100)
        text = f"{inst.symbol}({inst.isin or inst.conid}) CASH DIVIDEND {inst.currency} PER SHARE"
        self.account.add(records.cash(self.account, at, "Dividends", gross, inst.currency, inst, text, action))
        tax = money(gross * WITHHOLDING[inst.currency])
        if tax:
            self.account.add(records.cash(self.account, at, "Withholding Tax", -tax, inst.currency, inst,
                                          f"{inst.symbol} CASH DIVIDEND - TAX", action))


def generate(account: Account, rng: random.Random, *, positions: int, activities: int, history_days: int) -> None:
    builder = Builder(account, rng)
    held = universe(account, max(positions, 3) + 2)
    for inst, price in held:
        builder.prices[inst.key] = price
    start = _at(account.opened, 10)
    account.add(records.cash(account, start, "Deposits & Withdrawals", Decimal(250_000), BASE,
                             description="CASH RECEIPTS / ELECTRONIC FUND TRANSFERS"))
    keep = [inst for inst, _ in held[:max(positions, 3)]]
    closing = [inst for inst, _ in held[max(positions, 3):]]
    for n, inst in enumerate(keep + closing):
        builder.buy(inst, start + 600 + n * 600, _lot(inst, rng))
    span = max(1, history_days - 2) * DAY
    times = sorted(start + DAY + rng.random() * span for _ in range(max(0, activities - len(keep) * 2)))
    specials = _specials(builder, keep, closing, start + DAY, span)
    for at in times:
        while specials and specials[0][0] <= at:
            specials.pop(0)[1]()
        _one(builder, keep, rng, at)
    for _, action in specials:
        action()


def _specials(builder: Builder, keep: list[Instrument], closing: list[Instrument], t0: float, span: float):
    a, stocks = builder.account, [i for i in keep if i.category == "STK"]
    usd = [i for i in stocks if i.currency == BASE] or stocks
    spinco = Instrument("SPNC", "STK", "USD", "NYSE", "SPINCO INC (SPIN-OFF)", str(900001), isin="US0000SPNC01")
    a.instruments[spinco.key] = spinco

    def at(share: float) -> float:
        return t0 + span * share

    def acats():
        a.add(records.security_transfer(a, usd[0], at(0.05), "ACATS", Decimal(40), "Other Broker 123"))

    def split():
        held = a.holdings.get(usd[0].key, Decimal(0))
        a.add(records.corporate_action(a, usd[0], at(0.4), "FS", held * 3, a.new_id(),
                                       f"{usd[0].symbol} SPLIT 4 FOR 1"))

    def reverse():
        inst = closing[0]
        held = a.holdings.get(inst.key, Decimal(0))
        action = a.new_id()
        text = f"{inst.symbol} SPLIT 1 FOR 10"
        a.add(records.corporate_action(a, inst, at(0.5), "RS", -held, action, text))
        a.add(records.corporate_action(a, inst, at(0.5) + 1, "RS", (held / 10).to_integral_value() or Decimal(1),
                                       action, text))

    def spinoff():
        parent = usd[-1]
        shares = (a.holdings.get(parent.key, Decimal(0)) / 5).to_integral_value() or Decimal(1)
        a.add(records.corporate_action(a, spinco, at(0.6), "SO", shares, a.new_id(),
                                       f"{parent.symbol} SPINOFF 1 SPNC FOR 5 {parent.symbol}"))

    def merger():
        inst = closing[-1]
        held = a.holdings.get(inst.key, Decimal(0))
        if held > 0:
            a.add(records.corporate_action(a, inst, at(0.7), "TC", -held, a.new_id(),
                                           f"{inst.symbol} MERGED FOR USD 25 PER SHARE", money(held * 25)))

    def internal():
        a.add(records.security_transfer(a, usd[0], at(0.8), "INTERNAL", Decimal(-5), "U7654321"))
        a.add(records.cash_transfer(a, at(0.85), BASE, Decimal(-1500), "U7654321"))

    return [(at(s), f) for s, f in ((0.05, acats), (0.4, split), (0.5, reverse), (0.6, spinoff), (0.7, merger),
                                    (0.8, internal))]


def _one(builder: Builder, keep: list[Instrument], rng: random.Random, at: float) -> None:
    a, roll = builder.account, rng.random()
    inst = rng.choice(keep)
    held = a.holdings.get(inst.key, Decimal(0))
    if roll < 0.45:
        builder.buy(inst, at, _lot(inst, rng))
    elif roll < 0.6 and held > 1:
        builder.sell(inst, at, (held / 3).to_integral_value() or Decimal(1))
    elif roll < 0.75:
        builder.dividend(inst, at)
    elif roll < 0.83:
        a.add(records.cash(a, at, "Broker Interest Received", money(Decimal(rng.randint(100, 9000)) / 100)))
    elif roll < 0.9:
        a.add(records.cash(a, at, "Other Fees", Decimal("-10.00"), description="MARKET DATA FEE"))
    elif roll < 0.95:
        builder.convert(rng.choice(("EUR", "GBP")), at, Decimal(rng.randint(1, 20) * 500))
    else:
        amount = Decimal(rng.choice((5000, -2000)))
        a.add(records.cash(a, at, "Deposits & Withdrawals", amount, description="ELECTRONIC FUND TRANSFER"))


def _lot(inst: Instrument, rng: random.Random) -> Decimal:
    if inst.category == "OPT":
        return Decimal(rng.randint(1, 3))
    if inst.category == "BOND":
        return Decimal(rng.randint(1, 5) * 1000)
    return Decimal(rng.randint(5, 60))


def _at(day, hour: int) -> float:
    return datetime.combine(day, time(hour), EASTERN).timestamp()


def advance(account: Account, rng: random.Random, now: float, changes: dict[str, Any]) -> dict[str, Any]:
    """New activity at `now`: fills, a dividend, a deposit, a split, a closed position.
    `orders` and `cancel_orders` change nothing an Activity statement shows (it lists executed
    orders only), so they are accepted and ignored."""
    changes = changes or {"fills": 2, "dividend": True, "deposit": True}
    builder = Builder(account, rng)
    stocks = [i for i in account.instruments.values() if i.category == "STK"]
    keep = [i for i in stocks if account.holdings.get(i.key, 0) > 0] or stocks
    before = len(account.events)
    at = now - 120
    for n in range(int(changes.get("fills", 0))):
        builder.buy(rng.choice(keep), at + n * 15, _lot(keep[0], rng))
    if changes.get("dividend"):
        builder.dividend(keep[0], at + 60)
    if changes.get("deposit"):
        account.add(records.cash(account, at + 70, "Deposits & Withdrawals", Decimal(1000),
                                 description="ELECTRONIC FUND TRANSFER"))
    if changes.get("split"):
        held = account.holdings[keep[-1].key]
        account.add(records.corporate_action(account, keep[-1], at + 80, "FS", held, account.new_id(),
                                             f"{keep[-1].symbol} SPLIT 2 FOR 1"))
    if changes.get("close_position") and len(keep) > 1:
        builder.sell(keep[1], at + 90, account.holdings[keep[1].key])
    added = account.events[before:]
    return {"transactions": [e.truth["broker_id"] for e in added if e.truth],
            "orders": [e.attrs["ibOrderID"] for e in added if e.kind == "order"], "canceled_orders": []}

