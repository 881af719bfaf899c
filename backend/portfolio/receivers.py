"""What makes a value history stale, and the rebuild each asks for (never run inside the sender):

- a sync, an import, a manual entry or a move changed transactions (`history_changed`): from
  the first changed day;
- daily closes were backfilled or corrected (`closes_changed`): from their first day, for the
  portfolios that held those assets (all, when a currency's own rate changed);
- the base currency changed (`portfolio_settings_changed`): everything;
- a connection was deleted: everything (its transactions are gone with it).
"""
from __future__ import annotations

from datetime import date, datetime

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from backend.connections.models import BrokerConnection
from backend.market.rates import PIVOTS
from backend.market.signals import closes_changed
from backend.sync.models import BrokerTransaction
from backend.sync.signals import history_changed

from .history.requests import history_request
from .models import Asset, HistoryState
from .signals import portfolio_settings_changed


@receiver(history_changed, dispatch_uid="portfolio.history_on_history_changed")
def _on_history_changed(sender, *, portfolio_id: int, since: datetime | None, **kwargs) -> None:
    if since is not None:                      # None: nothing in the history changed
        history_request(portfolio_ids=[portfolio_id], since=since.date())


@receiver(closes_changed, dispatch_uid="portfolio.history_on_closes_changed")
def _on_closes_changed(sender, *, asset_ids, since: date, **kwargs) -> None:
    history_request(portfolio_ids=portfolios_priced_by(asset_ids), since=since)


@receiver(portfolio_settings_changed, dispatch_uid="portfolio.history_on_settings_changed")
def _on_settings_changed(sender, *, portfolio_id: int, changed, **kwargs) -> None:
    if "base_currency" in changed:
        history_request(portfolio_ids=[portfolio_id], since=None)


@receiver(pre_delete, sender=BrokerConnection, dispatch_uid="portfolio.history_on_connection_deleted")
def _on_connection_deleted(sender, instance: BrokerConnection, **kwargs) -> None:
    portfolio_id = instance.portfolio_id
    transaction.on_commit(lambda: history_request(portfolio_ids=[portfolio_id], since=None))


def portfolios_priced_by(asset_ids) -> list[int]:
    """Portfolios whose stored values depend on these assets' closes: those that ever held one,
    or every portfolio with a history when one of them carries a currency's rate."""
    ids = list(asset_ids)
    currencies = Asset.objects.filter(id__in=ids).filter(asset_class="fiat").exists() or \
        Asset.objects.filter(id__in=ids, symbol__in=PIVOTS).exists()
    if currencies:
        return list(HistoryState.objects.filter(through__isnull=False).values_list("pk", flat=True))
    return list(BrokerTransaction.objects.filter(asset_id__in=ids).values_list("portfolio_id", flat=True)
                .order_by().distinct())
