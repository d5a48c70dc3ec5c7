"""Clocks: what starts a tick. Either a source node's frames or a fixed rate.

A source is read on a clock thread of its own (``SourcePump``), so reading overlaps the
graph; in live mode a source that ``captures_in_background`` is read on the dispatcher
instead (``InlineSource``): its own thread already overlaps capture with the graph.

Live mode: latest frame wins. A frame that arrives while the previous one is still waiting
for a free slot replaces it, and the replaced one is counted as dropped, so latency stays
bounded however slow the graph is.
Offline mode: every frame, in order; the source waits when the graph is behind (back-pressure).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..node import EndOfStream


@dataclass(frozen=True)
class SourceFrame:
    """One frame from the clock: the clock source's outputs (None for a rate clock), its
    presentation time ``t`` in seconds, and when it arrived (``time.perf_counter()``)."""

    outputs: dict[str, Any] | None
    t: float
    arrived: float


@dataclass(frozen=True)
class SourceFailure:
    """A clock source raised: the scheduler applies the graph's error policy to it."""

    error: BaseException


_END = object()


class RateClock:
    """Ticks at ``fps``. Offline: as fast as the graph goes, ``t = index / fps``.
    Live: paced by the wall clock; ticks the graph was too slow to start are dropped."""

    def __init__(self, fps: float, live: bool):
        self.fps, self.period, self.live, self.drops = fps, 1.0 / fps, live, 0
        self._k = 0
        self._start = 0.0
        self._stopped = threading.Event()

    def start(self) -> None:
        self._start = time.perf_counter()

    def ready(self) -> bool:
        """Would ``next()`` return without waiting? Offline always; live once the tick is due."""
        return (not self.live or self._stopped.is_set()
                or time.perf_counter() >= self._start + self._k * self.period)

    def next(self) -> SourceFrame | SourceFailure | None:
        if self._stopped.is_set():
            return None
        if self.live:
            now = time.perf_counter()
            due = int((now - self._start) / self.period)
            if due > self._k:  # we are late: skip to the newest tick, count the rest
                self.drops += due - self._k
                self._k = due
            deadline = self._start + self._k * self.period
            if self._stopped.wait(max(0.0, deadline - now)):
                return None
        k, self._k = self._k, self._k + 1
        return SourceFrame(None, k / self.fps, time.perf_counter())

    def stop(self) -> None:
        self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        return True


class InlineSource:
    """Reads a live clock source on the dispatcher itself, in ``next()``: for a source that
    ``captures_in_background``, whose ``process`` only waits for the newest frame its own
    thread captured. Without a clock thread between, the frame goes to the GPU one thread
    hand-off sooner. The newest frame wins in the source itself. Same interface as SourcePump."""

    def __init__(self, read: Callable[[], tuple[dict[str, Any], float | None]], *,
                 keep_going: bool = False):
        self.live, self.drops = True, 0
        self._read, self._keep_going = read, keep_going
        self._stopped = threading.Event()
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        return True  # read on the dispatcher: nothing runs once the run loop has returned

    def ready(self) -> bool:
        """False: ``next()`` reads the source, which may wait for its capture thread."""
        return self._stopped.is_set()

    def next(self) -> SourceFrame | SourceFailure | None:
        if self._stopped.is_set():
            return None
        try:
            outputs, stamp = self._read()
        except EndOfStream:
            return None
        except Exception as exc:  # the scheduler decides: stop, or skip and read on
            if self._keep_going:
                self._stopped.wait(0.01)  # a source failing on every read does not spin
            return SourceFailure(exc)
        now = time.perf_counter()
        return SourceFrame(outputs, stamp if stamp is not None else now - self._t0, now)


class SourcePump:
    """Reads a clock source on its own thread so that reading overlaps processing.

    ``read()`` returns ``(outputs, stamp_or_None)`` or raises ``EndOfStream``. Live mode
    keeps only the newest frame; offline mode queues up to ``capacity`` frames and waits.
    ``keep_going`` says whether to go on reading after the source raised (error policy skip).
    """

    def __init__(self, read: Callable[[], tuple[dict[str, Any], float | None]], *, live: bool,
                 capacity: int, keep_going: bool = False):
        self.live, self.drops = live, 0
        self._read, self._keep_going = read, keep_going
        self._q: queue.Queue = queue.Queue(maxsize=1 if live else capacity)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowml-clock", daemon=True)
        self._t0 = 0.0
        self._count = 0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the clock thread is out of the source's code; False if it still is."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def ready(self) -> bool:
        """Would ``next()`` return without waiting (a frame, the end, or a failure queued)?"""
        return self._stopped.is_set() or not self._q.empty()

    def next(self) -> SourceFrame | SourceFailure | None:
        """The next frame (live: the newest); None at the end of the stream or after stop()."""
        while not self._stopped.is_set():
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            return None if item is _END else item
        return None

    def _put(self, item: object) -> None:
        if self.live:
            while True:
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        old = self._q.get_nowait()
                        self.drops += isinstance(old, SourceFrame)
                    except queue.Empty:
                        pass
        while not self._stopped.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                outputs, stamp = self._read()
            except EndOfStream:
                break
            except Exception as exc:  # the scheduler decides: stop, or skip and read on
                self._put(SourceFailure(exc))
                if not self._keep_going:
                    return
                time.sleep(0.01)
                continue
            now = time.perf_counter()
            t = stamp if stamp is not None else (now - self._t0 if self.live else float(self._count))
            self._count += 1
            self._put(SourceFrame(outputs, t, now))
        # the end marker must get through even when the queue is full of frames
        while not self._stopped.is_set():
            try:
                self._q.put(_END, timeout=0.05)
                return
            except queue.Full:
                continue
