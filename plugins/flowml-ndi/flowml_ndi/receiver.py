"""``capture.ndi``: receive an NDI source (cyndilib)."""

from __future__ import annotations

import threading
import time
from typing import Literal

from flowml.lazy import lazy_import
np = lazy_import("numpy")

import flowml
from flowml import IMAGE, JSON, EndOfStream, Field, Node, NodeError, Output

from .common import missing_cyndilib

POLL_S = 0.002
"""How often ``process`` asks NDI's frame-sync for a newer frame while it waits for one.
(cyndilib 0.1.3's blocking ``Receiver.receive`` holds the GIL while it waits, stalling the
graph's other threads, and delivered frames in bursts here: the frame-sync API does neither.)"""


class NdiSource(Node):
    """Frames from an NDI source on the network (live: the newest frame wins).

    ``source`` names the sender: its full name ``HOST (name)``, or a part of it (``name``
    alone matches ``ANY-HOST (name)``). ``setup`` waits up to ``wait`` seconds for the source
    to be announced, then fails naming the sources it saw. While the sender is gone (stopped,
    network down), the last frame is repeated every ``timeout`` seconds so the graph keeps
    running, ``status`` says ``lost``, and frames resume as soon as the sender is back (NDI
    reconnects by name).

    As the graph's clock it waits for each new frame; when it is not the clock, set
    ``wait_for_new: false`` and it hands out the newest frame at once.

    Outputs: ``image`` ``(1, 3, H, W)`` RGB (or RGBA with ``alpha: true``) in [0, 1] on the
    node's device; ``status`` ``{"state": "ok"|"lost", "frames", "held", "lost"}``.

    Without an mDNS daemon (containers, CI) NDI finds no sources by itself: point
    ``NDI_CONFIG_DIR`` at a folder with ``ndi-config.v1.json`` listing the senders' IPs
    (README, "Discovery without mDNS").
    """

    type_name = "capture.ndi"
    outputs = (Output("image", IMAGE, "(1, 3|4, H, W) in [0, 1]"),
               Output("status", JSON, '{"state": "ok"|"lost", "frames", "held", "lost"}'))
    live = True

    class Params(flowml.Params):
        source: str = Field(min_length=1, description="NDI source: 'HOST (name)' or a part of it", rebuild=True)
        wait: float = Field(10.0, ge=0, le=600, description="seconds setup waits for the source to appear",
                             rebuild=True)
        timeout: float = Field(1.0, gt=0, le=60,
                               description="seconds without a frame before the last one is repeated")
        bandwidth: Literal["highest", "lowest"] = Field("highest", description="full quality or NDI's preview stream",
                                                        rebuild=True)
        alpha: bool = Field(False, description="output RGBA (the sender's alpha) instead of RGB")
        wait_for_new: bool = Field(
            True, description="wait for a frame not handed out yet (the graph's clock); false: the newest at once")

    @classmethod
    def unavailable(cls) -> str | None:
        return missing_cyndilib()

    def setup(self, ctx: flowml.NodeContext) -> None:
        from cyndilib import Finder, Receiver, RecvBandwidth, RecvColorFormat, VideoFrameSync

        self._stopped = threading.Event()
        self.finder = Finder()
        self.finder.open()
        source = self._find(self.params.source, self.params.wait)
        bandwidth = RecvBandwidth.highest if self.params.bandwidth == "highest" else RecvBandwidth.lowest
        self.receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=bandwidth,
                                 recv_name=f"flowml {ctx.node_id}")
        self.frame = VideoFrameSync()
        self.receiver.frame_sync.set_video_frame(self.frame)
        self.receiver.set_source(source)
        self.source_name = source.name
        self.stamp: float | None = None  # NDI timestamp of the last frame handed out
        self.staging = self.uploaded = None
        self.received_at = time.monotonic()
        self.last = None
        self.counts = {"frames": 0, "held": 0, "lost": 0}
        self.state = "ok"
        self.log.info("receiving NDI source %r", source.name)

    def _find(self, wanted: str, wait: float):
        deadline = time.monotonic() + wait
        while True:
            names = self.finder.get_source_names()
            match = _pick(wanted, names)
            if match is not None:
                return self.finder.get_source(match)
            left = deadline - time.monotonic()
            if left <= 0:
                seen = ", ".join(repr(n) for n in names) or "none"
                raise NodeError(
                    f"NDI source {wanted!r} not found within {wait:g} s (sources seen: {seen}); "
                    "on a machine without mDNS set NDI_CONFIG_DIR to a folder with "
                    "ndi-config.v1.json listing the sender's IP (see the flowml-ndi README)")
            self.finder.wait_for_sources(min(left, 0.25))

    def process(self) -> dict:
        deadline = time.monotonic() + self.params.timeout
        while not (self._stopped.is_set() or self.ctx.stopping.is_set()):  # a stop ends the wait
            image = self._capture()
            if image is not None:
                self.received_at = time.monotonic()
                return self._emit(image)
            if self.last is not None and not self.params.wait_for_new:  # not the clock: never wait
                if self.state == "ok" and time.monotonic() - self.received_at >= self.params.timeout:
                    self.state = "lost"
                    self.counts["lost"] += 1
                    self.log.warning("NDI source %r: no frame for %g s", self.source_name, self.params.timeout)
                return self._emit(self.last)
            if self.last is not None and time.monotonic() >= deadline:
                if self.state == "ok":
                    self.state = "lost"
                    self.counts["lost"] += 1
                    self.log.warning("NDI source %r: no frame for %g s; repeating the last frame "
                                     "until it is back", self.source_name, self.params.timeout)
                self.counts["held"] += 1
                return self._emit(self.last)
            self._stopped.wait(POLL_S)
        raise EndOfStream

    def _capture(self):
        """The newest frame as an image if NDI has one we have not handed out yet, else None."""
        self.receiver.frame_sync.capture_video()
        frame = self.frame
        width, height = frame.xres, frame.yres
        stamp = frame.get_timestamp_posix()
        if not width or not height or stamp == self.stamp:
            return None
        stride = frame.get_line_stride() or width * 4
        with memoryview(frame) as view:  # NDI's buffer, valid until the next capture
            image = self._upload(view, width, height, stride)
        if self.state == "lost":
            self.log.warning("NDI source %r is back", self.source_name)
        self.state, self.stamp = "ok", stamp
        self.counts["frames"] += 1
        return image if self.params.alpha else image[:, :3]

    def _upload(self, view: memoryview, width: int, height: int, stride: int):
        """NDI's RGBX rows -> ``(1, 4, H, W)`` float on the device: one copy into a (pinned)
        staging buffer, an asynchronous upload, the conversion on the device."""
        import torch

        size = stride * height
        device = self.ctx.torch_device
        if self.staging is None or self.staging.numel() != size:
            self.staging = torch.empty(size, dtype=torch.uint8, pin_memory=device.type == "cuda")
            self.uploaded = None
        if self.uploaded is not None:  # the previous upload must be done before we overwrite
            self.uploaded.synchronize()
        self.staging.numpy()[:] = np.frombuffer(view, dtype=np.uint8, count=size)
        pixels = self.staging.view(height, stride)[:, : width * 4].view(height, width, 4)
        if device.type == "cuda":
            pixels = pixels.to(device, non_blocking=True)
            self.uploaded = torch.cuda.Event()
            self.uploaded.record()
        return pixels.permute(2, 0, 1).unsqueeze(0).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)

    def _emit(self, image) -> dict:
        self.last = image
        return {"image": image, "status": {"state": self.state, **self.counts}}

    def teardown(self) -> None:
        if hasattr(self, "_stopped"):
            self._stopped.set()
        receiver = getattr(self, "receiver", None)
        if receiver is not None:
            receiver.disconnect()
        finder = getattr(self, "finder", None)
        if finder is not None:
            finder.close()


def _pick(wanted: str, names: list[str]) -> str | None:
    """The announced name ``wanted`` means: itself, ``HOST (wanted)``, or the one containing it."""
    if wanted in names:
        return wanted
    tagged = [n for n in names if n.endswith(f"({wanted})")]
    if tagged:
        return tagged[0]
    partial = [n for n in names if wanted in n]
    return partial[0] if partial else None
