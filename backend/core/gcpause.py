"""Python's cyclic garbage collector paused around work that builds millions of objects which
all live until the work ends (a whole ledger's rows, events, lots and their rows to write).

The collector runs a pass every few hundred new objects and, as the heap grows, full passes
over everything alive: none of them frees anything here, and on a 200,000-activity ledger
they were 1.7 s of a 6 s build (benchmarks/ledger.py). Reference counting still frees what
is dropped; cycles made meanwhile wait for the collector to be back on. The collector is
process-wide, so nested and concurrent pauses (worker threads) are counted and it comes
back on when the last one ends, only if it was on before the first.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()
