"""Start and stop the service's processes (sandbox, web, worker, beat, flower) for the
demo, `make run` and the benchmarks, and wait until each answers."""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
_started: list[tuple[str, subprocess.Popen]] = []


def die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the process that started it dies, however it
    dies (a test worker left behind would take the next session's tasks, with a sandbox URL
    that no longer answers)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:            # not Linux: the finally blocks still stop it on a normal exit
        pass


def start(name: str, args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else None
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out or None, stderr=subprocess.STDOUT if out else None,
                            start_new_session=True, preexec_fn=die_with_parent)
    _started.append((name, proc))
    return proc


def stop_all(timeout: float = 15) -> None:
    for name, proc in reversed(_started):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in reversed(_started):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    _started.clear()


atexit.register(stop_all)


def wait_http(url: str, proc: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f}s")


def wait_worker(app, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"celery worker exited with code {proc.returncode}")
        if app.control.ping(timeout=1.0):
            return
    raise SystemExit(f"celery worker did not answer a ping within {timeout:.0f}s")


def sandbox_cmd(port: int) -> list[str]:
    return [PY, "-m", "sandbox", "--port", str(port), "serve"]


def web_cmd(port: int) -> list[str]:
    return [PY, "-m", "gunicorn", "backend.config.wsgi", "-b", f"127.0.0.1:{port}", "--workers", "1",
            "--threads", "8", "--access-logfile", "-", "--log-level", "warning"]


def flower_cmd(port: int, address: str = "127.0.0.1") -> list[str]:
    """workers/flower.py: credentials required, write API off (as docker-compose runs it)."""
    return [PY, "-m", "workers.flower", f"--port={port}", f"--address={address}"]


def worker_cmd(queues: list[str], concurrency: int = 4, name: str = "worker") -> list[str]:
    return [PY, "-m", "celery", "-A", "workers", "worker", "--pool=threads", f"--concurrency={concurrency}",
            "-Q", ",".join(queues), f"--hostname={name}@%h", "--loglevel=INFO"]
