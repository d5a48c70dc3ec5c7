"""The demo's nodes on a CUDA GPU give what they give on the CPU (skipped where there is none)."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from flowml.testing import NodeHarness, run_node
from flowml_std.composite import Composite
from flowml_std.pattern import PatternSource
from flowml_torch.model import TorchModel

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)"),
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """graphs/demo.yaml and freshly built models, laid out as in the repo."""
    root = tmp_path_factory.mktemp("repo")
    (root / "graphs").mkdir()
    shutil.copy(ROOT / "graphs" / "demo.yaml", root / "graphs" / "demo.yaml")
    spec = importlib.util.spec_from_file_location("build", ROOT / "models" / "build_demo_models.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(root / "models")
    return root


def test_pattern_model_and_composite_on_cuda_match_cpu(repo_copy):
    def chain(device, precision="fp32"):
        with NodeHarness(PatternSource, {"size": [320, 180]}, device=device) as h:
            scene = [h.process()["image"] for _ in range(3)][-1]
        toon = run_node(TorchModel, {"image": scene}, {"path": "models/toon.pt2", "precision": precision},
                        device=device, graph_dir=repo_copy)["image"]
        mixed = run_node(Composite, {"fg": toon, "bg": scene}, {"mode": "mix", "opacity": 0.8},
                         device=device)["image"]
        return scene, toon, mixed

    cpu = chain("cpu")
    gpu = chain("cuda")
    assert all(t.is_cuda for t in gpu)
    for a, b in zip(cpu, gpu):
        assert torch.allclose(a, b.cpu(), atol=1e-4)
    half = chain("cuda", "fp16")[1]
    assert half.dtype == torch.float16 and (half.float().cpu() - cpu[1]).abs().mean() < 0.01


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_demo_graph_on_cuda_records_what_the_cpu_records(repo_copy):
    runs = {}
    for device in ("cpu", "cuda"):
        proc = subprocess.run([sys.executable, "-m", "flowml.cli", "run", str(repo_copy / "graphs" / "demo.yaml"),
                               "--frames", "30", "--device", device], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[device] = decoded(repo_copy / "out" / "demo.mp4")
    assert len(runs["cuda"]) == len(runs["cpu"]) == 30
    diff = np.abs(np.stack(runs["cuda"]).astype(float) - np.stack(runs["cpu"]))
    assert diff.mean() < 1.0  # float rounding on another device may move a few pixels one step


def test_optimize_for_inference_on_cuda_keeps_the_bgmv2_output(tmp_path):
    spec = importlib.util.spec_from_file_location("build_bgmv2", ROOT / "models" / "build_bgmv2.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build_bgmv2(tmp_path)
    g = torch.Generator().manual_seed(0)
    pair = {k: torch.rand(1, 3, 128, 192, generator=g).cuda() for k in ("src", "bgr")}
    params = {"path": "bgmv2_resnet50_random.pt", "inputs": ["src", "bgr"], "precision": "fp16",
              "outputs": ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"],
              "attributes": {"backbone_scale": 0.25, "refine_mode": "full"}}
    plain = run_node(TorchModel, pair, params, device="cuda", graph_dir=tmp_path)
    with NodeHarness(TorchModel, {**params, "optimize": True}, device="cuda", graph_dir=tmp_path) as h:
        out = h.process(**pair)
        for k in ("pha", "fgr", "pha_sm"):  # fp16, BatchNorm folded: equal to half-precision rounding
            assert (out[k].float() - plain[k].float()).abs().max() < 0.02, k
        h.set_params(attributes={"backbone_scale": 0.5})
        assert h.process(**pair)["pha_sm"].shape == (1, 1, 64, 96)
