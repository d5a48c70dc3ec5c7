"""Our StyleGAN3 (configs T and R) against NVIDIA's own code, loading its snapshots safely, and
the layer names NVIDIA's visualizer lists.

The fixtures were made once with NVIDIA's NVlabs/stylegan3 code on the CPU (its reference ops,
``_filtered_lrelu_ref`` and friends), on 256 px networks with small channel counts: see
fixtures/make_nvidia_sg3_fixtures.py for exactly how. ``sg3{t,r}_256.pt`` hold the init
kwargs, NVIDIA's state dict, latents z (batch 2), their ws (psi 0.7) and images;
``sg3r_256.pkl`` is the R network pickled by NVIDIA's persistence (source text replaced by a
placeholder); ``sg3{t,r}_256_viz_layers.json`` the layers NVIDIA's visualizer lists.
"""

import json
import pickle
from pathlib import Path

import pytest
import torch

from flowml.testing import run_node
from flowml_gan import stylegan3
from flowml_gan.build import build, make_generator, sg3_kwargs
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent
from flowml_gan.official import dumps_official
from flowml_gan.snapshot import NumpyArray, SnapshotError, load_generator, read_pickle, save_pt

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = ["sg3t_256", "sg3r_256"]


def fixture(name):
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


@pytest.fixture(scope="module", params=CONFIGS)
def nvidia(request):
    """(name, fixture, our generator with NVIDIA's state dict loaded strictly)."""
    d = fixture(request.param)
    G = stylegan3.Generator(**d["init_kwargs"]).eval()
    designed = {k: v.clone() for k, v in G.state_dict().items() if k.endswith("_filter")}
    G.load_state_dict(d["state_dict"], strict=True)  # every name and shape as NVIDIA's
    return request.param, d, G, designed


def test_state_dict_names_are_nvidias_and_our_filters_are_theirs(nvidia):
    _, d, G, designed = nvidia
    assert set(G.state_dict()) == set(d["state_dict"])
    assert any(v.ndim == 2 for v in designed.values()) == bool(d["init_kwargs"].get("use_radial_filters"))
    for k, f in designed.items():  # designed here without scipy, by NVIDIA with scipy
        assert (f - d["state_dict"][k]).abs().max() < 1e-7, k


def test_image_and_layer_list_equal_nvidias_own_code(nvidia):
    """The same image, and the same layers (names, shapes, order) as NVIDIA's visualizer lists."""
    name, d, G, _ = nvidia
    with torch.no_grad():
        ws = G.mapping(d["z"], None, truncation_psi=0.7)
    assert ws.shape == d["ws"].shape and (ws - d["ws"]).abs().max() <= 1e-4
    layers, img = viz_layers(G.synthesis, ws)
    assert img.shape == d["img"].shape == (2, 3, 256, 256)
    assert (img - d["img"]).abs().max() <= 1e-4
    assert d["img"].std() > 0.1  # a real signal, not a blank image
    expected = json.loads((FIXTURES / f"{name}_viz_layers.json").read_text())
    assert len(expected) == 17 and expected[0]["name"] == "input" and expected[-1]["name"] == "output"
    assert layers == expected


def viz_layers(net, ws):
    """What NVIDIA's visualizer lists (viz/renderer.py, ``run_synthesis_net``): every module
    of the synthesis network hooked, each 4-D tensor it returns, named by the module (the
    network itself is ``output``, the i-th of several outputs ``name:i``)."""
    names = {m: n for n, m in net.named_modules()}
    out = []

    def hook(module, _args, output):
        tensors = [t for t in (output if isinstance(output, (tuple, list)) else [output])
                   if isinstance(t, torch.Tensor) and t.ndim == 4]
        for i, t in enumerate(tensors):
            name = names[module] or "output"
            out.append({"name": name + (f":{i}" if len(tensors) > 1 else ""), "shape": list(t.shape)})

    hooks = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        img = net(ws, noise_mode="const", force_fp32=True)
    for h in hooks:
        h.remove()
    return out, img


def test_every_layer_nvidias_visualizer_lists_is_a_tap_port_with_its_shape(tmp_path):
    """Through the node: ``taps`` with NVIDIA's names (config T; R's list has the same form)."""
    name = "sg3t_256"
    layers = json.loads((FIXTURES / f"{name}_viz_layers.json").read_text())
    d = fixture(name)
    G = stylegan3.Generator(**d["init_kwargs"]).eval()
    G.load_state_dict(d["state_dict"])
    save_pt(G, tmp_path / "g.pt")
    ports = [f"t{i}={layer['name']}" for i, layer in enumerate(layers)]
    out = run_node(StyleGANGenerator, {"w": d["ws"]}, {"path": "g.pt", "taps": ports}, graph_dir=tmp_path)
    for i, layer in enumerate(layers):
        assert list(out[f"t{i}"].shape) == layer["shape"], layer["name"]
    assert torch.allclose(out[f"t{len(layers) - 1}"], d["img"], atol=1e-4)  # "output": the raw image
    assert torch.allclose(out["image"], (d["img"] * 0.5 + 0.5).clamp(0, 1), atol=1e-4)


def test_nvidias_sg3_pickle_is_read_safely_for_both_networks():
    """NVIDIA's persistence pickles numpy arrays and scalars inside the modules' state: rebuilt
    from their bytes as data; the embedded source stays text."""
    snap = read_pickle((FIXTURES / "sg3r_256.pkl").read_bytes())
    assert sorted(snap) == ["G", "G_ema", "augment_pipe", "training_set_kwargs"]
    inp = snap["G_ema"].state["_modules"]["synthesis"].state["_modules"]["input"]
    assert inp.class_name == "SynthesisInput" and isinstance(inp.state["size"], NumpyArray)
    assert inp.state["size"].array.tolist() == [36, 36]
    d = fixture("sg3r_256")
    G = load_generator(FIXTURES / "sg3r_256.pkl")
    assert isinstance(G, stylegan3.Generator) and G.init_kwargs == d["init_kwargs"]
    for k, v in d["state_dict"].items():  # NVIDIA's tensors (whose image the parity test checks)
        assert torch.equal(G.state_dict()[k], v), k
    with torch.no_grad():
        w = G.mapping(d["z"], None, truncation_psi=0.7)
    assert (w - d["ws"]).abs().max() <= 1e-4
    G2 = load_generator(FIXTURES / "sg3r_256.pkl", key="G")  # built from the same seed there
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))


def test_a_numpy_object_array_is_refused():
    import numpy as np

    data = pickle.dumps({"G_ema": np.array([print], dtype=object)})
    with pytest.raises(SnapshotError, match="numpy"):
        read_pickle(data)


def test_bare_state_dict_with_a_sidecar_and_embedded_kwargs(tmp_path):
    d = fixture("sg3t_256")
    torch.save(d["state_dict"], tmp_path / "G.pt")
    with pytest.raises(SnapshotError, match=r"G.pt: a bare state dict; .*as G.json"):
        load_generator(tmp_path / "G.pt")
    (tmp_path / "G.json").write_text(json.dumps({"class_name": "training.networks_stylegan3.Generator",
                                                 "init_kwargs": d["init_kwargs"]}))
    G = load_generator(tmp_path / "G.pt")
    assert isinstance(G, stylegan3.Generator)
    torch.save({"init_kwargs": d["init_kwargs"], "state_dict": d["state_dict"]}, tmp_path / "E.pt")
    G2 = load_generator(tmp_path / "E.pt")  # no format key: told from the tensor names
    for k, v in d["state_dict"].items():
        assert torch.equal(G.state_dict()[k], v) and torch.equal(G2.state_dict()[k], v), k
    (tmp_path / "G.json").write_text(json.dumps({"class_name": "training.networks_stylegan9.Generator",
                                                 "init_kwargs": d["init_kwargs"]}))
    with pytest.raises(SnapshotError, match="stylegan9.*not one flowml-gan builds"):
        load_generator(tmp_path / "G.pt")


@pytest.mark.parametrize("config", ["sg3-t", "sg3-r"])
def test_builder_writes_an_sg3_snapshot_the_nodes_run(config, tmp_path):
    path = build(tmp_path, config, 64, small=True)
    assert path.name == f"stylegan3-{config[-1]}-random-64-small.pkl"
    assert b"networks_stylegan3" not in path.read_bytes()  # our placeholder, not NVIDIA's source
    G = load_generator(path)
    assert isinstance(G, stylegan3.Generator) and G.init_kwargs == sg3_kwargs(config, 64, small=True)
    assert "synthesis.input.grid" not in G.state_dict()  # derived, not saved
    w = run_node(StyleGANLatent, params={"path": path.name, "seed": 1.5, "psi": 0.7}, graph_dir=tmp_path)["w"]
    assert w.shape == (1, 16, 32)
    layer = G.synthesis.layer_names[3]  # L3_<size>_<channels>
    out = run_node(StyleGANGenerator, {"w": w}, {"path": path.name, "taps": [f"l3={layer}", "input"]},
                   graph_dir=tmp_path)
    assert out["l3"].shape[1:] == (G.synthesis.get_submodule(layer).out_channels,
                                   *G.synthesis.get_submodule(layer).out_size)
    assert out["input"].shape == (1, 32 if config == "sg3-t" else 64, 36, 36)
    img = out["image"]
    assert img.shape == (1, 3, 64, 64) and img.std() > 0.01  # a picture: not flat,
    assert ((img > 0) & (img < 1)).float().mean() > 0.5  # mostly not clipped
    with torch.no_grad():
        expected = G.synthesis(w, force_fp32=True)
    assert torch.allclose(img, (expected * 0.5 + 0.5).clamp(0, 1), atol=1e-6)


def test_edits_reach_sg3_weights_and_the_input_transform(tmp_path):
    """A live edit of ``synthesis.input.transform`` (the inverse image transform) moves the
    picture: NVIDIA's visualizer's translate/rotate, as a weight edit."""
    path = build(tmp_path, "sg3-t", 64, small=True)
    w = run_node(StyleGANLatent, params={"path": path.name, "seed": 2}, graph_dir=tmp_path)["w"]
    plain = run_node(StyleGANGenerator, {"w": w}, {"path": path.name}, graph_dir=tmp_path)["image"]
    moved = run_node(StyleGANGenerator, {"w": w}, {"path": path.name, "edits": [
        {"name": "synthesis.input.transform", "op": "add", "value": 0.05}]}, graph_dir=tmp_path)["image"]
    assert (plain - moved).abs().max() > 0.05


def test_sg2_snapshot_from_nvidias_stylegan3_repo_has_flat_synthesis_kwargs(tmp_path):
    """NVlabs/stylegan3's ``networks_stylegan2.Generator`` takes the synthesis keywords flat
    (and ``fused_modconv_default``): they are gathered for our StyleGAN2."""
    from flowml_gan.official import to_records

    G = make_generator("sg2", 32, small=True)
    kw = dict(G.init_kwargs)
    flat = {**{k: v for k, v in kw.items() if k != "synthesis_kwargs"}, **kw["synthesis_kwargs"],
            "fused_modconv_default": "inference_only"}
    (tmp_path / "s.pkl").write_bytes(dumps_official({"G_ema": to_records(G, init_kwargs=flat)}))
    loaded = load_generator(tmp_path / "s.pkl")
    z = torch.randn(1, G.z_dim)
    with torch.no_grad():
        assert torch.equal(loaded(z, None), G(z, None))
