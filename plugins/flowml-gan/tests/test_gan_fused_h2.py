"""The half2 variants of the one-kernel filtered_lrelu (``TilePlan.uv`` 7 and 15, ``fused_tile.H2``), their
source built with g++ and run on the CPU (``CpuTileBackend``; ``flr_hfma2`` gives
``fma.rn.f16x2``'s bits there):

- the down stage's arithmetic bit for bit against a torch emulation (a layer whose up stage is
  exact: no up-sampling, a one-tap filter of 1, linear, no clamp, so A is the padded input;
  ``uv`` 15 runs its half2 y-up stage there too, exactly);
- SG3-T/R's layer kinds with a down filter (radial and separable) within ``H2_TOL`` of the
  float op on the same float16 inputs;
- plans: the bits only for float16 and a down filter, fewer shared bytes, two columns a thread
  in the 2-D down stage's ``ry`` choice;
- NVRTC for sm_90: the sweep's half2 candidates compile, at most 64 registers, no spills.

``test_gan_fused_cuda.py`` runs the variant on the GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowml_gan.fused_tile import (H2, H2_TOL, CpuTileBackend, Tuning, load_plans, output_size,
                                   tile_plan, tile_run)
from flowml_gan.ops_sg3 import filtered_lrelu

from sg3_layer_kinds import FUSED_KINDS, args, input_size, small_input

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the kernels for the CPU")

RADIAL = [k for k in FUSED_KINDS if len(k.down_shape) == 2]
SEPARABLE = [k for k in FUSED_KINDS if len(k.down_shape) == 1]
# (largest tile side, threads, ry (0: the plan's), uv): the default shape, small tiles with row
# groups past the last row, an odd tile width (the last pair's high half is the next tile's)
# (uv 7: the down stage in half2; 15: the y-up stage too)
H2_TILINGS = [(32, 128, 0, 7), (12, 32, 5, 7), (11, 32, 3, 7), (16, 64, 2, 7),
              (32, 128, 0, 15), (11, 32, 3, 15), (16, 64, 2, 15)]


def _to_half(t: torch.Tensor) -> torch.Tensor:
    """float64 to float16 rounded once (torch's ``.half()`` of a double goes through float)."""
    return torch.from_numpy(t.numpy().astype(np.float16))


def h2_down_ref(a: torch.Tensor, fd: torch.Tensor, down: int, ho: int, wo: int) -> torch.Tensor:
    """The half2 down stage in torch: ``a`` (B, C, UH, UW) float16, the up-sampled tile of the
    whole plane; output (oy, ox) sums filter row ky (flipped: the op convolves) over taps kx in
    tap order, each ``tap * a + part`` rounded once to half (fma.rn.f16x2 per lane, taps rounded
    to half), the rows' sums added in float32 in row order, the result rounded to half. A 1-D
    ``fd`` (separable): along y then along x, each output's taps k = p (mod ``down``) one such
    chain in half, the ``down`` chains' sums added in float32 (p in order) and rounded to half
    (the y pass's output, half, is the x pass's input)."""
    kd = fd.shape[0]
    if fd.ndim == 1:
        taps = fd.flip(0).half().double()

        def one_pass(src: torch.Tensor, n: int, dim: int) -> torch.Tensor:
            acc = 0
            for p in range(down):
                part = 0
                for k in range(p, kd, down):
                    win = src.narrow(dim, k, down * (n - 1) + 1)[(..., slice(None, None, down)) +
                                                                ((slice(None),) if dim == 2 else ())]
                    part = _to_half(taps[k] * win.double() + (part.double() if torch.is_tensor(part) else 0.0))
                acc = acc + part.float()
            return acc.half()

        return one_pass(one_pass(a, ho, 2), wo, 3)
    taps = fd.flip(0, 1).half().double()
    ad = a.double()
    acc = torch.zeros(a.shape[:2] + (ho, wo), dtype=torch.float32)
    for ky in range(kd):
        part = torch.zeros(acc.shape, dtype=torch.float16)
        for kx in range(kd):
            win = ad[..., ky:ky + down * (ho - 1) + 1:down, kx:kx + down * (wo - 1) + 1:down]
            part = _to_half(taps[ky, kx] * win + part.double())
        acc = acc + part.float()
    return acc.half()


@pytest.fixture(scope="module")
def backend():
    return CpuTileBackend()


def _plan(x, fu, fd, up, down, padding, tiling):
    tile, threads, ry, uv = tiling
    return tile_plan(x, fu, fd, up, down, padding, tile, threads, ry or None, uv)


@pytest.mark.parametrize("fdk", [2, 1], ids=["radial", "separable"])
@pytest.mark.parametrize("tiling", H2_TILINGS, ids=lambda t: f"tile{t[0]}-t{t[1]}-ry{t[2]}-v{t[3]}")
def test_h2_down_stage_bits_equal_a_torch_emulation(backend, tiling, fdk):
    fd = (RADIAL if fdk == 2 else SEPARABLE)[0].filters(asymmetric=True)[1]
    fu = torch.ones(1)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(2, 3, 27, 31, generator=g) * 30).half()
    x[0, 0, 5, 5:9] = torch.tensor([1e-5, -3e-6, 6e-8, 0.0]).half()  # subnormal halves
    pad = [5, 4, 3, 6]
    kw = dict(up=1, down=2, padding=pad, gain=1.0, slope=1.0, clamp=None)
    plan = _plan(x, fu, fd, 1, 2, pad, tiling)
    assert plan.uv == tiling[3]
    got = tile_run(backend, x, fu, fd, None, plan=plan, **kw)
    ho, wo = output_size(27, 31, 1, 12, 1, 2, pad)
    a = F.pad(x.float(), pad).half()                  # exact: A is the padded input
    want = h2_down_ref(a, fd, 2, ho, wo)
    assert got.shape == want.shape == (2, 3, ho, wo)
    assert torch.equal(got.view(torch.int16), want.view(torch.int16)), \
        (got.float() - want.float()).abs().max()
    # the emulation is the op (in float) up to half rounding
    op = filtered_lrelu(x.float(), fu, fd, None, **kw)
    assert (want.float() - op).abs().max() < 2e-3 * op.abs().max()


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape and not got.isnan().any()
    return ((got.double() - want.double()).abs().max() / max(1.0, want.abs().max().item())).item()


@pytest.mark.parametrize("kind", RADIAL + SEPARABLE, ids=lambda k: k.id)
def test_h2_within_tolerance_of_the_float_op(backend, kind, record_property):
    """Asymmetric filters, bias, clamp 25 and none; then the layer's own size, StyleGAN3's
    clamp of 256, inputs to 100: float16 output within H2_TOL of the float op on the same
    float16 inputs (the float plan of the same tile: within 2e-3)."""
    fu, fd = kind.filters(asymmetric=True)
    cases = [(small_input(kind, input_size(kind, 37)), 25.0), (small_input(kind, input_size(kind, 37)), None),
             (small_input(kind, min(kind.in_size, 60), channels=2, batch=1, scale=100.0, seed=1), kind.clamp)]
    for (x, b), clamp in cases:
        x = x[..., :x.shape[2]]
        xh, bh = x.half(), b.half()
        kw = args(kind, clamp)
        want = filtered_lrelu(xh.float(), fu, fd, bh.float(), **kw)
        run = {uv: tile_run(backend, xh, fu, fd, bh, plan=_plan(xh, fu, fd, kind.up, kind.down, kw["padding"],
                                                               (32, 128, 0, uv)), **kw) for uv in (3, 7, 15)}
        errs = {uv: _rel_err(y, want) for uv, y in run.items()}
        record_property(f"err_{x.shape[2]}_{clamp}", " ".join(f"uv{uv} {e:.3g}" for uv, e in errs.items()))
        assert errs[3] < 2e-3 and errs[7] < H2_TOL and errs[15] < H2_TOL, errs
        assert not torch.equal(run[7], run[3]) and not torch.equal(run[15], run[7])   # the half2 stages ran


def test_h2_plans():
    """uv 7 / 15 only where they apply (float16 storage and a down filter, 2-D or separable:
    the table may say either for any key; otherwise the float bits); half A's bytes (uv 15
    B's too); ry chosen for two columns a thread in the 2-D down stage."""
    kind = next(k for k in RADIAL if k.up == 4)
    fu, fd = kind.filters()
    size = input_size(kind, 532)
    x16 = torch.empty(1, 1, size, size, device="meta", dtype=torch.float16)
    pad = list(kind.padding)
    h2 = tile_plan(x16, fu, fd, kind.up, kind.down, pad, uv=7)
    flt = tile_plan(x16, fu, fd, kind.up, kind.down, pad, uv=3)
    h2u = tile_plan(x16, fu, fd, kind.up, kind.down, pad, uv=15)
    assert h2u.uv == 15 and h2u.smem_bytes < h2.smem_bytes and h2u.ry == h2.ry
    assert h2.uv & H2 and h2.tw == flt.tw == 32
    a_h2, a_flt = h2.uhp * h2.uwdh * h2.down // 2, flt.uhp * flt.uws
    assert a_h2 <= a_flt // 2 + h2.uhp * h2.down and h2.smem_bytes < 0.7 * flt.smem_bytes
    assert (h2.ry, flt.ry) == (4, 8)                  # 8 x 16 pairs: one wave of 128 threads
    assert tile_plan(x16.float(), fu, fd, kind.up, kind.down, pad, uv=7).uv == 3
    assert tile_plan(x16.float(), fu, fd, kind.up, kind.down, pad, uv=15).uv == 3
    sep = tile_plan(x16, fu, fd[0], kind.up, kind.down, pad, uv=15)             # separable
    assert sep.uv == 15 and sep.smem_bytes < tile_plan(x16, fu, fd[0], kind.up, kind.down, pad, uv=3).smem_bytes
    assert tile_plan(x16, fu, None, kind.up, kind.down, pad, uv=7).uv == 1
    assert Tuning(uv=7).uv == 7


def test_plan_table_reads_uv_7_and_refuses_other_bits(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text('{"plans": {"float16/up2/ku12/down2/kd12/fd2": {"uv": 7}}}')
    assert load_plans(path)["float16/up2/ku12/down2/kd12/fd2"].uv == 7
    path.write_text('{"plans": {"*": {"uv": 15}}}')
    assert load_plans(path)["*"].uv == 15
    path.write_text('{"plans": {"*": {"uv": 5}}}')
    with pytest.raises(ValueError, match="uv 0..3, or 7 / 15"):
        load_plans(path)


def h2_sweep_names() -> set[str]:
    """The half2 kernels of flr_sweep's float16 candidates for SG3-T/R 1024's layers."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from flr_sweep import candidate_tunings

    names = set()
    for kind in RADIAL + SEPARABLE:
        fu, fd = kind.filters()
        for size in (kind.in_size, input_size(kind, 532)):
            x = torch.empty(1, 1, size, size, device="meta", dtype=torch.float16)
            for t in candidate_tunings(len(kind.down_shape), "float16"):
                p = tile_plan(x, fu, fd, kind.up, kind.down, list(kind.padding), t.tile, t.threads,
                              t.ry or None, t.uv)
                if p.uv & H2:
                    names.add(p.name("float16"))
    return names


def test_h2_kernels_compile_with_nvrtc_for_sm90_without_spills(record_property):
    from flowml.gpu.nvrtc_offline import EIATTR_FRAME_SIZE, EIATTR_REGCOUNT, compile_cubin, find_nvrtc, kernel_info

    from flowml_gan.fused_tile_source import KERNEL_SOURCE

    if find_nvrtc() is None:
        pytest.skip("no libnvrtc (it comes with torch's CUDA wheels)")
    names = sorted(h2_sweep_names())
    assert len(names) >= 8
    cubin, lowered = compile_cubin(KERNEL_SOURCE, names)
    info = kernel_info(cubin)
    regs = {}
    for name in names:
        attrs = info[lowered[name]]
        regs[name] = attrs[EIATTR_REGCOUNT]
        assert 0 < attrs[EIATTR_REGCOUNT] <= 64 and not attrs.get(EIATTR_FRAME_SIZE, 0), (name, attrs)
    record_property("registers", regs)


def test_sweep_offers_and_reports_the_h2_variant():
    """flr_sweep: half2 candidates for float16 calls with a down filter (radial or separable)
    only, the candidate's ``uv`` telling them apart; the report's half2 lines
    compare a call's best half2 and best float candidate (rows as ``sweep`` makes them)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from flr_sweep import _is_h2, candidate_tunings, report, table

    assert {t.uv for t in candidate_tunings(2, "float16")} >= {7, 15}
    assert not any(t.uv & H2 for fd in (0, 1, 2) for t in candidate_tunings(fd, "float32"))
    assert {t.uv for t in candidate_tunings(1, "float16")} >= {7, 15}
    assert not any(t.uv & H2 for t in candidate_tunings(0, "float16"))
    h2 = {"tuning": {"tile": 32, "threads": 128, "ry": 0, "uv": 7}, "uv": 7, "ms": 0.5, "max_err": 1e-3,
          "plan": "flr_tile<unsigned short, 4, 24, 2, 12, 2, 32, 32, 4, 128, 7>"}
    flt = {"tuning": "default", "uv": 3, "ms": 0.8, "plan": "flr_tile<unsigned short, 4, 24, 2, 12, 2, 26, 26, 7, 128, 3>"}
    assert _is_h2(h2) and not _is_h2(flt)
    row = {"where": ["sg3-r mixed L10_1044_161"], "dtype": "float16", "input": [1, 161, 532, 532],
           "key": "float16/up4/ku24/down2/kd12/fd2@1044x1044", "candidates": [flt, h2], "best": h2,
           "default_ms": 0.8, "old_ms": None, "h2_best": h2, "float_best": flt}
    lines = report({"device": "x", "torch": "t", "date": "d", "seconds": 1.0, "rows": [row]})
    line = next(x for x in lines if "L10_1044_161" in x and "half2" in x)
    assert "float   0.800  half2   0.500 (1.60x" in line, line
    assert table([row]) == {row["key"]: h2["tuning"]}
