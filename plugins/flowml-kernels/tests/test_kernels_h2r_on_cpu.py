"""The ``h2r`` forward plans (``wf_h2r``, float16 "register rows") on the CPU: C++ build, NVRTC.

The kernel's CUDA C is built as C++ and played block by block by the fiber player of
``test_kernels_h2w_on_cpu.py`` (each thread a fiber, ``__syncthreads`` a hand-over, thread
order alternating, the shared tile poisoned with NaN per block, the output starting as NaN).
Checked: every ``h2r`` plan gives ``kernels_half2.h2_rows_ref``'s bits (the h2 plans' rounding:
a tap row's N taps in ``fma.rn.f16x2`` from +0 in tap order, the row sums added in float in row
order) and is within the float16 tolerance of the float64 reference, for N in {5, 7, 9}, C in
{5, 8, 32} (a channel remainder, one block, several), B = 2, odd heights, widths that are not a
multiple of 4 (scalar weights and tile), of 4 but not 8 (8-pixel plans: scalar weights, vector
tile) and of 8 wider than a block's tile; NVRTC compiles each plan for sm_90 with no spill
(registers printed).
"""

from __future__ import annotations

import functools

import pytest
import torch

from flowml.gpu.cuda_c import host_library
from flowml.gpu.nvrtc_offline import find_nvrtc, ptxas_report

from flowml_kernels import plans
from flowml_kernels.cuda_source import _HOST_VECTORS, h2r_source
from flowml_kernels.forward_sources import forward_source
from flowml_kernels.reference import filter_ref
from kernels_half2 import h2_rows_ref
from test_kernels_h2w_on_cpu import PRELUDE, _namespace

NS = (5, 7, 9)
SHAPES = [(2, 5, 11, 21), (2, 8, 9, 136), (2, 32, 7, 36), (2, 32, 17, 24)]
TOL = 2e-3                                               # of max |ref|, as for float16 elsewhere
H2R = sorted(k for k, p in plans.PLANS.items() if p.kernel == "h2r")


@functools.cache
def _library(tmp: str, name: str):
    """One shared object with the plan's kernel for every N and channel block of ``SHAPES``."""
    plan = plans.PLANS[name]
    parts = [PRELUDE, _HOST_VECTORS]
    for n in NS:
        for cb in sorted({plan.channels(s[1]) for s in SHAPES}):
            src, kernel = forward_source(plan, "float16", n, cb)
            parts += _namespace(src, kernel, f"k{n}_{cb}")
    return host_library("".join(parts), tmp, opt="-O0")


def _case(n: int, shape: tuple[int, int, int, int]):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(n * 1000 + c * 10 + w)
    return torch.randn(shape, generator=g).half(), torch.randn((b, n * n, h, w), generator=g).half()


def _play(lib, plan: plans.ForwardPlan, n: int, x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    import ctypes

    b, c, h, w = x.shape
    out = torch.full_like(x, float("nan"))               # every element must be written
    gx, gy, gz = plan.grid(b, c, h, w, n)
    ptr = [ctypes.c_void_p(t.data_ptr()) for t in (x, wt, out)]
    rc = getattr(lib, f"run_k{n}_{plan.channels(c)}")(*ptr, c, h, w, gx, gy, gz, plan.threads())
    assert rc == 0, f"{plan.name} N={n} {tuple(x.shape)}: threads of a block split at a barrier"
    return out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("h2r"))


@pytest.mark.parametrize("name", H2R)
def test_h2r_plans_give_the_half2_emulations_bits(tmp, name):
    plan = plans.PLANS[name]
    lib = _library(tmp, name)
    for n in NS:
        for shape in SHAPES:
            assert plan.unsupported("float16", n, shape[1]) is None, (name, n, shape)
            x, wt = _case(n, shape)
            got = _play(lib, plan, n, x, wt)
            want = h2_rows_ref(x, wt, n)
            assert torch.equal(got.view(torch.int16), want.view(torch.int16)), (name, n, shape)
            ref = filter_ref(x.double(), wt.double(), n, False)
            err = ((got.double() - ref).abs().max() / ref.abs().max()).item()
            assert err <= TOL, (name, n, shape, err)


def test_h2r_plans_say_what_they_cannot_run():
    p8, p4 = plans.PLANS["h2r_p8_16x8_cb8"], plans.PLANS["h2r_p4_16x8_cb16_m4"]
    for dtype in ("float32", "bfloat16", "float64"):
        with pytest.raises(ValueError, match="float16 storage only"):
            plans.select(dtype, 32, 9, force=p8.name)
        with pytest.raises(ValueError, match="float16"):
            forward_source(p8, dtype, 9, 8)
    with pytest.raises(ValueError, match="4 or 8 pixels"):
        plans._h2r("h2r_bad", 2, 16, 8, 8)
    with pytest.raises(ValueError, match="pxt is 4 or 8"):
        h2r_source(9, 8, 2, 16, 8)
    # 8 ch x 8 px + 15 x 4 weights + 12 words of the row segment
    wide = plans.PLANS["h2r_p8_16x8_cb4_m4"]
    assert "136 registers > 128 (N = 15)" in plans.ForwardPlan(
        "x", "h2r", 8, 8, 8, True, px=8).unsupported("float16", 15, 32)
    assert wide.unsupported("float16", 15, 32) is None    # 32 + 60 + 12
    assert "shared memory" in p4.unsupported("float16", 15, 32)
    # the tile: CB channels x (TY + N - 1) rows x (TXQ * px + 2 x 4) half words, one buffer
    assert p8.smem_bytes(9, 32) == 2 * 8 * 16 * 136 <= plans.SMEM_LIMIT
    assert p8.threads() == 128 and p8.channels(5) == 8 and p4.channels(32) == 16
    # channel blocks the fastest grid index: 15 x 135 tiles of 128 x 8 px at 1080p, 4 blocks each
    assert p8.grid(2, 32, 1080, 1920, 9) == (15 * 135 * 4, 2, 1)
    assert p4.grid(1, 33, 17, 130, 5) == (3 * 3 * 3, 1, 1)
    assert "__launch_bounds__(TXQ * TY, 4)" in forward_source(p4, "float16", 9, 16)[0]
    assert "__launch_bounds__(TXQ * TY) wf_h2r(" in forward_source(p8, "float16", 9, 8)[0]
    # the table's h2r entries (timed on the H200) are float16 plans that run every C > 4 and
    # N up to their bound (select would fall back to gather4 where they could not)
    for dtype, by_c in plans.FORWARD_TABLE.items():
        for cmax, by_n in by_c.items():
            for nmax, v in by_n.items():
                if plans.PLANS[v].kernel == "h2r":
                    assert dtype == "float16" and cmax > 4, v
                    assert all(plans.PLANS[v].unsupported(dtype, n, c) is None
                               for n in range(1, nmax + 1, 2) for c in (5, 8, 13, 32, 64)), v
    assert plans.select("float16", 32, 9).name == "h2r_p8_16x8_cb8_m3"
    assert plans.select("float16", 5, 9).name == "h2r_p8_16x8_cb8_m3"


# Spill bytes (stores, loads) a plan may have at N = 9. The pipelined p8 cb8 plans at three blocks
# an SM (168 registers) keep a few addresses in local memory: in nvdisasm's SASS (NVRTC 13,
# sm_90) two LDL a tap row where its weights load, the rest before the row loop and after it;
# none among the channels' FMAs, so they are kept as plans (to be timed against their twins).
SPILLS_AT_N9 = {"h2r_p8_16x8_cb8_m3_pipe": (32, 44), "h2r_p8_8x16_cb8_m3_pipe": (32, 44)}


@pytest.mark.skipif(find_nvrtc() is None, reason="no libnvrtc (it comes with torch's CUDA wheels)")
@pytest.mark.parametrize("name", H2R)
def test_h2r_plans_compile_with_nvrtc_without_spilling(name):
    """The f16x2 FMAs, cp.async, LDS.64/128 and a tap row's weights for sm_90: no spill at the
    benchmark's N = 5 and 9 (C = 32; at N = 9 ``SPILLS_AT_N9``'s exact bytes for the plans it
    names), registers reported (ptxas' -v)."""
    plan = plans.PLANS[name]
    regs = {}
    for n in (5, 9):
        info = ptxas_report(forward_source(plan, "float16", n, plan.channels(32))[0])
        spills = SPILLS_AT_N9.get(name, (0, 0)) if n == 9 else (0, 0)
        assert (info["spill_stores"], info["spill_loads"]) == spills, (name, n, info)
        assert info["registers"] <= 255, (name, n, info)
        if plan.mb:                                       # the bound holds mb blocks an SM
            assert info["registers"] * plan.threads() * plan.mb <= 65536, (name, n, info)
        regs[n] = info["registers"]
    print(name, "registers by N:", regs)
