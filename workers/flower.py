"""Flower as brokersync runs it (`make run`, `make flower`, docker-compose):

    python -m workers.flower --port=5555 --address=127.0.0.1

Flower 2.2 with three changes:
- Credentials always: FLOWER_BASIC_AUTH=user:password (or --basic-auth, or Flower's OAuth
  --auth). Outside a local or test run it refuses to start without them; a local run
  without them gets a password of its own, printed once.
- Every page asks for them, /metrics and /healthcheck included (Prometheus scrapes with
  basic_auth).
- The write API is not served: applying, revoking or aborting tasks, shutting down or
  resizing workers answer 404. FLOWER_WRITE_API=true serves them (to the same credentials).
Flower's --read_only only hides the worker controls and leaves task apply open; its
handlers are Flower's own, so they are filtered here rather than patched."""
from __future__ import annotations

import atexit
import logging
import secrets
import signal
import sys

import tornado.web
from flower import command
from flower.api import control, tasks
from flower.app import Flower
from flower.urls import settings as flower_settings
from flower.views import monitor
from tornado import web
from tornado.options import options

log = logging.getLogger("brokersync.flower")
LOCAL_ENVIRONMENTS = ("local", "test")
# Flower's handlers that change something (flower/urls.py "Worker API" and "Task API").
WRITE_HANDLERS = frozenset({
    control.WorkerShutDown, control.WorkerPoolRestart, control.WorkerPoolGrow, control.WorkerPoolShrink,
    control.WorkerPoolAutoscale, control.WorkerQueueAddConsumer, control.WorkerQueueCancelConsumer,
    control.TaskTimout, control.TaskRateLimit, control.TaskRevoke,
    tasks.TaskApply, tasks.TaskAsyncApply, tasks.TaskSend, tasks.TaskAbort,
})


class Metrics(monitor.Metrics):
    @web.authenticated
    async def get(self):
        await super().get()


class Healthcheck(monitor.Healthcheck):
    @web.authenticated
    async def get(self):
        await super().get()


AUTHENTICATED = {monitor.Metrics: Metrics, monitor.Healthcheck: Healthcheck}


def guarded(handlers: list, *, write_api: bool) -> list:
    """Flower's handler list without the write API (unless asked) and with every page
    behind authentication. Entries are tornado `url` rules or (pattern, class[, kwargs])."""
    out = []
    for rule in handlers:
        is_url = isinstance(rule, tornado.web.URLSpec)
        cls = rule.handler_class if is_url else rule[1]
        if cls in WRITE_HANDLERS and not write_api:
            continue                                # falls through to Flower's 404 handler
        if cls in AUTHENTICATED:
            cls = AUTHENTICATED[cls]
            rule = tornado.web.url(rule.regex.pattern, cls, rule.kwargs, rule.name) if is_url \
                else (rule[0], cls, *rule[2:])
        out.append(rule)
    return out


class _GuardedRoutes(tornado.web.Application):
    """Between Flower and tornado's Application in GuardedFlower's bases: Flower hands its
    handler list (rewritten for --url_prefix) to tornado here, and nowhere else."""

    write_api = False

    def __init__(self, handlers=None, *args, **kwargs):
        super().__init__(guarded(list(handlers or []), write_api=self.write_api), *args, **kwargs)


class GuardedFlower(Flower, _GuardedRoutes):
    pass


def ensure_credentials(environment: str) -> str | None:
    """None when credentials are set (or made up for a local run); otherwise what to say."""
    if options.basic_auth or options.auth:
        return None
    if environment not in LOCAL_ENVIRONMENTS:
        return ("Flower refuses to start without credentials outside a local run. Set "
                "FLOWER_BASIC_AUTH=user:password (several: comma-separated), or pass --basic-auth=user:password, "
                "or use Flower's OAuth (--auth).")
    password = secrets.token_urlsafe(18)
    options.basic_auth = [f"admin:{password}"]
    print(f"Flower login for this run: admin / {password}  (set FLOWER_BASIC_AUTH=user:password to choose)",
          flush=True)
    return None


def main(argv: list[str]) -> int:
    from django.conf import settings

    from workers.celery_app import app

    command.apply_env_options()
    command.apply_options(sys.argv[0], argv)
    refusal = ensure_credentials(settings.ENVIRONMENT)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    GuardedFlower.write_api = settings.FLOWER_WRITE_API
    options.read_only = not settings.FLOWER_WRITE_API       # the UI hides the controls it cannot use
    command.extract_settings()
    command.setup_logging()
    flower_app = GuardedFlower(capp=app, options=options, **flower_settings)
    atexit.register(flower_app.stop)
    signal.signal(signal.SIGTERM, command.sigterm_handler)
    port = flower_app.start_http_server()
    log.info("flower.started port=%s write_api=%s", port, settings.FLOWER_WRITE_API)
    try:
        flower_app.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
