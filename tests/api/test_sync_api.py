"""Runs, positions, transactions and orders of a connection: scoping, filters, pagination,
and decimals as exact strings."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from backend.portfolio.models import Asset

from .factories import (
    T0, AssetFactory, ConnectionFactory, OrderFactory, PositionFactory, SyncRunFactory, TransactionFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(user):
    return ConnectionFactory(owner=user)


def url(connection, what: str) -> str:
    return f"/api/v1/connections/{connection.pk}/{what}/"


class TestSyncRuns:
    def test_listed_newest_first_and_paginated(self, api, connection):
        runs = [SyncRunFactory(connection=connection) for _ in range(3)]
        SyncRunFactory()                                   # someone else's

        body = api.get(url(connection, "sync-runs"), {"page_size": 2}).json()

        assert body["count"] == 3
        assert [r["id"] for r in body["results"]] == [runs[2].pk, runs[1].pk]
        assert api.get(body["next"]).json()["results"][0]["id"] == runs[0].pk

    def test_detail_shows_steps_errors_and_how_many_records_were_skipped(self, api, connection):
        run = SyncRunFactory(
            connection=connection, state="failed", failed_step="orders", current_step="orders",
            steps={"positions": {"fetched": 3, "created": 3, "duration_ms": 12}},
            error_kind="transient", error_message="Alpaca answered 503",
            reconcile_differences=[{"symbol": "AAPL", "difference": "1"}],
            skipped_records=[{"stream": "transactions", "reason": "bad date", "raw": {}}] * 2)

        body = api.get(f"/api/v1/sync-runs/{run.pk}/").json()

        assert body["state"] == "failed" and body["failed_step"] == "orders"
        assert body["steps"]["positions"]["created"] == 3
        assert (body["error_kind"], body["error_message"]) == ("transient", "Alpaca answered 503")
        assert body["reconcile_differences"] == [{"symbol": "AAPL", "difference": "1"}]
        assert body["skipped_records"] == 2
        assert {"queued_at", "started_at", "finished_at", "trigger", "current_step"} <= body.keys()

    def test_another_users_run_is_a_404(self, api):
        assert api.get(f"/api/v1/sync-runs/{SyncRunFactory().pk}/").status_code == 404


class TestPositions:
    def test_decimals_are_exact_strings_and_assets_are_shown(self, api, connection):
        asset = AssetFactory(symbol="BTC", asset_class=Asset.AssetClass.CRYPTO)
        PositionFactory(connection=connection, asset=asset, broker_symbol="XXBT",
                        quantity=Decimal("0.000000000000000001"), market_value=Decimal("-1234.5"),
                        avg_entry_price=None)

        position = api.get(url(connection, "positions")).json()["results"][0]

        assert (position["symbol"], position["asset_class"], position["broker_symbol"]) == ("BTC", "crypto", "XXBT")
        assert position["quantity"] == "0.000000000000000001"
        assert position["market_value"] == "-1234.5"
        assert position["current_price"] == "110.05"
        assert position["avg_entry_price"] is None
        assert position["is_open"] is True and position["closed_at"] is None

    def test_filters(self, api, connection):
        btc = PositionFactory(connection=connection, asset=AssetFactory(symbol="BTC", asset_class="crypto"),
                              broker_symbol="XXBT")
        aapl = PositionFactory(connection=connection, asset=AssetFactory(symbol="AAPL"), is_open=False)

        def ids(**params):
            return [p["id"] for p in api.get(url(connection, "positions"), params).json()["results"]]

        assert ids(symbol="btc") == ids(symbol="xxbt") == [btc.pk]
        assert ids(is_open="false") == [aapl.pk]
        assert ids(asset_class="equity") == [aapl.pk]


class TestTransactions:
    @pytest.fixture
    def history(self, connection):
        aapl, btc = AssetFactory(symbol="AAPL"), AssetFactory(symbol="BTC", asset_class="crypto")
        rows = [TransactionFactory(connection=connection, asset=aapl, occurred_at=T0 + timedelta(days=d))
                for d in range(5)]
        rows.append(TransactionFactory(connection=connection, asset=aapl, type="dividend", side="",
                                       occurred_at=T0 + timedelta(days=10)))
        rows.append(TransactionFactory(connection=connection, asset=btc, broker_symbol="BTC/USD", side="sell",
                                       status="canceled", occurred_at=T0 + timedelta(days=20)))
        rows.append(TransactionFactory(connection=connection, asset=None, type="deposit", side="", quantity=None,
                                       amount=Decimal("1000"), occurred_at=T0 + timedelta(days=30)))
        TransactionFactory(asset=aapl)                       # another user's
        return rows

    def get(self, api, connection, **params):
        response = api.get(url(connection, "transactions"), params)
        assert response.status_code == 200, response.content
        return response.json()

    def test_newest_first_with_pages(self, api, connection, history):
        first = self.get(api, connection, page_size=3)
        second = self.get(api, connection, page_size=3, page=2)

        assert first["count"] == 8
        ids = [t["id"] for t in first["results"] + second["results"]]
        assert ids == [t.pk for t in sorted(history, key=lambda t: t.occurred_at, reverse=True)][:6]
        assert first["next"] and first["previous"] is None

    def test_page_size_is_capped_at_500(self, api, connection, history):
        body = self.get(api, connection, page_size=100_000)
        assert len(body["results"]) == 8 and body["next"] is None      # accepted, capped, not refused

    def test_filters(self, api, connection, history):
        def ids(**params):
            return {t["id"] for t in self.get(api, connection, **params)["results"]}

        trades = {t.pk for t in history if t.type == "trade"}
        assert ids(type="trade") == trades
        assert ids(type=["dividend", "deposit"]) == {history[5].pk, history[7].pk}
        assert ids(symbol="btc/usd") == ids(symbol="BTC") == {history[6].pk}
        assert ids(status="canceled") == {history[6].pk}
        assert ids(side="sell") == {history[6].pk}
        assert ids(asset_class="crypto") == {history[6].pk}
        # since <= occurred_at < until: history[6] happened at 2024-01-21T00:00Z exactly
        assert ids(since=(T0 + timedelta(days=3)).isoformat(), until="2024-01-21") == {
            history[3].pk, history[4].pk, history[5].pk}
        assert ids(since="2024-01-21T00:00:00Z", until="2024-01-22") == {history[6].pk}
        assert ids(since="2024-01-31T00:00:00Z") == {history[7].pk}

    def test_decimals_are_strings_and_a_cash_row_has_no_asset(self, api, connection, history):
        deposit = self.get(api, connection, type="deposit")["results"][0]
        trade = self.get(api, connection, type="trade")["results"][0]

        assert (deposit["symbol"], deposit["asset_class"], deposit["quantity"]) == (None, None, None)
        assert deposit["amount"] == "1000"
        assert (trade["quantity"], trade["price"], trade["amount"]) == ("1.5", "0.000000000000000001", "-150.75")

    @pytest.mark.parametrize("params, field", [({"type": "bogus"}, "type"), ({"since": "yesterday"}, "since"),
                                               ({"side": "up"}, "side")])
    def test_a_bad_filter_is_a_400_naming_it(self, api, connection, history, params, field):
        response = api.get(url(connection, "transactions"), params)
        assert response.status_code == 400
        assert field in response.json()["fields"]


class TestOrders:
    def test_filters_and_strings(self, api, connection):
        aapl = AssetFactory(symbol="AAPL")
        filled = OrderFactory(connection=connection, asset=aapl, submitted_at=T0)
        open_ = OrderFactory(connection=connection, asset=aapl, status="open", side="sell",
                             submitted_at=T0 + timedelta(days=2), filled_quantity=Decimal("0"))
        partial = OrderFactory(connection=connection, asset=aapl, status="partially_filled",
                               submitted_at=T0 + timedelta(days=4))

        def ids(**params):
            return [o["id"] for o in api.get(url(connection, "orders"), params).json()["results"]]

        assert ids() == [partial.pk, open_.pk, filled.pk]
        assert ids(status=["open", "partially_filled"]) == [partial.pk, open_.pk]
        assert ids(side="sell") == [open_.pk]
        assert ids(since="2024-01-02", until="2024-01-04") == [open_.pk]
        assert ids(symbol="aapl") == [partial.pk, open_.pk, filled.pk]
        order = api.get(url(connection, "orders"), {"status": "open"}).json()["results"][0]
        assert (order["limit_price"], order["filled_quantity"], order["quantity"]) == ("99.5", "0", "2")
