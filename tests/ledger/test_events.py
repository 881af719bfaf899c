"""Stored rows -> events, the way each feed writes them, and determinism."""
from __future__ import annotations

import json
import random

from backend.ledger.engine import Kind, Leg, Ledger, restore, snapshot
from backend.ledger.events import Row, build_events, fiat_as_cash

from .helpers import D, DictPricer, USD_ONLY, at

BTC, ETH, BNB, USDT, AAPL = 3, 4, 5, 6, 7
COINBASE, KRAKEN, BINANCE, ALPACA = 10, 20, 30, 40


def row(pk, conn, broker, broker_id, kind, when, asset=None, qty=None, amount=None, currency="USD", **kw) -> Row:
    return Row(id=pk, connection_id=conn, broker=broker, broker_id=broker_id, type=kind, broker_type=kw.pop("bt", ""),
               occurred_at=when, asset_id=asset, quantity=None if qty is None else D(qty),
               amount=None if amount is None else D(amount), currency=currency, **kw)


def test_binance_trade_legs_are_one_event_with_the_bnb_fee_apart():
    t = at(2025, 3, 3)
    rows = [row(1, BINANCE, "binance", "trade:ETHBTC:9", "trade", t, ETH, "1"),
            row(2, BINANCE, "binance", "trade:ETHBTC:9:quote", "trade", t, BTC, "-0.05"),
            row(3, BINANCE, "binance", "trade:ETHBTC:9:fee", "fee", t, BNB, "-0.01", bt="COMMISSION")]
    [event] = build_events(rows, fiat=USD_ONLY)
    assert event.kind == Kind.TRADE and event.key == "30:trade:ETHBTC:9" and event.tx_id == 1
    assert event.legs == (Leg(BTC, D("-0.05")), Leg(ETH, D(1))) and event.fee_legs == (Leg(BNB, D("-0.01")),)


def test_a_fee_in_the_received_coin_is_netted_into_it():
    # Bought 1 ETH for 3,000 USDT, fee 0.001 ETH: the lot is 0.999 ETH for the 3,000 USDT.
    t = at(2025, 3, 3)
    rows = [row(1, BINANCE, "binance", "trade:ETHUSDT:5", "trade", t, ETH, "1"),
            row(2, BINANCE, "binance", "trade:ETHUSDT:5:quote", "trade", t, USDT, "-3000"),
            row(3, BINANCE, "binance", "trade:ETHUSDT:5:fee", "fee", t, ETH, "-0.001")]
    [event] = build_events(rows, fiat=USD_ONLY)
    assert event.legs == (Leg(ETH, D("0.999")), Leg(USDT, D(-3000))) and not event.fee_legs


def test_kraken_trade_rows_sharing_refid_are_one_event_with_its_cash_leg():
    t = at(2025, 1, 9)
    rows = [row(5, KRAKEN, "kraken", "L2", "trade", t, BTC, "0.1", refid="TX1"),
            row(6, KRAKEN, "kraken", "L1", "trade", t, None, None, "-6004", "USD", refid="TX1")]
    [event] = build_events(rows, fiat=USD_ONLY)
    assert (event.key, event.legs, event.cash) == ("20:L1", (Leg(BTC, D("0.1")),), (("USD", D(-6004)),))


def test_a_fiat_currency_held_as_an_asset_is_cash_not_a_lot():
    # IBKR "EUR.USD": +1,000 EUR (stored as the asset EUR) for 1,084.10 USD. The row keeps its
    # USD; the conversion opens no lot. A fiat row without cash of its own becomes that cash.
    eur, t = 99, at(2025, 2, 3)
    bought = fiat_as_cash(row(1, 50, "ibkr", "trade:7", "trade", t, eur, "1000", "-1084.10"), "EUR")
    assert (bought.asset_id, bought.quantity, bought.currency, bought.amount) == (None, None, "USD", D("-1084.10"))
    paid = fiat_as_cash(row(2, 50, "ibkr", "cash:8", "fee", t, eur, "-2.5"), "EUR")
    assert (paid.asset_id, paid.quantity, paid.currency, paid.amount) == (None, None, "EUR", D("-2.5"))
    [event] = build_events([bought], fiat=USD_ONLY)
    assert event.legs == () and event.cash == (("USD", D("-1084.10")),)
    assert not Ledger(method="fifo", pricer=DictPricer()).run([event]).lots


def test_alpaca_split_pair_and_cash_in_lieu_are_one_split_event():
    t = at(2024, 6, 10)
    rows = [row(1, ALPACA, "alpaca", "a1", "split", t, AAPL, "-10", bt="SPLIT",
                description="REMOVE, From QTY:10 To QTY:40 Ratio:4:1"),
            row(2, ALPACA, "alpaca", "a2", "split", t.replace(microsecond=1000), AAPL, "40", bt="SPLIT",
                description="ADD, From QTY:10 To QTY:40 Ratio:4:1"),
            row(3, ALPACA, "alpaca", "a3", "other", t, AAPL, None, "12.5", bt="CIL")]
    [event] = build_events(rows, fiat=USD_ONLY)
    assert (event.kind, event.ratio, event.legs, event.cash) == (Kind.SPLIT, D(4), (Leg(AAPL, D(30)),),
                                                                 (("USD", D("12.5")),))


def test_alpaca_dividend_codes_land_where_they_belong():
    t = at(2024, 6, 10)
    kinds = {"DIV": "dividend", "DIVNRA": "withholding", "DIVFT": "foreign_tax_withheld",
             "DIVTXEX": "tax_exempt_dividend", "DIVCGL": "capital_gain_long", "DIVCGS": "capital_gain_short"}
    rows = [row(i, ALPACA, "alpaca", code, "dividend", t, AAPL, None, "1", bt=code) for i, code in enumerate(kinds)]
    rows += [row(90, ALPACA, "alpaca", "roc", "dividend", t, AAPL, None, "5", bt="DIVROC"),
             # Alpaca's newer feed: return of capital as DIV with activity_sub_type ROC.
             row(92, ALPACA, "alpaca", "roc2", "dividend", t, AAPL, None, "2", bt="DIV", sub_type="ROC"),
             row(93, ALPACA, "alpaca", "intnra", "interest", t, None, None, "-0.3", bt="INTNRA"),
             row(91, ALPACA, "alpaca", "fee", "fee", t, AAPL, None, "-0.5", bt="DIVFEE")]
    events = {e.key.split(":")[1]: e for e in build_events(rows, fiat=USD_ONLY)}
    assert {k: events[k].income_kind for k in kinds} == kinds
    assert events["roc"].kind == Kind.ROC and events["roc2"].kind == Kind.ROC and events["fee"].kind == Kind.FEE
    assert events["intnra"].income_kind == "interest_withholding"
    assert events["fee"].income_kind == "dividend_fee"


def coinbase_to_kraken_rows():
    """1 BTC bought at Coinbase in January 2024 for $40,000, sent to Kraken on 2025-02-01,
    0.9995 arriving 40 minutes later, sold at Kraken the next day for $100,000 x 0.9995."""
    send = at(2025, 2, 1, 10)
    return [row(1, COINBASE, "coinbase", "fill:1", "trade", at(2024, 1, 10), BTC, "1", "-40000"),
            row(2, COINBASE, "coinbase", "v2:send", "transfer", send, BTC, "-1"),
            row(3, KRAKEN, "kraken", "LDEP", "transfer", send.replace(minute=40), BTC, "0.9995"),
            row(4, KRAKEN, "kraken", "LS1", "trade", at(2025, 2, 2), BTC, "-0.9995", refid="T9"),
            row(5, KRAKEN, "kraken", "LS2", "trade", at(2025, 2, 2), None, None, "99950", refid="T9")]


def test_transfer_coinbase_to_kraken_keeps_date_and_basis():
    pricer = DictPricer({BTC: D(100000)})
    ledger = Ledger(method="fifo", pricer=pricer).run(build_events(coinbase_to_kraken_rows(), fiat=USD_ONLY))
    moved = ledger.lots["20:LDEP#3.0"]
    # Basis 40,000 x 0.9995 = 39,980 and the January 2024 date go with the coin to Kraken.
    assert (moved.connection_id, moved.acquired_at, moved.parent_key) == (KRAKEN, at(2024, 1, 10), "10:fill:1#3")
    fee = ledger.disposals["20:LDEP#3:fee"]
    # The 0.0005 lost on the way: proceeds 0.0005 x 100,000 = $50, basis $20, gain $30.
    assert (fee.kind, fee.proceeds, fee.basis, fee.gain) == ("transfer_fee", D(50), D(20), D(30))
    sale = ledger.disposals["20:LS1#3"]
    # Sold 2025-02-02, held since 2024-01-10: long term. 99,950 - 39,980 = 59,970.
    assert (sale.term, sale.basis, sale.gain) == ("long", D(39980), D(59970))


def _canonical(ledger: Ledger) -> str:
    lots = sorted((k, str(l.remaining), str(l.basis), l.acquired_at.isoformat()) for k, l in ledger.lots.items())
    disposals = sorted((k, str(d.proceeds), str(d.basis), [(x.lot_key, str(x.quantity)) for x in d.links])
                       for k, d in ledger.disposals.items())
    return json.dumps([lots, disposals])


def test_the_same_rows_in_any_order_give_the_same_ledger_byte_for_byte():
    rows = coinbase_to_kraken_rows() + [
        row(6, BINANCE, "binance", "trade:ETHBTC:9", "trade", at(2025, 3, 3), ETH, "1"),
        row(7, BINANCE, "binance", "trade:ETHBTC:9:quote", "trade", at(2025, 3, 3), BTC, "-0.05"),
        row(8, BINANCE, "binance", "trade:ETHBTC:9:fee", "fee", at(2025, 3, 3), BNB, "-0.01")]
    pricer = DictPricer({BTC: D(100000), ETH: D(3000), BNB: D(500)})
    first = _canonical(Ledger(method="hifo", pricer=pricer).run(build_events(rows, fiat=USD_ONLY)))
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert _canonical(Ledger(method="hifo", pricer=pricer).run(build_events(shuffled, fiat=USD_ONLY))) == first


def test_carrying_on_from_a_snapshot_equals_a_full_run():
    events = build_events(coinbase_to_kraken_rows(), fiat=USD_ONLY)
    pricer = DictPricer({BTC: D(100000)})
    full = Ledger(method="fifo", pricer=pricer).run(events)
    for cut in range(len(events)):
        part = Ledger(method="fifo", pricer=pricer).run(events[:cut])
        state = json.loads(json.dumps(snapshot(part)))            # through JSON, as it is stored
        rest = restore(state, method="fifo", pricer=pricer).run(events[cut:])
        open_full = {k: (l.remaining, l.basis) for k, l in full.lots.items() if l.remaining}
        open_rest = {k: (l.remaining, l.basis) for k, l in rest.lots.items() if l.remaining}
        assert open_rest == open_full
        assert {k: d.gain for k, d in rest.disposals.items()} == \
            {k: d.gain for k, d in full.disposals.items() if k in rest.disposals}
