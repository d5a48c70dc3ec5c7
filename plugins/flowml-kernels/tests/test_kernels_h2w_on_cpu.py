"""The ``h2w`` forward plans (``wf_h2w``, float16) on the CPU: C++ build, fibers, NVRTC report.

``wf_h2w`` walks every channel of the image inside one block, through a double-buffered shared
tile with two ``__syncthreads`` a channel chunk, so the two-phase player of
``test_kernels_plans_on_cpu.py`` (one barrier a kernel) cannot run it. Here each thread of a
block is a fiber (``ucontext``): ``__syncthreads`` hands over to the next thread, and a round
ends when every thread of the block waits at the barrier (or all returned; a block whose threads
split between the two fails the run). Rounds alternate their thread order (0 .. T-1, then T-1 ..
0), the shared tile is poisoned with NaN per block, and the output starts as NaN, so a thread
that reads a chunk before it is copied, or after the next copy overwrote it, or a pixel left
unwritten, shows. ``cp.async`` is a plain copy in the host build (the wait a no-op: the fiber
already holds the data), as on GPUs older than sm_80.

Checked: every ``h2w`` plan gives ``kernels_half2.h2_rows_ref``'s bits (the h2 plans' rounding
and order) and is within the float16 tolerance of the float64 reference, for every N it takes
and C in {3, 32, 33} (one chunk; whole chunks; a last chunk of one channel), B = 2, odd heights,
widths that are and are not a multiple of 4; the harness itself fails a kernel missing its
trailing barrier; NVRTC compiles every plan for sm_90 with no spill (registers reported). The
``bc`` plans' host build broadcasts an input half in C where the GPU uses HFMA2's operand
selector (inline PTX): the same products, so the same bits (the ``cuda`` test checks them).
"""

from __future__ import annotations

import ctypes
import functools
import re

import pytest
import torch

from flowml.gpu.cuda_c import host_library
from flowml.gpu.nvrtc_offline import find_nvrtc, ptxas_report

from flowml_kernels import plans
from flowml_kernels.cuda_source import _HOST_VECTORS, h2w_source
from flowml_kernels.forward_sources import forward_source
from flowml_kernels.reference import filter_ref
from kernels_half2 import h2_rows_ref

NS = (1, 3, 5, 7, 9)
SHAPES = [(2, 3, 11, 20), (1, 32, 7, 68), (1, 33, 9, 13), (1, 3, 19, 21), (1, 33, 6, 72)]
TOL = 2e-3                                               # of max |ref|, as for float16 elsewhere
H2W = sorted(k for k, p in plans.PLANS.items() if p.kernel == "h2w")

PRELUDE = r"""
#include <cstring>
#include <cstdlib>
#include <ucontext.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct dim3_ { unsigned x, y, z; };
static dim3_ blockIdx, blockDim, threadIdx;
enum { WF_READY, WF_BARRIER, WF_DONE };
static ucontext_t wf_main_;
static ucontext_t wf_ctx_[1024];
static int wf_state_[1024], wf_cur_, wf_poison_;
static const void *wf_a_, *wf_b_;
static void* wf_out_;
static int wf_C_, wf_H_, wf_W_;
static const size_t WF_STACK = 128 * 1024;
static char* wf_stacks_;
static void wf_sync_() { wf_state_[wf_cur_] = WF_BARRIER; swapcontext(&wf_ctx_[wf_cur_], &wf_main_); }
#define __syncthreads() wf_sync_()
#define WF_SMEM_HOOK(a) if (wf_poison_) { std::memset(a, 0xff, sizeof(a)); wf_poison_ = 0; }  // NaN
// one block: every thread a fiber from its entry, rounds to each barrier; 0, or 1 when some
// threads returned while others wait at a barrier
static int wf_block_(void (*entry)(), unsigned threads) {
    if (!wf_stacks_) wf_stacks_ = static_cast<char*>(std::malloc(WF_STACK * 1024));
    wf_poison_ = 1;
    for (unsigned t = 0; t < threads; ++t) {
        getcontext(&wf_ctx_[t]);
        wf_ctx_[t].uc_stack.ss_sp = wf_stacks_ + t * WF_STACK;
        wf_ctx_[t].uc_stack.ss_size = WF_STACK;
        wf_ctx_[t].uc_link = &wf_main_;
        makecontext(&wf_ctx_[t], entry, 0);
        wf_state_[t] = WF_READY;
    }
    for (int round = 0;; ++round) {
        for (unsigned k = 0; k < threads; ++k) {
            const unsigned t = round & 1 ? threads - 1 - k : k;
            if (wf_state_[t] == WF_DONE) continue;
            wf_state_[t] = WF_READY; wf_cur_ = (int)t; threadIdx = {t, 0, 0};
            swapcontext(&wf_main_, &wf_ctx_[t]);
        }
        unsigned done = 0;
        for (unsigned t = 0; t < threads; ++t) done += wf_state_[t] == WF_DONE;
        if (done == threads) return 0;
        if (done) return 1;
    }
}
"""

DRIVER = r"""
static void entry_NAME() {
    NAME::KERNEL((const NAME::T*)wf_a_, (const NAME::T*)wf_b_, (NAME::T*)wf_out_, wf_C_, wf_H_, wf_W_);
    wf_state_[wf_cur_] = WF_DONE;
}
extern "C" int run_NAME(const void* a, const void* b, void* out, int C, int H, int W,
                        unsigned gx, unsigned gy, unsigned gz, unsigned threads) {
    wf_a_ = a; wf_b_ = b; wf_out_ = out; wf_C_ = C; wf_H_ = H; wf_W_ = W;
    blockDim = {threads, 1, 1};
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x) {
            blockIdx = {x, y, z};
            if (wf_block_(entry_NAME, threads)) return 1;
        }
    return 0;
}
"""


def _namespace(src: str, kernel: str, ns: str) -> list[str]:
    body = src.replace(_HOST_VECTORS, "").replace('extern "C" ', "")
    undef = [f"#undef {m}\n" for m in sorted(set(re.findall(r"^#define (\w+)", src, re.M)))
             if m != "WF_HOST_VECTORS"]
    return [f"namespace {ns} {{\n{body}\n}}\n", *undef,
            DRIVER.replace("NAME", ns).replace("KERNEL", kernel)]


@functools.cache
def _library(tmp: str, name: str) -> ctypes.CDLL:
    """One shared object with the plan's kernel for every N it takes and each chunk size."""
    plan = plans.PLANS[name]
    parts = [PRELUDE, _HOST_VECTORS]
    for n in NS:
        if plan.unsupported("float16", n, 32):
            continue
        for cb in sorted({plan.channels(s[1]) for s in SHAPES}):
            src, kernel = forward_source(plan, "float16", n, cb)
            parts += _namespace(src, kernel, f"k{n}_{cb}")
    return host_library("".join(parts), tmp, opt="-O0")


@functools.cache
def _case(n: int, shape: tuple[int, int, int, int]):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(n * 100 + c + w)
    x = torch.randn(shape, generator=g).half()
    wt = torch.randn((b, n * n, h, w), generator=g).half()
    return x, wt


def _play(lib: ctypes.CDLL, fn: str, plan: plans.ForwardPlan, n: int, shape) -> torch.Tensor:
    b, c, h, w = shape
    x, wt = _case(n, shape)
    out = torch.full_like(x, float("nan"))               # every element must be written
    gx, gy, gz = plan.grid(b, c, h, w, n)
    ptr = [ctypes.c_void_p(t.data_ptr()) for t in (x, wt, out)]
    rc = getattr(lib, fn)(*ptr, c, h, w, gx, gy, gz, plan.threads())
    assert rc == 0, f"{plan.name} N={n} {shape}: threads of a block split at a barrier"
    return out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("h2w"))


@pytest.mark.parametrize("name", H2W)
def test_h2w_plans_give_the_half2_emulations_bits(tmp, name):
    plan = plans.PLANS[name]
    lib = _library(tmp, name)
    checked = 0
    for n in NS:
        if plan.unsupported("float16", n, 32):
            continue
        for shape in SHAPES:
            x, wt = _case(n, shape)
            got = _play(lib, f"run_k{n}_{plan.channels(shape[1])}", plan, n, shape)
            want = h2_rows_ref(x, wt, n)
            assert torch.equal(got.view(torch.int16), want.view(torch.int16)), (name, n, shape)
            ref = filter_ref(x.double(), wt.double(), n, False)
            err = ((got.double() - ref).abs().max() / ref.abs().max()).item()
            assert err <= TOL, (name, n, shape, err)
            checked += 1
    assert checked >= 3 * len(SHAPES), (name, checked)    # N 3, 5 and 7 at least


def test_the_fiber_player_fails_a_kernel_without_its_trailing_barrier(tmp):
    """Without the barrier after a chunk's sums, a thread refills that buffer with chunk k+2
    while the others still read chunk k: the player must show it (or the test above proves
    nothing about the double buffer)."""
    plan = plans.PLANS["h2w_p2_32x8_cb4"]
    src = h2w_source(3, 4, plan.px, plan.txq, plan.ty)
    barrier = "__syncthreads();                                 // xs_s[BUF(kc)] read by all"
    assert src.count(barrier) == 1
    lib = host_library(PRELUDE + _HOST_VECTORS
                       + "".join(_namespace(src.replace(barrier, "//"), "wf_h2w", "racy")),
                       tmp, opt="-O0")
    shape = (1, 32, 7, 68)                                # 8 chunks of 4 channels
    got = _play(lib, "run_racy", plan, 3, shape)
    want = h2_rows_ref(*_case(3, shape), 3)
    assert not torch.equal(got.view(torch.int16), want.view(torch.int16))


def test_h2w_plans_say_what_they_cannot_run():
    p2, p4 = plans.PLANS["h2w_p2_32x8_cb8"], plans.PLANS["h2w_p4_16x16_cb4"]
    for dtype in ("float32", "bfloat16", "float64"):
        with pytest.raises(ValueError, match="float16 storage only"):
            plans.select(dtype, 32, 5, force=p2.name)
        with pytest.raises(ValueError, match="float16"):
            forward_source(p2, dtype, 5, 8)
    assert p2.unsupported("float16", 9, 33) is None and p4.unsupported("float16", 7, 3) is None
    assert "121 half2 > 100 (N = 11)" in p2.unsupported("float16", 11, 32)
    assert "162 half2 > 100 (N = 9)" in p4.unsupported("float16", 9, 32)
    assert plans.select("float16", 33, 9, force=p2.name) is p2
    with pytest.raises(ValueError, match="2 or 4 pixels"):
        plans._h2w("h2w_bad", 2, 3, 8, 8)                 # 6 px a block row: not whole quads
    with pytest.raises(ValueError, match="bc: 2"):
        plans._h2w("h2w_bad", 4, 16, 8, 8, bc=True)       # bc pairs the weights of two pixels
    with pytest.raises(ValueError, match="pxt 2"):
        h2w_source(5, 8, 4, 16, 8, bc=True)
    b2 = plans.PLANS["h2w_b2_32x8_cb8"]                   # N x (N + 1) paired weights
    assert b2.unsupported("float16", 9, 32) is None
    assert "132 half2 > 100 (N = 11)" in b2.unsupported("float16", 11, 32)
    # one block per tile and image, every channel inside: 64 px x 8 rows, 30 x 135 at 1080p
    assert p2.grid(2, 33, 1080, 1920, 9) == (30 * 135, 2, 1) and p2.threads() == 256
    assert p4.grid(1, 32, 17, 130, 5) == (3 * 2, 1, 1) and p4.channels(3) == 4
    # double-buffered half tile: 2 x 2 bytes x 8 ch x (8 + 8) rows x (64 + 8) columns
    assert p2.smem_bytes(9, 32) == 2 * 2 * 8 * 16 * 72 <= plans.SMEM_LIMIT
    # the table's h2w entries (timed on the H200 and the H100) are plans that run their cases
    for dtype, by_c in plans.FORWARD_TABLE.items():
        for cmax, by_n in by_c.items():
            for nmax, v in by_n.items():
                if plans.PLANS[v].kernel == "h2w":
                    assert dtype == "float16" and plans.PLANS[v].unsupported(dtype, nmax, 32) is None, v
    assert plans.select("float16", 32, 5).name == "h2w_p4_16x16_cb4_g2"
    assert plans.select("float16", 32, 7).name == "h2r_p8_16x8_cb8_m3"
    # bfloat16 has its own row: the half2 plans are float16 only
    assert plans.select("bfloat16", 32, 5).name == "pf_h_smem_16x8_cb8"
    assert plans.select("bfloat16", 32, 9).name == "mma_c16_g4_w8"


@pytest.mark.skipif(find_nvrtc() is None, reason="no libnvrtc (it comes with torch's CUDA wheels)")
@pytest.mark.parametrize("name", H2W)
def test_h2w_plans_compile_with_nvrtc_without_spilling(name):
    """cp.async, the f16x2 FMAs and all N*N half2 weights a thread (pairs: 81 at N = 9) in
    registers for sm_90: no spill, at most 128 registers (2 blocks of 256 threads an SM)."""
    plan = plans.PLANS[name]
    regs = {}
    for n in NS:
        if plan.unsupported("float16", n, 32):
            continue
        info = ptxas_report(forward_source(plan, "float16", n, plan.channels(32))[0])
        assert info["spill_stores"] == 0 and info["spill_loads"] == 0, (name, n, info)
        assert info["registers"] <= 128, (name, n, info)
        regs[n] = info["registers"]
    assert set(regs) >= {1, 3, 5, 7}, (name, regs)
    print(name, "registers by N:", regs)
