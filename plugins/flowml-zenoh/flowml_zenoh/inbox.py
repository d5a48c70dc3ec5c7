"""The receiving side of ``capture.zenoh``: a thread that takes samples from the subscriber,
checks them and keeps them for the node.

Each sample is made a host value here (parsed, copied into a tensor: pinned memory for a CUDA
receiver), so the graph's thread only starts its upload. Live: one slot, the newest sample
wins (the subscriber's own channel is a ring of one). Offline: a bounded queue; when it is full
the thread waits, the subscriber's FIFO fills, Zenoh stops reading the link and a publisher
with congestion control BLOCK waits: back-pressure all the way to the sender, nothing lost.
Malformed samples are counted and their reason kept; they never reach the graph.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from .codec import check, to_host
from .header import Header, Kind, Malformed, unpack

log = logging.getLogger("flowml.zenoh")


@dataclass(frozen=True)
class Arrival:
    """A checked sample: its header, its value in host memory (``codec.to_host``), its payload's
    size, when it arrived (``time.time()``)."""

    header: Header
    value: object
    nbytes: int
    at: float


class Inbox:
    """Reads ``subscriber`` (a Zenoh subscriber with a channel handler) on its own thread."""

    def __init__(self, subscriber, *, port_kind: str, live: bool, capacity: int, name: str,
                 pinned: bool = False):
        self.sub, self.port_kind, self.live, self.capacity = subscriber, port_kind, live, capacity
        self.pinned = pinned                    # a CUDA receiver: values staged in pinned memory
        self.malformed = 0
        self.last_problem: str | None = None
        self.received = 0                       # checked samples taken from Zenoh
        self._items: deque[Arrival] = deque()   # END headers travel here too, in order
        self._cond = threading.Condition()
        self._closed = False
        self._plain_index = 0                   # JSON samples from other Zenoh apps (no header)
        self._t0 = time.time()
        self._thread = threading.Thread(target=self._loop, name=f"flowml-zenoh-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import zenoh

        while True:
            try:
                sample = self.sub.recv()
            except zenoh.ZError:  # undeclared: the node is being torn down
                break
            at = time.time()
            try:
                arrival = self._check(sample, at)
            except Malformed as why:
                self._malformed(str(why), sample)
                continue
            if not self._put(arrival):
                break

    def _check(self, sample, at: float) -> Arrival:
        payload = sample.payload.to_bytes()
        attachment = sample.attachment
        if attachment is None:
            if self.port_kind != "json":
                raise Malformed("sample without the flowml header attachment (only json may come "
                                "from plain Zenoh puts)")
            self._plain_index += 1  # a JSON put by another Zenoh app: no sequence, no sent time
            h = Header(Kind.JSON, index=self._plain_index - 1, t=at - self._t0)
        else:
            h = unpack(attachment.to_bytes())
        check(h, len(payload), self.port_kind)
        value = None if h.kind is Kind.END else to_host(h, payload, self.pinned)
        return Arrival(h, value, len(payload), at)

    def _malformed(self, why: str, sample) -> None:
        self.malformed += 1
        self.last_problem = why
        if self.malformed == 1 or self.malformed % 100 == 0:
            log.warning("capture.zenoh: malformed sample on %s (%d so far): %s", sample.key_expr,
                        self.malformed, why)

    def _put(self, arrival: Arrival) -> bool:
        with self._cond:
            self.received += 1
            if self.live and arrival.header.kind is not Kind.END:
                ends = [a for a in self._items if a.header.kind is Kind.END]
                self._items.clear()      # the newest sample wins: older ones are dropped
                self._items.extend(ends)
                self._items.append(arrival)
            else:
                while not self.live and len(self._items) >= self.capacity and not self._closed:
                    self._cond.wait(0.1)  # back-pressure: Zenoh's FIFO fills behind us
                if self._closed:
                    return False
                self._items.append(arrival)
            self._cond.notify_all()
        return True

    def take(self, timeout: float) -> Arrival | None:
        """The next sample (live: the newest), waiting up to ``timeout`` s; None if none came."""
        with self._cond:
            if not self._items and timeout > 0:
                self._cond.wait_for(lambda: self._items or self._closed, timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Stop taking samples (close the session too: that ends the thread's ``recv``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
