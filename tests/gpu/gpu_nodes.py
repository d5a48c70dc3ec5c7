"""Node types for GPU runtime tests."""

from __future__ import annotations

import threading
from collections import defaultdict

import torch

import flowml
from flowml import TENSOR, Field, Input, Node, Output, Params, Stamped, EndOfStream

RESULTS: dict[str, list] = defaultdict(list)
_lock = threading.Lock()


class Frames(Node):
    """A (1, 3, H, W) tensor filled with the frame index, made on the node's device."""

    type_name = "gpu.frames"
    outputs = (Output("x", TENSOR),)

    class Params(Params):
        frames: int = 20
        size: int = 512

    def setup(self, ctx):
        self.i = 0

    def process(self):
        if self.i >= self.params.frames:
            raise EndOfStream
        self.i += 1
        x = torch.full((1, 3, self.params.size, self.params.size), float(self.i - 1),
                       device=self.ctx.device)
        return Stamped(x, t=self.i / 30)


class Upload(Frames):
    """Like Frames, but made on the host and uploaded through pinned memory, as sources do."""

    type_name = "gpu.upload"

    def process(self):
        import numpy as np

        from flowml import image_from_host

        if self.i >= self.params.frames:
            raise EndOfStream
        self.i += 1
        host = np.full((self.params.size, self.params.size, 3), self.i - 1, np.uint8)
        return Stamped((image_from_host(host, self.ctx.device) * 255.0).round(), t=self.i / 30)


class HostUpload(Frames):
    """Returns host uint8 frames (``host=True``): the scheduler uploads them on arrival."""

    type_name = "gpu.host_upload"
    outputs = (Output("x", TENSOR, host=True),)

    def process(self):
        import numpy as np

        if self.i >= self.params.frames:
            raise EndOfStream
        self.i += 1
        return Stamped(np.full((self.params.size, self.params.size, 3), self.i - 1, np.uint8),
                       t=self.i / 30)


class SlowAdd(Node):
    """x + 1 after spinning the GPU (torch.cuda._sleep): a slow producer on its stream."""

    type_name = "gpu.slow_add"
    inputs = (Input("x", TENSOR),)
    outputs = (Output("x", TENSOR),)

    class Params(Params):
        cycles: int = Field(2_000_000, ge=0)

    def process(self, x):
        if self.params.cycles:
            torch.cuda._sleep(self.params.cycles)
        return x + 1


class Scale(Node):
    """x * k; a static-shape node for CUDA-graph tests (many small kernels)."""

    type_name = "gpu.scale"
    inputs = (Input("x", TENSOR),)
    outputs = (Output("x", TENSOR),)

    class Params(Params):
        k: float = 2.0
        steps: int = 20

    def process(self, x):
        for _ in range(self.params.steps):
            x = x * 1.0 + 0.0
        return x * self.params.k


class Sum(Node):
    """a + b."""

    type_name = "gpu.sum"
    inputs = (Input("a", TENSOR), Input("b", TENSOR))
    outputs = (Output("x", TENSOR),)

    def process(self, a, b):
        return a + b


class Collect(Node):
    """Records the mean of each frame (on the host, via the scheduler's async download)."""

    type_name = "gpu.collect"
    blocking = True
    inputs = (Input("x", TENSOR, host=True),)

    class Params(Params):
        key: str = "out"

    def process(self, x):
        assert not x.is_cuda, "host=True input must arrive in host memory"
        with _lock:
            RESULTS[self.params.key].append(float(x.double().mean()))


class CollectU8(Node):
    """Records what a uint8 host port delivers: dtype, device, shape and the first pixel."""

    type_name = "gpu.collect_u8"
    blocking = True
    inputs = (Input("x", TENSOR, uint8=True),)

    def process(self, x):
        with _lock:
            RESULTS["u8"].append((x.dtype, x.device.type, tuple(x.shape), int(x[0, 0, 0, 0])))


class SlowCollect(Collect):
    """Collect that takes ``delay`` seconds a frame: a live sink slower than its source."""

    type_name = "gpu.slow_collect"

    class Params(Params):
        key: str = "out"
        delay: float = 0.03

    def process(self, x):
        import time

        time.sleep(self.params.delay)
        super().process(x)


class LiveFrames(Frames):
    """Frames, as a live source: every ``interval`` seconds."""

    type_name = "gpu.live_frames"
    live = True

    class Params(Params):
        frames: int = 100000
        size: int = 256
        interval: float = 0.002

    def process(self):
        import time

        time.sleep(self.params.interval)
        return super().process()


class CollectByFrame(Node):
    """Records each image's mean by the clock frame it came from (``round(t * fps)``)."""

    type_name = "gpu.collect_by_frame"
    blocking = True
    inputs = (Input("x", TENSOR, host=True),)

    class Params(Params):
        key: str = "by_frame"
        fps: float = 30.0

    def process(self, x):
        with _lock:
            RESULTS[self.params.key].append((round(self.ctx.tick.t * self.params.fps),
                                             float(x.double().mean())))


ALL = (Frames, Upload, HostUpload, SlowAdd, Scale, Sum, Collect, CollectU8, SlowCollect, LiveFrames,
       CollectByFrame)


@flowml.hookimpl
def register_node_types(register):
    for cls in ALL:
        register(cls)
