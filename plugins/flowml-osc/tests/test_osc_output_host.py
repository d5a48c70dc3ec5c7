"""output.osc reads its values in host memory on a thread of its own (issue 21, item 10: it
called ``.tolist()`` on a CUDA tensor on the dispatcher, a host sync every tick)."""

from __future__ import annotations

import threading

import pytest
import torch

from flowml import SCALAR, TENSOR, Node, Output, Params
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml_osc.output import OscOutput

SEEN: list[tuple[str, str, list]] = []  # (thread name, device of the value, the value's elements)


class Levels(Node):
    """A source of a small tensor on the graph's device: three levels that change per frame."""

    type_name = "test.levels"
    outputs = (Output("levels", TENSOR), Output("peak", SCALAR))

    class Params(Params):
        pass

    def setup(self, ctx):
        self.k = 0

    def process(self):
        self.k += 1
        levels = torch.arange(3, device=self.ctx.device, dtype=torch.float32) + self.k
        return {"levels": levels, "peak": levels.max()}


class RecordingOscOutput(OscOutput):
    type_name = "test.osc_out"

    def process(self, value):
        SEEN.append((threading.current_thread().name, str(value.device), value.tolist()))
        super().process(value)


GRAPH = """
flowml: 1
clock: src
mode: offline
nodes:
  src: {type: test.levels}
  out: {type: test.osc_out, inputs: {value: src/levels}, params: {address: /levels, target: "127.0.0.1:9"}}
"""


def run_graph(device: str) -> None:
    SEEN.clear()
    registry = load_registry()
    registry.add(Levels, "test")
    registry.add(RecordingOscOutput, "test")
    sched = Scheduler(load_graph("g.yaml", registry, text=GRAPH), device=device)
    dispatcher = threading.current_thread().name
    sched.run(frames=5)
    assert [v for _, _, v in SEEN] == [[k, k + 1, k + 2] for k in range(1, 6)]
    assert all(name != dispatcher for name, _, _ in SEEN), "process ran on the dispatcher"
    assert all(dev == "cpu" for _, dev, _ in SEEN), "the value arrived on the device"


def test_the_value_port_is_host_and_the_node_runs_on_a_worker():
    assert OscOutput.inputs[0].host and OscOutput.blocking


def test_values_are_read_on_the_nodes_own_thread_on_the_cpu():
    run_graph("cpu")


@pytest.mark.cuda
def test_a_cuda_tensor_arrives_downloaded_on_the_nodes_own_thread():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    run_graph("cuda")
