"""The Celery app: settings from Django under the CELERY_ namespace, tasks from workers.tasks
(syncs, beat's dispatcher) and backend.portfolio.tasks (value history and latest values)."""
import gc
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings")

app = Celery("brokersync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.tasks", "workers.market", "backend.portfolio.tasks")

from .routing import task_queues, route_task  # noqa: E402

app.conf.task_queues = task_queues()
app.conf.task_routes = (route_task,)

from . import control  # noqa: E402,F401  (the worker's `conf` reply masks URL passwords)


@worker_ready.connect
def _freeze_startup_heap(**_):
    """Everything a worker built to start (Django, Celery, the adapters' modules: hundreds of
    thousands of objects that live as long as it does) leaves the garbage collector's view,
    so its full passes no longer walk them again and again while syncs run."""
    from django.conf import settings

    if settings.WORKER_GC_FREEZE:
        gc.collect()
        gc.freeze()
