"""StyleGAN3 on a CUDA GPU: NVIDIA's images (made on the CPU) reproduced, CUDA equal to the CPU,
mixed precision close, and the generator captured as a CUDA graph equal to eager (by hand and
through ``cuda_graph: true``). Skipped where there is no GPU."""

from pathlib import Path

import pytest
import torch

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import run_node
from flowml_gan import stylegan3
from flowml_gan.build import build, sg3_kwargs
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def no_tf32():
    """Full fp32 convolutions and matmuls, so CUDA can be held to CPU's numbers."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module", params=["sg3-t", "sg3-r"])
def snap(request, tmp_path_factory) -> Path:
    """A random 256 px snapshot, small channel counts (the CPU side stays quick)."""
    return build(tmp_path_factory.mktemp("models"), request.param, 256, small=True)


@pytest.mark.parametrize("name", ["sg3t_256", "sg3r_256"])
def test_nvidias_image_on_cuda(name, no_tf32):
    d = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    G = stylegan3.Generator(**d["init_kwargs"]).eval()
    G.load_state_dict(d["state_dict"])
    G.cuda()
    with torch.no_grad():
        img = G.synthesis(d["ws"].cuda(), force_fp32=True)
    assert (img.cpu() - d["img"]).abs().max() <= 1e-3


def test_cuda_equals_cpu_and_mixed_is_close(snap, no_tf32):
    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 3, "psi": 0.7}, **kw)["w"]
    cpu = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name}, **kw)["image"]
    gpu = run_node(StyleGANGenerator, {"w": w.cuda()}, {"path": snap.name}, device="cuda", **kw)["image"]
    assert gpu.is_cuda and gpu.shape == (1, 3, 256, 256)
    assert (gpu.cpu() - cpu).abs().max() < 1e-3
    mixed = run_node(StyleGANGenerator, {"w": w.cuda()}, {"path": snap.name, "precision": "mixed"},
                     device="cuda", **kw)["image"]
    assert mixed.dtype == torch.float32 and (mixed.cpu() - cpu).abs().mean() < 0.02


@pytest.mark.parametrize("force_fp32", [True, False])
def test_synthesis_captured_by_hand_equals_eager(snap, no_tf32, force_fp32):
    """No host-to-device copy or host read inside forward: the whole synthesis network
    (fp32, and mixed with its fp16 layers) captures, and replays to eager's image."""
    from flowml_gan.snapshot import load_generator

    G = load_generator(snap).cuda()
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, device="cuda"), None)
        eager = G.synthesis(w, force_fp32=force_fp32)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                G.synthesis(w, force_fp32=force_fp32)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = G.synthesis(w, force_fp32=force_fp32)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.allclose(out, eager, atol=1e-5)
        w.copy_(G.mapping(torch.randn(1, G.z_dim, device="cuda"), None))  # a new w: a new image
        graph.replay()
        again = G.synthesis(w, force_fp32=force_fp32)
        torch.cuda.synchronize()
        assert (out - eager).abs().max() > 1e-3 and torch.allclose(out, again, atol=1e-5)


GRAPH = """\
flowml: 1
name: sg3-captured
clock: {fps: 30}
mode: offline
max_in_flight: 1
nodes:
  latent: {type: stylegan.latent, params: {path: SNAP, seed: 2.5}}
  gen:
    type: stylegan.generator
    inputs: {w: latent/w}
    cuda_graph: true
    params: {path: SNAP, taps: [l7=L7_148_32], edits: [{name: synthesis.input.transform, op: add, value: 0.01}]}
"""


def test_generator_captured_as_a_cuda_graph_in_a_graph(snap, tmp_path, no_tf32):
    G = stylegan3.Generator(**sg3_kwargs("sg3-t" if "stylegan3-t" in snap.name else "sg3-r", 256, small=True))
    layer = G.synthesis.layer_names[7]
    text = GRAPH.replace("SNAP", str(snap)).replace("L7_148_32", layer)
    (tmp_path / "g.yaml").write_text(text)
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    seen = []

    def keep(tick, outputs):
        torch.cuda.synchronize()
        seen.append({k: v.cpu() for k, v in outputs["gen"].items()})

    with Scheduler(graph, device="cuda") as sched:
        sched.after_tick.append(keep)
        result = sched.run(frames=8)
        assert result.ok, result.error
        assert sched.nodes["gen"].captured.captures == 1
    kw = dict(graph_dir=snap.parent)
    w = run_node(StyleGANLatent, params={"path": snap.name, "seed": 2.5}, **kw)["w"]
    eager = run_node(StyleGANGenerator, {"w": w.cuda()}, {"path": snap.name, "edits": [
        {"name": "synthesis.input.transform", "op": "add", "value": 0.01}]}, device="cuda", **kw)["image"]
    assert len(seen) == 8 and seen[-1]["l7"].shape[2:] == tuple(G.synthesis.get_submodule(layer).out_size)
    for frame in seen:
        assert (frame["image"] - eager.cpu()).abs().max() < 1e-3
