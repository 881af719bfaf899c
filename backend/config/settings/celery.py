"""Celery settings (namespace CELERY_). https://docs.celeryq.dev/en/stable/userguide/configuration.html"""
from __future__ import annotations

from backend.config.env import env

from .base import REDIS_URL

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True                 # runs are the record; no result backend needed
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# At-least-once: a step is acknowledged after it ran, and re-delivered if its worker dies.
# Every step is idempotent (upserts + cursors), so a re-delivered step writes nothing twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Must exceed the longest step, or Redis re-delivers a step that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=1500)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=1800)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Task events so Flower can show every task.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# How often the dispatcher looks for due connections, and how long a run may go without
# a heartbeat before it is declared dead.
SYNC_DISPATCH_EVERY_SECONDS = env.int("SYNC_DISPATCH_EVERY_SECONDS", default=60)
SYNC_RUN_LEASE_SECONDS = env.int("SYNC_RUN_LEASE_SECONDS", default=900)
SYNC_MAX_CONSECUTIVE_FAILURES = 5
SYNC_STEP_MAX_RETRIES = env.int("SYNC_STEP_MAX_RETRIES", default=8)
SYNC_STEP_MAX_RATE_LIMITED_RETRIES = env.int("SYNC_STEP_MAX_RATE_LIMITED_RETRIES", default=40)
SYNC_RETRY_BACKOFF_CAP = env.int("SYNC_RETRY_BACKOFF_CAP", default=600)
# One task execution runs the run's next steps too while it is younger than this (a small or
# unchanged sync is one execution; a long backfill still gives its thread back between steps).
SYNC_EXECUTION_CONTINUE_SECONDS = env.float("SYNC_EXECUTION_CONTINUE_SECONDS", default=10.0)
# A step waiting in line for a budget slot is woken when one frees; it looks again by itself
# after this long only if nothing woke it (a safety net, not a poll).
SYNC_SLOT_WAIT_SECONDS = env.float("SYNC_SLOT_WAIT_SECONDS", default=300.0)
# Record every sync task execution's CPU time, requests and rows in Redis (benchmarks read them).
SYNC_TASK_METERING = env.bool("SYNC_TASK_METERING", default=False)

# Value history: requests for the same portfolio within this many seconds fold into one
# rebuild (a sync, an import and a price backfill often arrive together); beat looks for
# histories that are a day behind this often, and refreshes every portfolio's latest value.
PORTFOLIO_HISTORY_DEBOUNCE_SECONDS = env.int("PORTFOLIO_HISTORY_DEBOUNCE_SECONDS", default=5)
PORTFOLIO_HISTORY_EXTEND_EVERY_SECONDS = env.int("PORTFOLIO_HISTORY_EXTEND_EVERY_SECONDS", default=3600)
PORTFOLIO_VALUES_EVERY_SECONDS = env.int("PORTFOLIO_VALUES_EVERY_SECONDS", default=60)
