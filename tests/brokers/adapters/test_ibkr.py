"""The IBKR Flex adapter: records from IBKR's published samples (ibflex's test data), the error
table, date windows, and the two-step fetch against the sandbox over real HTTP."""
from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from backend.brokers.adapters.ibkr import IbkrAdapter, mapping
from backend.brokers.adapters.ibkr.adapter import backfill_windows, forward_windows, ibkr_today
from backend.brokers.adapters.ibkr.flex import StillGenerating, vendor_errors
from backend.brokers.adapters.ibkr.statement import parse_row
from backend.brokers.dtos import AssetClass, Credentials, TransactionType
from backend.brokers.errors import AuthError, PermanentError, RateLimited, TransientError
from backend.brokers.http import BrokerSession, SessionPolicy
from tests.factories import sandbox_account, sandbox_truth


def row(xml: str):
    return parse_row(ET.fromstring(xml))


# -- published samples (ibflex tests/test_types.py, from IBKR statements) ------------------------
def test_option_trade_sample():
    trade = mapping.trade(row(
        '<Trade accountId="U123456" currency="USD" fxRateToBase="1" assetCategory="OPT" '
        'symbol="VXX   110917C00005000" description="VXX 17SEP11 5.0 C" conid="83615386" multiplier="100" '
        'strike="5" expiry="2011-09-17" putCall="C" tradeID="594763148" reportDate="2011-08-12" '
        'tradeDate="2011-08-11" tradeTime="162000" transactionType="BookTrade" quantity="3" tradePrice="0" '
        'proceeds="-0" ibCommission="0" ibCommissionCurrency="USD" netCash="0" buySell="BUY" '
        'ibOrderID="2381339439" transactionID="2381339439" levelOfDetail="EXECUTION" isAPIOrder="N" />'))
    assert trade.broker_id == "trade:594763148" and trade.type is TransactionType.TRADE
    assert (trade.asset.symbol, trade.asset.asset_class, trade.asset.multiplier) == \
        ("VXX110917C00005000", AssetClass.OPTION, Decimal(100))
    assert (trade.quantity, trade.amount, trade.side, trade.order_id) == (Decimal(3), Decimal(0), "buy", "2381339439")
    # 2011-08-11 16:20:00 US Eastern (EDT, UTC-4) = 20:20 UTC
    assert trade.occurred_at == datetime(2011, 8, 11, 20, 20, tzinfo=timezone.utc)


def test_stock_sell_with_commission():
    # Sell 100 at 35.53: proceeds +3,553.00, commission -1.00, netCash 3,552.00 (cash in), fee 1.00.
    trade = mapping.trade(row(
        '<Trade accountId="U1" currency="USD" assetCategory="STK" symbol="VXX" listingExchange="ARCA" tradeID="7" '
        'dateTime="2011-12-30;153000" quantity="-100" tradePrice="35.53" proceeds="3553" ibCommission="-1" '
        'ibCommissionCurrency="USD" netCash="3552" buySell="SELL" ibOrderID="8" />'))
    assert (trade.quantity, trade.price, trade.amount, trade.fee, trade.side) == \
        (Decimal(-100), Decimal("35.53"), Decimal(3552), Decimal(1), "sell")


def test_forex_trade_buys_one_currency_with_another():
    # EUR.USD buy 10,000 at 1.0841: +10,000 EUR; netCash -10,843.00 USD (proceeds -10,841, commission -2).
    trade = mapping.trade(row(
        '<Trade accountId="U1" currency="USD" assetCategory="CASH" symbol="EUR.USD" tradeID="9" '
        'dateTime="20240102;100000" quantity="10000" tradePrice="1.0841" proceeds="-10841" ibCommission="-2" '
        'ibCommissionCurrency="USD" netCash="-10843" buySell="BUY" ibOrderID="10" />'))
    assert (trade.asset.symbol, trade.asset.asset_class) == ("EUR", AssetClass.FIAT)
    assert (trade.quantity, trade.amount, trade.currency) == (Decimal(10000), Decimal(-10843), "USD")


def test_dividend_sample_and_a_cash_type_ibflex_does_not_know():
    dividend = mapping.cash_transaction(row(
        '<CashTransaction accountId="U123456" currency="USD" fxRateToBase="1" assetCategory="STK" symbol="RHDGF" '
        'description="RHDGF(ANN741081064) CASH DIVIDEND 1.00000000 USD PER SHARE" conid="62049667" '
        'isin="ANN741081064" multiplier="1" dateTime="2015-10-06" amount="27800" type="Dividends" '
        'transactionID="5767420360" reportDate="2015-10-06" />'))
    assert (dividend.broker_id, dividend.type, dividend.amount) == ("cash:5767420360", TransactionType.DIVIDEND,
                                                                   Decimal(27800))
    assert dividend.asset.symbol == "RHDGF" and dividend.quantity is None
    odd = row('<CashTransaction accountId="U1" currency="USD" assetCategory="" symbol="" dateTime="20240105" '
              'amount="-12.50" type="Bill Pay" transactionID="77" />')
    assert odd.fallback                                    # ibflex rejects the record; its values survive
    other = mapping.cash_transaction(odd)
    assert (other.type, other.broker_type, other.amount) == (TransactionType.OTHER, "Bill Pay", Decimal("-12.50"))


def test_merger_sample_takes_the_shares_and_pays_cash():
    action = mapping.corporate_action(row(
        '<CorporateAction accountId="U123456" currency="USD" fxRateToBase="1" assetCategory="STK" '
        'symbol="NILSY.TEN" description="NILSY.TEN(466992534) MERGED(Voluntary Offer Allocation) FOR USD 30.60" '
        'conid="96835898" multiplier="1" reportDate="2011-11-03" dateTime="2011-11-02;202500" amount="-30600" '
        'proceeds="30600" value="-18110" quantity="-1000" type="TC" />'))
    assert (action.type, action.quantity, action.amount) == (TransactionType.OTHER, Decimal(-1000), Decimal(30600))
    # 20:25 EDT on 2011-11-02 (DST ended on 6 November) = 00:25 UTC the next day
    assert action.occurred_at == datetime(2011, 11, 3, 0, 25, tzinfo=timezone.utc)
    split = mapping.corporate_action(row(
        '<CorporateAction accountId="U1" currency="USD" assetCategory="STK" symbol="AAPL" actionID="5" conid="1" '
        'dateTime="20200831;202500" quantity="300" proceeds="0" type="FS" transactionID="6" />'))
    assert (split.type, split.quantity, split.amount) == (TransactionType.SPLIT, Decimal(300), None)


def test_acats_transfer_sample_and_positions():
    moved = mapping.transfer(row(
        '<Transfer accountId="U123456" currency="USD" assetCategory="STK" symbol="FMTIF" conid="86544467" '
        'multiplier="1" date="2011-07-18" type="ACATS" direction="IN" quantity="226702" cashTransfer="0" '
        'transactionID="11" />'))
    assert (moved.type, moved.broker_type, moved.quantity) == (TransactionType.TRANSFER, "ACATS", Decimal(226702))
    lot = ('<OpenPosition accountId="U123456" currency="USD" assetCategory="STK" symbol="VXX" multiplier="1" '
           'reportDate="2011-12-30" position="-100" markPrice="35.53" positionValue="-3553" side="Short" '
           'levelOfDetail="{level}" />')
    assert mapping.position(row(lot.format(level="LOT"))) is None          # lots repeat the summary
    short = mapping.position(row(lot.format(level="SUMMARY")))
    assert (short.quantity, short.market_value) == (Decimal(-100), Decimal(-3553))
    euro = mapping.position(row('<OpenPosition currency="EUR" assetCategory="STK" symbol="SAP" '
                                'listingExchange="IBIS" position="10" levelOfDetail="SUMMARY" />'))
    assert euro.asset.symbol == "SAP:IBIS" and euro.asset.currency == "EUR"


# -- the error table -------------------------------------------------------------------------------
class _Answer:
    status_code = 200


@pytest.mark.parametrize("code, kind", [
    ("1012", AuthError), ("1015", AuthError), ("1014", AuthError), ("1013", AuthError), ("1011", AuthError),
    ("1016", AuthError), ("1018", RateLimited), ("1009", RateLimited), ("1001", TransientError),
    ("1004", TransientError), ("1021", TransientError), ("1003", PermanentError), ("1020", PermanentError),
    ("1010", PermanentError), ("1999", PermanentError),
])
def test_every_code_has_its_kind(code, kind):
    body = ET.fromstring(f"<FlexStatementResponse timestamp='x'><Status>Fail</Status><ErrorCode>{code}</ErrorCode>"
                         f"<ErrorMessage>IBKR says so.</ErrorMessage></FlexStatementResponse>")
    error = vendor_errors(_Answer(), body)
    assert type(error) is kind and error.code == code
    if kind is AuthError:
        assert "Client Portal" in error.message and error.revoked == (code == "1015")
    if kind is RateLimited:
        assert error.retry_after > 0


def test_generation_in_progress_is_not_an_error():
    warn = ET.fromstring("<FlexStatementResponse><Status>Warn</Status><ErrorCode>1019</ErrorCode>"
                         "</FlexStatementResponse>")
    assert vendor_errors(_Answer(), warn) is None


# -- windows ---------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(st.dates(date(2015, 1, 1), date(2030, 12, 31)), st.integers(0, 2000))
def test_windows_cover_every_day_once_in_at_most_365(today, back):
    start = today - timedelta(days=back)
    for windows, first in ((forward_windows(start, today), start),
                           (backfill_windows(today, start) + [None], None)):
        windows = [w for w in windows if w is not None]
        for a, b in zip(windows, windows[1:]):
            assert b.start == a.end + timedelta(days=1)
        assert all(0 <= (w.end - w.start).days < 365 for w in windows)
        if first is not None:
            assert windows[0].start == first and windows[-1].end == today
        elif windows:
            assert windows[-1].end == today - timedelta(days=365)


# -- over the sandbox ------------------------------------------------------------------------------
def build(sandbox, account, policy=SessionPolicy()):
    credentials = Credentials(**account["credentials"])
    session = BrokerSession(broker="ibkr", base_url=sandbox.urls["ibkr"], scope=IbkrAdapter.rate_scope(credentials, "live"),
                            policy=policy, vendor_errors=IbkrAdapter.vendor_errors, secrets=credentials.secrets(),
                            sleep=lambda s: None)
    return IbkrAdapter(credentials=credentials, environment="live", session=session)


def test_a_first_sync_reads_every_year_oldest_first(sandbox, redis_client):
    # 12 requests: more than IBKR's 10 a minute, which the limiter (off here) would pace.
    account = sandbox_account(sandbox, broker="ibkr", seed=11, positions=4, activities=80, history_days=900,
                              throttle=False)
    pages = list(build(sandbox, account).fetch_transactions(None))
    assert len(pages) == 3                                             # 900 days: three windows
    truth = sandbox_truth(sandbox, account["account_id"])
    assert {t.broker_id for p in pages for t in p.items} == {t["broker_id"] for t in truth["transactions"]}
    assert pages[-1].cursor["through"] == ibkr_today().isoformat()
    adapter = build(sandbox, account)
    adapter.prime({"transactions": pages[-1].cursor})
    orders = [o for p in adapter.fetch_orders(None) for o in p.items]
    assert len(orders) == len(truth["orders"]) and adapter.session.requests_made == 3   # by reference code
    # The newest window first (SendRequest, one 1019, the statement), then the two older ones.
    assert sum(p.requests for p in pages) == 3 + 3 * 2


def test_a_slow_statement_is_asked_for_again_by_its_reference(sandbox, redis_client):
    account = sandbox_account(sandbox, broker="ibkr", seed=12, positions=3, activities=30, generation_polls=4)
    sim = sandbox.sims["ibkr"]
    pages = build(sandbox, account, SessionPolicy(max_inplace_wait=5)).fetch_transactions(None)
    parked = next(pages)
    assert parked.items == [] and parked.cursor["pending"]["ref"]
    with pytest.raises(StillGenerating) as caught:
        next(pages)
    assert caught.value.retry_after > 0
    issued = len(sim.references)
    resumed = list(build(sandbox, account).fetch_transactions(parked.cursor))
    assert len(sim.references) == issued                               # no new statement was asked for
    assert {t.broker_id for p in resumed for t in p.items} == \
        {t["broker_id"] for t in sandbox_truth(sandbox, account["account_id"])["transactions"]}


def test_expired_token_says_what_to_do_and_the_token_is_never_shown(sandbox, redis_client, caplog):
    caplog.set_level(logging.DEBUG)
    account = sandbox_account(sandbox, broker="ibkr", seed=13, positions=3, activities=20, token_ttl_seconds=1)
    time.sleep(1.1)
    with pytest.raises(AuthError) as caught:
        build(sandbox, account).verify_credentials()
    assert "expired" in caught.value.message and not caught.value.revoked
    token = account["credentials"]["api_secret"]
    assert token not in caught.value.message and token not in caplog.text
