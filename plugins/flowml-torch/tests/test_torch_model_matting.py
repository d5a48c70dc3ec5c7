"""torch.model on Background Matting V2's interface: the BGMv2-shaped ResNet-50 and the
difference matte built by models/build_bgmv2.py, their attributes as live params, resizing,
channels_last, and the errors a user meets."""

import importlib.util
import logging
import textwrap
from pathlib import Path

import pytest
import torch

from flowml import NodeError
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import NodeFailed, Scheduler
from flowml.testing import NodeHarness, run_node
from flowml_torch.model import TorchModel

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[3]
BGMV2_OUTPUTS = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_bgmv2", ROOT / "models" / "build_bgmv2.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    folder = tmp_path_factory.mktemp("models")
    build.build(folder, bgmv2=True)
    return folder


def matting(name: str, **params) -> dict:
    return {"path": name, "inputs": ["src", "bgr"], "outputs": BGMV2_OUTPUTS, **params}


def pair(h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"src": torch.rand(1, 3, h, w, generator=g), "bgr": torch.rand(1, 3, h, w, generator=g)}


def test_bgmv2_shapes_and_attributes_changed_live(models):
    params = matting("bgmv2_resnet50_random.pt", attributes={"backbone_scale": 0.25, "refine_sample_pixels": 4000})
    with NodeHarness(TorchModel, params, graph_dir=models) as h:
        out = h.process(**pair())
        assert [tuple(out[k].shape) for k in BGMV2_OUTPUTS] == [
            (1, 1, 64, 96), (1, 3, 64, 96), (1, 1, 16, 24), (1, 3, 16, 24), (1, 1, 16, 24), (1, 1, 16, 24)]
        assert out["ref_sm"].sum() <= 4000 // 16  # sampling refines at most that many 4x4 patches
        h.set_params(attributes={"backbone_scale": 0.5, "refine_mode": "full"})  # as OSC would
        assert h.node.model.backbone_scale == 0.5 and h.node.model.refine_mode == "full"
        out = h.process(**pair())
        assert out["pha_sm"].shape == (1, 1, 32, 48)
        assert bool((out["ref_sm"] == 1).all())  # full: every patch refined


def test_an_int_is_taken_for_a_float_attribute(models):
    with NodeHarness(TorchModel, matting("difference_matte.pt", attributes={"matte_low": 0}), graph_dir=models) as h:
        assert h.node.model.matte_low == 0.0 and isinstance(h.node.model.matte_low, float)


def test_unknown_attribute_lists_the_settable_ones(models):
    with pytest.raises(NodeError, match=r"no settable attribute 'refine_pixels'.*backbone_scale=0\.25.*"
                                        r"refine_mode='sampling'.*refine_sample_pixels=80000"):
        run_node(TorchModel, pair(), matting("bgmv2_resnet50_random.pt", attributes={"refine_pixels": 1}),
                 graph_dir=models)
    with pytest.raises(NodeError, match=r"attribute 'refine_mode' of model .* is a str .*got 3"):
        run_node(TorchModel, pair(), matting("difference_matte.pt", attributes={"refine_mode": 3}), graph_dir=models)


def test_a_bad_live_attribute_is_logged_and_the_graph_goes_on(models, caplog):
    with NodeHarness(TorchModel, matting("difference_matte.pt"), graph_dir=models) as h:
        with caplog.at_level(logging.ERROR):
            h.set_params(attributes={"nope": 1})
        assert "attributes not changed" in caplog.text and "nope" in caplog.text
        h.process(**pair())


def test_a_model_that_wants_other_inputs_says_which(models):
    with pytest.raises(NodeError, match=r"difference_matte\.pt takes forward\(src, bgr\), but the node's "
                                        r"inputs are \['image'\]; set `inputs: \[src, bgr\]`"):
        run_node(TorchModel, {"image": torch.rand(1, 3, 8, 8)}, {"path": "difference_matte.pt"}, graph_dir=models)


def test_a_shape_it_rejects_names_the_file_the_shapes_and_the_fix(models):
    with pytest.raises(NodeError, match=r"model difference_matte\.pt failed on src: \(1, 3, 30, 30\) float32 on cpu, "
                                        r"bgr: .*divisible by 4; `size: \[width, height\]` resizes"):
        run_node(TorchModel, pair(30, 30), matting("difference_matte.pt"), graph_dir=models)
    out = run_node(TorchModel, pair(30, 30), matting("difference_matte.pt", size=[32, 32]), graph_dir=models)
    assert out["pha"].shape == (1, 1, 30, 30) and out["fgr"].shape == (1, 3, 30, 30)  # back to the input's size
    assert out["pha_sm"].shape == (1, 1, 8, 8)  # coarse outputs stay as the model made them


def test_errors_in_a_graph_name_the_node(models, tmp_path):
    graph = tmp_path / "g.yaml"
    graph.write_text(textwrap.dedent(f"""
        flowml: 1
        clock: scene
        nodes:
          scene: {{type: capture.pattern, params: {{size: [64, 36], frames: 2}}}}
          matte: {{type: torch.model, inputs: {{image: scene/image}}, params: {{path: {models}/difference_matte.pt}}}}
    """))
    with pytest.raises(NodeFailed, match=r"node 'matte' \(torch.model\) failed in setup: model .*difference_matte\.pt "
                                         r"takes forward\(src, bgr\)"):
        Scheduler(load_graph(graph, load_registry()), device="cpu").setup()


def test_channels_last_gives_the_same_result(models):
    a = run_node(TorchModel, pair(), matting("bgmv2_resnet50_random.pt"), graph_dir=models)
    b = run_node(TorchModel, pair(), matting("bgmv2_resnet50_random.pt", channels_last=True), graph_dir=models)
    assert torch.allclose(a["pha_sm"], b["pha_sm"], atol=1e-4)


def test_difference_matte_finds_a_square(models):
    bgr = torch.full((1, 3, 64, 64), 0.3)
    src = bgr.clone()
    src[:, :, 16:48, 20:44] = 0.8
    out = run_node(TorchModel, {"src": src, "bgr": bgr}, matting("difference_matte.pt"), graph_dir=models)
    pha = out["pha"][0, 0]
    truth = torch.zeros(64, 64, dtype=torch.bool)
    truth[16:48, 20:44] = True
    assert ((pha > 0.5) == truth).float().mean() > 0.99
    assert torch.equal(out["fgr"], src)


class Half(torch.nn.Module):
    def forward(self, image):
        return image * 0.5


def exported_half(folder: Path) -> torch.Tensor:
    """``folder/m.pt2``: a torch.export program that halves its input; returns an input."""
    x = torch.rand(1, 3, 8, 8)
    torch.export.save(torch.export.export(Half(), (x,)), str(folder / "m.pt2"))
    return x


def test_attributes_on_an_exported_program_are_refused(tmp_path):
    x = exported_half(tmp_path)
    with pytest.raises(NodeError, match="torch.export program.*fixed when it was exported"):
        run_node(TorchModel, {"image": x}, {"path": "m.pt2", "attributes": {"gain": 1.0}}, graph_dir=tmp_path)


def test_optimize_freezes_the_model_keeping_its_output_and_live_attributes(models):
    params = matting("bgmv2_resnet50_random.pt", attributes={"refine_sample_pixels": 4000})
    plain = run_node(TorchModel, pair(), params, graph_dir=models)
    with NodeHarness(TorchModel, {**params, "optimize": True}, graph_dir=models) as h:
        assert not hasattr(h.node.model, "backbone")  # frozen: submodules inlined
        out = h.process(**pair())
        for k in BGMV2_OUTPUTS:  # BatchNorm folded into the convolutions: same result to rounding
            assert torch.allclose(out[k], plain[k], atol=1e-4), k
        h.set_params(attributes={"backbone_scale": 0.5, "refine_mode": "full"})
        assert h.node.model.backbone_scale == 0.5
        out = h.process(**pair())
        assert out["pha_sm"].shape == (1, 1, 32, 48) and bool((out["ref_sm"] == 1).all())
        h.set_params(precision="bf16")  # constants cannot be cast: the file is loaded again
        out = h.process(**pair())
        assert out["pha"].dtype == torch.bfloat16 and h.node.model.refine_mode == "full"


def test_optimize_refuses_an_exported_program(tmp_path):
    x = exported_half(tmp_path)
    with pytest.raises(NodeError, match=r"optimize: model m\.pt2 is a torch\.export program.*optimize: false"):
        run_node(TorchModel, {"image": x}, {"path": "m.pt2", "optimize": True}, graph_dir=tmp_path)
