"""The interpreter settings a running graph wants, held process-wide while any graph runs.

A graph run hands the GIL around faster (``sys.setswitchinterval``) and freezes what setup
made out of the garbage collector's reach (``gc.collect()`` then ``gc.freeze()``: short GC
pauses). Both are settings of the whole process, so they are taken when the first of the
graphs running at once starts and given back when the last one ends: a run that ends does
not unfreeze the objects of one still running, and overlapping runs (``VideoLoader``'s next
epoch starting while this one is read) do not each pay a full collection with the GIL held;
a run starting under another freezes its own setup's objects too (``gc.freeze()`` alone moves
the collector's lists, no collection).
On an H200 (2026-12-03, py-spy over ``nvdec_bench.py``'s loader) that collection, once an
epoch, was about an eighth of the time any thread held the GIL.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_running = 0
_saved_interval: float | None = None


@contextmanager
def graph_running(switch_interval_s: float) -> Iterator[None]:
    """Hold the settings for one graph run (nested and overlapping runs share them)."""
    global _running, _saved_interval
    with _lock:
        if _running == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(switch_interval_s)
            gc.collect()
        gc.freeze()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.unfreeze()
                if _saved_interval is not None:
                    sys.setswitchinterval(_saved_interval)
                _saved_interval = None


def graphs_running() -> int:
    """How many graph runs hold the settings now."""
    return _running
