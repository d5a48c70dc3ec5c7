"""The filtered leaky ReLU's CUDA kernels (``flowml_gan.fused``), their source compiled as C++
by g++ and run on the CPU, against the plain-PyTorch op: every layer kind of StyleGAN3-T/R
(up-sampling by 2 and 4, 2-D radial and separable down-sampling filters, cropping and padding,
bias, clamp, the toRGB's linear case), float32 and float16 storage. This checks the kernels'
index arithmetic and the plan; ``test_gan_fused_cuda.py`` checks the same on the GPU."""

import math
import shutil

import pytest
import torch

from flowml_gan.filters import design_lowpass_filter
from flowml_gan.fused import CpuBackend, filtered_lrelu_fast, plan_run
from flowml_gan.ops_sg3 import filtered_lrelu

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the kernels for the CPU")

# (up, up taps, down filter, padding, size, slope, clamp): StyleGAN3-R 1024's layer kinds
CASES = [
    (2, 12, (12, 12), [11, 10, 11, 10], 20, 0.2, 25.0),   # L0, L1, L3, L6, L8, L11
    (4, 24, (12, 12), [-2, -5, -2, -5], 18, 0.2, 25.0),   # L2, L4, L5, L7, L9, L10
    (2, 12, (12,), [11, 10, 11, 10], 21, 0.2, None),      # L12 (critically sampled), T's layers
    (2, 12, (12,), [-9, -10, -9, -10], 22, 0.2, 25.0),    # L13 (crops)
    (2, 12, None, [3, 2, 3, 2], 9, 1.0, 25.0),            # no down filter, linear
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"up{c[0]}-fd{c[2]}-pad{c[3][0]}")
def test_kernels_equal_the_pytorch_op(case):
    up, ku, kd, pad, size, slope, clamp = case
    torch.manual_seed(size)
    fu = design_lowpass_filter(ku, 3.0, 2.0, 16.0)
    fd = None if kd is None else design_lowpass_filter(kd[0], 3.0, 2.0, 16.0, radial=len(kd) == 2)
    x, b = torch.randn(2, 3, size, size + 1) * 30, torch.randn(3)
    gain = math.sqrt(2) if slope != 1 else 1.0
    want = filtered_lrelu(x, fu, fd, b, up=up, down=2, padding=pad, gain=gain, slope=slope, clamp=clamp)
    got = plan_run(CpuBackend(), x, fu, fd, b, up, 2, pad, gain, slope, clamp)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got - want).abs().max() < 1e-4 * max(1.0, want.abs().max().item())
    half = plan_run(CpuBackend(), x.half(), fu, fd, b.half(), up, 2, pad, gain, slope, clamp)
    assert half.dtype == torch.float16
    assert (half.float() - want).abs().max() < 2e-2 * max(1.0, want.abs().max().item())


def test_cpu_tensors_take_the_pytorch_op():
    fu = design_lowpass_filter(12, 3.0, 2.0, 16.0)
    x = torch.randn(1, 2, 8, 8)
    want = filtered_lrelu(x, fu, fu, None, up=2, down=2, padding=[11, 10, 11, 10])
    assert torch.equal(filtered_lrelu_fast(x, fu, fu, None, up=2, down=2, padding=[11, 10, 11, 10]), want)
