"""``flowml::weighted_filter`` on the CPU: the formulas, gradients, opcheck, the module."""

from __future__ import annotations

import pytest
import torch

from kernels_oracle import loop_filter
from flowml_kernels import WeightedFilter, weighted_filter
from flowml_kernels.reference import filter_ref, wgrad_ref


@pytest.mark.parametrize("splat", [False, True], ids=["gather", "splat"])
@pytest.mark.parametrize("n,shape", [(3, (2, 3, 7, 9)), (5, (1, 2, 6, 5)), (9, (1, 1, 10, 11))])
def test_op_matches_the_loop_formula(n, shape, splat):
    g = torch.Generator().manual_seed(n)
    b, c, h, w = shape
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    wt = torch.randn((b, n * n, h, w), generator=g, dtype=torch.float64)
    out = weighted_filter(x, wt, n, splat)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, loop_filter(x, wt, n, splat))


def test_gather_and_splat_differ_and_delta_weights_are_identity():
    x = torch.rand(1, 3, 6, 7, dtype=torch.float64)
    w = torch.rand(1, 25, 6, 7, dtype=torch.float64)
    assert not torch.allclose(weighted_filter(x, w, 5, False), weighted_filter(x, w, 5, True))
    delta = torch.zeros(1, 25, 6, 7, dtype=torch.float64)
    delta[:, 12] = 1.0                                   # the centre tap
    for splat in (False, True):
        torch.testing.assert_close(weighted_filter(x, delta, 5, splat), x)
    shift = torch.zeros(1, 9, 6, 7, dtype=torch.float64)
    shift[:, 5] = 1.0                                    # tap (1, 2): the right neighbour
    out = weighted_filter(x, shift, 3, False)
    torch.testing.assert_close(out[..., :-1], x[..., 1:])
    assert torch.all(out[..., -1] == 0)                  # zero padding


@pytest.mark.parametrize("splat", [False, True], ids=["gather", "splat"])
@pytest.mark.parametrize("n", [1, 3, 5])
def test_gradcheck_float64(n, splat):
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, n * n, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: weighted_filter(a, b, n, splat), (x, w))


@pytest.mark.parametrize("splat", [False, True], ids=["gather", "splat"])
def test_opcheck(splat):
    x = torch.randn(1, 3, 6, 5, requires_grad=True)
    w = torch.randn(1, 9, 6, 5, requires_grad=True)
    torch.library.opcheck(torch.ops.flowml.weighted_filter.default, (x, w, 3, splat))
    torch.library.opcheck(torch.ops.flowml.weighted_filter_wgrad.default,
                          (x.detach(), torch.randn(1, 3, 6, 5), 3))


def test_low_precision_on_cpu_follows_float32():
    x, w = torch.rand(1, 3, 8, 8), torch.rand(1, 9, 8, 8)
    ref = filter_ref(x, w, 3, False)
    for dtype, tol in ((torch.float16, 2e-3), (torch.bfloat16, 2e-2)):
        out = weighted_filter(x.to(dtype), w.to(dtype), 3)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol * 4)
        gw = wgrad_ref(x.to(dtype), x.to(dtype), 3)
        torch.testing.assert_close(gw.float(), wgrad_ref(x, x, 3), rtol=tol, atol=tol * 8)


@pytest.mark.parametrize("bad,message", [
    (dict(n=4), "odd"), (dict(n=17), "odd, 1 to 15"), (dict(wshape=(1, 8, 4, 4)), "must be (1, 9, 4, 4)"),
    (dict(dtype=torch.float64), "share dtype"), (dict(xshape=(3, 4, 4)), "(B, C, H, W)"),
])
def test_bad_arguments_say_what_to_fix(bad, message):
    x = torch.rand(bad.get("xshape", (1, 2, 4, 4)))
    w = torch.rand(bad.get("wshape", (1, 9, 4, 4)), dtype=bad.get("dtype", torch.float32))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        weighted_filter(x, w, bad.get("n", 3))


def test_module_like_layerdenoise():
    m = WeightedFilter(5, splat=True, bias=True, channels=3)
    assert [n for n, _ in m.named_parameters()] == ["bias"]
    x, w = torch.rand(2, 3, 6, 6), torch.rand(2, 25, 6, 6)
    with torch.no_grad():
        m.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    out = m(x, w)
    torch.testing.assert_close(out - m.bias.view(1, 3, 1, 1), weighted_filter(x, w, 5, True))
    assert "kernel_size=5, splat=True, bias=True" in repr(m)
    with pytest.raises(ValueError, match="needs channels"):
        WeightedFilter(3, bias=True)
    with pytest.raises(ValueError, match="odd"):
        WeightedFilter(2)
