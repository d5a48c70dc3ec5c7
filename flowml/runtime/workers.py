"""One worker thread per node that runs off the dispatcher: calls in order, never in parallel."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable


class SerialWorker:
    """Runs submitted calls one after another on its own thread, in submission order.

    ``backlog`` is how many calls are queued or running: the scheduling policies
    (``runtime.policies``) read it to drop frames in live mode instead of queueing them.
    """

    def __init__(self, name: str):
        self.name = name
        self._jobs: deque[tuple[Future, Callable[[], Any]]] = deque()
        self._cv = threading.Condition()
        self._running = False
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"flowml-{name}", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        with self._cv:
            return len(self._jobs) + self._running

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Queue ``fn``; its future gets what it returns or raises."""
        fut: Future = Future()
        with self._cv:
            if self._closing:
                raise RuntimeError(f"worker '{self.name}' is closed")
            self._jobs.append((fut, fn))
            self._cv.notify()
        return fut

    def close(self, timeout: float | None = None) -> bool:
        """Finish what was submitted, then stop the thread. False if it was still busy after
        ``timeout`` seconds (a call blocked in user code): the thread is left to end alone."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closing:
                    self._cv.wait()
                if not self._jobs:
                    return
                fut, fn = self._jobs.popleft()
                self._running = True
            try:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as exc:  # handed to whoever waits on the future
                        fut.set_exception(exc)
            finally:
                with self._cv:
                    self._running = False
