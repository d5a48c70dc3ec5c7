"""One tick in flight: the parts still running for it (sinks, worker calls) and its end."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from ..node import Tick


@dataclass
class TickRun:
    """Book-keeping of one tick until its last part is done.

    The dispatch itself is one part; every call a policy hands to a worker thread for this
    tick is another (``add_part`` / ``part_done``). When the last part is done ``on_done``
    runs (on whichever thread finished it): the tick's slot is free again. So at most
    ``max_in_flight`` ticks' worth of work exists anywhere, queued or running.
    """

    tick: Tick
    arrived: float
    on_done: Callable[["TickRun"], None]
    on_failure: Callable[[BaseException], None]
    pending: int = 1  # the dispatch itself counts as one part
    failed: bool = False
    abandoned: bool = False  # a source ended during dispatch: neither done nor failed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_part(self) -> None:
        with self.lock:
            self.pending += 1

    def part_done(self, fut: Future | None = None) -> None:
        """One part finished; ``fut`` is the worker call's future, whose failure is reported."""
        if fut is not None and not fut.cancelled() and fut.exception() is not None:
            self.failed = True
            self.on_failure(fut.exception())  # type: ignore[arg-type]
        with self.lock:
            self.pending -= 1
            done = self.pending == 0
        if done:
            self.on_done(self)
