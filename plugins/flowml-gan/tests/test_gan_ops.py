"""The plain-PyTorch ops against their definitions (NVIDIA parity is in test_gan_parity.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from flowml_gan.ops import (bias_act, conv2d_resample, modulated_conv2d, setup_filter, upfirdn2d,
                            upsample2d)


def test_bias_act_adds_activates_gains_and_clamps():
    x = torch.tensor([[-2.0, 1.0], [3.0, -0.5]])
    b = torch.tensor([1.0, -2.0])
    y = bias_act(x, b, act="lrelu", clamp=2.0)
    expected = F.leaky_relu(x + b, 0.2) * math.sqrt(2)
    assert torch.allclose(y, expected.clamp(-2, 2)) and y.max() == 2.0
    assert torch.equal(bias_act(x), x)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act(x, act="gelu")


def test_filter_is_normalised_and_upsampling_keeps_a_constant():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and torch.isclose(f.sum(), torch.tensor(1.0))
    x = torch.full((1, 2, 6, 6), 0.7)
    up = upsample2d(x, f)
    assert up.shape == (1, 2, 12, 12)
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.tensor(0.7))  # away from the zero border
    same = upfirdn2d(x, None)
    assert torch.equal(same, x)
    assert upfirdn2d(x, None, padding=[1, 0, 0, -1]).shape == (1, 2, 5, 7)


def test_upsampling_conv_equals_zero_insertion_filter_then_conv():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 5, generator=g)
    w = torch.randn(4, 3, 3, 3, generator=g)
    f = setup_filter([1, 3, 3, 1])
    fast = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=False)
    # the definition: up-sample x2 with the filter (gain 4), then a convolution of the image
    slow = upfirdn2d(x, f, up=2, padding=[2 + 1, 1 + 1, 2 + 1, 1 + 1], gain=4)
    slow = F.conv2d(slow, w.flip([2, 3]))
    assert fast.shape == slow.shape == (2, 4, 10, 10)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_modulated_conv_demodulates_each_output_channel():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 6, generator=g)
    w = torch.randn(5, 3, 3, 3, generator=g)
    s = torch.rand(2, 3, generator=g) + 0.5
    y = modulated_conv2d(x, w, s, padding=1)
    for i in range(2):  # per sample: weight * style, each output filter to unit norm
        wi = w * s[i].reshape(1, 3, 1, 1)
        wi = wi / wi.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        assert torch.allclose(y[i:i + 1], F.conv2d(x[i:i + 1], wi, padding=1), atol=1e-5)
    unfused = modulated_conv2d(x, w, s, padding=1, fused=False)
    assert torch.allclose(unfused, y, atol=1e-5)
    assert torch.allclose(modulated_conv2d(x, w * 7, s, padding=1), y, atol=1e-5)  # scale-free
