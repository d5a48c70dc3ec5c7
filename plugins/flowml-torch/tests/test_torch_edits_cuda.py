"""torch.model captured as a CUDA graph with a tap and a live weight edit following an
expression: a new value every tick, the graph replays on (no eager call, no second capture),
every frame and tap as the module gives them with that value. Skipped where there is no GPU."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from flowml.control import ControlSession, ControlSettings
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]
TICKS = 90

GRAPH = """\
flowml: 1
name: torch-live-edits
clock: {fps: 60}
mode: offline
nodes:
  src: {type: capture.pattern, params: {pattern: bars, size: [64, 48]}}
  m:
    type: torch.model
    inputs: {image: src/image}
    cuda_graph: true
    params:
      path: net.pt2
      taps: [mid=body.1]
      edits: [{name: body.0.weight, op: scale, value: {expr: "1 + 0.5*sin(t*5)"}}]
"""


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))

    def forward(self, x):
        return torch.sigmoid(self.body(x))


def test_live_edits_on_a_captured_torch_model(tmp_path):
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.manual_seed(0)
        net = Net().eval()
        torch.export.save(torch.export.export(net, (torch.rand(1, 3, 48, 64),)), tmp_path / "net.pt2")
        (tmp_path / "g.yaml").write_text(GRAPH)
        graph = load_graph(tmp_path / "g.yaml", load_registry())
        frames = {}
        with Scheduler(graph, device="cuda") as sched:
            session = ControlSession(sched, ControlSettings(), graph_path=tmp_path / "g.yaml", say=lambda s: None)
            session.start()
            sched.after_tick.append(lambda tick, out: frames.__setitem__(
                tick.index, (1 + 0.5 * math.sin(tick.t * 5), out["src"]["image"], out["m"]["image"], out["m"]["mid"])))
            result = sched.run(frames=TICKS)
            session.stop()
            torch.cuda.synchronize()
            assert result.ok, result.error
            counters = sched.nodes["m"].captured.counters()
        print(f"\ncaptured torch.model, a live edit every tick: {counters}")
        if os.environ.get("OUT"):
            Path(os.environ["OUT"], "torch_live_edits.json").write_text(json.dumps(counters))
        assert counters == {"captures": 1, "recaptures": 0, "replays": TICKS, "eager_calls": 0}
        net = net.cuda()
        original = net.body[0].weight.detach().clone()
        with torch.no_grad():
            for i in range(TICKS):
                value, x, image, mid = frames[i]
                net.body[0].weight.copy_(original * value)
                assert (image - net(x)).abs().max() < 1e-5, i
                assert (mid - torch.relu(net.body[0](x))).abs().max() < 1e-5, i
        assert len({frames[i][0] for i in range(TICKS)}) == TICKS
    finally:
        torch.backends.cudnn.allow_tf32 = saved
