"""The filtered leaky ReLU's CuPy kernels on the GPU against the plain-PyTorch op (float32
within 1e-4 of the largest value, float16 within 2e-2), and captured in a CUDA graph (the
replay equals the eager call bit for bit): the three-pass kernels and the one-kernel path
(``fused_tile``) on every filtered_lrelu kind of SG3-T/R at 256 and 1024 px, at default tiles
and at 64-px tiles (over 48 KB of shared memory: the opt-in). Skipped without a GPU or CuPy."""

import math

import pytest
import torch

from flowml_gan.filters import design_lowpass_filter
from flowml_gan import fused
from flowml_gan.fused import fused_unavailable, filtered_lrelu_fast
from flowml_gan.fused_tile import tile_plan, tile_run
from flowml_gan.ops_sg3 import filtered_lrelu

from sg3_layer_kinds import FUSED_KINDS, args, input_size, small_input
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


@pytest.mark.parametrize("mode", ["3pass", "tile"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"up{c[0]}-fd{c[2]}-pad{c[3][0]}")
def test_kernels_equal_the_pytorch_op_on_cuda(case, mode, monkeypatch):
    monkeypatch.setenv("FLOWML_GAN_FUSED", mode)
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
    assert fused.last_path() == mode
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


def _capture_equals_eager(x, fu, fd, b, kw):
    """filtered_lrelu_fast captured in a CUDA graph: the replay on new input equals the eager
    call on it, bit for bit."""
    static = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        filtered_lrelu_fast(static, fu, fd, b, **kw)  # compiled and loaded before capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = filtered_lrelu_fast(static, fu, fd, b, **kw)
    static.copy_(x * -0.5)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, filtered_lrelu_fast(x * -0.5, fu, fd, b, **kw))


@pytest.mark.parametrize("kind", FUSED_KINDS, ids=lambda k: k.id)
def test_tile_kernel_on_every_sg3_layer_kind(kind, monkeypatch):
    """The one-kernel path at the layer's own input size and at one giving about 300 px out
    (many tiles), 8 channels, asymmetric filters: float32 within 1e-4 of the op, float16
    within 2e-3 of the op on the same rounded inputs; captured replay = eager."""
    monkeypatch.setenv("FLOWML_GAN_FUSED", "tile")
    fu, fd = kind.filters(asymmetric=True, device="cuda")
    for size in (kind.in_size, input_size(kind, 300)):
        x, b = small_input(kind, size, channels=8, device="cuda")
        kw = args(kind, 25.0)
        want = filtered_lrelu(x, fu, fd, b, **kw)
        got = filtered_lrelu_fast(x, fu, fd, b, **kw)
        assert fused.last_path() == "tile", fused.tile_unavailable()
        scale = max(1.0, want.abs().max().item())
        assert got.shape == want.shape and (got - want).abs().max().item() < 1e-4 * scale
        xh, bh = x.half(), b.half()
        want16 = filtered_lrelu(xh.float(), fu, fd, bh.float(), **kw)
        half = filtered_lrelu_fast(xh, fu, fd, bh, **kw)
        assert half.dtype == torch.float16 and fused.last_path() == "tile"
        assert (half.float() - want16).abs().max().item() < 2e-3 * max(1.0, want16.abs().max().item())
        _capture_equals_eager(xh, fu, fd, bh, kw)
    _capture_equals_eager(x, fu, fd, b, kw)


@pytest.mark.parametrize("kind", FUSED_KINDS[:2] + [k for k in FUSED_KINDS if len(k.down_shape) == 2][:1],
                         ids=lambda k: k.id)
def test_tile_kernel_with_large_tiles_takes_the_shared_memory_opt_in(kind):
    fu, fd = kind.filters(asymmetric=True, device="cuda")
    x, b = small_input(kind, input_size(kind, 200), channels=4, device="cuda")
    kw = args(kind, 25.0)
    plan = tile_plan(x, fu, fd, kind.up, kind.down, kw["padding"], tile=64)
    assert plan.smem_bytes > 48 * 1024
    got = tile_run(fused._CUPY_TILE, x, fu, fd, b, plan=plan, **kw)
    want = filtered_lrelu(x, fu, fd, b, **kw)
    assert (got - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item())


# ---- the half2 variants (uv 7 / 15: float16 storage, a 2-D or separable down filter;
# test_gan_fused_h2.py on the CPU)

RADIAL = [k for k in FUSED_KINDS if len(k.down_shape) == 2]
SEPARABLE = [k for k in FUSED_KINDS if len(k.down_shape) == 1]


@pytest.mark.parametrize("fdk", [2, 1], ids=["radial", "separable"])
def test_h2_down_stage_bits_on_the_gpu(fdk):
    """fma.rn.f16x2 and the half filter copies on the GPU: the exact-up-stage layer of the CPU
    test gives the torch emulation's bits (the CPU harness gives them too)."""
    from flowml_gan.fused_tile import output_size
    from test_gan_fused_h2 import H2_TILINGS, h2_down_ref

    fd = (RADIAL if fdk == 2 else SEPARABLE)[0].filters(asymmetric=True)[1]
    fu = torch.ones(1)
    x = (torch.randn(2, 3, 83, 91, generator=torch.Generator().manual_seed(3)) * 30).half()
    pad = [5, 4, 3, 6]
    kw = dict(up=1, down=2, padding=pad, gain=1.0, slope=1.0, clamp=None)
    ho, wo = output_size(83, 91, 1, 12, 1, 2, pad)
    want = h2_down_ref(torch.nn.functional.pad(x.float(), pad).half(), fd, 2, ho, wo)
    for tile, threads, ry, uv in H2_TILINGS:
        xc, fuc, fdc = x.cuda(), fu.cuda(), fd.cuda()
        plan = tile_plan(xc, fuc, fdc, 1, 2, pad, tile, threads, ry or None, uv)
        assert plan.uv == uv
        got = tile_run(fused._CUPY_TILE, xc, fuc, fdc, None, plan=plan, **kw).cpu()
        assert torch.equal(got.view(torch.int16), want.view(torch.int16)), \
            (plan, (got.float() - want.float()).abs().max())


@pytest.mark.parametrize("kind", RADIAL + SEPARABLE, ids=lambda k: k.id)
def test_h2_variant_on_every_kind_with_a_down_filter(kind, record_property):
    """The half2 plans at the layer's own size and about 300 px out, 8 channels: within
    H2_TOL of the op on the same float16 inputs; captured replay = eager."""
    from flowml_gan.fused_tile import H2_TOL

    fu, fd = kind.filters(asymmetric=True, device="cuda")
    for size in (kind.in_size, input_size(kind, 300)):
        x, b = small_input(kind, size, channels=8, device="cuda")
        xh, bh = x.half(), b.half()
        kw = args(kind, 25.0)
        want = filtered_lrelu(xh.float(), fu, fd, bh.float(), **kw)
        for tiling in [(32, 128, 0, 7), (48, 256, 0, 7), (16, 64, 0, 7), (32, 128, 0, 15), (48, 256, 0, 15)]:
            plan = tile_plan(xh, fu, fd, kind.up, kind.down, kw["padding"], tiling[0], tiling[1], None, tiling[3])
            assert plan.uv == tiling[3]
            got = tile_run(fused._CUPY_TILE, xh, fu, fd, bh, plan=plan, **kw)
            err = (got.float() - want).abs().max().item() / max(1.0, want.abs().max().item())
            record_property(f"err_{size}_{tiling[0]}_uv{tiling[3]}", err)
            assert got.dtype == torch.float16 and err < H2_TOL, (plan, err)


def test_h2_variant_captured_equals_eager(monkeypatch):
    from flowml_gan.fused_tile import Tuning, set_plans

    monkeypatch.setenv("FLOWML_GAN_FUSED", "tile")
    try:
        for kind in (next(k for k in RADIAL if k.up == 4), SEPARABLE[0]):
            fu, fd = kind.filters(asymmetric=True, device="cuda")
            x, b = small_input(kind, input_size(kind, 300), channels=8, device="cuda")
            for uv in (7, 15):
                set_plans({"*": Tuning(uv=uv)})
                _capture_equals_eager(x.half(), fu, fd, b.half(), args(kind, 25.0))
    finally:
        set_plans(None)


def test_h2_mixed_generator_against_fp32(monkeypatch, record_property, capsys):
    """SG3-R 1024 (the official config, random weights), mixed precision with the half2 plans
    on its float16 layers (radial and separable), against the fp32 image: about as close as mixed with the float
    plans (the user-visible effect; printed), and the fp32 image untouched by the table."""
    from flowml_gan.build import make_generator
    from flowml_gan.fused_tile import Tuning, set_plans

    monkeypatch.setenv("FLOWML_GAN_FUSED", "tile")
    monkeypatch.delenv("FLOWML_GAN_FLR_PLANS", raising=False)
    G = make_generator("sg3-r", 1024, seed=0, device="cuda").eval().cuda()
    with torch.no_grad():
        w = G.mapping(torch.randn(2, G.z_dim, device="cuda", generator=torch.Generator("cuda").manual_seed(1)), None)
        fp32 = G.synthesis(w, force_fp32=True)
        mixed = G.synthesis(w)
        mixed_h2 = {}
        try:
            for uv in (7, 15):
                set_plans({"*": Tuning(uv=uv)})
                assert torch.equal(G.synthesis(w, force_fp32=True), fp32)
                mixed_h2[uv] = G.synthesis(w)
        finally:
            set_plans(None)
    e_float = (mixed - fp32).abs()
    stats = {"float plans mean": e_float.mean().item(), "float plans max": e_float.max().item(),
             "image max |fp32|": fp32.abs().max().item()}
    for uv, img in mixed_h2.items():
        e = (img - fp32).abs()
        stats[f"uv{uv} mean"], stats[f"uv{uv} max"] = e.mean().item(), e.max().item()
    record_property("mixed_vs_fp32", stats)
    with capsys.disabled():
        print("\nSG3-R 1024 mixed vs fp32:", {k: round(v, 5) for k, v in stats.items()})
    for uv, img in mixed_h2.items():
        assert not torch.equal(img, mixed) and torch.isfinite(img).all()
        assert stats[f"uv{uv} mean"] <= 2 * stats["float plans mean"] + 1e-3, stats
