"""Node types for the live-change tests (issue 21): params a node refuses, sources that are
slow or send a bad frame, a setup that is interrupted, blocking nodes with outputs."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import numpy as np

import flowml
from flowml import IMAGE, SCALAR, Field, Input, Node, NodeError, Output, Params
from runtime_nodes import AddOne

SEEN: dict[str, list] = defaultdict(list)   # node id -> what each call saw
_lock = threading.Lock()


class Refuse(Node):
    """value * gain; ``on_params`` refuses a gain over ``limit``."""

    type_name = "live.refuse"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        gain: float = Field(1.0, ge=0, le=100)
        limit: float = 5.0

    def on_params(self, old, new):
        if new.gain > new.limit:
            raise NodeError(f"gain {new.gain} is over the limit {new.limit}")

    def process(self, value):
        with _lock:
            SEEN[self.ctx.node_id].append(self.params.gain)
        return value * self.params.gain


class WorkerRefuse(Refuse):
    """Refuse, on a worker thread of its own."""

    type_name = "live.worker_refuse"
    blocking = True


class FlatFrame(Node):
    """A source of host frames; frame ``bad_at`` is 2-D, which cannot be an image."""

    type_name = "live.flat_frame"
    outputs = (Output("image", IMAGE, host=True),)

    class Params(Params):
        frames: int = 10
        bad_at: int = 3

    def setup(self, ctx):
        self.i = 0

    def process(self):
        if self.i >= self.params.frames:
            raise flowml.EndOfStream
        self.i += 1
        if self.i - 1 == self.params.bad_at:
            return np.zeros((4, 4), np.uint8)
        return np.full((4, 4, 3), self.i - 1, np.uint8)


class SlowSource(Node):
    """An offline source whose frames take ``seconds`` each; notes a teardown that comes while
    ``process`` still runs (a decoder's container closed under an active decode)."""

    type_name = "live.slow_source"
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        seconds: float = 0.2

    def setup(self, ctx):
        self.i, self.busy = 0, False

    def process(self):
        self.busy = True
        time.sleep(self.params.seconds)
        self.busy = False
        self.i += 1
        return self.i

    def teardown(self):
        SEEN["teardown"].append("while busy" if self.busy else "after")


class InterruptSetup(Node):
    """A sink whose setup is interrupted (a second Ctrl-C while models load)."""

    type_name = "live.interrupt_setup"
    inputs = (Input("value", SCALAR),)

    def setup(self, ctx):
        raise KeyboardInterrupt

    def process(self, value):
        pass


class BlockingAdd(AddOne):
    """test.add on a worker thread of its own."""

    type_name = "live.blocking_add"
    blocking = True


class Stuck(Node):
    """A blocking sink that never comes back in time (a network send that hangs)."""

    type_name = "live.stuck"
    blocking = True
    inputs = (Input("value", SCALAR),)

    class Params(Params):
        seconds: float = 30.0

    def process(self, value):
        time.sleep(self.params.seconds)


class Tunable(Node):
    """A blocking sink taking ``delay`` s a frame, with three knobs it records per call."""

    type_name = "live.tunable"
    blocking = True
    inputs = (Input("value", SCALAR),)

    class Params(Params):
        delay: float = Field(0.004, ge=0, le=1)
        a: float = Field(0.0, ge=-2, le=2)
        b: float = Field(0.0, ge=0, le=10)
        c: float = Field(0.0, ge=0, le=10)
        rate: float = Field(1.0, gt=0, le=10, description="must stay above 0")

    def process(self, value):
        time.sleep(self.params.delay)
        with _lock:
            SEEN[self.ctx.node_id].append((value, self.params.a, self.params.b, self.params.c))


ALL = (Refuse, WorkerRefuse, FlatFrame, SlowSource, InterruptSetup, BlockingAdd, Stuck, Tunable)
