"""`make run`: every process of the service in the foreground, against the sandbox.

    web     http://127.0.0.1:8000/api/v1/  (docs at /api/docs/, admin at /admin/)
    worker  all queues (default, sync.<broker>), threads pool
    beat    django-celery-beat DatabaseScheduler (dispatcher + reaper)
    flower  http://127.0.0.1:5555/  (FLOWER_BASIC_AUTH=user:password, or the password it prints)
    sandbox control API at http://127.0.0.1:8700/control
Ctrl-C stops them all."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import procs  # noqa: E402
from scripts.services import check  # noqa: E402


def main() -> int:
    if check(["redis"]):
        return 1
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.config.settings", "PYTHONUNBUFFERED": "1"}
    env.setdefault("BROKER_SANDBOX", "127.0.0.1:8700")
    sandbox_port = int(env["BROKER_SANDBOX"].rpartition(":")[2])
    procs.start("migrate", [procs.PY, "manage.py", "migrate", "--noinput"], env).wait()
    procs.start("beat-setup", [procs.PY, "manage.py", "setup_periodic_tasks"], env).wait()
    from workers.routing import all_queue_names

    procs.start("sandbox", procs.sandbox_cmd(sandbox_port), env)
    procs.start("web", [procs.PY, "manage.py", "runserver", "127.0.0.1:8000", "--noreload"], env)
    procs.start("worker", procs.worker_cmd(all_queue_names(), 8), env)
    procs.start("beat", [procs.PY, "-m", "celery", "-A", "workers", "beat", "--loglevel=INFO"], env)
    procs.start("flower", procs.flower_cmd(5555), env)
    print(__doc__, flush=True)
    try:
        while all(p.poll() is None for name, p in procs._started if name not in ("migrate", "beat-setup")):
            time.sleep(1)
        print("a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
