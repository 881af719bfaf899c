"""What makes the ledger recompute: new or changed history, changed settings, corrected closes.
Receivers only queue (after commit); the work happens on the `ledger` queue."""
from __future__ import annotations

from datetime import datetime, time, timezone

from django.db.models.signals import post_delete
from django.dispatch import receiver

from backend.connections.models import BrokerConnection

from backend.market.signals import closes_changed
from backend.portfolio.signals import portfolio_settings_changed
from backend.sync.signals import history_changed

LEDGER_SETTINGS = {"cost_basis_method", "wash_sales", "base_currency"}


@receiver(history_changed, dispatch_uid="ledger.history_changed")
def on_history_changed(sender, *, portfolio_id: int, since: datetime | None = None, **kwargs) -> None:
    from .services import ledger_request

    if since is not None or kwargs.get("reason") == "moved":
        ledger_request(portfolio_id=portfolio_id, since=since, full=since is None)


@receiver(portfolio_settings_changed, dispatch_uid="ledger.settings_changed")
def on_settings_changed(sender, *, portfolio_id: int, changed=(), **kwargs) -> None:
    from .services import ledger_request

    if LEDGER_SETTINGS & set(changed):
        ledger_request(portfolio_id=portfolio_id, full=True)


@receiver(closes_changed, dispatch_uid="ledger.closes_changed")
def on_closes_changed(sender, *, asset_ids, since, **kwargs) -> None:
    """Fair values of swaps, rewards and in-kind fees come from closes: recompute from there."""
    from .services import closes_changed_portfolios, ledger_request

    moment = since if isinstance(since, datetime) else datetime.combine(since, time.min, tzinfo=timezone.utc)
    for portfolio_id in closes_changed_portfolios(asset_ids=asset_ids, since=moment):
        ledger_request(portfolio_id=portfolio_id, since=moment, history=False)


@receiver(post_delete, sender=BrokerConnection, dispatch_uid="ledger.connection_deleted")
def on_connection_deleted(sender, instance: BrokerConnection, **kwargs) -> None:
    """Its lots went with it (cascade); the saved state still has them: replay."""
    from backend.portfolio.models import Portfolio

    from .services import ledger_request

    if Portfolio.objects.filter(pk=instance.portfolio_id).exists():
        ledger_request(portfolio_id=instance.portfolio_id, full=True)
