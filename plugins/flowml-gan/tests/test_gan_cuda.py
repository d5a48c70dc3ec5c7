"""flowml-gan on a CUDA GPU: the same images as on the CPU, mixed precision close, and a
generator captured as a CUDA graph (``cuda_graph: true``). Skipped where there is no GPU."""

import importlib.util
from pathlib import Path

import pytest
import torch

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import run_node
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent
from flowml_gan.stylegan2 import Generator

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]
ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def no_tf32():
    """Full fp32 convolutions and matmuls, so CUDA can be held to CPU's numbers."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_stylegan", ROOT / "models" / "build_stylegan.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("models"), resolution=256)  # paper256 size


def test_parity_fixture_on_cuda(no_tf32):
    d = torch.load(FIXTURES / "sg2_256.pt", weights_only=True)
    G = Generator(**d["init_kwargs"]).eval().cuda()
    G.load_state_dict(d["state_dict"])
    with torch.no_grad():
        img = G(d["z"].cuda(), None, truncation_psi=0.7, noise_mode="const", force_fp32=True)
    assert (img.cpu() - d["img"]).abs().max() <= 1e-3


def test_generator_on_cuda_matches_cpu_and_mixed_is_close(snap, no_tf32):
    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 3, "psi": 0.7}, **kw)["w"]
    cpu = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name}, **kw)["image"]
    gpu = run_node(StyleGANGenerator, {"w": w.cuda()}, {"path": snap.name}, device="cuda", **kw)["image"]
    assert gpu.is_cuda and gpu.shape == (1, 3, 256, 256)
    assert (gpu.cpu() - cpu).abs().max() < 1e-3
    mixed = run_node(StyleGANGenerator, {"w": w.cuda()}, {"path": snap.name, "precision": "mixed"},
                     device="cuda", **kw)["image"]
    assert mixed.dtype == torch.float32 and (mixed.cpu() - cpu).abs().mean() < 0.02


GRAPH = """\
flowml: 1
name: stylegan-captured
clock: {fps: 30}
mode: offline
max_in_flight: 1
nodes:
  latent: {type: stylegan.latent, params: {path: SNAP, seed: 2.5}}
  gen:
    type: stylegan.generator
    inputs: {w: latent/w}
    cuda_graph: true
    params: {path: SNAP, taps: [l64=synthesis.b64.conv1]}
"""


def _captured_run(path, frames: int) -> list[dict]:
    """Run the graph file on cuda for ``frames`` frames: each frame's generator outputs on the
    host, after checking that its node was captured once."""
    graph = load_graph(path, load_registry())
    seen = []

    def keep(tick, outputs):
        torch.cuda.synchronize()
        seen.append({k: v.cpu() for k, v in outputs["gen"].items()})

    with Scheduler(graph, device="cuda") as sched:
        sched.after_tick.append(keep)
        result = sched.run(frames=frames)
        assert result.ok, result.error
        assert sched.nodes["gen"].captured.captures == 1
    return seen


def test_generator_captured_as_a_cuda_graph(snap, tmp_path, no_tf32):
    (tmp_path / "g.yaml").write_text(GRAPH.replace("SNAP", str(snap)))
    seen = _captured_run(tmp_path / "g.yaml", frames=8)
    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 2.5}, **kw)["w"]
    eager = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name}, **kw)["image"]
    assert len(seen) == 8 and seen[-1]["l64"].shape == (1, 256, 64, 64)  # paper256: 16384 // 64
    for frame in seen:
        assert (frame["image"] - eager).abs().max() < 1e-3


def test_a_captured_generator_stops_after_the_tap_when_the_image_is_not_wired(snap, tmp_path, no_tf32):
    """The graph reads only the tap (NodeContext.wired): the capture holds the layers up to it,
    replays give the eager tap, and no image comes out."""
    text = GRAPH.replace("SNAP", str(snap)) + "  layer: {type: tensor.to_image, inputs: {tensor: gen/l64}}\n"
    (tmp_path / "g.yaml").write_text(text)
    seen = _captured_run(tmp_path / "g.yaml", frames=6)
    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 2.5}, **kw)["w"]
    eager = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name, "taps": ["l64=synthesis.b64.conv1"]}, **kw)
    assert len(seen) == 6 and all(set(f) == {"l64"} for f in seen)
    for frame in seen:
        assert (frame["l64"] - eager["l64"]).abs().max() < 1e-3


def test_live_edits_on_a_captured_generator(snap, tmp_path, no_tf32):
    """An edit set while the captured generator runs shows from the next frame (the graph
    replays on, reading the edited weight: no eager call, no second capture) and matches the
    same edit on the CPU."""
    (tmp_path / "g.yaml").write_text(GRAPH.replace("SNAP", str(snap)))
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    edit = [{"name": "synthesis.b4.const", "op": "scale", "value": 1.5}]
    seen = []

    def keep(tick, outputs):
        torch.cuda.synchronize()
        seen.append(outputs["gen"]["image"].cpu())
        if tick.index == 3:
            sched.set_params("gen", {"edits": edit})

    with Scheduler(graph, device="cuda") as sched:
        sched.after_tick.append(keep)
        result = sched.run(frames=12)
        assert result.ok, result.error
        assert sched.nodes["gen"].captured.counters() == {
            "captures": 1, "recaptures": 0, "replays": 12, "eager_calls": 0}
    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 2.5}, **kw)["w"]
    plain = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name}, **kw)["image"]
    edited = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name, "edits": edit}, **kw)["image"]
    assert (plain - edited).abs().max() > 0.05
    for i, frame in enumerate(seen):
        assert (frame - (plain if i <= 3 else edited)).abs().max() < 1e-3, i
