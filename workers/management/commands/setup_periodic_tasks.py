"""Install every beat schedule, defined here in code (idempotent; run on each deploy).

The schedule lives in django-celery-beat's tables (DatabaseScheduler). One dispatcher
entry serves all connections by their own sync_interval; see backend/sync/scheduling.py."""
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

SCHEDULES = [
    # (name, task, every seconds, queue): every minute (crontab.guru/#*_*_*_*_*)
    ("sync: dispatch due connections", "sync.dispatch_due", settings.SYNC_DISPATCH_EVERY_SECONDS, "default"),
    ("sync: reap stale runs", "sync.reap_stale_runs", 60, "default"),
    # Latest prices every minute (equities only while the NYSE is open, crypto always), one
    # refresh per source on its broker's queue; daily closes and pruning once a day.
    ("market: refresh latest prices", "market.dispatch_latest", settings.MARKET_LATEST_EVERY_SECONDS, "default"),
    ("market: refresh daily closes", "market.dispatch_closes", settings.MARKET_CLOSES_EVERY_SECONDS, "default"),
    ("market: prune latest prices", "market.prune_latest", 86_400, "default"),
    # Value histories a day behind are extended (hourly: whenever yesterday's closes came in);
    # every portfolio's latest value is refreshed from the latest prices (every minute).
    ("portfolio: extend value histories", "portfolio.extend_histories",
     settings.PORTFOLIO_HISTORY_EXTEND_EVERY_SECONDS, "portfolio"),
    ("portfolio: refresh latest values", "portfolio.refresh_values", settings.PORTFOLIO_VALUES_EVERY_SECONDS,
     "portfolio"),
]
PREFIXES = ("sync: ", "market: ", "portfolio: ")


class Command(BaseCommand):
    help = "Create or update the periodic tasks that drive scheduled syncs."

    @transaction.atomic
    def handle(self, *args, **options):
        names = []
        for name, task, every, queue in SCHEDULES:
            interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
            PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": task, "interval": interval, "enabled": True, "queue": queue})
            names.append(name)
        ours = PeriodicTask.objects.none()
        for prefix in PREFIXES:
            ours |= PeriodicTask.objects.filter(name__startswith=prefix)
        removed, _ = ours.exclude(name__in=names).delete()
        self.stdout.write(f"periodic tasks installed: {len(names)} (removed {removed} stale)")
