"""Live weight edits on a generator captured as a CUDA graph (``cuda_graph: true``): an edit
whose value follows an expression changes on every one of 120 ticks (60 a second of graph
time), the captured graph keeps replaying (no eager call, no second capture: the edits are an
``in_place`` param, written by ``on_params`` into the weight's own storage on the node's
stream), every frame equals an eager run with that frame's value, no frame is dropped, and
taking the edit out restores the unedited frame bit-exactly. Skipped where there is no GPU."""

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
import torch

from flowml.control import ControlSession, ControlSettings
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness, run_node
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]
ROOT = Path(__file__).resolve().parents[3]
EDITED, PLAIN, TICKS = 120, 10, 150  # ticks 0-9 unedited (scale 1.0), 10-129 moving, then removed
NAME = "synthesis.b4.const"  # a demodulated conv weight would not show: scale the input


def value_at(t: float, frame: int) -> float:
    """What the graph's expression gives (the same float operations, in the same order)."""
    return 1.0 if frame < PLAIN else 1 + 0.5 * math.sin(t * 7)


GRAPH = f"""\
flowml: 1
name: stylegan-live-edits
clock: {{fps: 60}}
mode: offline
nodes:
  latent: {{type: stylegan.latent, params: {{path: SNAP, seed: 2}}}}
  gen:
    type: stylegan.generator
    inputs: {{w: latent/w}}
    cuda_graph: true
    params:
      path: SNAP
      edits: [{{name: {NAME}, op: scale, value: {{expr: "1 if frame < {PLAIN} else 1 + 0.5*sin(t*7)"}}}}]
"""


@pytest.fixture
def no_tf32():
    """fp32 without TF32, and deterministic cuDNN algorithms: the up-sampling convolutions are
    transposed convolutions, whose fastest cuDNN algorithms may add with atomics (bits vary
    from run to run, a replayed graph too); bit-exact comparisons need deterministic ones."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    cudnn.deterministic, cudnn.benchmark = True, False
    yield
    cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_stylegan", ROOT / "models" / "build_stylegan.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("models"), resolution=256)


def test_60_edits_a_second_on_a_captured_generator(snap, tmp_path, no_tf32):
    path = tmp_path / "g.yaml"
    path.write_text(GRAPH.replace("SNAP", str(snap)))
    graph = load_graph(path, load_registry())
    frames: dict[int, tuple[float, torch.Tensor]] = {}
    with Scheduler(graph, device="cuda") as sched:
        session = ControlSession(sched, ControlSettings(), graph_path=path, say=lambda s: None)
        session.start()
        assert "/gen/edits/0/value" in session.store.params

        def keep(tick, outputs):  # no sync here: frames stay in flight, each its own buffer
            frames[tick.index] = (value_at(tick.t, tick.index), outputs["gen"]["image"])
            if tick.index == PLAIN + EDITED - 1:
                session.store.set("/gen/edits", [])  # from the next tick on: no edit

        sched.after_tick.append(keep)
        result = sched.run(frames=TICKS)
        session.stop()
        torch.cuda.synchronize()
        assert result.ok, result.error
        cap = sched.nodes["gen"].captured
        counters = cap.counters()
        stats = sched.stats
        drops = stats.source_drops + sum(n.drops for n in stats.nodes.values())
    print(f"\ncaptured generator, {EDITED} live edits: {counters}, drops {drops}, "
          f"completed {stats.completed}/{TICKS}")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gan_live_edits.json").write_text(json.dumps({**counters, "drops": drops}))
    assert sorted(frames) == list(range(TICKS)) and drops == 0 and stats.completed == TICKS
    assert counters == {"captures": 1, "recaptures": 0, "replays": TICKS, "eager_calls": 0}

    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 2}, **kw)["w"].cuda()
    with NodeHarness(StyleGANGenerator, {"path": snap.name}, device="cuda", **kw) as eager:
        moving = range(PLAIN, PLAIN + EDITED)
        values = [frames[i][0] for i in moving]
        assert len(set(values)) == EDITED  # a new value on every tick
        previous = None
        for i in moving:
            value, image = frames[i]
            eager.set_params(edits=[{"name": NAME, "op": "scale", "value": value}])
            want = eager.process(w=w)["image"]
            err = (image - want).abs().max().item()
            assert err < 1e-3, (i, value, err)
            if previous is not None and abs(value - frames[i - 1][0]) > 0.02:
                # the edit shows (well beyond the tolerance): this frame's value, not the last
                assert (want - previous).abs().max() > 2e-3, i
            previous = want
        eager.set_params(edits=[])
        plain = eager.process(w=w)["image"]
    first = frames[0][1]
    assert (first - plain).abs().max() < 1e-3
    for i in list(range(PLAIN)) + list(range(PLAIN + EDITED, TICKS)):
        diff = (frames[i][1] - first).abs().max().item()
        assert torch.equal(frames[i][1], first), (i, diff)  # scale 1.0, and after removal: bit-exact
