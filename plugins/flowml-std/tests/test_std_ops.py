"""image.resize, image.color, image.flip against hand computation."""

import pytest
import torch

from flowml.testing import NodeHarness, run_node
from flowml_std.color import ColorAdjust
from flowml_std.flip import Flip
from flowml_std.resize import Resize


def ramp(b=1, c=3, h=4, w=5):
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w) / (b * c * h * w)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "area"])
def test_resize_shapes_and_range(mode):
    out = run_node(Resize, {"image": ramp(2, 4, 20, 30)}, {"size": [7, 9], "mode": mode})["image"]
    assert out.shape == (2, 4, 9, 7)
    assert 0 <= out.min() and out.max() <= 1


def test_resize_nearest_doubling_repeats_pixels_and_same_size_is_free():
    x = ramp(h=2, w=3)
    out = run_node(Resize, {"image": x}, {"size": [6, 4], "mode": "nearest"})["image"]
    assert torch.equal(out, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    assert run_node(Resize, {"image": x}, {"size": [3, 2]})["image"] is x


def test_color_defaults_change_nothing():
    x = ramp()
    assert run_node(ColorAdjust, {"image": x})["image"] is x


def test_color_math_matches_hand_computation():
    pixel = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    params = {"brightness": 1.5, "contrast": 2.0, "saturation": 0.5, "gamma": 2.0}
    out = run_node(ColorAdjust, {"image": pixel}, params)["image"].flatten()
    x = [v * 1.5 for v in (0.2, 0.4, 0.6)]  # 0.3 0.6 0.9
    x = [(v - 0.5) * 2 + 0.5 for v in x]  # 0.1 0.7 1.3
    gray = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    x = [min(max(gray + (v - gray) * 0.5, 0.0), 1.0) for v in x]
    expected = torch.tensor([v ** 0.5 for v in x])
    assert torch.allclose(out, expected, atol=1e-6)


def test_color_keeps_alpha_and_takes_live_changes():
    x = torch.full((1, 4, 2, 2), 0.5)
    with NodeHarness(ColorAdjust, {"brightness": 0.0}) as h:
        out = h.process(image=x)["image"]
        assert torch.all(out[:, :3] == 0) and torch.all(out[:, 3] == 0.5)
        h.set_params(brightness=2.0)
        assert torch.all(h.process(image=x)["image"][:, :3] == 1.0)
        with pytest.raises(ValueError):
            h.set_params(gamma=0.0)  # out of range, as an OSC message would be


def test_flip_is_exact():
    x = ramp()
    assert torch.equal(run_node(Flip, {"image": x}, {"horizontal": True})["image"][..., 0], x[..., -1])
    both = run_node(Flip, {"image": x}, {"horizontal": True, "vertical": True})["image"]
    assert torch.equal(both, x.flip(-1).flip(-2))
    assert torch.equal(both[0, :, 0, 0], x[0, :, -1, -1])
    assert run_node(Flip, {"image": x}, {"horizontal": False})["image"] is x
