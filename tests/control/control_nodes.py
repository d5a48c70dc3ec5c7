"""Tiny node types for the live-control tests: a source with one param of each kind, a sink
that records what it gets, a 'model' that counts its setups, and a sink that sends OSC."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from flowml import ANY, SCALAR, Field, Input, Node, Output, Params

FRAMES: dict[str, list["Frame"]] = defaultdict(list)   # node id -> what each call saw
SETUPS: dict[str, int] = defaultdict(int)                # node id -> setup() calls
INSTANCES: dict[str, int] = {}                           # node id -> id() of the last instance
_lock = threading.Lock()


@dataclass(frozen=True)
class Frame:
    index: int
    params: Any
    at: float
    t: float = 0.0


def reset() -> None:
    FRAMES.clear()
    SETUPS.clear()
    INSTANCES.clear()


class Knobs(Node):
    """A source with a param of each kind; outputs its gain."""

    type_name = "ctl.knobs"
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        gain: float = Field(1.0, ge=0, le=10, description="a float with a range")
        count: int = Field(3, ge=0, le=100, description="an int with a range")
        on: bool = Field(True, description="a bool")
        mode: Literal["a", "b", "c"] = Field("a", description="a choice")
        size: tuple[int, int] = Field((640, 480), description="a vector")
        label: str = Field("x", description="a string")

    def process(self):
        with _lock:
            FRAMES[self.ctx.node_id].append(Frame(self.ctx.tick.index, self.params, time.perf_counter(),
                                                  self.ctx.tick.t))
        return self.params.gain


class Model(Node):
    """Pretends to load a model in setup; counts setups; passes its input times scale."""

    type_name = "ctl.model"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(Params):
        path: str = Field("", file="input")
        scale: float = Field(1.0, ge=0, le=100)

    def setup(self, ctx):
        SETUPS[ctx.node_id] += 1
        INSTANCES[ctx.node_id] = id(self)
        self.weights = ctx.resolve(self.params.path).read_text() if self.params.path else ""

    def process(self, value):
        with _lock:
            FRAMES[self.ctx.node_id].append(Frame(self.ctx.tick.index, self.params, time.perf_counter()))
        return value * self.params.scale


class Sink(Node):
    """Records every value it gets with the frame index."""

    type_name = "ctl.sink"
    inputs = (Input("value", ANY),)

    class Params(Params):
        tag: str = "sink"

    def process(self, value):
        with _lock:
            FRAMES[self.ctx.node_id].append(Frame(self.ctx.tick.index, value, time.perf_counter()))


class OscProbe(Node):
    """Sends ``/probe <frame> <value>`` to ``target`` each frame (to read a graph with oscdump)."""

    type_name = "ctl.osc_probe"
    inputs = (Input("value", ANY),)

    class Params(Params):
        target: str = "127.0.0.1:9"

    def setup(self, ctx):
        from flowml.control.osc_out import OscSender, parse_target

        self.sender = OscSender([parse_target(self.params.target)])

    def process(self, value):
        self.sender.send("/probe", [self.ctx.tick.index, float(value)])

    def teardown(self):
        self.sender.close()


ALL = (Knobs, Model, Sink, OscProbe)
