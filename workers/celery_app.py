"""The Celery app: settings from Django under the CELERY_ namespace, tasks from workers.tasks
(syncs, beat's dispatcher) and backend.portfolio.tasks (value history and latest values)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings")

app = Celery("brokersync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.tasks", "workers.market", "backend.portfolio.tasks")

from .routing import task_queues, route_task  # noqa: E402

app.conf.task_queues = task_queues()
app.conf.task_routes = (route_task,)

from . import control  # noqa: E402,F401  (the worker's `conf` reply masks URL passwords)
from . import egress_queues  # noqa: E402,F401  (a worker bound to an egress address also reads its own queues)
