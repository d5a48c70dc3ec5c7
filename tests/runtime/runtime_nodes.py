"""Small node types for scheduler tests: a counting source, a slow stage, a recording sink."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import flowml
from flowml import SCALAR, TENSOR, EndOfStream, Field, Input, Node, Output, Params, Stamped

RECORDS: dict[str, list] = defaultdict(list)
EVENTS: dict[str, list] = defaultdict(list)
_lock = threading.Lock()


class Counter(Node):
    """Emits 0, 1, 2, ... stamped at index / fps; ends after ``frames`` (0: never)."""

    type_name = "test.counter"
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        frames: int = Field(0, ge=0)
        fps: float = 30.0
        interval: float = Field(0.0, ge=0, description="seconds to wait before each frame")

    def setup(self, ctx):
        self.i = 0

    def process(self):
        if self.params.frames and self.i >= self.params.frames:
            raise EndOfStream
        if self.params.interval:
            time.sleep(self.params.interval)
        self.i += 1
        return Stamped({"value": self.i - 1}, t=(self.i - 1) / self.params.fps)


class LiveCounter(Counter):
    """A Counter that says it is live (a camera would)."""

    type_name = "test.live_counter"
    live = True


class BackgroundCamera(Node):
    """A camera-like live source: its own thread makes a frame every ``interval`` s (``frames``
    of them, then none); ``process`` waits for the newest one, or raises at ``fail_at``.
    Records which thread each ``process`` call ran on under EVENTS["threads"]."""

    type_name = "test.background_camera"
    outputs = (Output("value", SCALAR),)
    live = True
    captures_in_background = True

    class Params(Params):
        frames: int = Field(1000, ge=0)
        interval: float = 0.005
        fail_at: int = -1

    def setup(self, ctx):
        self.cond = threading.Condition()
        self.newest, self.taken, self.calls = -1, -1, 0
        self.done = threading.Event()
        # capturing starts with the first read, so a slow start of the run (gc.collect on a
        # loaded machine) cannot make the newest frame win over the first ones
        self.thread = threading.Thread(target=self._capture, daemon=True)

    def _capture(self):
        for i in range(self.params.frames):
            if self.done.wait(self.params.interval):
                return
            with self.cond:
                self.newest = i
                self.cond.notify_all()

    def process(self):
        EVENTS["threads"].append(threading.current_thread().name)
        if not self.thread.is_alive() and self.calls == 0:
            self.thread.start()
        self.calls += 1
        if self.calls - 1 == self.params.fail_at:
            raise ValueError(f"camera glitch at call {self.params.fail_at}")
        with self.cond:
            while self.newest == self.taken:
                if self.ctx.stopping.is_set():
                    raise EndOfStream
                self.cond.wait(0.05)
            self.taken = self.newest
        return {"value": self.taken}

    def teardown(self):
        self.done.set()
        if self.thread.ident is not None:
            self.thread.join(1)


class AddOne(Node):
    """value + offset; records which offset each frame saw."""

    type_name = "test.add"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        offset: int = 1
        delay: float = Field(0.0, ge=0)

    def process(self, value):
        if self.params.delay:
            time.sleep(self.params.delay)
        return value + self.params.offset


class Blob(Node):
    """A 1 MB tensor per frame, to watch memory."""

    type_name = "test.blob"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("tensor", TENSOR),)

    def process(self, value):
        import torch

        return torch.full((256, 1024), float(value))


class Record(Node):
    """Records what it gets under RECORDS[key]; optionally slow; runs on its own thread."""

    type_name = "test.record"
    blocking = True
    inputs = (Input("value", flowml.ANY),)

    class Params(Params):
        key: str = "default"
        delay: float = Field(0.0, ge=0)

    def process(self, value):
        if self.params.delay:
            time.sleep(self.params.delay)
        with _lock:
            RECORDS[self.params.key].append(value if not hasattr(value, "shape") else float(value.flatten()[0]))

    def teardown(self):
        EVENTS[self.params.key].append("teardown")


class Fail(Node):
    """Passes values through, raises on frame ``at``."""

    type_name = "test.fail"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        at: int = 5

    def process(self, value):
        if value == self.params.at:
            raise ValueError(f"boom at {value}")
        return value


class Calls(Node):
    """Counts its own calls; passes the value through with the count."""

    type_name = "test.calls"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", flowml.ANY),)

    class Params(Params):
        delay: float = Field(0.0, ge=0)

    def setup(self, ctx):
        self.n = 0

    def process(self, value):
        if self.params.delay:
            time.sleep(self.params.delay)
        self.n += 1
        return (value, self.n)


class PureCalls(Calls):
    """``test.calls`` declared ``pure``: its output is its input's (the count only tells the
    calls apart)."""

    type_name = "test.pure_calls"
    pure = True


class PureConstant(Node):
    """A pure node without inputs: ``value``; raises on its first ``fail_first`` calls."""

    type_name = "test.pure_constant"
    outputs = (Output("value", SCALAR),)
    pure = True

    class Params(Params):
        value: int = 1
        fail_first: int = Field(0, ge=0)

    def setup(self, ctx):
        self.n = 0

    def process(self):
        self.n += 1
        if self.n <= self.params.fail_first:
            raise ValueError(f"call {self.n} fails")
        return self.params.value


@flowml.hookimpl
def register_node_types(register):
    for cls in (Counter, LiveCounter, AddOne, Blob, Record, Fail, Calls, PureCalls, PureConstant):
        register(cls)
