"""The ledger's API over a real database: numbers, filters, picks, basis, the 8949 CSV, and
another user's portfolio as a 404 on every endpoint."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from backend.ledger import writing
from backend.ledger.models import BasisOverride, Disposal, DisposalLot, LedgerState, Lot, LotPick
from backend.ledger.services import ledger_recompute
from backend.market.models import Price

from .helpers import at

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


def fills(book):
    """Alpaca-like history: Pub 550's FIFO lots of XYZ (the gift is an ACATS out), then the sale."""
    book.tx("alpaca", "b2016", "trade", at(2016, 3, 1), "XYZ", 100, -1000, side="buy")
    book.tx("alpaca", "b2017", "trade", at(2017, 1, 10), "XYZ", 200, -2200, side="buy")
    book.tx("alpaca", "gift", "transfer", at(2017, 7, 3), "XYZ", -50, broker_type="ACATS")
    book.tx("alpaca", "b2019", "trade", at(2019, 12, 2), "XYZ", 100, -900, side="buy")
    book.tx("alpaca", "s2023", "trade", at(2023, 4, 3), "XYZ", -130, 1560, side="sell")
    book.tx("alpaca", "div", "dividend", at(2023, 5, 2), "XYZ", None, "12.00", broker_type="DIV")
    book.tx("alpaca", "nra", "dividend", at(2023, 5, 2), "XYZ", None, "-3.60", broker_type="DIVNRA")
    book.tx("alpaca", "int", "interest", at(2023, 6, 1), None, None, "1.25", broker_type="INT")
    book.tx("alpaca", "acats-in", "transfer", at(2023, 7, 1), "ABC", 10, broker_type="ACATS")
    Price.objects.create(asset=book.asset("XYZ"), quote="USD", interval="latest", at=at(2023, 8, 1), price=D(15),
                         source="test")


@pytest.fixture
def ledger(book):
    fills(book)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    return book


def url(book, path):
    return f"/api/v1/portfolios/{book.portfolio.pk}/{path}"


def test_disposals_holdings_and_income(api, ledger):
    [sale] = api.get(url(ledger, "disposals/?year=2023")).json()["results"]
    # Pub 550 FIFO: 50 x $10 + 80 x $11 = $1,380; $1,560 - $1,380 = $180, long term.
    assert (D(sale["cost_basis"]), D(sale["gain"]), sale["term"], len(sale["lots"])) == (D(1380), D(180), "long", 2)
    assert api.get(url(ledger, "disposals/?year=2022")).json()["count"] == 0
    assert api.get(url(ledger, "disposals/?term=short")).json()["count"] == 0
    holdings = {h["asset"]: h for h in api.get(url(ledger, "holdings/")).json()["results"]}
    # XYZ left: 120 of 2017 at $11 + 100 of 2019 at $9 = $2,220; at $15: 220 x 15 = 3,300, +1,080.
    xyz = holdings["XYZ"]
    assert (D(xyz["quantity"]), D(xyz["cost_basis"]), D(xyz["market_value"]), D(xyz["unrealized"])) == \
        (D(220), D(2220), D(3300), D(1080))
    assert D(xyz["weight"]) == 1
    # ABC came in by ACATS with no basis and has no price: both unknown, never 0.
    assert holdings["ABC"]["cost_basis"] is None and holdings["ABC"]["market_value"] is None
    income = {(r["period"], r["kind"]): D(r["amount"]) for r in api.get(url(ledger, "income/")).json()}
    assert income == {("2023-05", "dividend"): D(12), ("2023-05", "withholding"): D("-3.60"),
                      ("2023-06", "interest"): D("1.25")}
    yearly = api.get(url(ledger, "income/?period=year&by=asset")).json()
    assert {(r["asset"], r["kind"]) for r in yearly} == {("XYZ", "dividend"), ("XYZ", "withholding"), ("", "interest")}
    assert api.get(url(ledger, "income/?period=week")).status_code == 400


def test_lots_filters_and_needs_basis_patch(api, ledger):
    open_lots = {l["key"].split(":")[1]: l for l in api.get(url(ledger, "lots/?status=open")).json()["results"]}
    assert len(open_lots) == 3                                                   # 2017, 2019, ABC
    # Unrealized per lot at $15: 120 of 2017 (basis $1,320) -> 1,800 - 1,320 = 480;
    # 100 of 2019 ($900) -> 1,500 - 900 = 600; ABC unpriced -> null.
    assert D(open_lots["b2017#" + str(ledger.asset("XYZ").pk)]["unrealized"]) == D(480)
    assert D(open_lots["b2019#" + str(ledger.asset("XYZ").pk)]["unrealized"]) == D(600)
    assert open_lots["acats-in#" + str(ledger.asset("ABC").pk)]["market_value"] is None
    assert api.get(url(ledger, "lots/?asset=xyz&status=closed")).json()["count"] == 1
    [needs] = api.get(url(ledger, "needs-basis/")).json()["results"]
    assert needs["asset"] == "ABC" and needs["needs_basis"] is True
    bad = api.patch(url(ledger, f"needs-basis/{needs['id']}/"), {"cost_basis": "-1"}, format="json")
    assert bad.status_code == 400 and "cost_basis" in bad.json()["fields"]
    assert not BasisOverride.objects.exists()
    ok = api.patch(url(ledger, f"needs-basis/{needs['id']}/"),
                   {"cost_basis": "500", "acquired_at": "2020-01-02T00:00:00Z"}, format="json")
    assert ok.status_code == 202
    assert LedgerState.objects.get(portfolio=ledger.portfolio).needs_full
    ledger_recompute(portfolio_id=ledger.portfolio.pk)
    lot = Lot.objects.get(pk=needs["id"])                     # same row, same id after the recompute
    assert lot.cost_basis == D(500) and lot.acquired_at == at(2020, 1, 2, 0)
    assert api.get(url(ledger, "needs-basis/")).json()["count"] == 0


def test_lot_selection_pick_refusal_and_survival(api, ledger):
    sale = Disposal.objects.get(portfolio=ledger.portfolio, kind="sale")
    path = url(ledger, f"disposals/{sale.pk}/lot-selection/")
    got = api.get(path).json()
    assert got["method"] == "fifo" and got["pick"] == [] and len(got["lots"]) == 2
    lots = {l.key.split(":")[1].split("#")[0]: l.pk for l in Lot.objects.filter(portfolio=ledger.portfolio)}
    refused = api.put(path, {"lots": [{"lot": lots["b2016"], "quantity": "100"}]}, format="json")
    # The gift took 50 of the 2016 lot before the sale.
    assert refused.status_code == 400 and "has only 50 open" in refused.json()["fields"]["lots"][0]
    assert not LotPick.objects.exists()
    ok = api.put(path, {"lots": [{"lot": lots["b2019"], "quantity": "100"}, {"lot": lots["b2017"], "quantity": "30"}]},
                 format="json")
    assert ok.status_code == 202
    ledger_recompute(portfolio_id=ledger.portfolio.pk)
    sale.refresh_from_db()
    # Specific identification: 100 x $9 + 30 x $11 = $1,230 -> gain $330; same disposal id.
    assert (sale.cost_basis, sale.gain, sale.pick_status) == (D(1230), D(330), "applied")
    ledger_recompute(portfolio_id=ledger.portfolio.pk, full=True)            # picks survive recomputes
    assert Disposal.objects.get(pk=sale.pk).gain == D(330)


def test_form_8949_csv(api, ledger):
    response = api.get(url(ledger, "form-8949/?year=2023"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "part" and rows[0][4] == "(d) proceeds"
    # Two lots closed, both long term (Part II): 50 from 2016 and 80 from 2017, proceeds split
    # 1,560 x 50/130 = 600.00 and 960.00; gains 600 - 500 = 100 and 960 - 880 = 80.
    assert rows[1:] == [["II", "50 XYZ", "03/01/2016", "04/03/2023", "600.00", "500.00", "", "", "100.00"],
                        ["II", "80 XYZ", "01/10/2017", "04/03/2023", "960.00", "880.00", "", "", "80.00"]]
    assert api.get(url(ledger, "form-8949/")).status_code == 400


def test_another_users_portfolio_is_a_404_everywhere(other_api, ledger):
    sale = Disposal.objects.get(portfolio=ledger.portfolio, kind="sale")
    lot = Lot.objects.filter(portfolio=ledger.portfolio).first()
    for path in ("holdings/", "lots/", "disposals/", f"disposals/{sale.pk}/lot-selection/", "income/",
                 "needs-basis/", "form-8949/?year=2023"):
        assert other_api.get(url(ledger, path)).status_code == 404, path
    assert other_api.put(url(ledger, f"disposals/{sale.pk}/lot-selection/"), {"lots": []},
                         format="json").status_code == 404
    assert other_api.patch(url(ledger, f"needs-basis/{lot.pk}/"), {"cost_basis": "1"},
                           format="json").status_code == 404


@pytest.mark.parametrize("few_rows", [writing.FEW_ROWS, 0], ids=["arrays", "staging-table"])
def test_incremental_recompute_equals_a_full_one(book, monkeypatch, few_rows):
    # An incremental write sends a few rows as arrays in one statement and more through a
    # staging table: both must store what a full recompute stores, links to their lots included.
    monkeypatch.setattr(writing, "FEW_ROWS", few_rows)
    fills(book)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    # A day of new fills after the last event: carried on from the saved state.
    book.tx("alpaca", "b2024", "trade", at(2024, 2, 1), "XYZ", 10, -150, side="buy")
    book.tx("alpaca", "s2024", "trade", at(2024, 2, 2), "XYZ", -150, 2400, side="sell")
    result = ledger_recompute(portfolio_id=book.portfolio.pk, since=at(2024, 2, 1))
    assert result["incremental"] is True
    snapshot = _rows(book)
    ledger_recompute(portfolio_id=book.portfolio.pk, full=True)
    assert _rows(book) == snapshot
    # A change in the past cannot carry on: it replays.
    book.tx("alpaca", "b2018", "trade", at(2018, 1, 2), "XYZ", 1, -5, side="buy")
    assert ledger_recompute(portfolio_id=book.portfolio.pk, since=at(2018, 1, 2))["incremental"] is False


def test_a_day_of_fills_for_dollars_reads_no_price(book):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fills(book)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    book.tx("alpaca", "b2024", "trade", at(2024, 2, 1), "XYZ", 10, -150, side="buy")
    with CaptureQueriesContext(connection) as queries:
        result = ledger_recompute(portfolio_id=book.portfolio.pk, since=at(2024, 2, 1))
    assert result["incremental"] is True
    # A buy for the base currency carries its own price: the price store is never asked.
    assert not [q["sql"] for q in queries if "market_price" in q["sql"]]
    assert Lot.objects.get(portfolio=book.portfolio, transaction__broker_id="b2024").cost_basis == D(150)


def _rows(book):
    lots = list(Lot.objects.filter(portfolio=book.portfolio).order_by("key")
                .values_list("key", "remaining", "cost_basis", "acquired_at", "closed_at"))
    disposals = list(Disposal.objects.filter(portfolio=book.portfolio).order_by("key")
                     .values_list("key", "quantity", "proceeds", "cost_basis", "gain", "term"))
    links = list(DisposalLot.objects.filter(disposal__portfolio=book.portfolio)
                 .order_by("disposal__key", "position")
                 .values_list("disposal__key", "position", "lot_key", "lot__key", "quantity", "cost_basis"))
    assert links and all(lot_key == linked for _, _, lot_key, linked, _, _ in links)     # every link found its lot
    return lots, disposals, links


def test_signals_record_what_to_recompute(book):
    from backend.portfolio.signals import portfolio_settings_changed
    from backend.sync.signals import history_changed

    fills(book)
    ledger_recompute(portfolio_id=book.portfolio.pk)
    pid, conn = book.portfolio.pk, book.connection("alpaca").pk
    history_changed.send(sender=None, connection_id=conn, portfolio_id=pid, since=at(2024, 1, 3), reason="sync")
    history_changed.send(sender=None, connection_id=conn, portfolio_id=pid, since=at(2024, 1, 2), reason="sync")
    state = LedgerState.objects.get(portfolio_id=pid)
    assert state.dirty_since == at(2024, 1, 2) and not state.needs_full          # the earliest wins
    portfolio_settings_changed.send(sender=None, portfolio_id=pid, changed={"name"})
    assert not LedgerState.objects.get(portfolio_id=pid).needs_full               # not a ledger setting
    portfolio_settings_changed.send(sender=None, portfolio_id=pid, changed={"cost_basis_method"})
    assert LedgerState.objects.get(portfolio_id=pid).needs_full
    book.portfolio.cost_basis_method = "hifo"
    book.portfolio.save()
    assert ledger_recompute(portfolio_id=pid)["incremental"] is False
    # HIFO: the sale closes 130 of the $11 lot: basis 1,430, gain 1,560 - 1,430 = 130.
    assert Disposal.objects.get(portfolio_id=pid, kind="sale").gain == D(130)
    state = LedgerState.objects.get(portfolio_id=pid)
    assert state.dirty_since is None and not state.needs_full


def test_basis_given_on_a_transferred_lot_lands_on_the_deposit_it_came_from(api, book):
    # 1 BTC received at Coinbase from outside (unknown basis), sent on to Kraken.
    book.tx("coinbase", "v2:recv", "transfer", at(2024, 3, 1), "BTC", "1", asset_class="crypto")
    book.tx("coinbase", "v2:send", "transfer", at(2024, 4, 1, 10), "BTC", "-1", asset_class="crypto")
    book.tx("kraken", "LDEP", "transfer", at(2024, 4, 1, 11), "BTC", "1", asset_class="crypto")
    ledger_recompute(portfolio_id=book.portfolio.pk)
    [kraken_lot] = api.get(url(book, "needs-basis/")).json()["results"]
    assert kraken_lot["origin"] == "transfer" and kraken_lot["connection"] == book.connection("kraken").pk
    response = api.patch(url(book, f"needs-basis/{kraken_lot['id']}/"), {"cost_basis": "30000"}, format="json")
    assert response.status_code == 202
    assert BasisOverride.objects.get().source_key == f"{book.connection('coinbase').pk}:v2:recv"
    ledger_recompute(portfolio_id=book.portfolio.pk)
    lot = Lot.objects.get(pk=kraken_lot["id"])
    # The basis and the March date came along the transfer to Kraken.
    assert (lot.cost_basis, lot.acquired_at) == (D(30000), at(2024, 3, 1))
    known = api.patch(url(book, f"needs-basis/{kraken_lot['id']}/"), {"cost_basis": "1"}, format="json")
    assert known.status_code == 400


def test_needs_basis_lists_a_lot_of_unknown_basis_that_was_already_sold(api, book):
    # 10 ABC came in by ACATS (basis unknown) and were all sold for $1,200: the sale's gain is
    # incomplete, and the sold lot is still asked for. Given $700, the gain is 1,200 - 700 = 500.
    book.tx("alpaca", "acats-in", "transfer", at(2023, 7, 1), "ABC", 10, broker_type="ACATS")
    book.tx("alpaca", "s1", "trade", at(2023, 9, 1), "ABC", -10, 1200, side="sell")
    ledger_recompute(portfolio_id=book.portfolio.pk)
    sale = Disposal.objects.get(portfolio=book.portfolio, kind="sale")
    assert sale.incomplete and sale.gain is None
    [needs] = api.get(url(book, "needs-basis/")).json()["results"]
    assert needs["asset"] == "ABC" and D(needs["remaining"]) == 0 and needs["needs_basis"] is True
    ok = api.patch(url(book, f"needs-basis/{needs['id']}/"), {"cost_basis": "700"}, format="json")
    assert ok.status_code == 202
    ledger_recompute(portfolio_id=book.portfolio.pk)
    sale.refresh_from_db()
    assert (sale.incomplete, sale.gain) == (False, D(500))
    assert api.get(url(book, "needs-basis/")).json()["count"] == 0


def test_a_corrected_close_queues_only_ledgers_that_read_it(book):
    from datetime import date

    from backend.market.signals import closes_changed

    fills(book)                                           # XYZ bought and sold for dollars only
    book.tx("binance", "trade:BTCUSD:1", "trade", at(2025, 1, 2), "BTC", "0.05", "-2000", asset_class="crypto")
    book.tx("binance", "trade:ETHBTC:9", "trade", at(2025, 3, 3), "ETH", "1", asset_class="crypto")
    book.tx("binance", "trade:ETHBTC:9:quote", "trade", at(2025, 3, 3), "BTC", "-0.05", asset_class="crypto")
    pid = book.portfolio.pk
    ledger_recompute(portfolio_id=pid)

    def dirty():
        state = LedgerState.objects.get(portfolio_id=pid)
        return state.dirty_since, state.needs_full

    # A stock's corrected close: every trade of it carried its own cash price. Nothing queued.
    closes_changed.send(sender=None, asset_ids=[book.asset("XYZ").pk], since=date(2016, 1, 1))
    # BTC's close after the swap (the only place its close was read): nothing either.
    closes_changed.send(sender=None, asset_ids=[book.asset("BTC", "crypto").pk], since=date(2025, 4, 1))
    assert dirty() == (None, False)
    # BTC's close before the swap: the swap's fair value may have changed; recompute from then.
    closes_changed.send(sender=None, asset_ids=[book.asset("BTC", "crypto").pk], since=date(2025, 3, 1))
    assert dirty() == (at(2025, 3, 1, 0), False)


def test_a_transfer_to_another_portfolio_of_the_same_user_carries_the_lots(book):
    from backend.portfolio.models import Portfolio

    from .conftest import Book

    # Portfolio "trading" (Coinbase): 1 BTC bought 2024-01-10 for $40,000, sent 2025-02-01.
    # Portfolio "cold" (Kraken), same owner: 0.9995 BTC arrive 40 minutes later. The lot moves
    # between the ledgers with its date; 0.0005 was the network fee (a disposal in "cold", at
    # its fair value: unpriced here, so incomplete). Basis left: 40,000 x 0.9995 = 39,980.
    cold = Book(Portfolio.objects.create(owner=book.portfolio.owner, name="cold"))
    book.tx("coinbase", "fill:1", "trade", at(2024, 1, 10), "BTC", "1", "-40000", asset_class="crypto")
    book.tx("coinbase", "v2:send", "transfer", at(2025, 2, 1, 10), "BTC", "-1", asset_class="crypto")
    cold.tx("kraken", "LDEP", "transfer", at(2025, 2, 1, 10).replace(minute=40), "BTC", "0.9995", asset_class="crypto")
    ledger_recompute(portfolio_id=cold.portfolio.pk)            # before the sender's ledger: basis unknown
    [arrived] = Lot.objects.filter(portfolio=cold.portfolio)
    assert arrived.cost_basis is None
    ledger_recompute(portfolio_id=book.portfolio.pk)            # the sender's recompute queues the receiver's
    assert LedgerState.objects.get(portfolio=cold.portfolio).needs_full
    [sent] = Lot.objects.filter(portfolio=book.portfolio)
    assert (sent.remaining, sent.closed_by) == (D(0), "transfer")
    ledger_recompute(portfolio_id=cold.portfolio.pk)
    [arrived] = Lot.objects.filter(portfolio=cold.portfolio)
    assert (arrived.remaining, arrived.cost_basis, arrived.acquired_at, arrived.origin) == \
        (D("0.9995"), D(39980), at(2024, 1, 10), "transfer")
    fee = Disposal.objects.get(portfolio=cold.portfolio, kind="transfer_fee")
    assert (fee.quantity, fee.cost_basis, fee.incomplete) == (D("0.0005"), D(20), True)
    # Another user's withdrawal of the same coin never pairs with this deposit.
    assert not Disposal.objects.filter(portfolio=book.portfolio).exists()
