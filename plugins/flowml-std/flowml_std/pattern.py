"""``capture.pattern``: a synthetic source, for demos and tests that need no file or camera."""

from __future__ import annotations

import time
from typing import Literal

from flowml.lazy import lazy_import
torch = lazy_import("torch")

import flowml
from flowml import IMAGE, JSON, EndOfStream, Field, Node, Output, Stamped
from flowml.batching import FRAMES_KEYS, frames_record, refuse_live_batch

from . import patterns
from .params import Size


class PatternSource(Node):
    """Synthetic frames: colour bars, a moving scene or noise, stamped t = index / fps.

    As the clock of a live graph it delivers ``fps`` frames a second of wall-clock time (in
    an offline graph, as fast as the graph takes them).

    Output ``image``: ``(K, 3, H, W)`` float32 RGB in [0, 1] on the node's device, K = ``batch``
    consecutive frames a tick (1 by default; the last tick of a finite stream may have fewer).
    Each frame is a deterministic function of (pattern, size, seed, frame index), so runs are
    repeatable, and the same whatever the batch. Output ``frames``: which frames they are,
    ``{index: the first one's index, count: K, t: [each one's time in seconds]}``; the tick is
    stamped with the first one's time. ``batch`` > 1 is for offline graphs (a live graph refuses
    it at start, and refuses a live change to it).
    """

    type_name = "capture.pattern"
    outputs = (Output("image", IMAGE, "(K, 3, H, W) RGB in [0, 1], K = batch"),
               Output("frames", JSON, "{index: first frame's index, count: K, t: [seconds, one per frame]}"))
    live = False

    class Params(flowml.Params):
        pattern: Literal["bars", "scene", "noise"] = Field(
            "scene", description="bars: colour bars; scene: a moving dusk scene; noise: uniform noise")
        size: Size = Field((640, 360), description="[width, height] in pixels")
        fps: float = Field(30.0, gt=0, le=1000, description="frame rate: frame k is stamped t = k / fps")
        frames: int = Field(0, ge=0, description="frames before the end of the stream; 0: endless")
        seed: int = Field(0, ge=0, le=2**31 - 1, description="picks the scene's shapes and the noise")
        batch: int = Field(1, ge=1, le=1024, description=(
            "K: frames a tick, stacked as (K, 3, H, W) (offline graphs; video.clip `input: frames` "
            "takes them as one stream's consecutive frames)"))

    @classmethod
    def metadata_keys(cls, params: flowml.Params) -> frozenset[str]:
        return FRAMES_KEYS

    def setup(self, ctx: flowml.NodeContext) -> None:
        refuse_live_batch(ctx.mode, self.params.batch)
        self.index = 0
        self._due: float | None = None  # live clock: when the next frame is due

    def on_params(self, old: flowml.Params, new: flowml.Params) -> None:
        refuse_live_batch(self.ctx.mode, new.batch)  # type: ignore[attr-defined]

    def process(self) -> Stamped:
        p = self.params
        count = p.batch if not p.frames else min(p.batch, p.frames - self.index)
        if count <= 0:
            raise EndOfStream
        if self.ctx.mode == "live" and self.ctx.is_clock:
            self._pace(p.fps)
        first, times = self.index, [(self.index + i) / p.fps for i in range(count)]
        image = self._frames(first, times)
        self.index += count
        return Stamped({"image": image, "frames": frames_record(first, times)}, t=times[0])

    def _frames(self, first: int, times: list[float]) -> torch.Tensor:
        """Frames ``first ..`` at ``times``: ``(len(times), 3, H, W)``. Noise is written in place
        by one reseeded generator kept by the node (``patterns.noise_frames``); the others are
        drawn one by one and stacked."""
        p = self.params
        if p.pattern == "noise":
            device = self.ctx.device
            kept = getattr(self, "_generator", None)  # (device, its generator), made on first use
            if kept is None or kept[0] != device:
                kept = self._generator = (device, torch.Generator(device=device))
            return patterns.noise_frames(first, len(times), *p.size, p.seed, device, kept[1])
        if len(times) == 1:
            return self._frame(first, times[0])
        return torch.cat([self._frame(first + i, t) for i, t in enumerate(times)])

    def _frame(self, index: int, t: float) -> torch.Tensor:
        """Frame ``index`` (at ``t`` seconds): ``(1, 3, H, W)``."""
        p = self.params
        (width, height), device = p.size, self.ctx.device
        if p.pattern == "bars":
            return patterns.bars(index, width, height, device)
        if p.pattern == "noise":
            return patterns.noise(index, width, height, p.seed, device)
        return patterns.scene(t, width, height, p.seed, device)

    def _pace(self, fps: float) -> None:
        """As the clock of a live graph: wait for the frame's time, ``fps`` frames a second
        (a change of ``fps`` counts from the next frame). A source that fell more than a
        frame behind starts again from now rather than catching up in a burst."""
        period, now = 1.0 / fps, time.perf_counter()
        due = now if self._due is None else self._due
        if due > now and self.ctx.stopping.wait(due - now):
            raise EndOfStream  # the graph is stopping: do not hold it up
        now = time.perf_counter()
        self._due = due + period if now - due < period else now + period
