"""What asks for a value history rebuild, from which day, and how requests fold into one task."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from backend.market.signals import closes_changed
from backend.portfolio.history.rebuild import last_complete_day
from backend.portfolio.history.requests import FROM_FIRST_DAY, histories_extend_due, history_request
from backend.portfolio.models import HistoryState
from backend.portfolio.signals import portfolio_settings_changed
from tests.api.factories import ConnectionFactory, PortfolioFactory

from .helpers import asset, tx

pytestmark = pytest.mark.django_db
A = date(2026, 3, 2)


def pending() -> dict[int, date | None]:
    return dict(HistoryState.objects.values_list("portfolio_id", "dirty_since"))


def test_requests_fold_into_one_task_from_the_earliest_day(portfolio, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert history_request(portfolio_ids=[portfolio.pk], since=A + timedelta(5)) == [portfolio.pk]
        assert history_request(portfolio_ids=[portfolio.pk], since=A) == []             # a task is queued already
        assert history_request(portfolio_ids=[portfolio.pk], since=A + timedelta(9)) == []
    state = HistoryState.objects.get(portfolio=portfolio)
    assert (state.dirty_since, state.requests, state.queued) == (A, 3, True)
    assert [(q, t) for q, t, _, _ in published] == [("portfolio", "portfolio.rebuild_history")]
    with django_capture_on_commit_callbacks(execute=True):
        history_request(portfolio_ids=[portfolio.pk], since=None)
    assert pending() == {portfolio.pk: FROM_FIRST_DAY}


def test_closes_changed_asks_the_portfolios_that_held_the_asset(user, connect, published,
                                                                 django_capture_on_commit_callbacks):
    holder, other = PortfolioFactory(owner=user, name="Holder"), PortfolioFactory(owner=user, name="Other")
    btc, eth = asset("BTC", "crypto"), asset("ETH", "crypto")
    tx(connect("kraken", holder), A, "transfer", asset=btc, quantity=1)
    tx(connect("kraken", other), A, "transfer", asset=eth, quantity=1)
    with django_capture_on_commit_callbacks(execute=True):
        closes_changed.send(sender=None, asset_ids=[btc.pk], since=A)
    assert pending() == {holder.pk: A}
    # A currency's own rate converts every portfolio's values: every history is asked for.
    HistoryState.objects.update(through=A, dirty_since=None, queued=False)
    HistoryState.objects.create(portfolio=other, through=A)
    with django_capture_on_commit_callbacks(execute=True):
        closes_changed.send(sender=None, asset_ids=[asset("EUR", "fiat").pk], since=A - timedelta(1))
    assert pending() == {holder.pk: A - timedelta(1), other.pk: A - timedelta(1)}


def test_settings_and_deletions(user, portfolio, published, django_capture_on_commit_callbacks):
    connection = ConnectionFactory(owner=user, portfolio=portfolio)
    with django_capture_on_commit_callbacks(execute=True):
        portfolio_settings_changed.send(sender=None, portfolio_id=portfolio.pk, changed={"cost_basis_method"})
    assert pending() == {}                                       # the ledger's business, not the value's
    with django_capture_on_commit_callbacks(execute=True):
        connection.delete()                                      # its transactions are gone: everything again
    assert pending() == {portfolio.pk: FROM_FIRST_DAY}


def test_beat_extends_what_is_behind_builds_what_never_was_and_requeues_lost_tasks(
        user, connect, published, django_capture_on_commit_callbacks):
    yesterday = last_complete_day()
    behind, current, never, lost = (PortfolioFactory(owner=user, name=n) for n in ("b", "c", "n", "l"))
    HistoryState.objects.create(portfolio=behind, through=yesterday - timedelta(3))
    HistoryState.objects.create(portfolio=current, through=yesterday)
    tx(connect("alpaca", never), A, "deposit", amount=10)
    HistoryState.objects.create(portfolio=lost, through=yesterday, dirty_since=A, queued=True,
                                queued_at=timezone.now() - timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        histories_extend_due()
    assert pending() == {behind.pk: yesterday - timedelta(3), current.pk: None, never.pk: FROM_FIRST_DAY, lost.pk: A}
    assert sorted(a for _, _, a, _ in published) == sorted(f"({p.pk},)" for p in (behind, never, lost))
