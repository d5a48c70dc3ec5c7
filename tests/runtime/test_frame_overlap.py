"""Offline frame overlap: an inline node waiting on a worker's result does not hold the
dispatcher; the rest of its tick runs on the tail thread, in order, with the tick's params."""

from __future__ import annotations

import textwrap
import threading

import runtime_nodes

import flowml
from flowml import SCALAR, Field, Input, Node, Output
from flowml.graph import load_graph
from flowml.plugins import Registry
from flowml.runtime.scheduler import Scheduler

GATE = threading.Event()
SEEN: list = []


class Detect(Node):
    """A CPU detector on its worker: its call for frame 1 opens the gate."""

    type_name = "ov.detect"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)
    blocking = True

    def process(self, value):
        if value == 1:
            GATE.set()
        return value


class Consume(Node):
    """Inline after the detector (a crop + classifier would be): frame 0 waits for the gate."""

    type_name = "ov.consume"
    inputs = (Input("value", SCALAR),)
    outputs = (Output("value", SCALAR),)

    class Params(flowml.Params):
        gain: int = Field(10)

    def process(self, value):
        if value == 0:
            SEEN.append(("gate", GATE.wait(5.0)))  # False: the dispatcher waited for frame 0
        SEEN.append((value, self.params.gain, threading.current_thread().name))
        return value * self.params.gain


def _graph(tmp_path):
    reg = Registry()
    for cls in (runtime_nodes.Counter, Detect, Consume):
        reg.add(cls, "overlap-tests")
    p = tmp_path / "graph.yaml"
    p.write_text(textwrap.dedent("""
        flowml: 1
        mode: offline
        max_in_flight: 3
        nodes:
          src:  {type: test.counter, params: {frames: 8}}
          det:  {type: ov.detect, inputs: {value: src/value}}
          use:  {type: ov.consume, inputs: {value: det/value}}
    """))
    return load_graph(p, reg)


def test_the_next_frames_detection_overlaps_the_inline_rest_of_this_one(tmp_path):
    GATE.clear()
    SEEN.clear()
    after: list = []
    with Scheduler(_graph(tmp_path)) as sched:
        sched.after_tick.append(lambda tick, out: after.append((tick.index, out["use"]["value"])))

        def change(tick):  # from frame 4 on the tick's params say gain 100
            if tick.index == 4:
                sched.set_params("use", {"gain": 100})

        sched.before_tick.append(change)
        result = sched.run()
    assert result.ok, result.error
    assert SEEN[0] == ("gate", True)
    calls = [s for s in SEEN[1:]]
    assert [c[0] for c in calls] == list(range(8))  # in frame order, one at a time
    assert [c[1] for c in calls] == [10] * 4 + [100] * 4  # each frame with its own tick's params
    assert calls[0][2] == "flowml-tail"
    assert after == [(i, i * (10 if i < 4 else 100)) for i in range(8)]  # hooks in order too
    assert result.stats.completed == 8
