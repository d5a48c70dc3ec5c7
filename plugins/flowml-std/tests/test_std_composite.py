import pytest
import torch

from flowml import NodeError
from flowml.testing import run_node
from flowml_std.composite import Composite

FG = torch.tensor([0.8, 0.4, 0.2]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
BG = torch.tensor([0.5, 0.5, 0.1]).view(1, 3, 1, 1).expand(1, 3, 2, 2)


def pixel(out):
    return out["image"][0, :, 0, 0]


@pytest.mark.parametrize("mode, expected", [
    ("over", [0.8, 0.4, 0.2]),
    ("add", [1.0, 0.9, 0.3]),
    ("multiply", [0.4, 0.2, 0.02]),
    ("screen", [0.9, 0.7, 0.28]),
    ("mix", [0.8, 0.4, 0.2]),
])
def test_modes(mode, expected):
    out = run_node(Composite, {"fg": FG, "bg": BG}, {"mode": mode})
    assert torch.allclose(pixel(out), torch.tensor(expected), atol=1e-6)


def test_opacity_and_alpha_input_scale_coverage():
    alpha = torch.full((1, 1, 2, 2), 0.5)
    out = run_node(Composite, {"fg": FG, "bg": BG, "alpha": alpha}, {"mode": "multiply", "opacity": 0.5})
    a = 0.25  # opacity * alpha
    expected = [b + (f * b - b) * a for f, b in zip([0.8, 0.4, 0.2], [0.5, 0.5, 0.1])]
    assert torch.allclose(pixel(out), torch.tensor(expected), atol=1e-6)
    # mix ignores alpha: a crossfade by opacity alone
    out = run_node(Composite, {"fg": FG, "bg": BG, "alpha": alpha}, {"mode": "mix", "opacity": 0.5})
    assert torch.allclose(pixel(out), torch.tensor([0.65, 0.45, 0.15]), atol=1e-6)


def test_rgba_fg_uses_its_alpha_and_output_is_rgb():
    fg = torch.cat([FG, torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).expand(1, 1, 2, 2)], dim=1)
    out = run_node(Composite, {"fg": fg, "bg": BG})["image"]
    assert out.shape == (1, 3, 2, 2)
    assert torch.allclose(out[0, :, 0, 0], FG[0, :, 0, 0]) and torch.allclose(out[0, :, 0, 1], BG[0, :, 0, 0])


def test_bg_and_alpha_are_resized_to_fg():
    bg = torch.full((1, 3, 8, 8), 0.25)
    alpha = torch.zeros(4, 4)  # (H, W) is accepted too
    out = run_node(Composite, {"fg": FG, "bg": bg, "alpha": alpha})["image"]
    assert out.shape == (1, 3, 2, 2) and torch.allclose(out, torch.full_like(out, 0.25))


def test_bad_shapes_say_which_port():
    with pytest.raises(NodeError, match="input 'bg'"):
        run_node(Composite, {"fg": FG, "bg": torch.zeros(1, 2, 2, 2)})
    with pytest.raises(NodeError, match="input 'alpha'"):
        run_node(Composite, {"fg": FG, "bg": BG, "alpha": torch.zeros(1, 3, 2, 2)})
