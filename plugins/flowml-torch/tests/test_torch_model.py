"""torch.model on the demo's toon model (built into a temporary folder) and small scripted models."""

import importlib.util
from pathlib import Path

import pytest
import torch

from flowml import IMAGE, TENSOR, NodeError
from flowml.testing import run_node
from flowml_torch.model import TorchModel

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "models" / "build_demo_models.py"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("build_demo_models", BUILD_SCRIPT)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    folder = tmp_path_factory.mktemp("models")
    build.build(folder)
    return folder


def picture(h=36, w=64):
    """Dark left half, a bright square: flat areas with hard edges."""
    image = torch.full((1, 3, h, w), 0.2)
    image[:, :, 8:24, 20:36] = torch.tensor([0.9, 0.7, 0.3]).view(1, 3, 1, 1)
    return image


def test_toon_inks_edges_and_posterises(models):
    out = run_node(TorchModel, {"image": picture()}, {"path": "toon.pt"}, graph_dir=models)["image"]
    assert out.shape == (1, 3, 36, 64) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert out[0, :, 8, 28].max() < 0.1  # a dark line along the square's top edge
    assert out[0, :, 30, 5].allclose(torch.tensor(0.2), atol=0.02)  # flat areas keep their colour
    assert out[0, :, 16, 28].allclose(torch.tensor([0.9, 0.7, 0.3]), atol=0.08)  # near the band value


def test_torchscript_and_export_give_the_same_output_any_size(models):
    for size in ((36, 64), (50, 30)):
        x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
        jit = run_node(TorchModel, {"image": x}, {"path": "toon.pt"}, graph_dir=models)["image"]
        exported = run_node(TorchModel, {"image": x}, {"path": "toon.pt2"}, graph_dir=models)["image"]
        assert jit.shape == (2, 3, *size)
        assert torch.allclose(jit, exported, atol=1e-5)


@pytest.mark.parametrize("name", ["toon.pt", "toon.pt2"])
def test_bf16_precision(models, name):
    x = picture()
    full = run_node(TorchModel, {"image": x}, {"path": name}, graph_dir=models)["image"]
    half = run_node(TorchModel, {"image": x}, {"path": name, "precision": "bf16"}, graph_dir=models)["image"]
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().mean() < 0.02


def test_missing_file_names_the_path_and_the_build_script(tmp_path):
    message = r"not found: .*nope\.pt \(path: \.\./nope\.pt.*build_demo_models\.py"
    with pytest.raises(NodeError, match=message):
        run_node(TorchModel, {"image": picture()}, {"path": "../nope.pt"}, graph_dir=tmp_path / "graphs")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(NodeError, match="cannot load model .*torch.jit.save"):
        run_node(TorchModel, {"image": picture()}, {"path": "junk.pt"}, graph_dir=tmp_path)


@pytest.mark.parametrize("name", ["toon.pt", "toon.pt2"])
def test_shape_error_says_what_the_model_got(models, name):
    rgba = torch.rand(1, 4, 16, 16)
    with pytest.raises(NodeError, match=rf"model {name} failed on image: \(1, 4, 16, 16\) float32 on cpu: "):
        run_node(TorchModel, {"image": rgba}, {"path": name}, graph_dir=models)


class TwoHeads(torch.nn.Module):
    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        return src - bgr, (src - bgr).abs().mean(dim=1, keepdim=True)


class Named(torch.nn.Module):
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": image[:, :1], "image": 1 - image, "unused": image}


def test_named_ports_tuple_and_dict_results(tmp_path):
    torch.jit.save(torch.jit.script(TwoHeads()), str(tmp_path / "two.pt"))
    torch.jit.save(torch.jit.script(Named()), str(tmp_path / "named.pt"))
    params = {"path": "two.pt", "inputs": ["src", "bgr"], "outputs": ["fgr:image", "pha"]}
    ports = TorchModel.ports(TorchModel.Params(**params))
    assert [(p.name, p.type) for p in ports.inputs] == [("src", TENSOR), ("bgr", TENSOR)]
    assert [(p.name, p.type) for p in ports.outputs] == [("fgr", IMAGE), ("pha", TENSOR)]
    a, b = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    out = run_node(TorchModel, {"src": a, "bgr": b}, params, graph_dir=tmp_path)
    assert torch.allclose(out["fgr"], a - b) and out["pha"].shape == (1, 1, 4, 4)

    named = {"path": "named.pt", "outputs": ["image", "mask"]}
    out = run_node(TorchModel, {"image": a}, named, graph_dir=tmp_path)
    assert set(out) == {"image", "mask"} and torch.allclose(out["image"], 1 - a)

    with pytest.raises(NodeError, match=r"returned a tuple of 2, but outputs are \['a', 'b', 'c'\]"):
        run_node(TorchModel, {"src": a, "bgr": b}, {**params, "outputs": ["a", "b", "c"]}, graph_dir=tmp_path)


def test_port_lists_are_validated():
    with pytest.raises(ValueError, match="unique"):
        TorchModel.Params(path="m.pt", outputs=["x", "x"])
    with pytest.raises(ValueError, match="at least one"):
        TorchModel.Params(path="m.pt", inputs=[])
