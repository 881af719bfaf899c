"""Each layout read from its sample (written by us in the broker's real column layout): what
each row becomes, the holdings they add up to (worked by hand), layout detection, row errors
and the stable keys that keep re-imports from adding anything twice."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from backend.brokers.dtos import TransactionType as T
from backend.core.exceptions import ApplicationError
from backend.imports import reader

from .helpers import GENERIC_HEADER, sample

TODAY = date(2025, 1, 1)


def read(content: bytes | str, layout: str | None = None, max_rows: int = 1000) -> reader.Reading:
    text = reader.decode(content.encode() if isinstance(content, str) else content)
    return reader.read(text, reader.detect(text, layout), today=TODAY, max_rows=max_rows)


def totals(content: bytes) -> tuple[dict, dict, list]:
    """(quantity per symbol, cash per currency, the keyed transactions) of a sample."""
    reading = read(content)
    assert reading.errors == []
    rows = reader.keyed(reading.drafts)
    held, cash = defaultdict(Decimal), defaultdict(Decimal)
    for t in rows:
        if t.quantity is not None:
            held[t.broker_symbol] += t.quantity
        if t.amount is not None:
            cash[t.currency] += t.amount
    return {k: v for k, v in held.items() if v}, dict(cash), rows


def test_fidelity_sample():
    held, cash, rows = totals(sample("fidelity"))
    assert reader.detect(reader.decode(sample("fidelity"))).layout.key == "fidelity"
    assert len(rows) == 17                       # five blank rows before, a disclaimer after: not rows
    # AAPL 50 + 10 + 10 (two identical buys on 01/05 are two rows) - 20 sold = 50
    # VOO 20 + 0.078 reinvested; NVDA 5 + 45 from the 10-for-1 split (a DISTRIBUTION of new shares)
    assert held == {"AAPL": Decimal("50"), "VOO": Decimal("20.078"), "NVDA": Decimal("50")}
    # 20000 - 6253.50 - 7026.82 - 1250.70 * 2 + 16.10 + 29.82 - 29.82 + 3.41 - 25 + 12.34 - 1958.55
    # + 3912.15 - 1000 + 12 = 5190.73; the SPAXX reinvestment moves cash to cash (core fund): no change
    assert cash == {"USD": Decimal("5190.73")}
    sold = next(t for t in rows if t.side == "sell")
    assert (sold.quantity, sold.price, sold.fee, sold.amount) == (Decimal(-20), Decimal("195.61"), Decimal("0.05"),
                                                                 Decimal("3912.15"))
    assert sold.broker_type == "YOU SOLD APPLE INC (AAPL) (Cash)" and sold.raw["Price ($)"] == "195.61"
    core = next(t for t in rows if t.broker_symbol == "SPAXX" and t.type == T.OTHER)
    assert core.quantity is None and core.amount is None and core.raw["Amount ($)"] == "-12.34"
    assert [t.occurred_at.date() for t in rows] == sorted(t.occurred_at.date() for t in rows)   # oldest first


def test_schwab_sample():
    held, cash, rows = totals(sample("schwab"))
    assert len(rows) == 12                       # the title and the "Transactions Total" rows are not rows
    # SCHB 100 + 0.2253 reinvested + 200.4506 from the 3-for-1 split; MSFT 10 - 4 (quantity unsigned in
    # the file: the side signs it)
    assert held == {"SCHB": Decimal("300.6759"), "MSFT": Decimal("6")}
    # 10000 - 4950 - 2646 + 6.80 + 11.20 - 11.20 + 0.42 + 1240.42 - 25 - 500 - 100 = 3026.64 (the file's total)
    assert cash == {"USD": Decimal("3026.64")}
    interest = next(t for t in rows if t.type == T.INTEREST)
    assert interest.occurred_at.date() == date(2023, 4, 15)           # "04/17/2023 as of 04/15/2023"
    journal = next(t for t in rows if t.broker_type == "Journal")
    assert journal.type == T.WITHDRAWAL                               # its amount is negative


def test_vanguard_sample():
    held, cash, rows = totals(sample("vanguard"))
    assert len(rows) == 14                       # the holdings table before the transactions is skipped
    # VTI 10 + 0.046; VXUS 20 - 5 sold + 15 from the split; VMFXX is the settlement fund: cash
    assert held == {"VTI": Decimal("10.046"), "VXUS": Decimal("30")}
    # 5000 - 1919.70 - 1046.80 + 9.31 - 9.31 + 4.12 + 275.50 - 20 + 1.05 + 2.50 - 300 = 1996.67
    # (the sweep and the VMFXX reinvestment move cash to cash)
    assert cash == {"USD": Decimal("1996.67")}
    assert {t.type for t in rows if t.broker_type == "Sweep in"} == {T.OTHER}


def test_generic_sample():
    held, cash, rows = totals(sample("generic"))
    # AAPL 10 - 4; BTC 0.1 (crypto); MSFT 5 transferred in + 5 from the split
    assert held == {"AAPL": Decimal("6"), "BTC": Decimal("0.1"), "MSFT": Decimal("10")}
    # 10000 - (10 x 125.07 + 1) - (0.1 x 16700 + 5) + 2.30 + 1.25 - 4.99 + (4 x 165.63 - 1) - 500 - 0.35
    # = 10000 - 1251.70 - 1675 + 2.30 + 1.25 - 4.99 + 661.52 - 500 - 0.35 = 7233.03
    assert cash == {"USD": Decimal("7233.03"), "EUR": Decimal("250")}
    assert [t.broker_id for t in rows][:2] == ["id:g-1", "id:g-2"]    # the file's own ids are the keys
    assert next(t for t in rows if t.broker_symbol == "BTC").asset.asset_class == "crypto"


class TestDetection:
    def test_a_layout_asked_for_must_be_the_files(self):
        with pytest.raises(ApplicationError) as error:
            reader.detect(reader.decode(sample("schwab")), "fidelity")
        message = error.value.fields["file"][0]
        assert message.startswith("This file is not a Fidelity export. Closest: Charles Schwab (header on line 2)")

    def test_an_unknown_layout_names_the_closest_and_what_differs(self):
        text = "Run Date,Action,Symbol,Description,Type,Quantity,Price ($),Amount ($),Broker Notes\n01/02/2023,x\n"
        with pytest.raises(ApplicationError) as error:
            reader.detect(text)
        assert error.value.status == 400
        assert error.value.fields["file"] == [
            "This file matches no layout we read. Closest: Fidelity (header on line 1); missing columns: "
            "Commission ($), Fees ($), Accrued Interest ($), Settlement Date; columns Fidelity does not have: "
            "Broker Notes."]

    def test_extra_columns_are_named_even_when_every_required_one_is_there(self):
        text = GENERIC_HEADER.strip() + ",note\n"
        with pytest.raises(ApplicationError) as error:
            reader.detect(text)
        assert error.value.fields["file"][0].endswith("Closest: Generic template (header on line 1); "
                                                      "columns Generic template does not have: note.")

    def test_a_file_with_no_header_at_all(self):
        with pytest.raises(ApplicationError, match="Unknown file layout") as error:
            reader.detect("hello,world\n1,2\n")
        assert "no row looks like a header of Generic template, Fidelity, Charles Schwab, Vanguard" in \
            error.value.fields["file"][0]

    def test_older_header_names_are_the_same_layout(self):
        old = ("Run Date,Action,Symbol,Security Description,Security Type,Quantity,Price ($),Commission ($),"
               "Fees ($),Accrued Interest ($),Amount ($),Settlement Date\n"
               "01/27/2023, DIRECT DEBIT TREASURY DIRECT (Cash),  , No Description,Cash,,,,,,-10000,\n")
        rows = reader.keyed(read(old).drafts)
        assert [(r.type, r.amount) for r in rows] == [(T.WITHDRAWAL, Decimal(-10000))]


class TestRowErrors:
    def test_every_bad_cell_is_reported_with_its_line_and_column(self):
        text = (GENERIC_HEADER + "2023-01-02,buy,AAPL,-3,abc,,,USD,,,\n"        # line 2: two bad cells
                "2023-01-03,dividend,AAPL,,,,,USD,,,\n"                          # line 3: no amount
                "2023-13-01,deposit,,,,,5,ABC,,,\n"                               # line 4: bad date and currency
                "2023-01-04,deposit,,,,,5,USD,,a,\n2023-01-05,deposit,,,,,6,USD,,a,\n")   # repeated id
        reading = read(text)
        assert reading.rows == 5 and len(reading.drafts) == 2
        assert sorted((e["row"], e["field"]) for e in reading.errors) == [
            (2, "price"), (2, "quantity"), (3, "amount"), (4, "currency"), (4, "date"), (6, "id")]
        assert {e["message"] for e in reading.errors if e["field"] == "quantity"} == {
            "give a positive number: the type sets the sign"}
        assert reading.errors[-1]["message"] == "id 'a' is also on line 5"

    def test_unknown_type_and_a_trade_without_a_symbol(self):
        reading = read(GENERIC_HEADER + "2023-01-02,swap,AAPL,1,1,,,USD,,,\n2023-01-02,sell,,1,1,,,USD,,,\n")
        assert [(e["row"], e["field"]) for e in reading.errors] == [(2, "type"), (3, "symbol")]

    def test_rows_beyond_the_limit_are_an_error(self):
        rows = "".join(f"2023-01-02,deposit,,,,,{i + 1},USD,,,\n" for i in range(5))
        assert read(GENERIC_HEADER + rows, max_rows=3).errors == [{"row": 5, "field": "", "message": "more than 3 rows"}]


class TestKeys:
    def test_the_same_rows_give_the_same_keys_and_identical_rows_of_a_day_stay_apart(self):
        first = [t.broker_id for t in reader.keyed(read(sample("fidelity")).drafts)]
        again = [t.broker_id for t in reader.keyed(read(sample("fidelity")).drafts)]
        assert first == again and len(set(first)) == 17
        twins = [k for k in first if first.count(k.rsplit(":", 1)[0] + ":0") and k.endswith(":1")]
        assert len(twins) == 1                                            # the second identical AAPL buy

    def test_a_later_export_that_overlaps_finds_the_same_keys(self):
        lines = sample("schwab").decode().splitlines(keepends=True)
        title, header, rows, total = lines[0], lines[1], lines[2:-1], lines[-1]
        newer = "".join([header, *rows[:5]])                                # the five newest rows, no title
        whole = {t.broker_id for t in reader.keyed(read(sample("schwab")).drafts)}
        part = {t.broker_id for t in reader.keyed(read(newer).drafts)}
        assert part < whole and len(part) == 5


day_rows = st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["AAPL", "MSFT"]), st.integers(1, 3)),
                    min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(day_rows, st.randoms(use_true_random=False))
def test_keys_depend_on_what_rows_say_not_on_their_order(rows, rnd):
    """However an export orders the rows of a day, the set of keys is the same, and there is
    one key per row (identical rows included)."""
    def keys(ordered):
        text = GENERIC_HEADER + "".join(f"2023-01-0{d},buy,{s},{q},10,,,USD,,,\n" for d, s, q in ordered)
        return [t.broker_id for t in reader.keyed(read(text).drafts)]

    shuffled = sorted(rows, key=lambda r: (r[0], rnd.random()))
    assert sorted(keys(rows)) == sorted(keys(shuffled))
    assert len(set(keys(rows))) == len(rows)
