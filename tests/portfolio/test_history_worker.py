"""Value history through the real Celery worker: a signal queues a debounced rebuild on the
portfolio queue, which recomputes from the first changed day only; a sync ends by asking
for one, and never runs it itself."""
from __future__ import annotations

import time
from datetime import datetime, time as clock, timedelta, timezone

import pytest

from backend.portfolio.history.rebuild import last_complete_day
from backend.portfolio.models import DailyValue, HistoryState
from backend.sync.models import SyncRun
from backend.sync.services import sync_request
from backend.sync.signals import history_changed
from tests.api.factories import ConnectionFactory, PortfolioFactory
from tests.factories import UserFactory, make_connection, sandbox_account, wait_for_run

from .helpers import asset, closes, tx

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_rebuilt(portfolio, after=None, timeout: float = 60) -> HistoryState:
    """Until nothing is pending and the history was rebuilt (after `after`, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = HistoryState.objects.filter(portfolio=portfolio).first()
        if state and state.dirty_since is None and state.rebuilt_at and (after is None or state.rebuilt_at > after):
            return state
        time.sleep(0.2)
    raise AssertionError(f"history of portfolio {portfolio.pk} not rebuilt in {timeout}s: {state and state.__dict__}")


def changed(connection, day):
    history_changed.send(sender=None, connection_id=connection.pk, portfolio_id=connection.portfolio_id,
                         since=datetime.combine(day, clock(12), tzinfo=timezone.utc), reason="sync")


def test_a_change_rebuilds_from_its_first_day_only(celery_worker_process, redis_client, published):
    user = UserFactory()
    portfolio = PortfolioFactory(owner=user)
    connection = ConnectionFactory(owner=user, portfolio=portfolio)
    end = last_complete_day()
    start = end - timedelta(days=5)
    xyz = asset("XYZ")
    closes(xyz, "USD", start, end, lambda d: 100 + (d - start).days)      # 100, 101, ... 105
    tx(connection, start, "deposit", amount=1000)
    tx(connection, start, "trade", asset=xyz, quantity=10, amount=-1000)

    changed(connection, start)
    state = wait_rebuilt(portfolio)
    assert state.through == end
    first = {r.day: (r.pk, r.value) for r in DailyValue.objects.filter(portfolio=portfolio, connection=None)}
    assert first[end][1] == 10 * 105                                        # 10 XYZ at 105, no cash left

    # Three changes in quick succession fold into one rebuild, from the earliest of their days.
    k = end - timedelta(days=2)
    tx(connection, k, "dividend", amount=7)
    before = len(published)
    for day in (end, k, end - timedelta(days=1)):
        changed(connection, day)
    assert len(published) - before == 1                                   # one task queued for the three
    state = wait_rebuilt(portfolio, after=state.rebuilt_at)
    assert state.requests == 4 and state.through == end
    second = {r.day: (r.pk, r.value) for r in DailyValue.objects.filter(portfolio=portfolio, connection=None)}
    assert {d: v for d, v in second.items() if d < k} == {d: v for d, v in first.items() if d < k}  # same rows
    assert all(second[d][0] != first[d][0] for d in second if d >= k)                             # rewritten
    assert second[end][1] == 10 * 105 + 7 and second[k - timedelta(days=1)][1] == first[k - timedelta(days=1)][1]


def test_a_sync_asks_for_the_history_and_the_portfolio_queue_builds_it(sandbox, redis_client, celery_worker_process):
    account = sandbox_account(sandbox, broker="alpaca", environment="paper", seed=41, positions=3, activities=40)
    connection = make_connection(account, broker="alpaca")
    run = wait_for_run(sync_request(connection=connection)[0].pk)
    assert run.state == SyncRun.State.SUCCEEDED, run.error_message
    state = wait_rebuilt(connection.portfolio)
    first_day = connection.transactions.order_by("occurred_at").first().occurred_at.date()
    days = list(DailyValue.objects.filter(portfolio=connection.portfolio, connection=None)
                .order_by("day").values_list("day", flat=True))
    assert (days[0], days[-1], state.through) == (first_day, last_complete_day(), last_complete_day())
    assert len(days) == (last_complete_day() - first_day).days + 1
