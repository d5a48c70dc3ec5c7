"""StyleGAN3-R through stylegan.generator on the CPU: every layer NVIDIA's visualizer lists as
a tap port (and the seed project's short name ``L6``), and an edit of
``synthesis.input.weight`` (the seed's ``edit_layer_by_name('synthesis.input.weight', ...)``).

The network is ``fixtures/sg3r_256.pt``: NVIDIA's own R network at 256 px with small channel
counts, its state dict and latents (fixtures/make_nvidia_sg3_fixtures.py says how it was made);
``sg3r_256_viz_layers.json`` is what NVIDIA's visualizer listed for it.
"""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from flowml import NodeError
from flowml.testing import NodeHarness, run_node
from flowml_gan import stylegan3
from flowml_gan.nodes import StyleGANGenerator, _full_tap_name
from flowml_gan.snapshot import save_pt

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def sg3r(tmp_path_factory):
    """(folder, snapshot name, NVIDIA's fixture dict) for the R network as a .pt snapshot."""
    d = torch.load(FIXTURES / "sg3r_256.pt", weights_only=True)
    G = stylegan3.Generator(**d["init_kwargs"]).eval()
    G.load_state_dict(d["state_dict"])
    folder = tmp_path_factory.mktemp("sg3r")
    save_pt(G, folder / "g.pt")
    return folder, "g.pt", d


def test_every_layer_nvidias_visualizer_lists_for_sg3r_is_a_tap_port(sg3r):
    folder, name, d = sg3r
    layers = json.loads((FIXTURES / "sg3r_256_viz_layers.json").read_text())
    assert len(layers) == 17 and layers[7]["name"].startswith("L6_")
    ports = [f"t{i}={layer['name']}" for i, layer in enumerate(layers)] + ["L6"]
    out = run_node(StyleGANGenerator, {"w": d["ws"]}, {"path": name, "taps": ports}, graph_dir=folder)
    for i, layer in enumerate(layers):
        assert list(out[f"t{i}"].shape) == layer["shape"], layer["name"]
    assert torch.allclose(out["t16"], d["img"], atol=1e-4)  # "output": NVIDIA's image
    # the seed's short name: the one layer L6_<size>_<channels>, port named as written
    assert torch.equal(out["L6"], out["t7"])


def test_short_layer_names_resolve_only_when_unambiguous(sg3r):
    folder, name, d = sg3r
    with NodeHarness(StyleGANGenerator, {"path": name}, graph_dir=folder) as h:
        G = h.node.G
        full = [n for n, _ in G.synthesis.named_children() if n.startswith("L6_")]
        assert len(full) == 1
        assert _full_tap_name(G, "L6") == f"L6={full[0]}"
        assert _full_tap_name(G, "x=synthesis.L6.affine") == f"x=synthesis.{full[0]}.affine"
        assert _full_tap_name(G, "L1") == f"L1={G.synthesis.layer_names[1]}"  # not L10..L14
        assert _full_tap_name(G, "input") == "input" and _full_tap_name(G, "output") == "output"
    odd = nn.Module()
    odd.synthesis = nn.Module()
    odd.synthesis.L6_a, odd.synthesis.L6_b = nn.Identity(), nn.Identity()
    with pytest.raises(ValueError, match=r"'L6' could be any of \['L6_a', 'L6_b'\]"):
        _full_tap_name(odd, "L6")
    with pytest.raises(NodeError, match=r"tap 'synthesis.L66': no such layer; closest"):
        run_node(StyleGANGenerator, {"w": d["ws"][:1]}, {"path": name, "taps": ["L66"]}, graph_dir=folder)


def test_scaling_synthesis_input_weight_and_removing_it_restores_bit_exactly(sg3r):
    """Through the input layer and two layers after it (``image: false`` stops there: fast);
    the weight itself is compared bit for bit, so the image after it is the plain one too."""
    folder, name, d = sg3r
    w = d["ws"][:1]
    edit = "synthesis.input.weight"
    params = {"path": name, "image": False, "taps": ["input", "L1"]}
    with NodeHarness(StyleGANGenerator, params, graph_dir=folder) as h:
        weight = h.node.G.synthesis.input.weight
        original, ptr = weight.detach().clone(), weight.data_ptr()
        plain = h.process(w=w)
        h.set_params(edits=[{"name": edit, "op": "scale", "value": 0.5}])
        half = h.process(w=w)
        assert weight.data_ptr() == ptr and torch.equal(weight, original * 0.5)
        h.set_params(edits=[{"name": edit, "op": "scale", "value": -1.0}])  # sin(t) goes negative
        negative = h.process(w=w)
        h.set_params(edits=[{"name": edit, "op": "scale", "value": 0.5}])
        again = h.process(w=w)
        assert all(torch.equal(again[k], half[k]) for k in half)  # from the original: no compounding
        h.set_params(edits=[])
        restored = h.process(w=w)
        assert torch.equal(weight, original) and weight.data_ptr() == ptr
        assert all(torch.equal(restored[k], plain[k]) for k in plain)
    assert torch.allclose(half["input"], plain["input"] * 0.5, atol=1e-6)  # the input layer is linear in it
    assert torch.allclose(negative["input"], -plain["input"], atol=1e-6)
    assert (half["L1"] - plain["L1"]).abs().max() > 0.05 and (negative["L1"] - plain["L1"]).abs().max() > 0.05


def test_the_input_weight_edit_reaches_the_image(sg3r):
    folder, name, d = sg3r
    w = d["ws"][:1]
    plain, edited = (run_node(StyleGANGenerator, {"w": w}, {"path": name, "edits": edits}, graph_dir=folder)["image"]
                     for edits in ([], [{"name": "synthesis.input.weight", "op": "scale", "value": -1.0}]))
    assert (edited - plain).abs().max() > 0.05
