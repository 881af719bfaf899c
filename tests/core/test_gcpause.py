"""The garbage collector's pause around large ledger builds: restored as it was, counted
across threads, and never starved by pauses that overlap without end."""
from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from backend.core import gcpause


class Node:
    def __init__(self):
        self.me = self                  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    yield
    gc.enable()


def test_a_pause_turns_the_collector_off_and_back_on_and_nesting_counts():
    with gcpause.collector_paused():
        assert not gc.isenabled()
        with gcpause.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()           # the outer pause is still on
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with gcpause.collector_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_of_two_threads_end_with_the_last():
    first_in, second_done = threading.Event(), threading.Event()

    def other():
        with gcpause.collector_paused():
            first_in.set()
            second_done.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    first_in.wait(5)
    with gcpause.collector_paused():
        pass
    assert not gc.isenabled()               # the other thread's pause goes on
    second_done.set()
    thread.join(5)
    assert gc.isenabled()


def test_pauses_that_overlap_without_end_still_collect(monkeypatch):
    """Thread A pauses, B pauses and ends, A ends while C pauses...: the collector never
    comes back on by itself. Past MAX_PAUSED_SECONDS the next pause to start collects."""
    monkeypatch.setattr(gcpause, "MAX_PAUSED_SECONDS", 0.05)
    with gcpause.collector_paused():
        node = Node()
        dead = weakref.ref(node)
        del node
        assert dead() is not None
        with gcpause.collector_paused():    # a pause starting before the limit: nothing collected
            pass
        assert dead() is not None
        time.sleep(0.06)
        with gcpause.collector_paused():    # past the limit: collected before it goes on
            assert dead() is None
            assert not gc.isenabled()
    assert gc.isenabled()
