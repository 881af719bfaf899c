"""Live value: positions at the latest prices by the pricing rule, in the base currency; the
one-statement refresh of every portfolio agrees with it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from backend.portfolio.models import PortfolioValue
from backend.portfolio.snapshot import portfolio_values_refresh
from backend.portfolio.value import portfolio_value
from tests.api.factories import PortfolioFactory

from .helpers import asset, latest, position

pytestmark = pytest.mark.django_db
D = Decimal
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def euro(user, connect):
    """An EUR portfolio: US stock and dollars at Alpaca, BTC, DOGE and euros at Kraken, BTC and
    USDT at Binance."""
    portfolio = PortfolioFactory(owner=user, name="Euro", base_currency="EUR")
    alpaca, kraken, binance = (connect(b, portfolio) for b in ("alpaca", "kraken", "binance"))
    aapl, btc, doge, usdt = asset("AAPL"), asset("BTC", "crypto"), asset("DOGE", "crypto"), asset("USDT", "crypto")
    usd, eur = asset("USD", "fiat"), asset("EUR", "fiat")
    position(alpaca, aapl, 10)
    position(alpaca, usd, 500)
    position(kraken, btc, "0.5")
    position(kraken, doge, 1000)
    position(kraken, eur, 100)
    position(binance, btc, "0.1")
    position(binance, usdt, 1000)
    minute = timedelta(minutes=1)
    latest(aapl, "USD", 200, "alpaca", NOW - 20 * minute)
    latest(btc, "EUR", 60000, "kraken", NOW - 2 * minute)
    latest(btc, "EUR", 61000, "binance", NOW - minute)
    latest(btc, "EUR", 59000, "binance", NOW - 30 * minute)        # Binance's older price: not the latest
    latest(btc, "USDT", 70000, "binance", NOW - minute)
    latest(usdt, "USD", "0.999", "kraken", NOW - 5 * minute)
    latest(eur, "USD", "1.10", "kraken", NOW - 3 * minute)
    latest(doge, "USD", "0.1", "kraken", NOW - timedelta(days=8))  # older than a week: not a live price
    return portfolio, alpaca, kraken, binance


def test_an_eur_portfolio_of_us_stock_btc_and_a_stablecoin_by_hand(euro):
    portfolio, alpaca, kraken, binance = euro
    value = portfolio_value(portfolio=portfolio, now=NOW)
    # In EUR at 1.10 USD per EUR:
    #   AAPL   10 x 200 USD / 1.10                      =  1,818.1818...  (Alpaca's own price)
    #   BTC    0.5 x 60,000 EUR at Kraken                = 30,000          (Kraken's price, not Binance's 61,000)
    #   BTC    0.1 x 61,000 EUR at Binance               =  6,100          (Binance's newest; EUR before USDT)
    #   USDT   1,000 x 0.999 USD / 1.10                  =    908.1818...  (a coin with its own price, not 1 USD)
    #   cash   500 USD / 1.10 + 100 EUR                  =    554.5454...
    #   total  (2,000 + 999 + 500) / 1.10 + 36,200       = 39,380.9090...; DOGE left out (no live price)
    assert value.currency == "EUR"
    assert round(value.total, 10) == round(D(3499) / D("1.1") + 36200, 10)
    assert round(value.cash, 10) == round(D(500) / D("1.1") + 100, 10)
    held = {(h.connection_id, h.symbol): h for h in value.holdings}
    assert round(held[(alpaca.pk, "AAPL")].value, 10) == round(D(2000) / D("1.1"), 10)
    assert (held[(kraken.pk, "BTC")].value, held[(kraken.pk, "BTC")].point.source) == (30000, "kraken")
    assert (held[(binance.pk, "BTC")].value, held[(binance.pk, "BTC")].point.quote) == (6100, "EUR")
    assert round(held[(binance.pk, "USDT")].value, 10) == round(D(999) / D("1.1"), 10)
    assert [h.symbol for h in value.holdings] == ["BTC", "BTC", "AAPL", "USDT"]      # largest first
    # The unpriced holding is listed apart, with why, and counted nowhere.
    [doge] = value.unpriced
    assert (doge.symbol, doge.quantity, doge.reason) == ("DOGE", 1000, "no price from any source")
    per_connection = {c.id: (round(c.total, 6), c.unpriced) for c in value.connections}
    assert per_connection[kraken.pk] == (D("30100.000000"), 1)
    # The oldest price used is AAPL's, 20 minutes old; weights add up to 1.
    assert value.oldest_price_at == NOW - timedelta(minutes=20)
    assert abs(sum(h.weight for h in value.holdings + value.cash_balances) - 1) < D("1e-20")


def test_a_holding_is_unpriced_when_its_quote_has_no_rate(user, connect):
    portfolio = PortfolioFactory(owner=user, name="Pounds", base_currency="GBP")
    alpaca = connect("alpaca", portfolio)
    position(alpaca, asset("AAPL"), 1)
    latest(asset("AAPL"), "USD", 200, "alpaca", NOW)
    value = portfolio_value(portfolio=portfolio, now=NOW)
    assert value.total == 0 and [u.reason for u in value.unpriced] == ["no rate into GBP for its quotes (USD)"]


def test_the_refresh_of_every_portfolio_agrees_with_the_live_value(euro, user, connect):
    portfolio = euro[0]
    empty = PortfolioFactory(owner=user, name="Empty")
    dollars = PortfolioFactory(owner=user, name="Dollars")
    position(connect("kraken", dollars), asset("BTC", "crypto"), 2)
    assert portfolio_values_refresh(now=NOW) == 3
    for p in (portfolio, empty, dollars):
        live, stored = portfolio_value(portfolio=p, now=NOW), PortfolioValue.objects.get(portfolio=p)
        assert (stored.currency, stored.unpriced) == (live.currency, len(live.unpriced))
        assert abs(stored.total - live.total) < D("1e-12") and abs(stored.cash - live.cash) < D("1e-12")
        assert stored.holdings == len(live.holdings) + len(live.cash_balances)
        assert stored.oldest_price_at == live.oldest_price_at
    # BTC in USD: Kraken's 60,000 EUR x 1.10 = 66,000 USD a coin (its own source, converted).
    assert PortfolioValue.objects.get(portfolio=dollars).total == 2 * 66000
    # Refreshing again updates the same rows.
    latest(asset("BTC", "crypto"), "EUR", 50000, "kraken", NOW)
    portfolio_values_refresh(now=NOW)
    assert PortfolioValue.objects.count() == 3
    assert PortfolioValue.objects.get(portfolio=dollars).total == 2 * 55000
