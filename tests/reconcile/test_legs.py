"""A missing coin-for-coin fill is one break: on Binance a trade moves three holdings (the
base coin, the quote coin, the commission's coin); the order that filled more than its
stored fills locates the base coin's difference, and the quote's and commission's are that
break's legs. The re-pull asks for that one pair in that order's time."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import make_connection, sandbox_account, sandbox_truth

from .helpers import inject, open_breaks, put_right, sync

pytestmark = pytest.mark.django_db


def test_a_missing_binance_fill_is_one_break_with_its_quote_and_fee_as_legs(sandbox, redis_client):
    sandbox.sims["binance"].reset_limits()                 # weight is per IP: earlier tests share it
    account = sandbox_account(sandbox, broker="binance", environment="live", seed=5, positions=4, activities=60)
    truth = sandbox_truth(sandbox, account["account_id"])
    sells = [t for t in truth["transactions"] if t["type"] == "trade" and Decimal(t["quantity"]) < 0
             and t["broker_id"].count(":") == 2]
    base = sells[len(sells) // 2]                           # trade:ETHUSDT:70679233
    _, symbol, trade_id = base["broker_id"].split(":")
    quote, fee = (next(t for t in truth["transactions"] if t["broker_id"] == f"{base['broker_id']}:{leg}")
                  for leg in ("quote", "fee"))
    inject(sandbox, account["account_id"], kind="drop", record=f"{symbol}:{trade_id}")
    connection = make_connection(account, broker="binance")

    run, made = sync(connection, "binance", sandbox)
    [found] = open_breaks(connection)
    held = {p["symbol"]: Decimal(p["quantity"]) for p in truth["positions"]}
    sold = Decimal(base["quantity"])                        # negative: a sale the history lacks
    assert (found.kind, found.asset.symbol) == ("unexplained_disposal", base["symbol"])
    assert (found.broker_quantity, found.ledger_quantity, found.difference) == (
        held[base["symbol"]], held[base["symbol"]] - sold, sold)
    # the quote the sale brought in (+quoteQty) and the commission it cost (-commission)
    assert sorted((leg["symbol"], Decimal(leg["difference"])) for leg in found.legs) == sorted(
        [(quote["symbol"], Decimal(quote["quantity"])), (fee["symbol"], Decimal(fee["quantity"]))])
    # one pair, one day-window: myTrades once (and exchangeInfo for the pair's base and quote)
    assert made == run.steps["reconcile"]["requests"] <= 2

    put_right(sandbox, account["account_id"])
    cleared, _ = sync(connection, "binance", sandbox)
    found.refresh_from_db()
    assert found.resolved_at is not None and cleared.steps["reconcile"]["created"] == 3
