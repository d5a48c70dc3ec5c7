"""Node types used only by the benchmarks. Frames and modules are handed over in ``DATA``."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import numpy as np
import torch

from flowml import IMAGE, TENSOR, EndOfStream, Field, Input, Node, Output, Params, Stamped

DATA: dict[str, Any] = {}   # frames (list of uint8 HWC arrays or JPEG bytes), modules, results


class HostFrames(Node):
    """Host frames (uint8 HWC, or JPEG bytes decoded here: the CPU stage); the scheduler uploads
    them when they arrive (``host=True``), as it does for any source's host frames."""

    type_name = "bench.host_frames"
    outputs = (Output("image", IMAGE, host=True),)

    class Params(Params):
        key: str = "frames"
        count: int = Field(100, ge=1)
        interval: float = Field(0.0, ge=0, description="seconds between frames (live pacing)")

    def setup(self, ctx):
        self.i = 0
        self.frames = DATA[self.params.key]
        self.next_at = time.perf_counter()

    def process(self):
        if self.i >= self.params.count:
            raise EndOfStream
        if self.params.interval:
            self.next_at += self.params.interval
            time.sleep(max(0.0, self.next_at - time.perf_counter()))
        idx, self.i = self.i, self.i + 1
        DATA.setdefault("t_in", {})[idx] = time.perf_counter()  # host frame in
        f = self.frames[idx % len(self.frames)]
        if isinstance(f, bytes):
            f = decode_jpeg(f)
        DATA.setdefault("t_src", {})[idx] = time.perf_counter()  # source's own work done
        return Stamped(f, t=idx / 30)


class LiveHostFrames(HostFrames):
    """Live host frames, as a camera gives them: ``process`` waits for the next frame (here
    until its time comes), as ``capture.camera``'s waits for its reader thread's newest one."""

    type_name = "bench.live_host_frames"
    live = True
    captures_in_background = True


class Tensor(Node):
    """The same device tensor every tick (for overhead benchmarks)."""

    type_name = "bench.tensor"
    outputs = (Output("x", TENSOR),)

    class Params(Params):
        key: str = "tensor"

    def process(self):
        return DATA[self.params.key]


class PassThrough(Node):
    """Returns its input: what remains is the scheduler's own cost."""

    type_name = "bench.pass"
    inputs = (Input("x", TENSOR),)
    outputs = (Output("x", TENSOR),)

    def process(self, x):
        return x


class Module(Node):
    """Runs ``DATA[key]`` (an nn.Module already on the device) under inference_mode."""

    type_name = "bench.module"
    inputs = (Input("x", TENSOR),)
    outputs = (Output("x", TENSOR),)

    class Params(Params):
        key: str = "model"
        half: bool = False

    def setup(self, ctx):
        self.module = DATA[self.params.key]

    def process(self, x):
        with torch.inference_mode():
            return self.module(x.half() if self.params.half else x)


class HostSink(Node):
    """Gets each result in host memory (async pinned download) and notes when it arrived."""

    type_name = "bench.host_sink"
    blocking = True
    inputs = (Input("x", TENSOR, host=True),)

    class Params(Params):
        key: str = "done"

    def setup(self, ctx):
        self.done = DATA.setdefault(self.params.key, [])
        self.lock = threading.Lock()

    def process(self, x):
        now = time.perf_counter()  # host frame out: the download has finished
        with self.lock:
            self.done.append(now)
            DATA.setdefault("t_out", {})[round(self.ctx.tick.t * 30)] = now


class HostSinkU8(HostSink):
    """Gets each result as a (B, H, W, C) uint8 host frame (converted on the GPU, then copied),
    as a video writer or NDI sender does."""

    type_name = "bench.host_sink_u8"
    inputs = (Input("x", TENSOR, uint8=True),)


ALL = (HostFrames, LiveHostFrames, Tensor, PassThrough, Module, HostSink, HostSinkU8)


def decode_jpeg(data: bytes) -> np.ndarray:
    """The CPU stage: JPEG bytes -> uint8 HWC RGB (OpenCV if present, else Pillow)."""
    try:
        import cv2

        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except ImportError:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
