"""Recompute over a real database: deterministic whatever order rows arrived in, splits
applied once however often re-synced, nothing half-written."""
from __future__ import annotations

import random
from decimal import Decimal

import psycopg
import pytest

from backend.ledger.models import Disposal, Income, Lot
from backend.ledger.services import ledger_recompute
from backend.sync.models import BrokerTransaction

from .helpers import at

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal

HISTORY = [
    # (broker_id, type, broker_type, when, symbol, quantity, amount, description)
    ("b1", "trade", "FILL", at(2024, 1, 2), "AAPL", "10", "-1000", ""),
    ("b2", "trade", "FILL", at(2024, 2, 2), "AAPL", "5", "-600", ""),
    ("sp1", "split", "SPLIT", at(2024, 6, 10), "AAPL", "-15", "0", "REMOVE, From QTY:15 To QTY:60 Ratio:4:1"),
    ("sp2", "split", "SPLIT", at(2024, 6, 10, 16), "AAPL", "60", "0", "ADD, From QTY:15 To QTY:60 Ratio:4:1"),
    ("s1", "trade", "FILL", at(2024, 7, 1), "AAPL", "-50", "2750", ""),
    ("d1", "dividend", "DIV", at(2024, 8, 1), "AAPL", None, "4.20", ""),
]


def store(book, rows):
    for broker_id, kind, code, when, symbol, qty, amount, text in rows:
        book.tx("alpaca", broker_id, kind, when, symbol, qty, amount, broker_type=code, description=text)


def canonical(portfolio):
    """The ledger's rows without database ids (byte for byte what a recompute wrote)."""
    lots = list(Lot.objects.filter(portfolio=portfolio).order_by("key").values_list(
        "key", "origin", "quantity", "remaining", "cost_basis", "acquired_at", "holding_from", "closed_at"))
    disposals = list(Disposal.objects.filter(portfolio=portfolio).order_by("key").values_list(
        "key", "kind", "quantity", "proceeds", "cost_basis", "gain", "term"))
    income = list(Income.objects.filter(portfolio=portfolio).order_by("key").values_list("key", "kind", "amount"))
    return repr((lots, disposals, income))


def test_a_split_and_a_sale_by_hand(book):
    store(book, HISTORY)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    # 15 shares for $1,600, split 4:1 -> 60 shares, same $1,600 ($26.666.. a share), dates kept.
    # Sell 50 (FIFO): the 40 from b1 ($1,000) + 10 of the 20 from b2 ($300) = $1,300 basis;
    # proceeds $2,750 -> gain $1,450. Left: 10 shares with $300.
    sale = Disposal.objects.get(portfolio=book.portfolio, kind="sale")
    assert (sale.quantity, sale.cost_basis, sale.gain) == (D(50), D(1300), D(1450))
    [left] = Lot.objects.filter(portfolio=book.portfolio).exclude(remaining=0)
    assert (left.remaining, left.cost_basis, left.acquired_at) == (D(10), D(300), at(2024, 2, 2))


def test_same_rows_in_any_order_and_resynced_give_the_same_ledger(book):
    store(book, HISTORY)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    first = canonical(book.portfolio)
    # The split re-synced (its rows rewritten): recomputed from the split, applied once.
    BrokerTransaction.objects.filter(broker_id__in=["sp1", "sp2"]).update(description=HISTORY[2][7])
    ledger_recompute(portfolio_id=book.portfolio.pk, since=at(2024, 6, 10))
    assert canonical(book.portfolio) == first
    # Every row gone and back in another order (new primary keys): the same ledger.
    BrokerTransaction.objects.filter(portfolio=book.portfolio).delete()
    shuffled = HISTORY[:]
    random.Random(3).shuffle(shuffled)
    store(book, shuffled)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    assert canonical(book.portfolio) == first


def test_a_failed_recompute_leaves_the_previous_ledger(book):
    from django.db import DatabaseError, connection

    store(book, HISTORY)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    before = canonical(book.portfolio)
    book.tx("alpaca", "b3", "trade", at(2024, 9, 1), "AAPL", "1", "-30", broker_type="FILL")
    # The database refuses the last write of the recompute (a trigger: a real failure, after
    # lots, disposals and income were already written inside the transaction).
    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION ledger_test_refuse() RETURNS trigger AS $$ BEGIN "
                       "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql")
        cursor.execute("CREATE TRIGGER ledger_test_refuse BEFORE INSERT ON ledger_disposallot "
                       "FOR EACH ROW EXECUTE FUNCTION ledger_test_refuse()")
    try:
        # (COPY goes through psycopg itself: its error arrives unwrapped by Django.)
        with pytest.raises((DatabaseError, psycopg.Error), match="refused"):
            ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER ledger_test_refuse ON ledger_disposallot")
            cursor.execute("DROP FUNCTION ledger_test_refuse()")
    assert canonical(book.portfolio) == before
    ledger_recompute(portfolio_id=book.portfolio.pk)            # re-run: the change lands whole
    assert Lot.objects.filter(portfolio=book.portfolio, key__endswith=":b3#" + str(book.asset("AAPL").pk)).exists()


def test_a_swap_with_a_bnb_fee_is_valued_from_the_price_store(book):
    from datetime import datetime, timezone

    from backend.market.models import Price

    # Binance rows as the adapter writes them: USD buys of BTC and BNB (fiat quote: cash on
    # the base leg), then ETH bought with BTC paying 0.01 BNB. Daily closes that day:
    # ETH $3,000, BTC $60,000, BNB $500 -> the BTC leaves at $3,000 (gain 3,000 - 2,000),
    # the fee BNB at $5 (basis 0.01 x 300 = $3), the ETH lot costs 3,000 + 5 = $3,005.
    kw = {"asset_class": "crypto"}
    book.tx("binance", "trade:BTCUSD:1", "trade", at(2025, 1, 2), "BTC", "0.05", "-2000", **kw)
    book.tx("binance", "trade:BNBUSD:2", "trade", at(2025, 1, 2), "BNB", "1", "-300", **kw)
    book.tx("binance", "trade:ETHBTC:9", "trade", at(2025, 3, 3), "ETH", "1", **kw)
    book.tx("binance", "trade:ETHBTC:9:quote", "trade", at(2025, 3, 3), "BTC", "-0.05", **kw)
    book.tx("binance", "trade:ETHBTC:9:fee", "fee", at(2025, 3, 3), "BNB", "-0.01", broker_type="COMMISSION", **kw)
    day = datetime(2025, 3, 3, tzinfo=timezone.utc)
    for symbol, close in (("ETH", 3000), ("BTC", 60000), ("BNB", 500)):
        Price.objects.create(asset=book.asset(symbol, "crypto"), quote="USD", interval="1d", at=day,
                             price=D(close), source="test")
    ledger_recompute(portfolio_id=book.portfolio.pk)
    disposals = {d.kind: d for d in Disposal.objects.filter(portfolio=book.portfolio)}
    assert (disposals["swap"].proceeds, disposals["swap"].cost_basis, disposals["swap"].gain) == \
        (D(3000), D(2000), D(1000))
    assert (disposals["fee"].proceeds, disposals["fee"].cost_basis, disposals["fee"].gain) == (D(5), D(3), D(2))
    eth = Lot.objects.get(portfolio=book.portfolio, asset=book.asset("ETH", "crypto"))
    assert (eth.remaining, eth.cost_basis) == (D(1), D(3005))


def test_ibkr_forex_balances_are_cash_and_open_no_lots(book):
    # USD -> EUR conversions store EUR as a fiat asset; a stock bought in EUR is the only lot.
    book.tx("ibkr", "trade:fx1", "trade", at(2025, 1, 6), "EUR", "10000", "-10841", asset_class="fiat",
            currency="USD")
    book.tx("ibkr", "trade:s1", "trade", at(2025, 1, 7), "SAP:IBIS", "10", "-1800", currency="EUR")
    book.tx("ibkr", "trade:fx2", "trade", at(2025, 1, 8), "EUR", "-2000", "2168", asset_class="fiat",
            currency="USD")
    ledger_recompute(portfolio_id=book.portfolio.pk)
    assert set(Lot.objects.filter(portfolio=book.portfolio).values_list("asset__symbol", flat=True)) == {"SAP:IBIS"}
    assert not Disposal.objects.filter(portfolio=book.portfolio).exists()


def test_dividends_gross_withholding_and_net_each_where_they_belong(book):
    # Alpaca: DIV $10.00 gross, DIVNRA -$1.50 withheld, DIVTXEX $2.00, DIVFEE -$0.25.
    # IBKR: "Dividends" $8.00, "Withholding Tax" -$1.20, "Payment In Lieu Of Dividends" $3.00.
    for broker_id, code, amount in (("d1", "DIV", "10.00"), ("d2", "DIVNRA", "-1.50"), ("d3", "DIVTXEX", "2.00")):
        book.tx("alpaca", broker_id, "dividend", at(2024, 5, 2), "XYZ", None, amount, broker_type=code)
    book.tx("alpaca", "d4", "fee", at(2024, 5, 2), "XYZ", None, "-0.25", broker_type="DIVFEE")
    for broker_id, code, amount in (("cash:1", "Dividends", "8.00"), ("cash:2", "Withholding Tax", "-1.20"),
                                    ("cash:3", "Payment In Lieu Of Dividends", "3.00")):
        book.tx("ibkr", broker_id, "dividend", at(2024, 6, 3), "AAPL", None, amount, broker_type=code)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    by_kind = {}
    for kind, amount in Income.objects.filter(portfolio=book.portfolio).values_list("kind", "amount"):
        by_kind[kind] = by_kind.get(kind, D(0)) + amount
    assert by_kind == {"dividend": D("18.00"), "withholding": D("-2.70"), "tax_exempt_dividend": D("2.00"),
                       "dividend_fee": D("-0.25"), "payment_in_lieu": D("3.00")}
    # Net of tax and fees: 18 - 2.70 + 2 - 0.25 + 3 = 20.05.
    assert sum(by_kind.values()) == D("20.05")


def test_opening_holdings_carry_the_basis_the_file_gives_else_need_one(book):
    # Manual "I hold 10 AAPL bought at $150 on 2020-01-02": basis 10 x 150 = $1,500, that date.
    # An imported transfer_in of 5 MSFT with no price: basis unknown (needs-basis).
    book.tx("manual", "m:1", "transfer", at(2020, 1, 2), "AAPL", 10, price=D(150), broker_type="holding")
    book.tx("csv", "id:7", "transfer", at(2020, 3, 2), "MSFT", 5, broker_type="transfer_in")
    book.tx("manual", "m:2", "trade", at(2022, 6, 1), "AAPL", -4, 800, broker_type="sell")
    ledger_recompute(portfolio_id=book.portfolio.pk)
    from backend.ledger.selectors import lots_needing_basis

    aapl = Lot.objects.get(portfolio=book.portfolio, asset=book.asset("AAPL"))
    # 4 of 10 sold: 1,500 x 6/10 = 900 left; the sale's basis 600, gain 800 - 600 = 200, long term.
    assert (aapl.remaining, aapl.cost_basis, aapl.acquired_at, aapl.origin) == (D(6), D(900), at(2020, 1, 2), "deposit")
    sale = Disposal.objects.get(portfolio=book.portfolio)
    assert (sale.cost_basis, sale.gain, sale.term, sale.incomplete) == (D(600), D(200), "long", False)
    assert [lot.asset.symbol for lot in lots_needing_basis(portfolio=book.portfolio)] == ["MSFT"]


def test_ibkr_spin_off_and_stock_for_stock_merger_rows(book):
    from datetime import datetime, timezone

    from backend.market.models import Price

    # 100 XYZ for $1,000. "XYZ SPINOFF 1 SPNC FOR 5 XYZ": 20 SPNC; closes XYZ $45 (4,500),
    # SPNC $25 (500): SPNC takes 500 / 5,000 = 10% -> $100, XYZ keeps $900, dates kept.
    # Then XYZ merges into NEWCO 2 for 1 (two rows of one action): 200 NEWCO with the $900.
    book.tx("ibkr", "trade:1", "trade", at(2020, 1, 2), "XYZ", 100, -1000)
    spin_day = at(2024, 3, 1)
    book.tx("ibkr", "ca:50", "other", spin_day, "SPNC", 20, broker_type="CorporateAction:SO",
            description="XYZ SPINOFF 1 SPNC FOR 5 XYZ", raw={"actionID": "A1"})
    day = datetime(2024, 3, 1, tzinfo=timezone.utc)
    for symbol, close in (("XYZ", 45), ("SPNC", 25)):
        Price.objects.create(asset=book.asset(symbol), quote="USD", interval="1d", at=day, price=D(close), source="t")
    for broker_id, symbol, qty in (("ca:60", "XYZ", -100), ("ca:61", "NEWCO", 200)):
        book.tx("ibkr", broker_id, "other", at(2024, 9, 2), symbol, qty, broker_type="CorporateAction:TC",
                description="XYZ MERGED WITH NEWCO 2 FOR 1", raw={"actionID": "A2"})
    ledger_recompute(portfolio_id=book.portfolio.pk)
    open_lots = {(l.asset.symbol, l.origin): (l.remaining, l.cost_basis, l.acquired_at)
                 for l in Lot.objects.filter(portfolio=book.portfolio).exclude(remaining=0).select_related("asset")}
    assert open_lots == {("SPNC", "spinoff"): (D(20), D(100), at(2020, 1, 2)),
                         ("NEWCO", "reorg"): (D(200), D(900), at(2020, 1, 2))}
    assert not Disposal.objects.filter(portfolio=book.portfolio).exists()


def test_a_corrected_close_of_a_spin_off_parent_recomputes_the_split(book):
    from datetime import date

    from backend.ledger.models import LedgerState
    from backend.market.signals import closes_changed

    book.tx("ibkr", "trade:1", "trade", at(2020, 1, 2), "XYZ", 100, -1000)
    book.tx("ibkr", "ca:50", "other", at(2024, 3, 1), "SPNC", 20, broker_type="CorporateAction:SO",
            description="XYZ SPINOFF 1 SPNC FOR 5 XYZ", raw={"actionID": "A1"})
    ledger_recompute(portfolio_id=book.portfolio.pk)
    # The parent's close was read at the spin-off (its row names only SPNC): recompute from then.
    closes_changed.send(sender=None, asset_ids=[book.asset("XYZ").pk], since=date(2024, 2, 28))
    assert LedgerState.objects.get(portfolio=book.portfolio).dirty_since == at(2024, 2, 28, 0)


def test_the_ledger_reads_prices_in_its_base_currency_only(book):
    from datetime import datetime, timezone

    from backend.ledger.loading import BookPricer
    from backend.market.models import Price

    # BTC closes in USD, EUR and JPY; SAP:IBIS in EUR only; GBP in USD (cash in pounds).
    day = datetime(2025, 3, 3, tzinfo=timezone.utc)
    btc, sap, gbp = book.asset("BTC", "crypto"), book.asset("SAP:IBIS"), book.asset("GBP", "fiat")
    eur, jpy = book.asset("EUR", "fiat"), book.asset("JPY", "fiat")
    for asset, quote, price in ((btc, "USD", 60000), (btc, "EUR", 55000), (btc, "JPY", 9000000),
                                (sap, "EUR", 200), (eur, "USD", "1.1"), (gbp, "USD", "1.25"), (jpy, "USD", "0.0067")):
        Price.objects.create(asset=asset, quote=quote, interval="1d", at=day, price=D(str(price)), source="t")
    pricer = BookPricer.load(asset_ids={btc.pk, sap.pk}, base="USD", currencies={"GBP"})
    # The JPY series is never read (USD and the pivots cover BTC); EUR stays (a pivot, and SAP's only quote).
    assert pricer.book.quotes(btc.pk) == {"USD", "EUR"} and pricer.book.quotes(sap.pk) == {"EUR"}
    # 0.5 BTC at $60,000 = $30,000; 10 SAP at EUR 200 x 1.1 = $2,200; GBP 100 = $125.
    assert pricer.value(btc.pk, D("0.5"), day.date()) == D(30000)
    assert pricer.value(sap.pk, D(10), day.date()) == D("2200.0")
    assert pricer.fx("GBP", day.date()) * 100 == D("125.00")


def test_a_replay_that_changes_nothing_rewrites_no_row(book):
    from django.db import connection

    # PostgreSQL stamps each row version with the transaction that wrote it (xmin): a replay
    # of the same history leaves every lot, disposal and income row as it was.
    store(book, HISTORY)
    ledger_recompute(portfolio_id=book.portfolio.pk)

    def versions():
        with connection.cursor() as cursor:
            out = {}
            for model in (Lot, Disposal, Income):
                cursor.execute(f"SELECT key, xmin::text FROM {model._meta.db_table} WHERE portfolio_id = %s",
                               [book.portfolio.pk])
                out[model.__name__] = dict(cursor.fetchall())
            return out

    before = versions()
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    assert versions() == before
    # A late buy in the past changes the lots it touches, and only rewrites what differs.
    book.tx("alpaca", "b0", "trade", at(2023, 12, 1), "AAPL", "1", "-90")
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    after = versions()
    assert after["Lot"] != before["Lot"] and after["Income"] == before["Income"]
