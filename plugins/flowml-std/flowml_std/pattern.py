"""``capture.pattern``: a synthetic source, for demos and tests that need no file or camera."""

from __future__ import annotations

import time
from typing import Literal

import flowml
from flowml import IMAGE, EndOfStream, Field, Node, Output, Stamped

from . import patterns
from .params import Size


class PatternSource(Node):
    """Synthetic frames: colour bars, a moving scene or noise, stamped t = index / fps.

    As the clock of a live graph it delivers ``fps`` frames a second of wall-clock time (in
    an offline graph, as fast as the graph takes them).

    Output ``image``: ``(1, 3, H, W)`` float32 RGB in [0, 1] on the node's device. Each frame is
    a deterministic function of (pattern, size, seed, frame index), so runs are repeatable.
    """

    type_name = "capture.pattern"
    outputs = (Output("image", IMAGE, "(1, 3, H, W) RGB in [0, 1]"),)
    live = False

    class Params(flowml.Params):
        pattern: Literal["bars", "scene", "noise"] = Field(
            "scene", description="bars: colour bars; scene: a moving dusk scene; noise: uniform noise")
        size: Size = Field((640, 360), description="[width, height] in pixels")
        fps: float = Field(30.0, gt=0, le=1000, description="frame rate: frame k is stamped t = k / fps")
        frames: int = Field(0, ge=0, description="frames before the end of the stream; 0: endless")
        seed: int = Field(0, ge=0, le=2**31 - 1, description="picks the scene's shapes and the noise")

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.index = 0
        self._due: float | None = None  # live clock: when the next frame is due

    def process(self) -> Stamped:
        p = self.params
        if p.frames and self.index >= p.frames:
            raise EndOfStream
        if self.ctx.mode == "live" and self.ctx.is_clock:
            self._pace(p.fps)
        (width, height), device, t = p.size, self.ctx.device, self.index / p.fps
        if p.pattern == "bars":
            image = patterns.bars(self.index, width, height, device)
        elif p.pattern == "noise":
            image = patterns.noise(self.index, width, height, p.seed, device)
        else:
            image = patterns.scene(t, width, height, p.seed, device)
        self.index += 1
        return Stamped({"image": image}, t=t)

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
