"""A torch.model weight edit driven live: by an expression in the graph file (``value: {expr:
"sin(t)"}``, evaluated every tick by the param store) and over OSC (liblo's ``oscsend`` to the
edit's own address ``/m/edits/0/value``), each frame computed with the value of its tick."""

import math
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from flowml.plugins import load_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "control"))
from control_helpers import LiveGraphs, oscsend, wait_until  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]

GRAPH = """\
flowml: 1
name: edit-live
clock: {fps: 60}
nodes:
  src: {type: capture.pattern, params: {pattern: bars, size: [16, 12]}}
  m:
    type: torch.model
    inputs: {image: src/image}
    params:
      path: net.pt
      edits: [{name: "1.weight", op: scale, value: {expr: "sin(t)"}}]
"""


@pytest.fixture
def live(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 1)).eval()
    torch.jit.save(torch.jit.script(net), tmp_path / "net.pt")
    graphs = LiveGraphs(tmp_path, load_registry())
    yield graphs, net
    graphs.stop_all()


def expected(net, x, value):
    with torch.no_grad():
        w = net[1].weight.detach().clone()
        net[1].weight.mul_(value)
        try:
            return net(x)
        finally:
            net[1].weight.copy_(w)


def test_an_edit_follows_an_expression_then_osc_every_frame(live):
    graphs, net = live
    frames, lock = [], threading.Lock()
    run = graphs.start(GRAPH)
    assert "/m/edits/0/value" in run.store.params  # each edit's value has an address

    def keep(tick, outputs):
        node = run.sched.nodes["m"].node
        with lock:
            frames.append((tick.t, node.params.edits[0]["value"], outputs["src"]["image"].clone(),
                           outputs["m"]["image"].clone()))
    run.sched.after_tick.append(keep)
    wait_until(lambda: len(frames) >= 20)
    with lock:
        moving = list(frames)
    values = [v for _, v, _, _ in moving]
    assert len(set(values)) == len(values)  # a new value every frame
    for t, value, x, out in moving:
        assert value == pytest.approx(math.sin(t), abs=1e-9)
        assert torch.allclose(out, expected(net, x, value), atol=1e-6)

    oscsend(run.osc_port, "/m/edits/0/value", "f", 0.25)  # a plain value stops the expression
    wait_until(lambda: frames[-1][1] == 0.25)
    n = len(frames)
    wait_until(lambda: len(frames) >= n + 3)
    for _, value, x, out in frames[n:]:
        assert value == 0.25 and torch.allclose(out, expected(net, x, 0.25), atol=1e-6)

    oscsend(run.osc_port, "/m/edits/0/value/expr", "s", "2 + cos(t)")  # an expression over OSC
    wait_until(lambda: frames[-1][1] > 1.0)
    n = len(frames)
    wait_until(lambda: len(frames) >= n + 3)
    for t, value, x, out in frames[n:]:
        assert value == pytest.approx(2 + math.cos(t), abs=1e-9)
        assert torch.allclose(out, expected(net, x, value), atol=1e-6)
    assert run.stop().ok
