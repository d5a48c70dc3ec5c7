"""Taps and weight edits on any nn.Module, and on our StyleGAN2."""

import pytest
import torch
from torch import nn

from flowml_gan.stylegan2 import Generator
from flowml_gan.taps import Edit, Taps, WeightEdits, parse_tap


def tiny():
    torch.manual_seed(0)
    return Generator(8, 0, 8, 32, 3, mapping_kwargs={"num_layers": 2},
                     synthesis_kwargs={"channel_base": 128, "channel_max": 8}).eval()


def test_parse_tap_names_ports():
    assert parse_tap("synthesis.b16.conv1") == ("synthesis_b16_conv1", "synthesis.b16.conv1", None)
    assert parse_tap("l16=synthesis.b16:1") == ("l16", "synthesis.b16", 1)
    with pytest.raises(ValueError, match="index of a tensor"):
        parse_tap("synthesis.b16:x")


def test_taps_on_a_plain_module_and_on_the_generator():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    taps = Taps(net, ["0", "act=1"])
    assert taps.ports == ["layer_0", "act"]
    x = torch.randn(1, 3, 5, 5)
    net(x)
    assert torch.equal(taps.values["act"], net[0](x).relu())
    assert taps.values["layer_0"].shape == (1, 4, 5, 5)
    taps.remove()
    taps.values.clear()
    net(x)
    assert taps.values == {}

    G = tiny()
    taps = Taps(G, ["synthesis.b8.conv1", "x16=synthesis.b16:0", "img16=synthesis.b16:1", "mapping"])
    with torch.no_grad():
        img = G.synthesis(G.mapping(torch.randn(2, 8)))
    v = taps.values
    assert v["synthesis_b8_conv1"].shape == (2, 8, 8, 8)
    assert v["x16"].shape == (2, 8, 16, 16) and v["img16"].shape == (2, 3, 16, 16)
    assert img.shape == (2, 3, 32, 32)


def test_a_wrong_tap_name_lists_the_closest():
    with pytest.raises(ValueError, match=r"'synthesis.b8.conv2': no such layer; closest: \[.*'synthesis.b8.conv1'"):
        Taps(tiny(), ["synthesis.b8.conv2"])


def test_edits_from_kept_originals_in_place_and_restored_bit_exactly():
    G = tiny()
    edits = WeightEdits(G)
    name = "synthesis.b32.torgb.weight"  # not demodulated: a uniform scale shows in the image
    weight = G.synthesis.b32.torgb.weight
    original = weight.detach().clone()
    ptr = weight.data_ptr()
    z = torch.randn(1, 8)
    with torch.no_grad():
        before = G(z)
    for v in (0.5, 0.25, 2.0, 2.0):  # never compounding: each from the original
        edits.set([{"name": name, "op": "scale", "value": v}])
        assert torch.equal(weight, original * v) and weight.data_ptr() == ptr
    with torch.no_grad():
        assert not torch.equal(G(z), before)
    edits.set([Edit(name, "add", 1.0), Edit("mapping.w_avg", "set", 3.0)])
    assert torch.equal(weight, original + 1.0) and torch.all(G.mapping.w_avg == 3.0)
    edits.set([])
    assert torch.equal(weight, original) and weight.data_ptr() == ptr
    assert torch.all(G.mapping.w_avg == 0) and edits.originals == {}
    with torch.no_grad():
        assert torch.equal(G(z), before)


def test_a_wrong_edit_name_lists_the_closest_and_changes_nothing():
    G = tiny()
    edits = WeightEdits(G)
    edits.set([Edit("synthesis.b4.conv1.bias", "add", 1.0)])
    bias = G.synthesis.b4.conv1.bias.detach().clone()
    with pytest.raises(ValueError, match=r"'synthesis.b4.conv1.wieght': no such weight; closest: \['synthesis.b4.conv1.weight'"):
        edits.set([Edit("synthesis.b4.conv1.wieght", "scale", 0.0)])
    assert torch.equal(G.synthesis.b4.conv1.bias, bias)


def test_every_layer_nvidias_visualizer_lists_can_be_tapped_with_its_shape():
    """fixtures/sg2_64_viz_layers.json: the names and shapes NVIDIA's own visualizer lists for
    the 64 px fixture network (how: fixtures/make_nvidia_viz_layers.py)."""
    import json
    from pathlib import Path

    from flowml.testing import run_node
    from flowml_gan.nodes import StyleGANGenerator

    here = Path(__file__).parent / "fixtures"
    layers = json.loads((here / "sg2_64_viz_layers.json").read_text())
    assert len(layers) == 25 and {"b4:0", "b64.torgb", "output"} <= {l["name"] for l in layers}
    d = torch.load(here / "sg2_64.pt", weights_only=True)
    ports = [f"t{i}={l['name']}" for i, l in enumerate(layers)]
    out = run_node(StyleGANGenerator, {"w": d["ws"]}, {"path": "sg2_64.pkl", "taps": ports}, graph_dir=here)
    for i, layer in enumerate(layers):
        assert list(out[f"t{i}"].shape) == layer["shape"], layer["name"]
    assert torch.allclose(out[f"t{len(layers) - 1}"], d["img"], atol=1e-4)  # "output": the raw image
