"""Conversion through the pairs sources list, worked by hand."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from backend.market.models import Price
from backend.market.rates import PriceBook, day_start
from backend.portfolio.models import Asset

pytestmark = pytest.mark.django_db
D = Decimal


def asset(symbol: str, asset_class: str = "crypto") -> Asset:
    return Asset.objects.get_or_create(symbol=symbol, asset_class=asset_class)[0]


def close(a: Asset, quote: str, day: date, price: str, source: str = "kraken") -> None:
    Price.objects.create(asset=a, quote=quote, interval="1d", at=day_start(day), price=D(price), source=source)


@pytest.fixture
def market():
    btc, usdt, eur, aapl = asset("BTC"), asset("USDT"), asset("EUR", "fiat"), asset("AAPL", "equity")
    close(btc, "USDT", date(2026, 3, 2), "60000", "binance")
    close(usdt, "USD", date(2026, 3, 2), "0.9990")
    close(eur, "USD", date(2026, 3, 2), "1.0800")
    close(aapl, "USD", date(2026, 2, 27), "200.00", "alpaca")      # a Friday: the weekend has no bar
    return {"btc": btc, "usdt": usdt, "eur": eur, "aapl": aapl}


def test_a_coin_quoted_in_a_stablecoin_reaches_euros_through_dollars(market):
    book = PriceBook.load(asset_ids=[market["btc"].id], start=date(2026, 3, 1), end=date(2026, 3, 2))
    # 0.5 BTC x 60,000 USDT = 30,000 USDT; x 0.9990 USD/USDT = 29,970 USD; / 1.08 USD/EUR = 27,750 EUR
    value, point = book.value(market["btc"].id, D("0.5"), "EUR", date(2026, 3, 2))
    assert value.quantize(D("0.0001")) == D("27750.0000")
    assert (point.quote, point.source, point.price) == ("USDT", "binance", D("60000"))
    # The stablecoin has its own price: 1 USDT is 0.999 USD, not 1.
    assert book.rate("USDT", "USD", date(2026, 3, 2)) == D("0.999")


def test_the_close_of_a_day_without_a_bar_is_the_last_close_within_the_lookback(market):
    book = PriceBook.load(asset_ids=[market["aapl"].id], start=date(2026, 2, 27), end=date(2026, 3, 20))
    # Saturday 28 Feb and Monday 2 Mar use Friday's 200.00; 10 days later there is no price.
    assert book.close(market["aapl"].id, "USD", date(2026, 3, 2)).price == D("200.00")
    assert book.close(market["aapl"].id, "USD", date(2026, 3, 9)) is None
    assert book.value(market["aapl"].id, D(3), "USD", date(2026, 3, 9)) is None


def test_an_asset_with_no_price_is_unpriced_not_zero(market):
    doge = asset("DOGE")
    book = PriceBook.load(asset_ids=[doge.id], start=date(2026, 3, 1), end=date(2026, 3, 2))
    assert book.value(doge.id, D(100), "USD", date(2026, 3, 2)) is None


def test_latest_prices_and_inverse_pairs(market):
    gbp = asset("GBP", "fiat")
    usd = asset("USD", "fiat")
    Price.objects.create(asset=usd, quote="GBP", interval="latest", price=D("0.8"), source="kraken",
                         at=datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc))
    Price.objects.create(asset=usd, quote="GBP", interval="latest", price=D("0.75"), source="kraken",
                         at=datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc))
    book = PriceBook.load(asset_ids=[gbp.id], latest=True)
    # Only USD quoted in GBP is listed: 1 GBP = 1 / 0.8 = 1.25 USD, from the newest price.
    assert book.rate("GBP", "USD") == D("1.25")
