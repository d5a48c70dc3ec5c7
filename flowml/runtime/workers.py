"""One worker thread per host-blocking node: calls run in submission order, never in parallel."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable


class SerialWorker:
    """Runs submitted calls one after another on its own thread, in order.

    ``backlog`` is how many calls are queued or running; the scheduler uses it to drop
    frames for a slow sink in live mode instead of letting latency grow.
    """

    def __init__(self, name: str):
        self._q: queue.Queue[tuple[Future, Callable[[], Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._backlog = 0
        self._thread = threading.Thread(target=self._loop, name=f"flowml-{name}", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        with self._lock:
            return self._backlog

    def submit(self, fn: Callable[[], Any]) -> Future:
        fut: Future = Future()
        with self._lock:
            self._backlog += 1
        self._q.put((fut, fn))
        return fut

    def close(self, timeout: float | None = None) -> None:
        """Finish what was submitted, then stop the thread."""
        self._q.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while (item := self._q.get()) is not None:
            fut, fn = item
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # handed to whoever waits on the future
                    fut.set_exception(exc)
            with self._lock:
                self._backlog -= 1
