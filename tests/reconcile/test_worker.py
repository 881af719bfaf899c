"""End to end through the real Celery worker: a sandbox fault becomes a break the API lists and
the run reports; putting the sandbox right and syncing again resolves it."""
from __future__ import annotations

from decimal import Decimal

import pytest

from backend.sync.services import sync_request
from tests.factories import api_client_for, make_connection, sandbox_account, sandbox_advance, sandbox_truth, wait_for_run

from .helpers import inject, put_right

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_fault_is_a_break_in_the_api_until_a_later_sync_resolves_it(sandbox, redis_client, celery_worker_process,
                                                                      user):
    account = sandbox_account(sandbox, broker="alpaca", environment="live", seed=29, positions=5, activities=120)
    sandbox_advance(sandbox, account["account_id"], fills=2, deposit=False, dividend=False, split=False,
                    close_position=False, orders=0, cancel_orders=0, new_symbol=False)
    truth = sandbox_truth(sandbox, account["account_id"])
    sells = [t for t in truth["transactions"] if t["type"] == "trade" and Decimal(t["quantity"]) < 0]
    fill = sells[len(sells) // 2]
    inject(sandbox, account["account_id"], kind="drop", record=fill["broker_id"])
    connection = make_connection(account, broker="alpaca", user=user)
    api, url = api_client_for(user), f"/api/v1/portfolios/{connection.portfolio_id}/breaks/"

    run = wait_for_run(sync_request(connection=connection)[0].pk)
    assert run.state == "succeeded", run.error_message
    body = api.get(f"/api/v1/sync-runs/{run.pk}/").json()
    assert body["open_breaks"] == 1 and body["reconcile_differences"][0]["type"] == "unexplained_disposal"
    [found] = api.get(url + "?status=open").json()["results"]
    assert (found["type"], found["symbol"], found["difference"]) == ("unexplained_disposal", fill["symbol"],
                                                                     fill["quantity"])
    assert found["found_by_run"] == run.pk

    put_right(sandbox, account["account_id"])
    again = wait_for_run(sync_request(connection=connection)[0].pk)
    assert again.state == "succeeded" and again.steps["reconcile"]["breaks"] == 0
    assert api.get(url + "?status=open").json()["count"] == 0
    [resolved] = api.get(url + "?status=resolved").json()["results"]
    assert resolved["id"] == found["id"] and resolved["resolved_by_run"] == again.pk and resolved["resolved_at"]
