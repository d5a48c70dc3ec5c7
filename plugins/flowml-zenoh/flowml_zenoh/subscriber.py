"""``capture.zenoh``: subscribe to a key; each sample becomes a frame of the receiving graph."""

from __future__ import annotations

import time
from typing import Any

import flowml
from flowml import JSON, NO_VALUE, EndOfStream, Field, Node, NodeError, Output, Ports, Stamped

from . import codec
from .header import Kind
from .inbox import Arrival, Inbox
from .meters import Meter
from .publisher import PORT_TYPES
from .session import ZenohParams, open_session

POLL_S = 0.05
"""How often a waiting ``process`` looks at ``ctx.stopping`` (the inbox wakes it on a sample)."""


class ZenohCapture(Node):
    """Samples published under ``key`` (by ``output.zenoh``) as frames, on the node's device.

    As the graph's clock (``clock: <this node>``) a tick starts when a sample arrives and
    takes the sender's frame time. Live (``live: true``): the newest sample wins, the ones the
    graph was too slow for are dropped and counted. Offline (``live: false``, with a sender in
    an offline graph): every sample in order, a bounded queue of ``queue`` samples and
    back-pressure to the sender. Not the clock: each tick gets the newest sample at once (the
    last one again if none came, no value before the first).

    The stream ends (EndOfStream) when the sender's graph stops (``end: true``), or after
    ``timeout`` seconds without a sample; no first sample within ``wait`` seconds is an error
    that names the key and endpoints. A malformed sample is counted and reported, never raised.

    Outputs: the value (port named after ``kind``) and ``meta``: ``{"index", "t", "seq",
    "latency_ms", "dropped"}`` (the sender's frame index and time, the publisher's sequence
    number, send -> hand-out time, samples lost so far).
    """

    type_name = "capture.zenoh"
    live = True
    captures_in_background = True  # the inbox's thread receives; process waits for the newest

    class Params(ZenohParams):
        live: bool = Field(True, description="live: newest sample wins (drops counted); false: "
                           "every sample, in order, back-pressure to an offline sender", live=False)
        queue: int = Field(4, ge=1, le=1024, description="offline: samples held before the sender "
                           "is made to wait", rebuild=True)
        wait: float = Field(30.0, ge=0, le=3600, description="seconds to wait for the first sample "
                            "(0: for ever)")
        timeout: float = Field(10.0, ge=0, le=3600, description="seconds without a sample that end "
                               "the stream (0: never)")
        end: bool = Field(True, description="end the stream when the sender's graph stops")

    @classmethod
    def is_live(cls, params: Params) -> bool:
        return params.live

    @classmethod
    def ports(cls, params: Params) -> Ports:
        kind = params.kind
        return Ports((), (Output(kind, PORT_TYPES[kind], "on the node's device"),
                          Output("meta", JSON, '{"index", "t", "seq", "latency_ms", "dropped"}')))

    def setup(self, ctx: flowml.NodeContext) -> None:
        import zenoh

        p = self.params
        self.session = open_session(p)
        live = ctx.mode == "live"
        channel = zenoh.handlers.RingChannel(1) if live else zenoh.handlers.FifoChannel(p.queue)
        try:
            self.subscriber = self.session.declare_subscriber(p.key, channel)
        except zenoh.ZError as exc:
            self.session.close()
            self.session = None
            raise NodeError(f"key {p.key!r}: cannot subscribe: {exc}") from None
        self.inbox = Inbox(self.subscriber, port_kind=p.kind, live=live, capacity=p.queue,
                           name=ctx.node_id, pinned=ctx.device.startswith("cuda"))
        self.meter = Meter()
        self.last_seq: dict[int, int] = {}   # stream -> last sequence number handed out
        self.dropped = 0
        self.last: dict[str, Any] | None = None
        self.started = self.last_at = time.monotonic()
        self.ended: str | None = None
        self.log.info("subscribed to %r (%s, %s)", p.key, p.kind, "live" if live else "offline")

    def process(self) -> Stamped | dict:
        if not self.ctx.is_clock:
            item = self._next(0.0)
            if item is None:
                return self.last if self.last is not None else NO_VALUE
            return item
        while True:
            item = self._next(POLL_S)
            if item is not None:
                return item
            if self.ctx.stopping.is_set():
                raise EndOfStream
            self._check_timeouts()

    def _next(self, timeout: float) -> Stamped | None:
        """The next sample as the node's outputs, or None; raises EndOfStream at an end sample."""
        while (arrival := self.inbox.take(timeout)) is not None:
            if arrival.header.kind is Kind.END:
                stream = arrival.header.stream
                self._count_gap(stream, arrival.header.seq)
                self.last_seq.pop(stream, None)  # a publisher that starts again starts afresh
                # several publishers on the key (a wildcard): the stream ends with the last one
                if self.params.end and not self.last_seq:
                    self.ended = "the sender's stream ended"
                    self.log.info("%r: the sender's stream ended", self.params.key)
                    raise EndOfStream
                continue
            return self._emit(arrival)  # checked and made a host value on arrival
        return None

    def _emit(self, a: Arrival) -> Stamped:
        h = a.header
        value = codec.to_device(h, a.value, self.ctx.device)
        now = time.time()
        self._count_gap(h.stream, h.seq)
        latency = None
        if h.sent:
            latency = now - h.sent
            self.meter.latency("latency", latency)
            self.meter.latency("transit", a.at - h.sent)
        self.meter.count(a.nbytes)
        self.last_at = time.monotonic()
        meta = {"index": h.index, "t": h.t, "seq": h.seq, "dropped": self.dropped,
                "latency_ms": None if latency is None else round(latency * 1000, 3)}
        out = {self.params.kind: value, "meta": meta}
        self.last = out
        return Stamped(out, t=h.t)

    def _count_gap(self, stream: int, seq: int) -> None:
        """Samples of a stream never handed out (lost on the way, or dropped for newer ones).
        END carries the count sent, so samples lost at the end count too. The first sample of
        a stream counts none (a receiver that joins late has not lost what came before)."""
        if not stream:
            return
        last = self.last_seq.get(stream)
        if last is not None and seq > last:
            self.dropped += seq - last - 1
        self.last_seq[stream] = seq

    def _check_timeouts(self) -> None:
        p, now = self.params, time.monotonic()
        if self.meter.samples == 0:
            if p.wait and now - self.started >= p.wait:
                raise NodeError(
                    f"no sample on key {p.key!r} within {p.wait:g} s (is the sender running? "
                    f"connect {p.connect or 'none'}, listen {p.listen or 'none'}, scouting "
                    f"{'on' if p.scouting else 'off'}; malformed samples: {self.inbox.malformed})")
        elif p.timeout and now - self.last_at >= p.timeout:
            self.ended = f"no sample for {p.timeout:g} s"
            self.log.warning("%r: no sample for %g s: end of stream", p.key, p.timeout)
            raise EndOfStream

    def report(self) -> dict[str, Any]:
        """Samples handed out, drops, malformed samples, latency (send -> hand-out) and transit
        (send -> arrival) p50/p99/max, throughput: the receiver's side of ``--stats``."""
        inbox = getattr(self, "inbox", None)
        if inbox is None:
            return {"key": self.params.key}
        return {"key": self.params.key, **self.meter.as_dict(), "drops": self.dropped,
                "received": inbox.received, "malformed": inbox.malformed,
                "last_malformed": inbox.last_problem, "ended": self.ended}

    def teardown(self) -> None:
        inbox = getattr(self, "inbox", None)
        if inbox is not None:
            inbox.close()
        if getattr(self, "session", None) is not None:
            # closing the session ends the inbox thread's recv(); undeclaring the subscriber
            # while that thread is inside recv() is refused by the binding ("Already borrowed")
            self.session.close()
        if inbox is not None and not inbox.join(2.0):
            self.log.warning("the Zenoh receiving thread did not stop within 2 s")
