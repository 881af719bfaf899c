"""Python's cyclic garbage collector paused around work that builds millions of objects which
all live until the work ends (a whole ledger's rows, events, lots and their rows to write).

The collector runs a pass every few hundred new objects and, as the heap grows, full passes
over everything alive: none of them frees anything here, and on a 200,000-activity ledger
they were 1.7 s of a 6 s build (benchmarks/ledger.py). Reference counting still frees what
is dropped; cycles made meanwhile wait for the collector to be back on. The collector is
process-wide, so nested and concurrent pauses (worker threads) are counted and it comes
back on when the last one ends, only if it was on before the first. Pauses of several
threads that overlap without end would starve it (a worker whose threads took turns
rebuilding large ledgers grew by gigabytes): once the collector has been off for
MAX_PAUSED_SECONDS, the next pause to start or end collects everything first.
"""
from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSED_SECONDS = 30.0
_lock = threading.Lock()
_paused = 0
_was_enabled = False
_collected_at = 0.0            # when the collector last ran (or went off) during a pause


@contextmanager
def collector_paused() -> Iterator[None]:
    global _paused, _was_enabled, _collected_at
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
            _collected_at = time.monotonic()
        _paused += 1
        _collect_if_starved()
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0:
                if _was_enabled:
                    gc.enable()
            else:
                _collect_if_starved()


def _collect_if_starved() -> None:
    global _collected_at
    if time.monotonic() - _collected_at >= MAX_PAUSED_SECONDS:
        gc.collect()
        _collected_at = time.monotonic()
