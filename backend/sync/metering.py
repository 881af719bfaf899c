"""What each sync task execution costs, when SYNC_TASK_METERING is on (off by default).

One record per task execution, appended to a Redis list: the task, the run, the steps it
ran, the CPU time of its thread, the broker requests it made and the rows it wrote. The
fleet and re-sync benchmarks read them to say where the worker's CPU goes: per execution,
per request and per row, and how many executions made no request at all (a wait, a retry,
a chain task whose step was already done).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

KEY = "bs:metering:executions"
KEPT = 1_000_000                  # records kept (the oldest are dropped past this)
ROW_COUNTS = ("created", "updated")
STREAMS = ("positions", "transactions", "orders", "reconcile")


def _redis():
    from backend.brokers.registry import default_limiter

    return default_limiter().redis


def _totals(steps: dict) -> tuple[int, int]:
    """(requests, rows written) recorded on a run's steps so far."""
    requests = rows = 0
    for name in STREAMS:
        info = steps.get(name) or {}
        requests += int(info.get("requests", 0))
        rows += sum(int(info.get(k, 0)) for k in ROW_COUNTS)
    return requests, rows


class Meter:
    def __init__(self, task: str, run_id: int):
        self.record = {"task": task, "run": run_id, "steps": [], "outcome": "returned"}
        self.run = None                # set once loaded: its steps tell requests and rows
        self._before = (0, 0)
        self._cpu = time.thread_time()
        self._wall = time.monotonic()

    def loaded(self, run) -> None:
        self.run = run
        self._before = _totals(run.steps)

    def finish(self) -> dict:
        requests, rows = _totals(self.run.steps) if self.run is not None else self._before
        unrecorded = getattr(self.run, "unrecorded_requests", (None, 0))[1] if self.run is not None else 0
        self.record.update(cpu_s=time.thread_time() - self._cpu, wall_s=time.monotonic() - self._wall,
                           requests=max(0, requests - self._before[0]) + int(unrecorded or 0),
                           rows=max(0, rows - self._before[1]))
        return self.record


def _append(record: dict) -> None:
    try:
        client = _redis()
        client.rpush(KEY, json.dumps(record))
        client.ltrim(KEY, -KEPT, -1)
    except Exception:  # noqa: BLE001 - metering never fails a task
        pass


def record_task(task: str, cpu_s: float, outcome: str) -> None:
    """One execution of a task that is not a sync step (no run, requests or rows)."""
    _append({"task": task, "run": None, "steps": [], "outcome": outcome, "cpu_s": cpu_s, "requests": 0, "rows": 0})


@contextmanager
def metered(task: str, run_id: int) -> Iterator[Meter | None]:
    """Meter the block as one task execution (nothing at all when metering is off)."""
    if not settings.SYNC_TASK_METERING:
        yield None
        return
    meter = Meter(task, run_id)
    try:
        yield meter
    except BaseException as exc:
        meter.record["outcome"] = type(exc).__name__      # Retry, Ignore, or an error
        raise
    finally:
        _append(meter.finish())


def records(since: int = 0) -> list[dict]:
    """Every record, of sync steps and of other tasks, from position `since` on (benchmarks
    note len() before a round)."""
    return [json.loads(r) for r in _redis().lrange(KEY, since, -1)]


def step_records(found: list[dict]) -> list[dict]:
    return [r for r in found if r["run"] is not None]


def executions(since: int = 0) -> list[dict]:
    """Every sync step execution's record from position `since` on."""
    return step_records(records(since))


def other_tasks(found: list[dict]) -> dict[str, tuple[int, float]]:
    """Task name -> (executions, CPU seconds) of the records of tasks that are not sync steps."""
    out: dict[str, tuple[int, float]] = {}
    for r in found:
        if r["run"] is None:
            n, cpu = out.get(r["task"], (0, 0.0))
            out[r["task"]] = (n + 1, cpu + r["cpu_s"])
    return out


def count() -> int:
    return int(_redis().llen(KEY))


def executions_for_run(run_id: int) -> list[dict]:
    return [e for e in executions() if e["run"] == run_id]


def summary(records: list[dict]) -> dict:
    """Executions, those without a request, and CPU per execution, per request and per row.
    The per-request and per-row figures divide all the CPU; they are the two ends of a fit,
    not a split of it."""
    cpu = sum(r["cpu_s"] for r in records)
    requests = sum(r["requests"] for r in records)
    rows = sum(r["rows"] for r in records)
    idle = [r for r in records if not r["requests"]]
    return {"executions": len(records), "without_request": len(idle), "cpu_s": cpu,
            "cpu_without_request_s": sum(r["cpu_s"] for r in idle), "requests": requests, "rows": rows,
            "cpu_per_execution_ms": 1000 * cpu / max(1, len(records)),
            "cpu_per_request_ms": 1000 * cpu / max(1, requests), "cpu_per_1000_rows_s": 1000 * cpu / max(1, rows),
            "fit": fit(records)}


def fit(records: list[dict]) -> dict | None:
    """Least squares of each execution's CPU as  a + b * requests + c * rows:  the fixed cost
    of an execution (a), of a request (b) and of a row (c), in ms. None: too few records, or
    requests and rows move together so the three cannot be told apart."""
    if len(records) < 3:
        return None
    xs = [(1.0, float(r["requests"]), float(r["rows"])) for r in records]
    ys = [1000 * r["cpu_s"] for r in records]
    # normal equations (X'X) beta = X'y, solved by Gaussian elimination with partial pivoting
    m = [[sum(x[i] * x[j] for x in xs) for j in range(3)] + [sum(x[i] * y for x, y in zip(xs, ys))]
         for i in range(3)]
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-9:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(3):
            if r != col:
                factor = m[r][col] / m[col][col]
                m[r] = [a - factor * b for a, b in zip(m[r], m[col])]
    a, b, c = (m[i][3] / m[i][i] for i in range(3))
    return {"per_execution_ms": a, "per_request_ms": b, "per_row_ms": c}
