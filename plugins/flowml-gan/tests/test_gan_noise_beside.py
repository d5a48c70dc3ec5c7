"""noise.smooth (the seed project's translated Noise TOP as a latent) and image.beside."""

import pytest
import torch
import torch.nn.functional as F

from flowml import NodeError
from flowml.testing import NodeHarness, run_node
from flowml_gan.beside import Beside
from flowml_gan.noise import SmoothNoise


def noise(**params):
    return run_node(SmoothNoise, params=params)["image"]


def test_the_noise_is_deterministic_smooth_and_translates_by_cells():
    a = noise(size=[512, 1])
    assert a.shape == (1, 3, 1, 512) and a.dtype == torch.float32
    assert torch.equal(a, noise(size=[512, 1])) and torch.equal(a[:, 0], a[:, 2])
    assert abs(a.mean().item() - 0.5) < 0.05 and a.std() > 0.05
    assert not torch.allclose(a, noise(size=[512, 1], seed=1))
    # tx in cells of `period` pixels: one cell along is the same field shifted by 8 pixels
    shifted = noise(size=[512, 1], tx=1.0)
    assert torch.allclose(shifted[..., :-8], a[..., 8:], atol=1e-6)
    # smooth: a small translation, or the next pixel, changes each value a little
    assert 0 < (noise(size=[512, 1], tx=0.01) - a).abs().max() < 0.03
    assert (a[..., 1:] - a[..., :-1]).abs().max() < 0.25
    # far along (an hour at t * 0.1) it is as smooth: float64 coordinates
    far, farther = noise(size=[512, 1], tx=360.0), noise(size=[512, 1], tx=360.01)
    assert 0 < (far - farther).abs().max() < 0.03
    rough = noise(size=[64, 64], harmonics=3)
    assert rough.shape == (1, 3, 64, 64) and not torch.allclose(rough, noise(size=[64, 64]))
    assert torch.allclose(noise(amplitude=0.0, size=[4, 4]), torch.full((1, 3, 4, 4), 0.5))
    loud = run_node(SmoothNoise, params={"size": [64, 64], "amplitude": 3.0}, check=True)["image"]
    assert loud.min() == 0 and loud.max() == 1  # clamped: an image in [0, 1]


def test_the_noise_is_made_again_only_when_a_param_changes():
    with NodeHarness(SmoothNoise, {"size": [32, 1]}) as h:
        first = h.process()["image"]
        assert h.process()["image"] is first
        h.set_params(tx=0.5)
        moved = h.process()["image"]
        assert moved is not first and not torch.equal(moved, first)
        h.set_params(tx=0.0)
        assert torch.equal(h.process()["image"], first)


def test_beside_puts_the_right_image_at_the_lefts_height():
    left = torch.rand(1, 3, 16, 24)
    right = torch.rand(1, 1, 32, 32)  # grey, twice as high
    out = run_node(Beside, {"left": left, "right": right}, {"gap": 2, "gap_value": 1.0}, check=True)["image"]
    assert out.shape == (1, 3, 16, 24 + 2 + 16)
    assert torch.equal(out[..., :24], left) and torch.equal(out[..., 24:26], torch.ones(1, 3, 16, 2))
    small = F.interpolate(right, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(out[..., 26:], small.expand(1, 3, 16, 16), atol=1e-6)
    batched = run_node(Beside, {"left": torch.rand(2, 4, 8, 8), "right": torch.rand(1, 3, 8, 4)})["image"]
    assert batched.shape == (2, 3, 8, 12)
    with pytest.raises(NodeError, match=r"input 'right': expected an image \(B, C, H, W\).*got \(8, 8\)"):
        run_node(Beside, {"left": left, "right": torch.rand(8, 8)})
    with pytest.raises(NodeError, match="left has batch 2, right 3"):
        run_node(Beside, {"left": torch.rand(2, 3, 8, 8), "right": torch.rand(3, 3, 8, 8)})
