"""tensor.to_image on hand-made activations."""

import pytest
import torch

from flowml import NodeError
from flowml.testing import run_node
from flowml_gan.to_image import TensorToImage


def run(x, **params):
    return run_node(TensorToImage, {"tensor": x}, params, check=True)["image"]


def test_channels_from_base_wrap_and_infnorm():
    x = torch.zeros(1, 4, 2, 2)
    x[0, 3] = 2.0
    x[0, 0] = -1.0
    img = run(x, base=3)  # channels 3, 0, 1
    assert img.shape == (1, 3, 2, 2)
    assert torch.allclose(img[0, 0], torch.ones(2, 2))        # 2 / 2 -> 1 -> 1.0
    assert torch.allclose(img[0, 1], torch.full((2, 2), 0.25))  # -1 / 2 -> -0.5 -> 0.25
    assert torch.allclose(img[0, 2], torch.full((2, 2), 0.5))   # 0 -> mid grey


def test_mean_gain_percentile_grey_and_resize():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(2, 2, 1, 1)
    grey = run(x, mode="mean", count=1, norm="none", gain_db=-20 * 1.2041199826559248)  # x / 16
    assert torch.allclose(grey[0, 0], (x[0, 0] / 16 * 0.5 + 0.5))
    assert torch.equal(grey[:, 0], grey[:, 1])
    bright = run(x, count=1, norm="percentile", percentile=50)
    assert (bright == 1).sum() > (run(x, count=1) == 1).sum()  # more pixels clip
    big = run(x, size=(8, 6))
    assert big.shape == (2, 3, 6, 8)


def test_pca_finds_the_main_direction():
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(1, 1, 8, 8, generator=g)
    x = torch.cat([signal * 3, -signal * 3, signal * 3 + 0.01 * torch.randn(1, 6, 8, 8, generator=g)[:, :1],
                   0.01 * torch.randn(1, 5, 8, 8, generator=g)], dim=1)
    img = run(x, mode="pca")
    first = img[0, 0] - 0.5
    corr = torch.corrcoef(torch.stack([first.flatten(), signal.flatten()]))[0, 1]
    assert corr.abs() > 0.99


def test_a_non_4d_input_says_what_to_wire():
    with pytest.raises(NodeError, match=r"takes a \(B, C, H, W\) tensor, got \(1, 512\)"):
        run(torch.zeros(1, 512))
