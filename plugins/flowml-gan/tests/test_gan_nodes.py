"""stylegan.latent and stylegan.generator through flowml.testing, and a graph through the
scheduler. The snapshot is a tiny random one in NVIDIA's layout (models/build_stylegan.py)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from flowml import NodeError
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml.testing import NodeHarness, run_node
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent, seed_z
from flowml_gan.snapshot import load_generator

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_stylegan", ROOT / "models" / "build_stylegan.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("models"), resolution=32, small=True)


def latent(snap, **params):
    return run_node(StyleGANLatent, params={"path": snap.name, **params}, graph_dir=snap.parent)["w"]


def test_integer_seed_maps_nvidias_z_and_psi_truncates(snap):
    G = load_generator(snap)
    w = latent(snap, seed=7)
    assert w.shape == (1, G.num_ws, 32)
    with torch.no_grad():
        assert torch.allclose(w, G.mapping(seed_z(7, 32), None))
    half = latent(snap, seed=7, psi=0.5)
    assert torch.allclose(half, G.mapping.w_avg + 0.5 * (w - G.mapping.w_avg), atol=1e-6)
    cut = latent(snap, seed=7, psi=0.0, cutoff=2)
    assert torch.allclose(cut[0, :2], G.mapping.w_avg.expand(2, -1)) and torch.equal(cut[0, 2:], w[0, 2:])


def test_a_float_seed_blends_its_neighbours_in_w(snap):
    w2, w3 = latent(snap, seed=2), latent(snap, seed=3)
    assert torch.allclose(latent(snap, seed=2.25), 0.75 * w2 + 0.25 * w3, atol=1e-6)
    assert not torch.allclose(w2, w3)
    with NodeHarness(StyleGANLatent, {"path": snap.name, "seed": 2}, graph_dir=snap.parent) as h:
        first = h.process()["w"]
        h.set_params(seed=2.5)
        assert torch.allclose(h.process()["w"], (w2 + w3) / 2, atol=1e-6)
        h.set_params(seed=2)
        assert torch.equal(h.process()["w"], first)


def test_generator_image_is_the_networks_in_flowmls_convention(snap):
    G = load_generator(snap)
    w = latent(snap, seed=1)
    image = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name}, graph_dir=snap.parent, check=True)["image"]
    with torch.no_grad():
        expected = (G.synthesis(w, noise_mode="const", force_fp32=True) * 0.5 + 0.5).clamp(0, 1)
    assert image.shape == (1, 3, 32, 32) and image.dtype == torch.float32
    assert torch.equal(image, expected) and image.std() > 0.01
    random = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name, "noise_mode": "random"},
                      graph_dir=snap.parent)["image"]
    assert not torch.equal(random, image)


def test_taps_become_ports_with_the_layers_outputs(snap):
    params = {"path": snap.name, "taps": ["synthesis.b8.conv1", "x16=synthesis.b16:0", "rgb16=synthesis.b16:1"]}
    ports = StyleGANGenerator.ports(StyleGANGenerator.Params(**params))
    assert [p.name for p in ports.outputs] == ["image", "synthesis_b8_conv1", "x16", "rgb16"]
    out = run_node(StyleGANGenerator, {"w": latent(snap)}, params, graph_dir=snap.parent)
    assert out["synthesis_b8_conv1"].shape == (1, 32, 8, 8)
    assert out["x16"].shape == (1, 32, 16, 16) and out["rgb16"].shape == (1, 3, 16, 16)
    with pytest.raises(NodeError, match=r"no such layer; closest: \[.*'synthesis.b16.conv1'"):
        run_node(StyleGANGenerator, {"w": latent(snap)}, {"path": snap.name, "taps": ["synthesis.b16.cnv1"]},
                 graph_dir=snap.parent)
    with pytest.raises(ValueError, match="clash with 'image'"):
        StyleGANGenerator.Params(path="x", taps=["image=synthesis.b8"])


def test_live_edits_change_the_image_and_restore_it_exactly(snap):
    w = latent(snap, seed=3)
    name = "synthesis.b32.torgb.weight"
    with NodeHarness(StyleGANGenerator, {"path": snap.name}, graph_dir=snap.parent) as h:
        weight = h.node.G.synthesis.b32.torgb.weight
        ptr = weight.data_ptr()
        plain = h.process(w=w)["image"]
        frames = []
        for t in range(5):  # a new value every frame, from the original each time
            h.set_params(edits=[{"name": name, "op": "scale", "value": 1 + 0.5 * t}])
            frames.append(h.process(w=w)["image"])
            assert weight.data_ptr() == ptr
        assert torch.equal(frames[0], plain)  # scale 1.0
        assert all(not torch.equal(a, b) for a, b in zip(frames, frames[1:]))
        h.set_params(edits=[{"name": name, "op": "scale", "value": 1.5}])
        assert torch.equal(h.process(w=w)["image"], frames[1])  # no compounding
        with pytest.raises(NodeError, match=r"'synthesis.b32.torgb.wieght': no such weight; closest"):
            h.set_params(edits=[{"name": "synthesis.b32.torgb.wieght", "op": "add", "value": 1}])
        h.node.params = h.node.params.model_copy(update={"edits": []})
        h.node.on_params(h.node.params.model_copy(update={"edits": [{"name": name, "value": 1.5}]}), h.node.params)
        assert torch.equal(h.process(w=w)["image"], plain)  # removed: bit-exact


def test_wrong_w_and_missing_snapshot_say_what_to_do(snap, tmp_path):
    with pytest.raises(NodeError, match=r"w must be \(B, \d+, 32\).*stylegan.latent"):
        run_node(StyleGANGenerator, {"w": torch.zeros(1, 512)}, {"path": snap.name}, graph_dir=snap.parent)
    with pytest.raises(NodeError, match="snapshot not found.*build_stylegan.py"):
        run_node(StyleGANLatent, params={"path": "nope.pkl"}, graph_dir=tmp_path)


GRAPH = """\
flowml: 1
name: stylegan-small
clock: {fps: 30}
mode: offline
device: cpu
nodes:
  latent: {type: stylegan.latent, params: {path: SNAP, seed: 4.5, psi: 0.7}}
  gen:
    type: stylegan.generator
    inputs: {w: latent/w}
    params: {path: SNAP, taps: [l16=synthesis.b16.conv1],
             edits: [{name: synthesis.b32.torgb.weight, op: scale, value: 0.5}]}
"""


def test_a_small_graph_through_the_scheduler(snap, tmp_path):
    (tmp_path / "g.yaml").write_text(GRAPH.replace("SNAP", str(snap)))
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    seen = []
    with Scheduler(graph) as sched:
        sched.after_tick.append(lambda tick, outputs: seen.append(outputs["gen"]))
        result = sched.run(frames=3)
    assert result.ok, result.error
    assert len(seen) == 3
    image, l16 = seen[-1]["image"], seen[-1]["l16"]
    assert image.shape == (1, 3, 32, 32) and l16.shape == (1, 32, 16, 16)
    w = latent(snap, seed=4.5, psi=0.7)
    edited = run_node(StyleGANGenerator, {"w": w}, {"path": snap.name, "edits": [
        {"name": "synthesis.b32.torgb.weight", "op": "scale", "value": 0.5}]}, graph_dir=snap.parent)["image"]
    assert torch.allclose(image, edited, atol=1e-6)


def test_the_example_graph_runs_on_the_cpu_with_a_small_snapshot(snap, tmp_path):
    """graphs/stylegan.yaml as shipped, with the small snapshot and outputs in tmp_path."""
    text = (ROOT / "graphs" / "stylegan.yaml").read_text()
    assert "../models/stylegan2-random-256.pkl" in text and "at_frame: 30" in text
    text = (text.replace("../models/stylegan2-random-256.pkl", str(snap))
            .replace("../out/", f"{tmp_path}/").replace("at_frame: 30", "at_frame: 2"))
    (tmp_path / "stylegan.yaml").write_text(text)
    graph = load_graph(tmp_path / "stylegan.yaml", load_registry())
    with Scheduler(graph, mode="offline", device="cpu") as sched:
        result = sched.run(frames=4)
    assert result.ok, result.error
    assert result.stats.ticks == 4
    assert (tmp_path / "stylegan.mp4").stat().st_size > 0
    assert (tmp_path / "stylegan_layer.png").stat().st_size > 0


LIVE = """\
flowml: 1
name: stylegan-live
clock: {fps: 30}
mode: offline
device: cpu
max_in_flight: 1
nodes:
  latent: {type: stylegan.latent, params: {path: SNAP, seed: 1}}
  gen: {type: stylegan.generator, inputs: {w: latent/w}, params: {path: SNAP}}
"""


def test_live_edit_changes_through_the_scheduler(snap, tmp_path):
    """Edits set while the graph runs apply from the next frame; a wrong name is refused (the
    old edits stay, the graph goes on); removing them restores the image bit-exactly."""
    (tmp_path / "g.yaml").write_text(LIVE.replace("SNAP", str(snap)))
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    edit = [{"name": "synthesis.b32.torgb.weight", "op": "scale", "value": 0.5}]
    changes = {1: {"edits": edit}, 3: {"edits": [{"name": "synthesis.b32.torgb.weigth", "value": 2}]},
               5: {"edits": []}}
    images, refused = [], []
    with Scheduler(graph) as sched:
        def after(tick, outputs):
            images.append(outputs["gen"]["image"].clone())
            if tick.index in changes:
                sched.set_params("gen", changes[tick.index])
        sched.after_tick.append(after)
        sched.param_refused.append(lambda node, old, new, failure: refused.append(str(failure)))
        result = sched.run(frames=8)
    assert result.ok, result.error
    plain = images[0]
    assert torch.equal(images[1], plain)
    # a change set after frame k shows from frame k + 1
    assert all(not torch.equal(images[i], plain) for i in (2, 3, 4, 5))
    assert torch.equal(images[2], images[4])  # the refused change left the edit as it was
    assert torch.equal(images[6], plain) and torch.equal(images[7], plain)
    assert len(refused) == 1 and "closest" in refused[0] and "synthesis.b32.torgb.weight" in refused[0]


def test_z_from_an_input_tensor_or_a_noise_image(snap):
    G = load_generator(snap)
    params = {"path": snap.name, "z_input": True, "psi": 0.5}
    assert [p.name for p in StyleGANLatent.ports(StyleGANLatent.Params(**params)).inputs] == ["z"]
    assert StyleGANLatent.ports(StyleGANLatent.Params(path="x")).inputs == ()
    z = torch.randn(2, 32)
    w = run_node(StyleGANLatent, {"z": z}, params, graph_dir=snap.parent)["w"]
    with torch.no_grad():
        assert torch.allclose(w, G.mapping(z, None, truncation_psi=0.5))
    noise = torch.rand(1, 3, 1, 32)  # a 32 x 1 noise image, as TouchDesigner's Noise TOP makes
    w_img = run_node(StyleGANLatent, {"z": noise}, params, graph_dir=snap.parent)["w"]
    with torch.no_grad():
        assert torch.allclose(w_img, G.mapping(noise[:, 0, 0] * 2 - 1, None, truncation_psi=0.5))
    with pytest.raises(NodeError, match=r"z must be \(B, 32\) or an image"):
        run_node(StyleGANLatent, {"z": torch.zeros(1, 512)}, params, graph_dir=snap.parent)


def test_keyframes_make_the_seed_a_position_in_a_list_of_seeds(snap):
    w = {s: latent(snap, seed=s) for s in (3, 17, 42)}
    keys = [3, 17, 42]
    assert torch.equal(latent(snap, seed=1, keyframes=keys), w[17])
    assert torch.allclose(latent(snap, seed=1.25, keyframes=keys), 0.75 * w[17] + 0.25 * w[42], atol=1e-6)
    assert torch.allclose(latent(snap, seed=2.5, keyframes=keys), (w[42] + w[3]) / 2, atol=1e-6)  # wraps
    assert torch.equal(latent(snap, seed=3, keyframes=keys), w[3])


def test_validating_the_example_graph_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom flowml.plugins import load_registry\nfrom flowml.graph import load_graph\n"
            f"load_graph({str(ROOT / 'graphs' / 'stylegan.yaml')!r}, load_registry())\n"
            "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_taps_only_stops_after_the_last_tap(snap):
    w = latent(snap, seed=5)
    params = {"path": snap.name, "image": False, "taps": ["synthesis.b8.conv1"]}
    assert [p.name for p in StyleGANGenerator.ports(StyleGANGenerator.Params(**params)).outputs] == ["synthesis_b8_conv1"]
    full = run_node(StyleGANGenerator, {"w": w}, {**params, "image": True}, graph_dir=snap.parent)
    with NodeHarness(StyleGANGenerator, params, graph_dir=snap.parent) as h:
        ran = []
        h.node.G.synthesis.b16.register_forward_pre_hook(lambda m, a: ran.append("b16"))
        out = h.process(w=w)
    assert set(out) == {"synthesis_b8_conv1"} and torch.equal(out["synthesis_b8_conv1"], full["synthesis_b8_conv1"])
    assert ran == []  # b16 and after never ran
    with pytest.raises(ValueError, match="image: false needs taps"):
        StyleGANGenerator.Params(path="x", image=False)
    with pytest.raises(NodeError, match="runs only the synthesis network"):
        run_node(StyleGANGenerator, {"w": w}, {"path": snap.name, "taps": ["mapping.fc0"]}, graph_dir=snap.parent)


def test_noise_edit_is_fixed_noise_scaled_by_its_value(snap):
    w = latent(snap, seed=5)
    name = "synthesis.b4.const"
    with NodeHarness(StyleGANGenerator, {"path": snap.name}, graph_dir=snap.parent) as h:
        const = h.node.G.synthesis.b4.const
        original = const.detach().clone()
        ptr = const.data_ptr()
        h.set_params(edits=[{"name": name, "op": "noise", "value": 0.5}])
        assert const.data_ptr() == ptr  # written by on_params, in place (on the node's stream)
        h.process(w=w)
        half = const.detach().clone() - original
        h.set_params(edits=[{"name": name, "op": "noise", "value": 1.0}])
        h.process(w=w)
        assert torch.allclose(const - original, 2 * half, atol=1e-6) and half.std() > 0.1
        h.set_params(edits=[])
        h.process(w=w)
        assert torch.equal(const, original)
