"""When a tick is done: its calls have returned *and* the GPU work they enqueued has finished.

On CUDA a node's call only enqueues work on its lane's stream (``gpu.lanes``), so a tick whose
last call has returned may still be running on the GPU for a long time (a captured generator:
one launch in 0.2 ms, 80 ms of GPU work). Counting it as done then would make ``recent_fps``
and the latencies measure the enqueue, and ``max_in_flight`` would not bound the GPU work in
flight. So each part of a tick records end events on the lanes it used (``TickRun.seal``),
and ``Completion`` finishes the tick (stats, latency, its slot) only once they have passed.

The dispatcher never waits on the GPU: a tick with events still to pass goes to one small
thread per scheduler, which waits on them in the order ticks were handed in. Its end events
are blocking-sync ones (``Lane.end_event``): ``synchronize()`` sleeps in the driver with the
GIL released instead of spinning a core. A tick that enqueued nothing on a GPU (every tick of
a CPU graph) never comes here, and one whose events have all passed by the time its last call
returns (a graph ending in a host sink, which waited for its download) is finished on the spot:
no thread hop, its latency as before.

Offline (``dispatcher_books``), the thread is the exception: a tick with events to pass waits
in a list, and the dispatcher books the ones whose events have passed each time it comes
around (``poll``, an ``event.query()`` each), on its own thread. Only while the dispatcher
itself waits (no free slot, a source's next frame not there yet: ``waiting``; an offline rate
clock's next frame always is, so such a graph never hands a tick in) do the ticks go to the thread,
so no finished tick waits on a dispatcher that waits. The thread's two GIL hand-overs a tick
(the hand-in, the wake-up) fell in the middle of the next tick's calls: in an eager,
host-bound StyleGAN2 frame (~135 kernels launched from Python) each took the GIL from the
launches. Live graphs keep the thread: there a tick is booked when its work passes, not when
the dispatcher next comes around, and its latency says so.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator

from .ticks import TickRun
from .workers import SerialWorker

log = logging.getLogger("flowml")


class Completion:
    """Finishes ticks once their CUDA events (``TickRun.ends``) have passed.

    ``finish(run)`` books the tick (any thread: here, the dispatcher, or the one its last part
    returned on); ``failed(run, error)`` hears of an event that raised (a CUDA error), before
    the tick is finished as failed. ``dispatcher_books``: the dispatcher calls ``poll`` when it
    comes around and waits inside ``waiting`` (module docstring)."""

    def __init__(self, finish: Callable[[TickRun], None],
                 failed: Callable[[TickRun, BaseException], None], *, dispatcher_books: bool = False):
        self._finish, self._failed = finish, failed
        self._waiter = SerialWorker("gpu-done")
        self._books = dispatcher_books
        self._lock = threading.Lock()
        self._pending: deque[TickRun] = deque()  # oldest first; only the dispatcher takes from it
        self._dispatcher_waits = False

    @property
    def backlog(self) -> int:
        """Ticks handed in and not yet finished."""
        return self._waiter.backlog + len(self._pending)

    def done(self, run: TickRun) -> None:
        """``run``'s last part has returned (any thread): finish it now if its events have
        passed, else once they have: on the dispatcher's next ``poll`` or the completion thread."""
        if _passed(run):
            self._book(run)
            return
        if self._books:
            with self._lock:
                if not self._dispatcher_waits:
                    self._pending.append(run)
                    return
        self._hand(run)

    def poll(self) -> None:
        """On the dispatcher: book the waiting ticks whose events have passed, oldest first."""
        while self._pending:
            run = self._pending[0]
            if not _passed(run):
                return
            with self._lock:
                self._pending.popleft()
            self._book(run)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """The dispatcher is about to wait (a slot, a frame): until it is back, the completion
        thread finishes the ticks, those waiting in the list and those done meanwhile."""
        if not self._books:
            yield
            return
        with self._lock:
            self._dispatcher_waits = True
            runs = list(self._pending)
            self._pending.clear()
        for run in runs:
            self._hand(run)
        try:
            yield
        finally:
            with self._lock:
                self._dispatcher_waits = False

    def _hand(self, run: TickRun) -> None:
        try:
            self._waiter.submit(lambda: self._wait(run))
        except RuntimeError:  # closed: a call that outlived teardown (a stuck node)
            self._book(run)

    def _wait(self, run: TickRun) -> None:
        try:
            # our blocking-sync events first (sleeping); a source's own event after them,
            # by then as good as always passed (the tick's work waited on it)
            for owned in (True, False):
                for lane, event in run.ends:
                    if (lane is not None) is owned:
                        event.synchronize()
        except Exception as exc:
            run.failed = True
            try:
                self._failed(run, exc)
            except Exception:
                log.exception("reporting a failed GPU tick failed")
        self._book(run)

    def _book(self, run: TickRun) -> None:
        ends, run.ends = run.ends, []
        for lane, event in ends:
            if lane is not None:
                lane.recycle(event)
        try:
            self._finish(run)
        except Exception:  # a bug of ours; the tick's slot must not be lost silently
            log.exception("finishing tick %d failed", run.tick.index)

    def close(self, timeout: float | None) -> bool:
        """Finish the ticks handed in, then stop the thread; False if it was still waiting
        after ``timeout`` seconds (a GPU that never finishes: the thread is left behind)."""
        with self._lock:
            self._books = False  # from now on every tick goes to the thread
            runs = list(self._pending)
            self._pending.clear()
        for run in runs:
            self._hand(run)
        return self._waiter.close(timeout)


def _passed(run: TickRun) -> bool:
    """Have all of ``run``'s end events passed? False on a CUDA error (the waiter reports it)."""
    try:
        return all(event.query() for _, event in run.ends)
    except Exception:
        return False
