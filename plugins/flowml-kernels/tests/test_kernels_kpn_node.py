"""``kpn.weighted_filter`` through ``flowml.testing`` and through the scheduler, on the CPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pydantic
import pytest
import torch

from kernels_oracle import loop_filter
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import run_node
from flowml_kernels.kpn import KpnWeightedFilter


def _inputs(n=3, shape=(1, 3, 6, 7)):
    g = torch.Generator().manual_seed(3)
    b, c, h, w = shape
    return torch.rand(shape, generator=g), torch.randn((b, n * n, h, w), generator=g)


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("splat", [False, True])
def test_node_softmax_weights_match_the_formula(splat, backend):
    image, logits = _inputs()
    out = run_node(KpnWeightedFilter, {"image": image, "weights": logits},
                   params={"kernel_size": 3, "splat": splat, "normalize": "softmax",
                           "backend": backend})["image"]
    expected = loop_filter(image, torch.softmax(logits, 1), 3, splat).float()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("splat", [False, True])
def test_node_filters_32_channel_features_as_a_tensor(splat):
    # C=32 (feature maps, a benchmark case): the input takes any C; output: tensor gives any C
    image, logits = _inputs(shape=(1, 32, 8, 8))
    params = {"kernel_size": 3, "splat": splat, "normalize": "softmax", "output": "tensor"}
    out = run_node(KpnWeightedFilter, {"image": image, "weights": logits}, params=params)["image"]
    expected = loop_filter(image, torch.softmax(logits, 1), 3, splat).float()
    assert out.shape == (1, 32, 8, 8)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    ports = KpnWeightedFilter.ports(KpnWeightedFilter.Params(**params))
    assert ports.outputs[0].type.name == "tensor" and ports.inputs[0].type.name == "tensor"
    # the default image output keeps feeding image nodes, and says what to set for C > 4
    assert KpnWeightedFilter.ports(KpnWeightedFilter.Params()).outputs[0].type.name == "image"
    with pytest.raises(ValueError, match="32 channels.*set output: tensor"):
        run_node(KpnWeightedFilter, {"image": image, "weights": logits}, params={"kernel_size": 3})


def test_node_sum_normalisation_keeps_a_flat_image_flat_and_none_does_not():
    image = torch.full((1, 2, 5, 5), 0.5)
    w = torch.rand(1, 9, 5, 5) + 0.1
    flat = run_node(KpnWeightedFilter, {"image": image, "weights": w},
                    params={"kernel_size": 3, "normalize": "sum"})["image"]
    torch.testing.assert_close(flat[..., 1:-1, 1:-1], image[..., 1:-1, 1:-1])  # inside: convex
    raw = run_node(KpnWeightedFilter, {"image": image, "weights": w}, params={"kernel_size": 3})
    assert not torch.allclose(raw["image"][..., 1:-1, 1:-1], image[..., 1:-1, 1:-1])


def test_node_casts_weights_to_the_image_dtype():
    image, logits = _inputs()
    out = run_node(KpnWeightedFilter, {"image": image, "weights": logits.half()},
                   params={"kernel_size": 3, "normalize": "softmax"})["image"]
    assert out.dtype == torch.float32


def test_node_errors_say_what_to_do():
    with pytest.raises(pydantic.ValidationError, match="must be odd"):
        KpnWeightedFilter.Params(kernel_size=4)
    image, logits = _inputs(n=3)
    with pytest.raises(ValueError, match=r"weights for kernel_size 5 must be \(1, 25, 6, 7\)"):
        run_node(KpnWeightedFilter, {"image": image, "weights": logits}, params={"kernel_size": 5})


def test_backend_cupy_without_cupy_fails_at_validation(tmp_path, monkeypatch):
    # CuPy made absent (installed or not): sys.modules["cupy"] = None is what Python reads
    # as "no such package", here and in the `flowml validate` subprocess
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(pydantic.ValidationError, match=r"flowml-kernels\[cuda\]"):
        KpnWeightedFilter.Params(backend="cupy")
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.format(backend="cupy", out="x.pt"))
    code = ("import sys; sys.modules['cupy'] = None; from flowml.cli import entry; "
            f"sys.argv = ['flowml', 'validate', {str(graph)!r}]; entry()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    text = res.stdout + res.stderr
    assert res.returncode == 2, text
    assert "backend: cupy needs CuPy" in text and "g.yaml:" in text


def test_backend_cupy_on_a_cpu_graph_is_refused_at_setup():
    node = KpnWeightedFilter(KpnWeightedFilter.Params.model_construct(
        kernel_size=3, splat=False, normalize="none", backend="cupy"),
        __import__("flowml").NodeContext("k", "kpn.weighted_filter", "cpu"))
    with pytest.raises(__import__("flowml").NodeError, match="backend: cupy"):
        node.setup(node.ctx)


GRAPH = textwrap.dedent("""\
    flowml: 1
    clock: src
    nodes:
      src: {{type: capture.pattern, params: {{pattern: bars, size: [24, 16], frames: 3}}}}
      logits: {{type: python.function, inputs: {{image: src/image}},
               params: {{path: weights.py, function: box, outputs: ["weights:tensor"]}}}}
      blur: {{type: kpn.weighted_filter, inputs: {{image: src/image, weights: logits/weights}},
             params: {{kernel_size: 5, normalize: softmax, backend: {backend}}}}}
      keep: {{type: python.function, inputs: {{image: blur/image, src: src/image}},
             params: {{path: weights.py, function: keep, inputs: [image, "src:image"], outputs: [],
                      args: {{path: "{out}"}}}}}}
    """)

WEIGHTS_PY = textwrap.dedent("""\
    import torch

    def box(image):
        b, c, h, w = image.shape
        return torch.zeros(b, 25, h, w, dtype=image.dtype, device=image.device)

    def keep(image, src, path):
        old = torch.load(path) if __import__("os").path.exists(path) else []
        torch.save(old + [(src.cpu(), image.cpu())], path)
    """)


def test_a_yaml_graph_runs_the_node_through_the_scheduler(tmp_path):
    (tmp_path / "weights.py").write_text(WEIGHTS_PY)
    out = tmp_path / "frames.pt"
    graph_file = tmp_path / "g.yaml"
    graph_file.write_text(GRAPH.format(backend="auto", out=out))
    graph = load_graph(graph_file, load_registry())
    result = Scheduler(graph, device="cpu").run(frames=3)
    assert result.reason in ("frames", "end of stream")
    frames = torch.load(out)
    assert len(frames) == 3
    for src, blurred in frames:
        ones = torch.ones(1, 25, *src.shape[2:])
        torch.testing.assert_close(blurred, loop_filter(src, ones / 25, 5, False).float(),
                                   rtol=1e-5, atol=1e-6)
        assert blurred.std() < src.std()          # a box blur smooths the bars
