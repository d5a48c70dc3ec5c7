"""One tick in flight: the parts still running for it (sinks, worker calls) and its end."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from ..node import Tick


@dataclass
class TickRun:
    """Book-keeping of one tick until its last part is done.

    The dispatch itself is one part; every call a policy hands to a worker thread for this
    tick is another (``add_part`` / ``part_done``). When the last part has returned
    ``on_done`` runs (on whichever thread finished it).

    On CUDA a call only enqueues work, so each part leaves behind the GPU work it queued:
    the dispatch notes the lanes its inline calls ran on (``used``), and when a part ends an
    end event is recorded on each of its lanes (``seal``; a worker call's on its own lane).
    ``ends`` holds them, and ``on_done`` finishes the tick only once they have passed
    (``runtime.completion``): the tick's slot is free again when its GPU work is done. So at
    most ``max_in_flight`` ticks' worth of work exists anywhere, queued, running or on the
    GPU. A tick that used no lane (a CPU graph) has no ``ends``.
    """

    tick: Tick
    arrived: float
    on_done: Callable[["TickRun"], None]
    on_failure: Callable[[BaseException], None]
    pending: int = 1  # the dispatch itself counts as one part
    failed: bool = False
    abandoned: bool = False  # a source ended during dispatch: neither done nor failed
    lock: threading.Lock = field(default_factory=threading.Lock)
    ends: list[tuple[Any, Any]] = field(default_factory=list)
    """``(lane, event)``: the events marking the end of the tick's GPU work. ``lane`` is the
    ``gpu.lanes.Lane`` whose ``end_event`` it is (handed back there once passed), or None for
    another's event (a source's, which this tick only waits for)."""
    _lanes: list = field(default_factory=list)  # lanes the dispatch used since its last seal

    def add_part(self) -> None:
        with self.lock:
            self.pending += 1

    def used(self, lane: Any) -> None:
        """The dispatch enqueued work on ``lane`` for this tick (on the dispatching thread)."""
        for seen in self._lanes:
            if seen is lane:
                return
        self._lanes.append(lane)

    def wait_for(self, event: Any, lane: Any = None) -> None:
        """Finish the tick only after ``event`` (an object with ``query()`` and
        ``synchronize()``, a CUDA event) has passed; ``lane``: see ``ends``."""
        with self.lock:
            self.ends.append((lane, event))

    def seal(self) -> None:
        """Record an end event on each lane the dispatch used so far. Called where the
        dispatch ends, or moves to another thread (the offline tail), so that work a later
        tick queues on those lanes is not waited for."""
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            self.wait_for(lane.end_event(), lane)

    def part_done(self, fut: Future | None = None) -> None:
        """One part finished: the dispatch (``fut`` None), or a worker call whose future is
        ``fut`` (its failure is reported; the GPU work of its ``Produced`` is waited for)."""
        if fut is None:
            if self._lanes:
                self.seal()
        elif not fut.cancelled():
            if fut.exception() is not None:
                self.failed = True
                self.on_failure(fut.exception())  # type: ignore[arg-type]
            else:
                lane = getattr(fut.result(), "lane", None)
                if lane is not None:  # the worker is serial: its lane holds this call last
                    self.wait_for(lane.end_event(), lane)
        with self.lock:
            self.pending -= 1
            done = self.pending == 0
        if done:
            self.on_done(self)
