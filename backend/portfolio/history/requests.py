"""Asking for a value history to be recomputed: debounced, one rebuild at a time per portfolio.

A request lowers the portfolio's `dirty_since` to the first changed day and, unless a
rebuild task is already queued, queues one on the `portfolio` queue after a short delay,
so the requests that arrive meanwhile (a sync, an import, a price backfill) fold into one
rebuild from the earliest of their days. The task takes a per-portfolio lock; a request that
arrives while a rebuild runs queues the next one, which waits for the lock.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from backend.portfolio.models import HistoryState, Portfolio
from backend.sync.models import BrokerTransaction

from .rebuild import RebuildResult, history_rebuild, last_complete_day

log = logging.getLogger("brokersync.portfolio")
# `dirty_since` for "from the first day": earlier than any transaction.
FROM_FIRST_DAY = date(1, 1, 1)
# A rebuild waits at most the debounce, then the lock of the one before it (a 5-year history
# takes seconds): a task queued longer ago than this was lost.
LOST_AFTER = timedelta(minutes=30)


def history_request(*, portfolio_ids: Iterable[int], since: date | None) -> list[int]:
    """Ask for the histories of these portfolios to be recomputed from `since` (None: from
    their first day). Returns the ids a rebuild task was queued for (the others had one)."""
    day = since or FROM_FIRST_DAY
    ids = sorted(set(Portfolio.objects.filter(pk__in=set(portfolio_ids)).values_list("pk", flat=True)))
    if not ids:
        return []
    with transaction.atomic():
        HistoryState.objects.bulk_create([HistoryState(portfolio_id=i) for i in ids], ignore_conflicts=True)
        # Locked in id order, so two requests over overlapping sets cannot deadlock.
        list(HistoryState.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
        rows = HistoryState.objects.filter(pk__in=ids)
        rows.update(dirty_since=Least(Coalesce("dirty_since", Value(day)), Value(day)), requests=F("requests") + 1)
        to_queue = list(rows.filter(queued=False).values_list("pk", flat=True))
        _mark_queued(to_queue)
    return to_queue


def _mark_queued(portfolio_ids: list[int]) -> None:
    """Inside a transaction: the tasks are sent once it commits."""
    HistoryState.objects.filter(pk__in=portfolio_ids).update(queued=True, queued_at=timezone.now())
    transaction.on_commit(lambda: _queue(portfolio_ids))


def _queue(portfolio_ids: list[int]) -> None:
    from backend.portfolio.tasks import rebuild_history

    for pk in portfolio_ids:
        rebuild_history.apply_async((pk,), queue="portfolio", countdown=settings.PORTFOLIO_HISTORY_DEBOUNCE_SECONDS)


def history_run_pending(*, portfolio_id: int) -> RebuildResult | None:
    """What the rebuild task does (under the portfolio's lock): rebuild from the pending day."""
    with transaction.atomic():
        state = HistoryState.objects.select_for_update().filter(pk=portfolio_id).first()
        if state is None:
            return None                                  # the portfolio was deleted
        since, seen = state.dirty_since, state.requests
        state.queued = False                             # a request from now on queues the next rebuild
        state.save(update_fields=["queued"])
    if since is None:
        return None
    return history_rebuild(portfolio_id=portfolio_id, since=None if since == FROM_FIRST_DAY else since,
                           requests_seen=seen)


def histories_extend_due() -> int:
    """Queue the extension of every history that ends before yesterday, the first build of
    every portfolio with transactions but no history, and again every pending rebuild whose
    task was lost (Redis restarted, or the rebuild failed). Beat calls this hourly."""
    _requeue_lost()
    yesterday = last_complete_day()
    behind = defaultdict(list)
    for pk, through in (HistoryState.objects.filter(through__lt=yesterday, dirty_since__isnull=True)
                        .values_list("pk", "through")):
        behind[through].append(pk)
    for through, ids in behind.items():
        history_request(portfolio_ids=ids, since=through)
    never = list(Portfolio.objects.filter(Exists(BrokerTransaction.objects.filter(portfolio=OuterRef("pk"))))
                 .exclude(Exists(HistoryState.objects.filter(portfolio=OuterRef("pk"), through__isnull=False)))
                 .exclude(Exists(HistoryState.objects.filter(portfolio=OuterRef("pk"), dirty_since__isnull=False)))
                 .values_list("pk", flat=True))
    if never:
        history_request(portfolio_ids=never, since=None)
    count = sum(map(len, behind.values())) + len(never)
    log.info("history.extend_due portfolios=%s", count)
    return count


def _requeue_lost() -> None:
    """A pending rebuild with no task queued, or queued long ago, lost its task: send another
    (a spare one finds nothing pending and returns)."""
    with transaction.atomic():
        lost = list(HistoryState.objects.select_for_update(skip_locked=True)
                    .filter(dirty_since__isnull=False)
                    .filter(Q(queued=False) | Q(queued_at__lt=timezone.now() - LOST_AFTER))
                    .values_list("pk", flat=True))
        if lost:
            log.warning("history.requeued_lost portfolios=%s", len(lost))
            _mark_queued(lost)
