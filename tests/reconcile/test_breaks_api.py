"""GET /api/v1/portfolios/{id}/breaks/: filters, pagination, OpenAPI, 404 across users; and a
run's summary of its open breaks. Breaks are written as reconcile writes them
(breaks_record); what finds them is tested in test_faults.py and test_transfer.py."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from backend.portfolio.models import Asset
from backend.reconcile.models import Break
from backend.reconcile.rules import Difference, Verdict
from backend.reconcile.services import Outcome, breaks_record
from backend.sync.models import SyncRun
from tests.factories import make_connection

pytestmark = pytest.mark.django_db
URL = "/api/v1/portfolios/{}/breaks/"


def account(broker: str, number: str) -> dict:
    return {"environment": "live", "broker_account_id": number, "credentials": {"api_key": "k", "api_secret": "s"}}


def record(connection, verdicts: dict[str, tuple[Difference, str]]) -> SyncRun:
    run = SyncRun.objects.create(connection=connection, trigger="test", state="succeeded")
    outcome = Outcome(differences=[d for d, _ in verdicts.values()],
                      verdicts={key: Verdict(kind, f"{kind} detail", "resolve it", (None, None))
                                for key, (_, kind) in verdicts.items()})
    run.steps = {"reconcile": breaks_record(connection=connection, run=run, outcome=outcome)}
    run.save()
    return run


@pytest.fixture
def breaks(user, other_user):
    btc, _ = Asset.objects.get_or_create(symbol="BTC", asset_class="crypto")
    eth, _ = Asset.objects.get_or_create(symbol="ETH", asset_class="crypto")
    kraken = make_connection(account("kraken", "K-1"), broker="kraken", user=user)
    coinbase = make_connection(account("coinbase", "C-1"), broker="coinbase", user=user)
    btc_diff = Difference(f"asset:{btc.pk}", btc.pk, "BTC", "crypto", Decimal("0.5"), Decimal("0.4"))
    usd_diff = Difference("cash:USD", None, "USD", "fiat", Decimal("100"), Decimal("90"))
    first = record(kraken, {btc_diff.key: (btc_diff, "transfer"), usd_diff.key: (usd_diff, "cash")})
    latest = record(kraken, {btc_diff.key: (btc_diff, "transfer")})              # the cash break resolved
    eth_diff = Difference(f"asset:{eth.pk}", eth.pk, "ETH", "crypto", Decimal("1"), Decimal("1.2"))
    record(coinbase, {eth_diff.key: (eth_diff, "unexplained_disposal")})
    theirs = make_connection(account("kraken", "K-2"), broker="kraken", user=other_user)
    record(theirs, {btc_diff.key: (btc_diff, "history_missing")})
    return {"portfolio": kraken.portfolio, "coinbase_portfolio": coinbase.portfolio, "kraken": kraken,
            "first": first, "latest": latest, "theirs": theirs}


def test_lists_open_and_resolved_breaks_with_both_quantities(api, breaks):
    body = api.get(URL.format(breaks["portfolio"].pk)).json()
    assert body["count"] == 2
    open_, resolved = body["results"]                          # open first
    assert (open_["type"], open_["status"], open_["symbol"], open_["asset_class"]) == ("transfer", "open", "BTC", "crypto")
    assert (open_["broker_quantity"], open_["ledger_quantity"], open_["difference"]) == ("0.5", "0.4", "0.1")
    assert open_["found_by_run"] == breaks["first"].pk and open_["last_run"] == breaks["latest"].pk
    assert (resolved["type"], resolved["status"], resolved["symbol"], resolved["asset_class"]) == (
        "cash", "resolved", "USD", "fiat")
    assert resolved["resolved_by_run"] == breaks["latest"].pk and resolved["resolved_at"]
    assert open_["detail"] == "transfer detail" and open_["resolution"] == "resolve it"


@pytest.mark.parametrize("query, types", [
    ("?status=open", ["transfer"]), ("?status=resolved", ["cash"]), ("?type=cash", ["cash"]),
    ("?type=cash&type=transfer", ["transfer", "cash"]), ("?type=split", []),
])
def test_filters_by_state_and_type(api, breaks, query, types):
    body = api.get(URL.format(breaks["portfolio"].pk) + query).json()
    assert [b["type"] for b in body["results"]] == types


def test_filters_by_connection(api, breaks):
    kraken = breaks["kraken"]
    assert api.get(URL.format(kraken.portfolio_id) + f"?connection={kraken.pk}").json()["count"] == 2
    assert api.get(URL.format(kraken.portfolio_id) + f"?connection={kraken.pk + 1000}").json()["count"] == 0
    other = breaks["coinbase_portfolio"]
    assert [b["type"] for b in api.get(URL.format(other.pk)).json()["results"]] == ["unexplained_disposal"]


def test_bad_filters_are_400_with_the_field(api, breaks):
    for query, field in (("?status=closed", "status"), ("?type=nonsense", "type"), ("?connection=x", "connection")):
        response = api.get(URL.format(breaks["portfolio"].pk) + query)
        assert response.status_code == 400 and field in response.json()["fields"], query


def test_paginated(api, breaks):
    page = api.get(URL.format(breaks["portfolio"].pk) + "?page_size=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]


def test_another_users_portfolio_is_404(api, other_api, breaks):
    theirs = breaks["theirs"].portfolio_id
    assert api.get(URL.format(theirs)).status_code == 404
    assert other_api.get(URL.format(breaks["portfolio"].pk)).status_code == 404
    assert other_api.get(URL.format(theirs)).json()["results"][0]["type"] == "history_missing"
    assert api.get(URL.format(999_999)).status_code == 404


def test_needs_authentication(client, breaks):
    assert client.get(URL.format(breaks["portfolio"].pk)).status_code in (401, 403)


def test_a_run_says_how_many_breaks_it_ended_with(api, breaks):
    first, latest = breaks["first"], breaks["latest"]
    body = api.get(f"/api/v1/sync-runs/{first.pk}/").json()
    assert body["open_breaks"] == 2
    latest_body = api.get(f"/api/v1/sync-runs/{latest.pk}/").json()
    assert latest_body["open_breaks"] == 1
    [difference] = latest_body["reconcile_differences"]
    assert difference == {"asset": "BTC", "asset_class": "crypto", "broker_quantity": "0.5",
                          "computed_quantity": "0.4", "difference": "0.1", "type": "transfer",
                          "break": Break.objects.get(resolved_at__isnull=True, connection=breaks["kraken"]).pk}


def test_a_kind_change_resolves_the_old_break_and_opens_a_new_one(breaks):
    kraken = breaks["kraken"]
    btc = Break.objects.get(connection=kraken, resolved_at__isnull=True)
    diff = Difference(btc.key, btc.asset_id, "BTC", "crypto", Decimal("0.5"), Decimal("0.4"))
    record(kraken, {diff.key: (diff, "history_missing")})
    btc.refresh_from_db()
    assert btc.resolved_at is not None
    assert Break.objects.get(connection=kraken, resolved_at__isnull=True).kind == "history_missing"
    assert btc.first_seen_at <= timezone.now() + timedelta(seconds=1)


def test_the_endpoint_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/portfolios/{portfolio_id}/breaks/"]["get"]
    assert operation["operationId"] == "portfolios_breaks_list"
    assert {p["name"] for p in operation["parameters"]} >= {"connection", "type", "status", "page", "page_size"}
    fields = schema["components"]["schemas"]["BreakOutput"]["properties"]
    assert {"type", "broker_quantity", "ledger_quantity", "difference", "window_start", "window_end",
            "resolution", "first_seen_at", "last_seen_at", "resolved_at"} <= set(fields)
    assert fields["window_start"]["description"]
