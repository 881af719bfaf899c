"""The lot engine on hand-worked cases (arithmetic in the comments), starting with IRS
Publication 550's own examples."""
from __future__ import annotations

import pytest

from backend.ledger.engine import Event, Kind, Leg, Ledger, PickRefused, term_of

from .helpers import D, DictPricer, at, move, trade

XYZ, AAPL, BTC, ETH, BNB = 1, 2, 3, 4, 5


def run(events, method="fifo", **kw) -> Ledger:
    return Ledger(method=method, pricer=kw.pop("pricer", DictPricer()), **kw).run(events)


def only(ledger: Ledger, kind="sale"):
    [d] = [d for d in ledger.disposals.values() if d.kind == kind]
    return d


PUB550_FIFO = [
    # Pub 550, "Stocks and Bonds > Basis of Investment Property > Identifying the shares sold"
    # (first-in first-out example): 100 XYZ in 2016 at $10, 200 more in January 2017 at $11,
    # 50 given to your son in July 2017, 100 more in December 2019 at $9, 130 sold April 2023.
    trade("b2016", at(2016, 3, 1), XYZ, 100, -1000),
    trade("b2017", at(2017, 1, 10), XYZ, 200, -2200),
    move(Kind.TRANSFER_OUT, "gift", at(2017, 7, 3), XYZ, -50),
    trade("b2019", at(2019, 12, 2), XYZ, 100, -900),
    trade("s2023", at(2023, 4, 3), XYZ, -130, 1560),
]


def test_pub550_fifo_example():
    sale = only(run(PUB550_FIFO))
    # The gift took 50 of the 2016 lot (FIFO), so the sale closes the other 50 of 2016 and
    # 80 of 2017: 50 x $10 = $500 + 80 x $11 = $880 -> basis $1,380 (Pub 550's figure).
    assert [(l.lot_key, l.quantity, l.basis) for l in sale.links] == [
        ("1:b2016#1", D(50), D(500)), ("1:b2017#1", D(80), D(880))]
    assert sale.basis == D(1380) and sale.gain == D(1560) - D(1380) == D(180)
    assert sale.term == "long"


def test_pub550_specific_identification_of_the_same_sale():
    # Pub 550, "Specific share identification": name the shares sold and their basis is
    # yours to choose. Picking 100 of the December 2019 lot and 30 of January 2017:
    # 100 x $9 = $900 + 30 x $11 = $330 -> basis $1,230, gain $1,560 - $1,230 = $330.
    picks = {"1:s2023#1": [("1:b2019#1", D(100)), ("1:b2017#1", D(30))]}
    sale = only(run(PUB550_FIFO, picks=picks))
    assert sale.pick_status == "applied"
    assert sale.basis == D(1230) and sale.gain == D(330)
    assert {l.lot_key: l.term for l in sale.links} == {"1:b2019#1": "long", "1:b2017#1": "long"}


def test_a_pick_that_no_longer_fits_is_refused_or_falls_back():
    # The 2016 lot has only 50 left at the sale (the gift took 50): a pick of 100 from it fails.
    picks = {"1:s2023#1": [("1:b2016#1", D(100))]}
    with pytest.raises(PickRefused, match="has only 50 open"):
        run(PUB550_FIFO, picks=picks, strict_picks=True)
    sale = only(run(PUB550_FIFO, picks=picks))
    assert sale.pick_status.startswith("refused: lot 1:b2016#1 has only 50")
    assert sale.basis == D(1380)                         # fell back to FIFO


def test_methods_on_the_same_sale():
    # Lots: 50 @ $10 (2016, left after the gift), 200 @ $11 (2017), 100 @ $9 (2019).
    # LIFO: 100 @ 9 + 30 @ 11 = 1,230. HIFO: 130 @ 11 = 1,430.
    # Average: (500 + 2,200 + 900) / 350 = $10.2857.. -> 130 x = 3,600 x 130 / 350 = 1,337.142857..
    assert only(run(PUB550_FIFO, "lifo")).basis == D(1230)
    assert only(run(PUB550_FIFO, "hifo")).basis == D(1430)
    avg = only(run(PUB550_FIFO, "average")).basis
    assert abs(avg - D(3600) * 130 / 350) < D("1e-20")


def test_pub550_wash_sale_example():
    # Pub 550, "Wash Sales", Example 1 (also IRS VITA's case study): buy 100 X for $1,000,
    # sell them for $750, within 30 days buy 100 X for $800. The $250 loss is disallowed and
    # added to the new shares: basis $800 + $250 = $1,050.
    ledger = run([trade("b1", at(2024, 1, 5), XYZ, 100, -1000), trade("s", at(2024, 3, 1), XYZ, -100, 750),
                  trade("b2", at(2024, 3, 20), XYZ, 100, -800)], wash_assets={XYZ})
    sale = only(ledger)
    assert sale.wash_disallowed == D(250) and sale.gain == D(0)
    new = ledger.lots["1:b2#1"]
    assert new.basis == D(1050) and new.wash_adjustment == D(250) and new.wash_from == sale.key
    # Holding period carried over: the sold shares were held Jan 5 -> Mar 1 (56 days), so the
    # new shares count from Mar 20 - 56 days = Jan 24.
    assert new.holding_from == at(2024, 1, 24)


def test_wash_sale_with_fewer_replacement_shares_disallows_that_fraction():
    # Pub 550: buying fewer shares than were sold disallows only that part of the loss.
    # 100 sold at a $1,000 loss ($10 a share), 50 bought back: $500 disallowed, $500 allowed.
    ledger = run([trade("b1", at(2024, 1, 2), XYZ, 100, -3000), trade("s", at(2024, 2, 1), XYZ, -100, 2000),
                  trade("b2", at(2024, 2, 12), XYZ, 50, -1000)], wash_assets={XYZ})
    sale = only(ledger)
    assert sale.wash_disallowed == D(500) and sale.gain == D(-500)
    assert ledger.lots["1:b2#1"].basis == D(1500)


def test_a_larger_replacement_lot_is_split_so_the_rest_keeps_its_own_basis():
    # Sold 100 at a $500 loss; 150 bought back for $6,000 ($40 each): 100 of them carry the
    # $500 (basis $4,000 + $500 = $4,500), the other 50 keep $2,000 and their own date.
    ledger = run([trade("b1", at(2024, 1, 2), XYZ, 100, -4500), trade("s", at(2024, 6, 7), XYZ, -100, 4000),
                  trade("b2", at(2024, 6, 17), XYZ, 150, -6000)], wash_assets={XYZ})
    replaced, rest = ledger.lots["1:b2#1"], ledger.lots["1:b2#1~"]
    assert (replaced.remaining, replaced.basis, rest.remaining, rest.basis) == (D(100), D(4500), D(50), D(2000))
    assert rest.holding_from == rest.acquired_at < replaced.acquired_at + (replaced.acquired_at - replaced.holding_from)
    assert replaced.holding_from == at(2024, 6, 17) - (at(2024, 6, 7) - at(2024, 1, 2))


def test_no_wash_sale_without_the_switch_or_for_a_gain():
    events = [trade("b1", at(2024, 1, 5), XYZ, 100, -1000), trade("s", at(2024, 3, 1), XYZ, -100, 750),
              trade("b2", at(2024, 3, 20), XYZ, 100, -800)]
    assert only(run(events)).gain == D(-250)                               # switched off (crypto, or off)
    gain = [trade("b1", at(2024, 1, 5), XYZ, 100, -1000), trade("s", at(2024, 3, 1), XYZ, -100, 1100),
            trade("b2", at(2024, 3, 20), XYZ, 100, -800)]
    assert only(run(gain, wash_assets={XYZ})).wash_disallowed == 0


def test_a_reverse_split_keeps_the_basis_and_sells_the_fraction_for_cash_in_lieu():
    # 105 shares bought for $1,050. A 1-for-10 reverse split: 10.5 shares, basis $1,050
    # ($100 a share). The broker delivers 10 and pays $40 for the half share: a sale of 0.5
    # with basis 1,050 x 0.5 / 10.5 = $50, gain $40 - $50 = -$10. 10 shares left with $1,000.
    split = Event(Kind.SPLIT, at=at(2024, 5, 1), connection_id=1, key="1:split", asset_id=AAPL,
                  legs=(Leg(AAPL, D(-95)),), cash=(("USD", D(40)),), ratio=D("0.1"))
    ledger = run([trade("b", at(2024, 1, 2), AAPL, 105, -1050), split])
    lot = ledger.lots["1:b#2"]
    # Opened with 105 = 10.5 after the split; 10 remain after the cash in lieu.
    assert (lot.quantity, lot.remaining, lot.basis, lot.acquired_at) == (D("10.5"), D("10"), D(1000), at(2024, 1, 2))
    cil = only(ledger, "cash_in_lieu")
    assert (cil.quantity, cil.proceeds, cil.basis, cil.gain) == (D("0.5"), D(40), D(50), D(-10))


def test_crypto_to_crypto_with_a_bnb_fee():
    # 0.05 BTC bought for $2,000 and 1 BNB for $300 earlier. Then 1 ETH bought with 0.05 BTC,
    # fee 0.01 BNB, when ETH is $3,000, BTC $60,000 and BNB $500:
    # - BTC disposed of at the fair value of the ETH received: proceeds $3,000, basis $2,000, gain $1,000
    # - the fee is a disposal of 0.01 BNB: proceeds 0.01 x 500 = $5, basis 0.01 x 300 = $3, gain $2
    # - the ETH lot costs $3,000 + the $5 fee = $3,005
    day = at(2025, 3, 3).date()
    pricer = DictPricer({(ETH, day): D(3000), (BTC, day): D(60000), (BNB, day): D(500)})
    swap = Event(Kind.TRADE, at=at(2025, 3, 3), connection_id=1, key="1:trade:ETHBTC:9",
                 legs=(Leg(BTC, D("-0.05")), Leg(ETH, D(1))), fee_legs=(Leg(BNB, D("-0.01")),))
    ledger = run([trade("btc", at(2025, 1, 2), BTC, "0.05", -2000), trade("bnb", at(2025, 1, 2), BNB, 1, -300),
                  swap], pricer=pricer)
    btc = ledger.disposals["1:trade:ETHBTC:9#3"]
    bnb = ledger.disposals["1:trade:ETHBTC:9#5:fee"]
    assert (btc.kind, btc.proceeds, btc.basis, btc.gain) == ("swap", D(3000), D(2000), D(1000))
    assert (bnb.kind, bnb.proceeds, bnb.basis, bnb.gain) == ("fee", D(5), D(3), D(2))
    assert ledger.lots["1:trade:ETHBTC:9#4"].basis == D(3005)
    assert ledger.lots["1:bnb#5"].remaining == D("0.99")


def test_shorts_open_on_a_sale_with_nothing_held_and_close_on_a_buy():
    # Sell 10 short at $100 ($1,000 in), buy 10 back at $80 ($800 out): gain $200, short term.
    ledger = run([trade("s", at(2024, 2, 1), AAPL, -10, 1000), trade("b", at(2024, 2, 20), AAPL, 10, -800)])
    short = ledger.lots["1:s#2"]
    assert (short.quantity, short.remaining, short.closed_by) == (D(-10), D(0), "short_cover")
    cover = only(ledger, "short_cover")
    assert (cover.proceeds, cover.basis, cover.gain, cover.term) == (D(1000), D(800), D(200), "short")
    assert not ledger.book(AAPL, 1)


def test_unknown_basis_makes_the_gain_incomplete_until_the_user_gives_it():
    events = [move(Kind.TRANSFER_IN, "dep", at(2024, 1, 2), BTC, 1), trade("s", at(2024, 6, 1), BTC, -1, 60000)]
    sale = only(run(events))
    assert sale.basis is None and sale.gain is None and sale.incomplete      # never as if basis were 0
    fixed = only(run(events, overrides={"1:dep": (D(20000), at(2022, 5, 5))}))
    # Basis $20,000, acquired 2022-05-05 -> sold 2024-06-01: gain $40,000, long term.
    assert (fixed.basis, fixed.gain, fixed.term) == (D(20000), D(40000), "long")


def test_holding_period_starts_the_day_after():
    # Pub 550: bought 2024-03-01, sold on the anniversary 2025-03-01: short; a day later: long.
    assert term_of(at(2024, 3, 1), at(2025, 3, 1)) == "short"
    assert term_of(at(2024, 3, 1), at(2025, 3, 2)) == "long"


def test_return_of_capital_lowers_basis_and_the_excess_is_a_gain():
    # 10 shares for $100; $60 of return of capital -> basis $40; $70 more -> basis 0 and $30 gain.
    roc = lambda k, amt, day: Event(Kind.ROC, at=at(2024, day, 1), connection_id=1, key=f"1:{k}", asset_id=AAPL,
                                    cash=(("USD", D(amt)),))
    ledger = run([trade("b", at(2024, 1, 2), AAPL, 10, -100), roc("r1", 60, 2), roc("r2", 70, 3)])
    assert ledger.lots["1:b#2"].basis == 0
    assert only(ledger, "return_of_capital").gain == D(30)


SPNC, NEWCO = 8, 9


def test_a_spin_off_splits_the_parents_basis_by_fair_value_and_keeps_its_dates():
    # 100 XYZ in 2016 for $1,000 and 50 in 2020 for $1,500. A 1-for-5 spin-off gives 30 SPNC.
    # Closes that day: XYZ $40 (150 x 40 = 6,000), SPNC $50 (30 x 50 = 1,500): SPNC takes
    # 1,500 / 7,500 = 20% of each parent lot's basis. 2016 lot: 1,000 -> 800 XYZ + 200 for
    # 20 SPNC (100 / 150 of 30); 2020 lot: 1,500 -> 1,200 + 300 for 10 SPNC.
    day = at(2024, 3, 1)
    spin = Event(Kind.SPINOFF, at=day, connection_id=1, key="1:ca:77", asset_id=XYZ, legs=(Leg(SPNC, D(30)),))
    pricer = DictPricer({(XYZ, day.date()): D(40), (SPNC, day.date()): D(50)})
    ledger = run([trade("b16", at(2016, 3, 1), XYZ, 100, -1000), trade("b20", at(2020, 6, 1), XYZ, 50, -1500), spin],
                 pricer=pricer)
    assert (ledger.lots["1:b16#1"].basis, ledger.lots["1:b20#1"].basis) == (D(800), D(1200))
    new = sorted((l for l in ledger.lots.values() if l.asset_id == SPNC), key=lambda l: l.acquired_at)
    assert [(l.remaining, l.basis, l.acquired_at, l.origin) for l in new] == [
        (D(20), D(200), at(2016, 3, 1), "spinoff"), (D(10), D(300), at(2020, 6, 1), "spinoff")]
    # Total basis unchanged: 800 + 1,200 + 200 + 300 = 2,500.
    assert sum(l.basis for l in ledger.lots.values()) == D(2500)
    # Unpriced: the new shares' basis is unknown and the parent keeps its own; the user's
    # basis (Form 8937: $500 for the 30 SPNC) is taken from the parent's: 1,000 -> 800.
    unpriced = run([trade("b16", at(2016, 3, 1), XYZ, 100, -1000), spin])
    assert unpriced.lots["1:b16#1"].basis == D(1000)
    assert [l.basis for l in unpriced.lots.values() if l.asset_id == SPNC] == [None]
    given = run([trade("b16", at(2016, 3, 1), XYZ, 100, -1000), spin], overrides={"1:ca:77": (D(500), None)})
    assert given.lots["1:b16#1"].basis == D(500)
    assert [l.basis for l in given.lots.values() if l.asset_id == SPNC] == [D(500)]


def test_a_stock_for_stock_merger_carries_basis_and_dates_and_a_cash_merger_is_a_sale():
    # 100 XYZ (2016, $1,000) become 150 NEWCO (1.5 for 1), plus $60 of boot: the NEWCO lot
    # keeps $1,000 and 2016; the boot is a $60 gain (no shares closed).
    merger = Event(Kind.ADJUST, at=at(2024, 3, 1), connection_id=1, key="1:action:9",
                   legs=(Leg(XYZ, D(-100)), Leg(NEWCO, D(150))), cash=(("USD", D(60)),))
    ledger = run([trade("b16", at(2016, 3, 1), XYZ, 100, -1000), merger])
    [newco] = [l for l in ledger.lots.values() if l.asset_id == NEWCO]
    assert (newco.remaining, newco.basis, newco.acquired_at, newco.origin) == (D(150), D(1000), at(2016, 3, 1), "reorg")
    assert ledger.lots["1:b16#1"].remaining == 0 and not [d for d in ledger.disposals.values() if d.kind == "sale"]
    boot = only(ledger, "merger_cash")
    assert (boot.quantity, boot.proceeds, boot.gain) == (D(0), D(60), D(60))
    # Cash only ($25 a share): a sale of the 100 for $2,500, gain 2,500 - 1,000 = 1,500, long term.
    cash = Event(Kind.ADJUST, at=at(2024, 3, 1), connection_id=1, key="1:ca:10", legs=(Leg(XYZ, D(-100)),),
                 cash=(("USD", D(2500)),))
    sale = only(run([trade("b16", at(2016, 3, 1), XYZ, 100, -1000), cash]))
    assert (sale.proceeds, sale.gain, sale.term) == (D(2500), D(1500), "long")
