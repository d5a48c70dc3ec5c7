"""The filtered leaky ReLU's CUDA kernels (``flowml_gan.fused``), their source compiled as C++
by g++ and run on the CPU, against the plain-PyTorch op: every layer kind of StyleGAN3-T/R
(up-sampling by 2 and 4, 2-D radial and separable down-sampling filters, cropping and padding,
bias, clamp, the toRGB's linear case), float32 and float16 storage. This checks the kernels'
index arithmetic and the plan; ``test_gan_fused_cuda.py`` checks the same on the GPU."""

import json
from concurrent.futures import ThreadPoolExecutor
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


# ---- the one-kernel path (fused_tile): every filtered_lrelu kind of SG3-T/R at 256 and 1024 px

from sg3_layer_kinds import FUSED_KINDS, KINDS, args, input_size, small_input  # noqa: E402

from flowml_gan.fused_tile import CpuTileBackend, TilePlan, tile_plan, tile_run, tile_unsupported  # noqa: E402

# (largest tile side, threads a block, outputs a thread in the down stage (0: the plan's),
# variant bits): the old kernel (a sample a thread, unrolled down stage), the default plan
# (both variant bits), small tiles of few threads with row groups past the tile's last row
# (ry 5 of 12 rows, rolling and unrolled), each variant bit alone
TILINGS = [(32, 256, 4, 0), (32, 128, 0, 3), (12, 32, 5, 3), (12, 32, 3, 1), (12, 64, 0, 2)]


def _tile_cases():
    return [(kind, tiling) for kind in FUSED_KINDS for tiling in TILINGS]


def _plan(x, fu, fd, kind, padding, tiling):
    tile, threads, ry, uv = tiling
    return tile_plan(x, fu, fd, kind.up, kind.down, padding, tile, threads, ry or None, uv)


@pytest.fixture(scope="module")
def tile_backend():
    """One shared object with every plan the tests below run (one g++ run)."""
    plans = []
    for kind, tiling in _tile_cases():
        fu, fd = kind.filters()
        for size in (input_size(kind, 37),):
            x, _ = small_input(kind, size)
            for dtype in ("float32", "float16"):
                plans.append((dtype, _plan(x, fu, fd, kind, list(kind.padding), tiling)))
    for kind in OWN_SIZE:
        fu, fd = kind.filters()
        x, _ = small_input(kind, kind.in_size)
        plans.append(("float32", tile_plan(x[..., :kind.in_size], fu, fd, kind.up, kind.down, list(kind.padding))))
    return CpuTileBackend(plans)


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape
    assert not got.isnan().any(), "an output was not written (or read poisoned shared memory)"
    return ((got.double() - want.double()).abs().max() / max(1.0, want.abs().max().item())).item()


@pytest.mark.parametrize("case", _tile_cases(), ids=lambda c: f"{c[0].id}-tile{c[1][0]}-t{c[1][1]}-ry{c[1][2]}-v{c[1][3]}")
def test_tile_kernel_equals_the_pytorch_op(tile_backend, case):
    (kind, tiling) = case
    fu, fd = kind.filters(asymmetric=True)   # asymmetric: a missing flip would show
    x, b = small_input(kind, input_size(kind, 37))
    for clamp in (25.0, None):
        kw = args(kind, clamp)
        want = filtered_lrelu(x, fu, fd, b, **kw)
        plan = _plan(x, fu, fd, kind, kw["padding"], tiling)
        got = tile_run(tile_backend, x, fu, fd, b, plan=plan, **kw)
        assert got.dtype == torch.float32 and _rel_err(got, want) < 1e-5, (plan, clamp)
    # float16 storage, float math: against the op on the same (rounded) inputs
    xh, bh = x.half(), b.half()
    want = filtered_lrelu(xh.float(), fu, fd, bh.float(), **args(kind))
    plan = _plan(xh, fu, fd, kind, list(kind.padding), tiling)
    half = tile_run(tile_backend, xh, fu, fd, bh, plan=plan, **args(kind))
    assert half.dtype == torch.float16 and _rel_err(half, want) < 2e-3


OWN_SIZE = [k for k in FUSED_KINDS if k.in_size <= 100]  # the others: seconds each on the CPU


@pytest.mark.parametrize("kind", OWN_SIZE, ids=lambda k: k.id)
def test_tile_kernel_at_the_layers_own_size(tile_backend, kind):
    """The layer's real input size (its padding and tile edges as in the network), no bias,
    StyleGAN3's clamp of 256, designed (symmetric) filters, two channels."""
    fu, fd = kind.filters()
    x, _ = small_input(kind, kind.in_size, channels=2, batch=1, scale=100.0, seed=1)
    x = x[..., :kind.in_size]   # square, as in the network
    kw = args(kind, kind.clamp)
    want = filtered_lrelu(x, fu, fd, None, **kw)
    got = tile_run(tile_backend, x, fu, fd, None, **kw)
    assert _rel_err(got, want) < 1e-5


def test_tile_plans_of_the_1024_px_networks_fit_without_the_shared_memory_opt_in():
    """SG3-T/R 1024's layers at the default tile: at most 32 a side, under 48 KB a block
    (several blocks an SM), equal tiles (an edge tile is never mostly empty)."""
    for kind in FUSED_KINDS:
        fu, fd = kind.filters()
        for out in (36, 52, 84, 148, 276, 532, 1044, 1024):
            size = next(s for s in range(4, 2048) if _out(kind, s) >= out)
            plan = tile_plan(torch.empty(1, 1, size, size, device="meta"), fu, fd, kind.up,
                             kind.down, list(kind.padding))
            assert plan.tw <= 32 and plan.th <= 32 and plan.smem_bytes <= 48 * 1024, (kind.id, plan)
            n = -(-_out(kind, size) // plan.tw)
            assert n * plan.tw - _out(kind, size) < n, (kind.id, plan)


def _out(kind, s: int) -> int:
    kd = kind.down_shape[0] if kind.down_shape else 1
    return (s * kind.up + kind.padding[0] + kind.padding[1] - kind.up_taps - kd + 1 + kind.down) // kind.down


def test_tile_path_says_what_it_does_not_take():
    torgb = next(k for k in KINDS if k.up_taps == 1)
    x = torch.empty(1, 3, 16, 16)
    assert "not separable" in tile_unsupported(x, None, None, 1, 1, list(torgb.padding))
    fu = torch.ones(12)
    assert "square" in tile_unsupported(x, fu, torch.ones(12, 8), 2, 2, 10)
    assert "float32 or float16" in tile_unsupported(x.double(), fu, None, 2, 2, 10)
    assert "empty output" in tile_unsupported(x, fu, fu, 2, 2, -20)
    assert tile_unsupported(x, fu, fu, 2, 2, 10) is None
    with pytest.raises(ValueError, match="falls back"):
        tile_plan(x, fu, torch.ones(12, 8), 2, 2, 10)


def test_tile_plan_geometry_is_the_kernels():
    """TilePlan's shared-memory size is FlrGeom's (the runner refuses a mismatch); a plan
    with a wrong size is refused rather than run."""
    kind = FUSED_KINDS[0]
    fu, fd = kind.filters()
    x, b = small_input(kind, 20)
    plan = tile_plan(x, fu, fd, kind.up, kind.down, list(kind.padding), 16)

    class Wrong(TilePlan):
        @property
        def smem_floats(self) -> int:
            return super().smem_floats - 4

    wrong = Wrong(*plan.params)
    with pytest.raises(AssertionError, match="not the kernel's"):
        tile_run(CpuTileBackend([("float32", plan)]), x, fu, fd, b, plan=wrong, **args(kind))


def _sweep_names() -> set[str]:
    """Every kernel the default plans and benchmarks/flr_sweep.py's candidates make for
    SG3-T/R 1024 (float32 and float16)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from flr_sweep import candidate_tunings

    names = set()
    for kind in FUSED_KINDS:
        fu, fd = kind.filters()
        for size in (kind.in_size, input_size(kind, 532)):
            x = torch.empty(1, 1, size, size, device="meta")
            for t in [None] + candidate_tunings(len(kind.down_shape)):
                kw = {} if t is None else dict(tile=t.tile, threads=t.threads, ry=t.ry or None, uv=t.uv)
                plan = tile_plan(x, fu, fd, kind.up, kind.down, list(kind.padding), **kw)
                names |= {plan.name("float32"), plan.name("float16")}
    return names


def test_tile_kernels_compile_with_nvrtc_for_sm90_without_spills():
    """Every SG3-T/R 1024 plan of the defaults and of the sweep's candidates through NVRTC
    for sm_90 (H100/H200) as CuPy will compile it: no errors, no stack frame (spills), at most
    64 registers a thread (the launch bounds ask for 1024 threads an SM)."""
    from flowml.gpu.nvrtc_offline import EIATTR_FRAME_SIZE, EIATTR_REGCOUNT, compile_cubin, find_nvrtc, kernel_info

    from flowml_gan.fused_tile_source import KERNEL_SOURCE

    if find_nvrtc() is None:
        pytest.skip("no libnvrtc (it comes with torch's CUDA wheels)")
    names = sorted(_sweep_names())
    halves = [names[0::2], names[1::2]]   # two NVRTC programs at once (ctypes lets go of the GIL)
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda part: compile_cubin(KERNEL_SOURCE, part), halves))
    attrs_of = {}
    for part, (cubin, lowered) in zip(halves, built):
        info = kernel_info(cubin)
        attrs_of.update({name: info[lowered[name]] for name in part})
    spilled = {}
    for name in names:
        attrs = attrs_of[name]
        assert 0 < attrs[EIATTR_REGCOUNT] <= 64, (name, attrs)
        if attrs.get(EIATTR_FRAME_SIZE, 0):
            spilled[name] = attrs[EIATTR_FRAME_SIZE]
    # the old unrolled 2-D down stage spills from ry 6 on; the sweep leaves those out
    assert not spilled, spilled


def test_plan_table_defaults_and_overrides(tmp_path, monkeypatch):
    """The plan table: defaults, a JSON file named by FLOWML_GAN_FLR_PLANS (a kind's entry,
    an output size's entry over it), set_plans over both; a bad file says what is wrong."""
    from flowml_gan import fused_tile as ft

    kind = next(k for k in FUSED_KINDS if len(k.down_shape) == 2 and k.up == 4)
    fu, fd = kind.filters()
    x = torch.empty(1, 1, input_size(kind, 532), input_size(kind, 532), device="meta")
    kw = dict(up=kind.up, down=kind.down, padding=list(kind.padding))
    base = ft.tile_plan(x, fu, fd, **kw)
    assert (base.tw, base.threads, base.uv) == (32, ft.THREADS, 3) and base.ry == 8
    ho, wo = ft.output_size(x.shape[2], x.shape[3], kind.up_taps, 12, kind.up, kind.down, kind.padding)
    key = ft.kind_key("float32", kind.up, kind.up_taps, kind.down, 12, 2)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"plans": {key: {"tile": 24, "threads": 256, "ry": 4, "uv": 1},
                                          key + f"@{ho}x{wo + 1}": {"tile": 16}}}))
    monkeypatch.setenv(ft.PLANS_ENV, str(path))
    p = ft.tile_plan(x, fu, fd, **kw)
    assert (p.tw, p.threads, p.ry, p.uv) == (_side(wo, 24), 256, 4, 1)
    assert ft.tile_plan(x.half(), fu, fd, **kw) == base          # another dtype: the defaults
    path2 = tmp_path / "plans2.json"
    path2.write_text(json.dumps({"plans": {key + f"@{ho}x{wo}": {"tile": 16, "ry": 2}}}))
    monkeypatch.setenv(ft.PLANS_ENV, str(path2))
    p = ft.tile_plan(x, fu, fd, **kw)
    assert (p.tw, p.ry, p.threads) == (_side(wo, 16), 2, ft.THREADS)
    try:
        ft.set_plans({"*": ft.Tuning(tile=20, threads=64, ry=3, uv=0)})
        p = ft.tile_plan(x, fu, fd, **kw)
        assert (p.tw, p.ry) == (_side(wo, 16), 2)                  # the size's entry still wins
        assert ft.tile_plan(x.half(), fu, fd, **kw).params[5:] == (_side(wo, 20),) * 2 + (3, 64, 0)
    finally:
        ft.set_plans(None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"plans": {key: {"tile": 32, "rows": 4}}}))
    monkeypatch.setenv(ft.PLANS_ENV, str(bad))
    with pytest.raises(ValueError, match="unknown plan fields.*rows"):
        ft.tile_plan(x, fu, fd, **kw)
    monkeypatch.setenv(ft.PLANS_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="FLOWML_GAN_FLR_PLANS=.*missing.json: cannot read"):
        ft.tile_plan(x, fu, fd, **kw)


def _side(n: int, tile: int) -> int:
    return -(-n // -(-n // tile))
