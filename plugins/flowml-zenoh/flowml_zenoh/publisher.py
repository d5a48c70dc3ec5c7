"""``output.zenoh``: publish one port (tensor, image, detections, json) under a key."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

import flowml
from flowml import DETECTIONS, IMAGE, JSON, TENSOR, Field, Input, Node, NodeError, Ports

from . import codec
from .header import Header, Kind
from .meters import Meter
from .session import ZenohParams, open_session

PORT_TYPES = {"tensor": TENSOR, "image": IMAGE, "detections": DETECTIONS, "json": JSON}
Priority = Literal["real_time", "interactive_high", "interactive_low", "data_high", "data",
                   "data_low", "background"]


class ZenohOutput(Node):
    """Publish a port's value every frame as a Zenoh sample under ``key``.

    Tensors and images travel as raw bytes (C-contiguous, the sender's byte order), whatever
    device made them: a CUDA value is downloaded once, asynchronously into pinned memory, and
    sent from the node's own thread. dtype, shape, the frame's index and time and the send time
    ride in the sample's attachment (``flowml_zenoh.header``). ``uint8: true`` sends an image as
    (B, H, W, C) uint8, converted on the device: 4x fewer bytes. json: UTF-8 JSON; detections:
    boxes, scores, labels as float32/float32/int64 bytes.

    Congestion (``congestion: auto``): live graphs DROP (a sample the link cannot take now is
    dropped: the newest wins, latency stays bounded); offline graphs BLOCK (the node waits,
    nothing is lost). At teardown an end-of-stream sample tells receivers the stream is over.
    """

    type_name = "output.zenoh"
    blocking = True   # network send: on its own worker thread, in order

    class Params(ZenohParams):
        congestion: Literal["auto", "drop", "block"] = Field(
            "auto", description="auto: drop in live graphs (newest wins), block in offline ones "
            "(nothing lost)", rebuild=True)
        priority: Priority = Field("data", description="Zenoh priority of the samples", rebuild=True)
        express: bool = Field(False, description="send each sample at once, not batched (lower "
                              "latency for small samples)", rebuild=True)
        uint8: bool = Field(False, description="images: send (B, H, W, C) uint8 instead of float "
                            "(4x fewer bytes, 8-bit)", live=False)
        wait: float = Field(0.0, ge=0, le=600, description="seconds setup waits for a subscriber "
                            "to match the key (offline runs: so that no frame goes to no one)",
                            rebuild=True)
        end: bool = Field(True, description="publish an end-of-stream sample at teardown")

    @classmethod
    def ports(cls, params: Params) -> Ports:
        kind = params.kind
        host = kind != "json"
        uint8 = kind == "image" and params.uint8
        doc = "(B, H, W, C) uint8 on the host" if uint8 else "downloaded to the host, then sent"
        return Ports((Input(kind, PORT_TYPES[kind], doc, host=host, uint8=uint8),), ())

    def setup(self, ctx: flowml.NodeContext) -> None:
        import zenoh

        p = self.params
        block = p.congestion == "block" or (p.congestion == "auto" and ctx.mode == "offline")
        self.congestion = zenoh.CongestionControl.BLOCK if block else zenoh.CongestionControl.DROP
        self.priority = getattr(zenoh.Priority, p.priority.upper())
        self.kind = {"tensor": Kind.TENSOR, "json": Kind.JSON, "detections": Kind.DETECTIONS,
                     "image": Kind.IMAGE_U8 if p.uint8 else Kind.IMAGE}[p.kind]
        encoding = zenoh.Encoding.APPLICATION_JSON if p.kind == "json" else zenoh.Encoding.APPLICATION_OCTET_STREAM
        self.session = open_session(p)
        try:
            self.publisher = self.session.declare_publisher(
                p.key, encoding=encoding, congestion_control=self.congestion, priority=self.priority,
                express=p.express)
        except zenoh.ZError as exc:
            self.session.close()
            self.session = None
            raise NodeError(f"key {p.key!r}: cannot publish there: {exc}") from None
        self.stream = secrets.randbits(32) | 1  # 0 means "no sequence" to a receiver
        self.seq = 0
        self.meter = Meter()
        self._wait_for_subscriber(p.wait)
        self.log.info("publishing %s on %r (%s, %s)", p.kind, p.key, "block" if block else "drop",
                      p.priority)

    def _wait_for_subscriber(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while wait and not self._matched():
            if time.monotonic() >= deadline:
                self._close()
                raise NodeError(f"no subscriber matched key {self.params.key!r} within {wait:g} s "
                                "(start the receiving graph first, or check connect/listen)")
            if self.ctx.stopping.wait(0.02):
                return

    def _matched(self) -> bool:
        if self.session is None:  # closed (a report after teardown)
            return False
        status = self.publisher.matching_status  # a MatchingStatus (the stub says bool)
        return bool(getattr(status, "matching", status))

    def process(self, **inputs: Any) -> None:
        value = inputs[self.params.kind]
        if value is None:  # no value this frame
            return
        payload, dtype, shape = codec.encode(self.kind, value)
        tick = self.ctx.tick
        sent = time.time()
        h = Header(self.kind, dtype, shape, self.stream, self.seq, tick.index, tick.t, sent,
                   codec.HOST_BIG_ENDIAN)
        self.publisher.put(payload, attachment=h.pack())
        self.meter.latency("put", time.time() - sent)
        self.meter.count(len(payload))
        self.seq += 1

    def report(self) -> dict[str, Any]:
        """Counts, rate and the time each put took (the sender's side of ``--stats``)."""
        m = getattr(self, "meter", None)
        if m is None:
            return {"key": self.params.key}
        return {"key": self.params.key, **m.as_dict(), "matched": self._matched()}

    def teardown(self) -> None:
        if getattr(self, "session", None) is None:
            return
        if self.params.end and not self.session.is_closed():
            import zenoh

            h = Header(Kind.END, stream=self.stream, seq=self.seq, index=self.ctx.tick.index,
                       t=self.ctx.tick.t, sent=time.time())
            try:  # BLOCK, same session and priority: it arrives after every sample sent before it
                self.session.put(self.params.key, b"", attachment=h.pack(), priority=self.priority,
                                 congestion_control=zenoh.CongestionControl.BLOCK)
            except zenoh.ZError as exc:
                self.log.warning("could not send the end-of-stream sample: %s", exc)
        self._close()

    def _close(self) -> None:
        self.publisher.undeclare()
        self.session.close()
        self.session = None
