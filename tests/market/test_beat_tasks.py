"""The beat's price tasks through the real Celery worker: the dispatcher discovers listings
for new holdings and queues one refresh per source on the brokers' queues; the daily
dispatcher backfills closes."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from backend.market.models import Listing, Price
from tests.factories import make_connection, sandbox_account
from tests.market.helpers import asset, hold
from workers.market import dispatch_closes, dispatch_latest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for(predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("the worker did not get there in time")


def test_beat_refreshes_latest_prices_and_backfills_closes_on_the_worker(sandbox, redis_client,
                                                                         celery_worker_process):
    account = sandbox_account(sandbox, broker="kraken", seed=4, positions=1, activities=5)
    kraken = make_connection(account, broker="kraken")
    since = datetime.fromtimestamp(sandbox.clock.now(), timezone.utc) - timedelta(days=30)
    for symbol, cls in (("BTC", "crypto"), ("ETH", "crypto"), ("EUR", "fiat")):
        hold(kraken, asset(symbol, cls), since=since)

    dispatch_latest.delay()
    # BTC, ETH, EUR at Kraken (held there first); nothing else is held.
    wait_for(lambda: Price.objects.filter(interval="latest", source="kraken").count() == 3)
    assert Listing.objects.filter(asset__symbol="BTC", source="kraken", quote="USD", active=True).exists()
    # Elsewhere only the quote currencies other sources' listings use (USDT at Binance), for conversion.
    others = set(Price.objects.filter(interval="latest").exclude(source="kraken").values_list("asset__symbol", flat=True))
    assert others <= {"USDT", "USDC"}

    dispatch_closes.delay()
    # 30 days of closes for each, from the day of the first transaction to yesterday.
    wait_for(lambda: Price.objects.filter(interval="1d", asset__symbol="ETH").count() == 30)
    assert set(Price.objects.filter(interval="1d", asset__symbol__in=["BTC", "ETH", "EUR"])
               .values_list("source", flat=True)) == {"kraken"}
