"""Every forward plan (``plans.PLANS``) compiled as C++ for the CPU and run over its real grid.

The CUDA C of each plan's kernel, for N in {3, 5, 9, 15} (one namespace each, one g++ run per
plan and dtype), played block by block: a block's threads run in turn, twice where the kernel
stages its input in shared memory (the tile poisoned with NaN first, then ``__syncthreads``
ends a thread's first pass, so the second pass finds the whole tile loaded). Checked against the unfold reference on shapes that cover
C in {1, 3, 8, 32}, B > 1, odd heights, widths that are and are not a multiple of 4 (vector and
scalar paths) and of the tile, the kernel larger than the image (borders). Every plan in each of
float32, float16 (``_Float16`` on the host, PTX ``cvt`` on the GPU) and bfloat16 it takes; splat
through ``rows``. The tensor-core plans (``wf_mma``) run their warp's cooperative work in each
thread and emulate ``mma.sync`` from all lanes' fragment registers (``mma_source``), so their
fragment indexing is checked against the PTX ISA layout. The prefetching ``wf_tile`` plans
(``pf``) must also give their plain twins' output bit for bit (the same sums in the same order;
only loads move). The half2 plans (``h2``, float16 only: each tap row summed in half2, then
in float) must give ``kernels_half2.h2_rows_ref``'s bits (that rounding, that order), whatever
their pf bits. Needs g++ >= 12.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import re

import pytest
import torch

from flowml.gpu.cuda_c import host_library

from flowml_kernels import plans
from flowml_kernels.cupy_backend import plan_kernel  # noqa: F401  (the backend imports cleanly)
from flowml_kernels.cuda_source import _HOST_VECTORS
from flowml_kernels.forward_sources import forward_source
from flowml_kernels.reference import filter_ref
from kernels_half2 import h2_rows_ref

NS = (3, 5, 9, 15)
SHAPES = [(2, 3, 11, 20), (1, 8, 9, 13), (1, 1, 5, 36), (1, 32, 7, 68), (2, 3, 19, 21)]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TOL = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}

PRELUDE = r"""
#include <cstring>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct dim3_ { unsigned x, y, z; };
static dim3_ blockIdx, blockDim, threadIdx;
static int wf_phase_ = 1;
#define __syncthreads() if (wf_phase_ == 0) return
#define __syncwarp()
#define WF_SMEM_HOOK(a) if (wf_phase_ < 0) { std::memset(a, 0xff, sizeof(a)); return; }  // NaN
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
"""

DRIVER = r"""
extern "C" void run_NAME(const void* a, const void* b, void* out, int C, int H, int W,
                         unsigned gx, unsigned gy, unsigned gz, unsigned threads, int phases) {
    using namespace NAME;
    blockDim = {threads, 1, 1};
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x)
            for (int ph = phases > 1 ? -1 : 1; ph < 2; ++ph)
                for (unsigned t = 0; t < (ph < 0 ? 1u : threads); ++t) {
                wf_phase_ = ph; blockIdx = {x, y, z}; threadIdx = {t, 0, 0};
                KERNEL((const T*)a, (const T*)b, (T*)out, C, H, W);
            }
}
"""


def _cbs(plan: plans.ForwardPlan) -> list[int]:
    return sorted({plan.channels(s[1]) for s in SHAPES})


@functools.cache
def _library(tmp: str, name: str, dtype: str, splat: bool) -> ctypes.CDLL:
    """One shared object with the plan's kernel for every N and channel block."""
    plan = plans.PLANS[name]
    parts = [PRELUDE, _HOST_VECTORS]   # the vector types once, outside the namespaces
    for n in NS:
        for cb in _cbs(plan):
            src, kernel = forward_source(plan, dtype, n, cb, splat)
            ns = f"k{n}_{cb}"
            body = src.replace(_HOST_VECTORS, "").replace('extern "C" ', "")
            parts.append(f"namespace {ns} {{\n{body}\n}}\n")
            parts += [f"#undef {m}\n" for m in sorted(set(re.findall(r"^#define (\w+)", src, re.M)))
                      if m != "WF_HOST_VECTORS"]
            parts.append(DRIVER.replace("NAME", ns).replace("KERNEL", kernel))
    return host_library("".join(parts), tmp, opt="-O0")


@functools.cache
def _case(dtype: str, n: int, shape: tuple[int, int, int, int], splat: bool):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(n * 100 + c)
    x = torch.randn(shape, generator=g).to(DTYPES[dtype])
    wt = torch.randn((b, n * n, h, w), generator=g).to(DTYPES[dtype])
    return x, wt, filter_ref(x.double(), wt.double(), n, splat)


def _raw(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _run(tmp: str, name: str, dtype: str, n: int, shape, splat: bool = False) -> torch.Tensor:
    """The plan's kernel over its grid on the case's inputs (the output starts as NaN)."""
    plan = plans.PLANS[name]
    lib = _library(tmp, name, dtype, splat)
    b, c, h, w = shape
    x, wt, _ = _case(dtype, n, shape, splat)
    out = torch.full_like(x, float("nan"))               # every element must be written
    gx, gy, gz = plan.grid(b, c, h, w, n)
    run = getattr(lib, f"run_k{n}_{plan.channels(c)}")
    run(_raw(x), _raw(wt), _raw(out), c, h, w, gx, gy, gz, plan.threads(), 2 if plan.smem else 1)
    return out


def _check(tmp: str, name: str, dtype: str, splat: bool = False) -> None:
    plan = plans.PLANS[name]
    for n in NS:
        for shape in SHAPES:
            if plan.unsupported(dtype, n, shape[1]):
                continue
            ref = _case(dtype, n, shape, splat)[2]
            out = _run(tmp, name, dtype, n, shape, splat)
            err = ((out.double() - ref).abs().max() / ref.abs().max()).item()
            assert err < TOL[dtype], (name, dtype, n, shape, splat, err)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("plans"))


# every plan in each of float32, float16 and bfloat16 it takes (tensor cores: 16-bit storage
# only)
CASES = [(name, dtype) for name, plan in plans.PLANS.items() for dtype in DTYPES
         if plan.unsupported(dtype, 3, 1) is None and plan.kernel != "h2w"]
# h2w (two barriers a channel chunk): played by fibers in test_kernels_h2w_on_cpu.py


@pytest.mark.parametrize("name,dtype", CASES)
def test_every_forward_plan_matches_the_reference(tmp, name, dtype):
    _check(tmp, name, dtype)


def _plain(plan: plans.ForwardPlan) -> str:
    """The PLANS name of ``plan`` without prefetching (the same blocking, pf 0)."""
    return next(k for k, p in plans.PLANS.items()
                if dataclasses.replace(p, name=plan.name) == dataclasses.replace(plan, pf=0))


PF_CASES = [(name, dtype) for name, plan in plans.PLANS.items() if plan.pf and not plan.h2
            for dtype in ("float32", "bfloat16")]


@pytest.mark.parametrize("name,dtype", PF_CASES)
def test_prefetching_plans_give_the_plain_plans_bits(tmp, name, dtype):
    """pf moves loads earlier and nothing else: the same sums in the same order, so the same
    output bits as the plan without it, borders and the scalar path (W % 4 != 0) included."""
    plan, plain = plans.PLANS[name], _plain(plans.PLANS[name])
    assert plan.pf and not plans.PLANS[plain].pf
    checked = 0
    for n in NS:
        for shape in SHAPES:
            if plan.unsupported(dtype, n, shape[1]):
                continue
            got, want = _run(tmp, name, dtype, n, shape), _run(tmp, plain, dtype, n, shape)
            assert torch.equal(got.view(torch.int16 if dtype != "float32" else torch.int32),
                               want.view(torch.int16 if dtype != "float32" else torch.int32)), \
                (name, plain, dtype, n, shape)
            checked += 1
    assert checked >= 2 * len(SHAPES), checked           # N 3 and 5 at least, every shape


H2 = sorted(name for name, plan in plans.PLANS.items() if plan.h2)


@pytest.mark.parametrize("name", H2)
def test_half2_plans_give_the_half2_emulations_bits(tmp, name):
    """h2: the same N fp16 FMAs a tap row (one rounding each), the same float row sums, in the
    same order as ``h2_rows_ref``: its bits for every N and shape, borders and W % 4 != 0
    included; within the float16 tolerance of the float64 reference (``_check``)."""
    plan = plans.PLANS[name]
    assert plan.unsupported("float32", 3, 1) and plan.unsupported("bfloat16", 3, 1)
    checked = 0
    for n in NS:
        for shape in SHAPES:
            if plan.unsupported("float16", n, shape[1]):
                continue
            x, wt, _ = _case("float16", n, shape, False)
            got, want = _run(tmp, name, "float16", n, shape), h2_rows_ref(x, wt, n)
            assert torch.equal(got.view(torch.int16), want.view(torch.int16)), (name, n, shape)
            checked += 1
    assert checked == len(NS) * len(SHAPES), checked


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_splat_through_rows_for_large_kernels(tmp, dtype):
    _check(tmp, "rows", dtype, splat=True)


def test_the_table_names_plans_that_run_its_cases():
    for dtype, by_c in plans.FORWARD_TABLE.items():
        for cmax, by_n in by_c.items():
            for nmax, name in by_n.items():
                assert name in plans.PLANS, (dtype, cmax, nmax, name)
                c = min(cmax, 64)
                assert plans.PLANS[name].unsupported(dtype, nmax, c) is None, (dtype, cmax, nmax)


def test_select_falls_back_and_force_checks():
    assert plans.select("float64", 3, 5).name == plans.FALLBACK
    assert plans.select("float32", 3, 5, force="gather4").name == "gather4"
    with pytest.raises(KeyError, match="no WeightedFilter forward plan"):
        plans.select("float32", 3, 5, force="nope")
    with pytest.raises(ValueError, match="shared memory"):
        plans.select("float32", 32, 15, force="smem_32x4_cb8")
    with pytest.raises(ValueError, match="wf_tile accumulates in float"):
        plans.select("float64", 3, 5, force="smem_16x8_cb8")
    with pytest.raises(ValueError, match="tensor-core plans take float16 or bfloat16"):
        plans.select("float32", 32, 9, force="mma_c32_g4_w4")
    assert plans.select("bfloat16", 32, 9, force="mma_c16_g4_w8").kernel == "mma"
    wide = plans.ForwardPlan("wide", "tile", cb=32)
    assert "too many registers" in wide.unsupported("float32", 9, 32)
    assert wide.unsupported("float32", 9, 16) is None
    # pf 1 holds the next tap row's weights too: N raw quads, 4 registers each for float32, 2
    # for 16-bit storage (16 x 4 + 15 x 4 = 124 without; + 60 or + 30 with)
    pf = plans.ForwardPlan("pf", "tile", cb=16, pf=1)
    assert wide.unsupported("float32", 15, 16) is None
    assert "too many registers (184 > 128)" in pf.unsupported("float32", 15, 16)
    assert "too many registers (154 > 128)" in pf.unsupported("bfloat16", 15, 16)
    assert pf.unsupported("float16", 9, 4) is None                  # 16 + 36 + 18
    assert "too many registers" in plans.PLANS["pf_l1_32x8_cb4"].unsupported("float32", 15, 32)
    assert plans.PLANS["pf_l1_32x8_cb4"].unsupported("float16", 15, 32) is None   # 106
    hint = plans.ForwardPlan("hint", "tile", cb=16, pf=6, smem=True)  # hints hold no registers
    assert "registers" not in (hint.unsupported("float32", 15, 16) or "")


def test_half2_plans_refuse_other_dtypes_and_count_their_registers():
    from flowml_kernels.cuda_source import tile_source

    for dtype in ("float32", "bfloat16", "float64"):
        with pytest.raises(ValueError, match="cannot run"):
            plans.select(dtype, 32, 9, force="h2_t_smem_16x8_cb8")
    with pytest.raises(ValueError, match="float16 storage, smem and pf bit 2"):
        tile_source("bfloat16", 5, 8, 16, 8, True, pf=2, h2=True)
    with pytest.raises(ValueError, match="raw 16-bit tile that pf bit 2 fills"):
        plans._tile("h2_x", 8, 16, 8, True, pf=0, h2=True)
    h2 = plans.PLANS["h2_t_smem_16x8_cb8"]
    assert plans.select("float16", 32, 9, force=h2.name) is h2
    # the tile in 16-bit words: half of the float tile's bytes (N = 15 fits where it did not)
    assert h2.smem_bytes(9, 32) * 2 == plans.PLANS["pf_t_smem_16x8_cb8"].smem_bytes(9, 32)
    assert h2.unsupported("float16", 15, 32) is None               # 28160 bytes; 32 + 15 x 2
    assert "shared memory" in plans.PLANS["pf_t_smem_16x8_cb8"].unsupported("float16", 15, 32)
    # registers: 8 x 4 accumulators + 15 x 2 raw weights + 15 x 2 prefetched = 92 (float: 152)
    assert plans.PLANS["h2_pf_smem_16x8_cb8"].unsupported("float16", 15, 32) is None
    wide = plans.ForwardPlan("wide_h2", "tile", cb=16, txq=8, smem=True, pf=3, h2=True)
    assert wide.unsupported("float16", 15, 32) is None             # 64 + 30 + 30 = 124
    assert "too many registers (164 > 128)" in dataclasses.replace(wide, cb=32).unsupported(
        "float16", 9, 32)                                          # 128 + 18 + 18


def test_tile_and_mma_plans_cover_the_image():
    tile = plans.PLANS["smem_32x4_cb8"]                   # 4 rows x 128 px a block, 8 channels
    assert tile.threads() == 128 and tile.channels(32) == 8 and tile.channels(3) == 4
    assert tile.grid(2, 32, 17, 130, 5) == (2 * 5 * 4, 2, 1)
    assert tile.smem_bytes(5, 32) == 4 * 8 * (4 + 4) * (128 + 8)
    mma = plans.PLANS["mma_c16_g4_w8"]                    # 8 warps = 8 rows x 32 px, 16 channels
    assert mma.threads() == 256 and mma.channels(3) == 16 and mma.channels(32) == 16
    assert mma.grid(2, 32, 17, 130, 9) == (5 * 3 * 2, 2, 1)
    assert plans.PLANS["mma_c32_g4_w4"].channels(20) == 32
    # tile 32 ch x (12 rows x 48 cols, padded to 584) + band 4 warps x 4 groups x 208 halves
    assert plans.PLANS["mma_c32_g4_w4"].smem_bytes(9, 32) == 2 * (32 * 584 + 4 * 4 * 208)
    assert "shared memory" in plans.PLANS["mma_c32_g4_w4"].unsupported("float16", 15, 32)
