"""POSTs JSON from a background thread: a bounded queue, retries with backoff, never blocking."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from typing import Any


class Poster:
    """``post(obj)`` queues ``obj`` and returns at once; one thread POSTs the queue in order as
    ``application/json``. A failed POST (a network error, or an HTTP status of 500 and more,
    or 429) is tried ``retries`` more times, waiting ``backoff``, 2x, 4x ... seconds between;
    other 4xx statuses are not retried. When ``capacity`` objects wait, the oldest is dropped
    (``dropped`` counts them). ``sent`` and ``failed`` count the outcomes."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5,
                 capacity: int = 100, log: logging.Logger | None = None):
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.log = log or logging.getLogger("flowml.http")
        self.queue: deque[bytes] = deque(maxlen=capacity)
        self.sent = self.failed = self.dropped = 0
        self._cond = threading.Condition()
        self._closing = threading.Event()  # no more posts: send the queue, then stop
        self._abort = threading.Event()    # the close timed out: no more attempts
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="flowml-http-post", daemon=True)
        self._thread.start()

    def post(self, obj: Any) -> None:
        body = json.dumps(obj, default=str).encode()
        with self._cond:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append(body)
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self.queue and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self.queue and not self._closing.is_set():
                    self._cond.wait()
                if not self.queue or self._abort.is_set():
                    return
                body = self.queue.popleft()
                self._busy = True
            try:
                self._send(body)
            finally:
                with self._cond:
                    self._busy = False

    def _send(self, body: bytes) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(self.url, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    reply.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                why, final = f"HTTP {exc.code}", exc.code < 500 and exc.code != 429
            except (urllib.error.URLError, OSError) as exc:
                why, final = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", False
            if final or attempt == self.retries or self._abort.wait(delay):
                break
            delay *= 2
        self.failed += 1
        self.log.error("action.http: POST to %s failed (%s); event dropped", self.url, why)

    def close(self, timeout: float = 2.0) -> bool:
        """Send what is queued, retries included, for up to ``timeout`` seconds, then stop (an
        attempt under way may take its ``timeout`` more); False when events were left unsent."""
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(self.timeout)
        left = len(self.queue) + self._busy
        if left:
            self.log.warning("action.http: %d event(s) not sent at shutdown", left)
        return not left
