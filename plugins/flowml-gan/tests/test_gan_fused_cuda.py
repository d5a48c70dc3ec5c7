"""The filtered leaky ReLU's CuPy kernels on the GPU against the plain-PyTorch op (float32
within 1e-4 of the largest value, float16 within 2e-2), and captured in a CUDA graph (the
replay equals the eager call bit for bit). Skipped without a GPU or CuPy."""

import math

import pytest
import torch

from flowml_gan.filters import design_lowpass_filter
from flowml_gan.fused import fused_unavailable, filtered_lrelu_fast
from flowml_gan.ops_sg3 import filtered_lrelu

from test_gan_fused import CASES

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]


@pytest.fixture(autouse=True)
def kernels():
    why = fused_unavailable()
    if why:
        pytest.skip(why)
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"up{c[0]}-fd{c[2]}-pad{c[3][0]}")
def test_kernels_equal_the_pytorch_op_on_cuda(case):
    up, ku, kd, pad, size, slope, clamp = case
    torch.manual_seed(size)
    fu = design_lowpass_filter(ku, 3.0, 2.0, 16.0).cuda()
    fd = None if kd is None else design_lowpass_filter(kd[0], 3.0, 2.0, 16.0, radial=len(kd) == 2).cuda()
    x, b = (torch.randn(2, 5, size * 4, size * 4 + 3) * 30).cuda(), torch.randn(5).cuda()
    gain = math.sqrt(2) if slope != 1 else 1.0
    args = dict(up=up, down=2, padding=pad, gain=gain, slope=slope, clamp=clamp)
    want = filtered_lrelu(x, fu, fd, b, **args)
    got = filtered_lrelu_fast(x, fu, fd, b, **args)
    assert fused_unavailable() is None, fused_unavailable()  # the kernels ran (no fallback)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() < 1e-4 * scale
    half = filtered_lrelu_fast(x.half(), fu, fd, b.half(), **args)
    assert half.dtype == torch.float16 and (half.float() - want).abs().max().item() < 2e-2 * scale

    static = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        filtered_lrelu_fast(static, fu, fd, b, **args)  # compiled and loaded before capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = filtered_lrelu_fast(static, fu, fd, b, **args)
    static.copy_(x * 0.5)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, filtered_lrelu_fast(x * 0.5, fu, fd, b, **args))
