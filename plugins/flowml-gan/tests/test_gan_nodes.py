"""stylegan.latent and stylegan.generator through flowml.testing, and a graph through the
scheduler. The snapshot is a tiny random one in NVIDIA's layout (models/build_stylegan.py)."""

import importlib.util
import sys
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
sys.path.insert(0, str(ROOT / "tests" / "control"))


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_stylegan", ROOT / "models" / "build_stylegan.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("models"), resolution=32, small=True)


@pytest.fixture(scope="module")
def sg3r(tmp_path_factory) -> Path:
    """A tiny StyleGAN3-R snapshot (16 px, 32-d z), as models/build_stylegan.py writes them."""
    spec = importlib.util.spec_from_file_location("build_stylegan", ROOT / "models" / "build_stylegan.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("sg3r"), resolution=16, small=True, config="sg3-r")


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


def test_the_example_graph_runs_on_the_cpu_with_a_small_snapshot(sg3r, tmp_path):
    """graphs/stylegan.yaml as shipped, on a tiny SG3-R snapshot (16 px, z 32-d: the noise
    image is 32 x 1), outputs in tmp_path, one frame in flight: the noise
    latent follows t * 0.1, the edit sin(t), L6 is shown beside the image; then OSC (liblo's
    oscsend) sets the edit and the noise's translation, and the frames follow."""
    import math
    import threading

    import torch.nn.functional as F
    from control_helpers import LiveGraphs, oscsend, wait_until

    snap = sg3r
    text = (ROOT / "graphs" / "stylegan.yaml").read_text()
    for old, new in (("../models/stylegan3-r-random-256.pkl", str(snap)), ("../out/", f"{tmp_path}/"),
                     ("size: [512, 1]", "size: [32, 1]"), ("at_frame: 30", "at_frame: 2"),
                     ("clock: {fps: 30}", "clock: {fps: 30}\nmax_in_flight: 1")):
        assert old in text, old
        text = text.replace(old, new)
    graphs = LiveGraphs(tmp_path, load_registry())
    frames, lock = [], threading.Lock()
    try:
        run = graphs.start(text, name="stylegan.yaml", mode="offline", device="cpu")
        assert {"/z/tx", "/gen/edits/0/value", "/latent/psi", "/layer/base"} <= set(run.store.params)
        nodes = run.sched.nodes

        def keep(tick, outputs):
            with lock:
                frames.append({"t": tick.t, "tx": nodes["z"].node.params.tx,
                               "value": nodes["gen"].node.params.edits[0]["value"],
                               **{k: outputs[n][p].clone() for k, n, p in (
                                   ("z", "z", "image"), ("w", "latent", "w"), ("image", "gen", "image"),
                                   ("L6", "gen", "L6"), ("layer", "layer", "image"), ("view", "view", "image"))}})
        run.sched.after_tick.append(keep)
        wait_until(lambda: len(frames) >= 3, timeout=60)
        oscsend(run.osc_port, "/gen/edits/0/value", "f", -0.5)  # a plain value stops the sin
        oscsend(run.osc_port, "/z/tx", "f", 2.0)  # and the noise stops moving
        wait_until(lambda: [(f["value"], f["tx"]) for f in frames[-2:]] == [(-0.5, 2.0)] * 2, timeout=60)
        assert run.stop().ok
    finally:
        graphs.stop_all()
    moving = [f for f in frames if f["tx"] != 2.0 and f["value"] != -0.5][:3]
    assert len(moving) == 3
    for f in moving:  # the expressions, every frame
        assert f["tx"] == pytest.approx(0.1 * f["t"], abs=1e-9)
        assert f["value"] == pytest.approx(math.sin(f["t"]), abs=1e-9)
    for a, b in zip(moving, moving[1:]):  # the noise drifts a little, the picture animates
        assert 0 < (a["z"] - b["z"]).abs().max() < 0.1 and not torch.equal(a["image"], b["image"])
    gen = {"path": snap.name, "taps": ["L6"]}
    for f in (moving[1], frames[-1]):  # each frame is the network with that frame's edit
        with NodeHarness(StyleGANGenerator, {**gen, "edits": [
                {"name": "synthesis.input.weight", "op": "scale", "value": f["value"]}]}, graph_dir=snap.parent) as h:
            expected = h.process(w=f["w"])
        assert torch.allclose(f["image"], expected["image"], atol=1e-6) and torch.allclose(f["L6"], expected["L6"], atol=1e-6)
    for f in (moving[0], frames[-1]):  # L6 shown beside the image, at its height
        size = f["image"].shape[-1]
        assert f["view"].shape == (1, 3, size, 2 * size + 4)
        assert torch.equal(f["view"][..., :size], f["image"])
        right = F.interpolate(f["layer"], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        assert torch.allclose(f["view"][..., size + 4:], right, atol=1e-6) and right.std() > 0.01
    assert frames[-1]["L6"].shape[1:] == (64, 36, 36)  # L6_36_64
    assert torch.equal(frames[-1]["image"], frames[-2]["image"])  # nothing moves once both are plain values
    assert (tmp_path / "stylegan.mp4").stat().st_size > 0 and (tmp_path / "stylegan_view.png").stat().st_size > 0


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


WIRED = """\
flowml: 1
name: stylegan-taps
clock: {fps: 30}
mode: offline
device: cpu
nodes:
  latent: {type: stylegan.latent, params: {path: SNAP, seed: 5}}
  gen: {type: stylegan.generator, inputs: {w: latent/w}, params: {path: SNAP, taps: [l8=synthesis.b8.conv1]}}
  layer: {type: tensor.to_image, inputs: {tensor: gen/l8}, params: {size: [8, 8]}}
"""


@pytest.mark.parametrize("image_wired", [False, True])
def test_an_unwired_image_is_not_computed(snap, tmp_path, image_wired):
    """The graph reads the tap and not the image (NodeContext.wired): the synthesis stops after
    the last tap, without ``image: false``; wire the image and it is computed again."""
    text = WIRED + ("  shown: {type: tensor.to_image, inputs: {tensor: gen/image}}\n" if image_wired else "")
    (tmp_path / "g.yaml").write_text(text.replace("SNAP", str(snap)))
    graph = load_graph(tmp_path / "g.yaml", load_registry())
    seen, ran = [], []
    with Scheduler(graph) as sched:
        sched.nodes["gen"].node.G.synthesis.b16.register_forward_pre_hook(lambda m, a: ran.append("b16"))
        sched.after_tick.append(lambda tick, outputs: seen.append(dict(outputs["gen"])))
        assert sched.run(frames=2).ok
    full = run_node(StyleGANGenerator, {"w": latent(snap, seed=5)},
                    {"path": snap.name, "taps": ["l8=synthesis.b8.conv1"]}, graph_dir=snap.parent)
    assert torch.equal(seen[-1]["l8"], full["l8"])
    if image_wired:
        assert set(seen[-1]) == {"image", "l8"} and torch.equal(seen[-1]["image"], full["image"])
        assert ran == ["b16", "b16"]
    else:
        assert set(seen[-1]) == {"l8"} and ran == []  # b16 and after never ran
