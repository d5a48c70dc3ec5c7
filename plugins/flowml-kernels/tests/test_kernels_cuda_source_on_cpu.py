"""The CUDA C of the WeightedFilter kernels, compiled as C++ for the CPU and run over its grid.

No GPU here, so this is how CI checks the kernels' index arithmetic (taps, flips, borders,
channel blocks, batch offsets) and the bfloat16 rounding against the unfold reference: the
same source ``cuda_source`` gives NVRTC, with ``__global__`` and the thread indices defined
for a loop that plays every thread of the grid in turn. The float16 path (PTX ``cvt``) cannot
run here; the ``cuda`` tests cover it. Needs a C++ compiler (``g++``).
"""

from __future__ import annotations

import ctypes

import pytest
import torch

from flowml.gpu.cuda_c import host_library

from flowml_kernels.cuda_source import filter_source, gather4_source, wgrad_source
from flowml_kernels.cupy_backend import THREADS, channel_block
from flowml_kernels.reference import filter_ref, wgrad_ref

PRELUDE = r"""
#include <cstring>
#define __global__
#define __device__
#define __forceinline__ inline
struct dim3_ { unsigned x, y, z; };
static dim3_ blockIdx, blockDim, threadIdx;
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
"""

DRIVER = r"""
extern "C" void run(const T* a, const T* b, T* out, int C, int H, int W,
                    unsigned gx, unsigned gy, unsigned gz) {
    blockDim = {THREADS_, 1, 1};
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x) for (unsigned t = 0; t < THREADS_; ++t) {
            blockIdx = {x, y, z}; threadIdx = {t, 0, 0};
            KERNEL(a, b, out, C, H, W);
        }
}
"""

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}
TOL = {"float64": 1e-12, "float32": 1e-5, "bfloat16": 1e-2}


def _build(tmp_path, source: str, kernel: str) -> ctypes.CDLL:
    return host_library(PRELUDE + source + DRIVER.replace("KERNEL", kernel).replace("THREADS_", str(THREADS)),
                        tmp_path)


def _raw(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p((t.view(torch.int16) if t.element_size() == 2 else t).data_ptr())


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).abs().max() / ref.abs().max().clamp(min=1e-12)).item()


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 20, 5, 17)], ids=str)
@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_kernel_source_matches_the_reference(tmp_path, dtype, n, shape):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(n)
    x = torch.randn(shape, generator=g).to(DTYPES[dtype])
    wt = torch.randn((b, n * n, h, w), generator=g).to(DTYPES[dtype])
    xd, wd = x.double(), wt.double()
    cb = channel_block(c)
    gx = (h * w + THREADS - 1) // THREADS
    for splat, rows in ((False, 1), (True, 1), (False, 4), (True, 4), (True, 2)):
        lib = _build(tmp_path, filter_source(dtype, n, cb, splat, rows), "wf_filter")
        out = torch.full_like(x, float("nan"))      # every element must be written
        grid_x = ((h + rows - 1) // rows * w + THREADS - 1) // THREADS
        lib.run(_raw(x), _raw(wt), _raw(out), c, h, w, grid_x, (c + cb - 1) // cb, b)
        assert _rel(out, filter_ref(xd, wd, n, splat)) < TOL[dtype], (dtype, n, splat, rows)
    lib = _build(tmp_path, gather4_source(dtype, n, cb), "wf_gather4")
    for width in (w, w - w % 4 or 4):            # ragged quads, then whole (vector) ones
        xs, ws = x[..., :width].contiguous(), wt[..., :width].contiguous()
        out = torch.full_like(xs, float("nan"))
        grid_x = (h * ((width + 3) // 4) + THREADS - 1) // THREADS
        lib.run(_raw(xs), _raw(ws), _raw(out), c, h, width, grid_x, (c + cb - 1) // cb, b)
        assert _rel(out, filter_ref(xs.double(), ws.double(), n, False)) < TOL[dtype], (dtype, n, width)
    lib = _build(tmp_path, wgrad_source(dtype, n), "wf_wgrad")
    gw = torch.full_like(wt, float("nan"))          # every element must be written
    flipped = x.flip(-1).contiguous()               # kept alive: the kernel gets a raw pointer
    lib.run(_raw(x), _raw(flipped), _raw(gw), c, h, w, gx, n, b)
    assert _rel(gw, wgrad_ref(xd, xd.flip(-1), n)) < TOL[dtype]


@pytest.mark.parametrize("n", [9, 15])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_weight_gradient_source_for_large_kernels(tmp_path, dtype, n):
    # N 9 and 15 (the largest): taps reach past every border of a 2 x 3 x 17 x 19 image and
    # the flipped copy is indexed across the whole row; one small shape keeps it fast
    b, c, h, w = 2, 3, 17, 19
    g = torch.Generator().manual_seed(n)
    x = torch.randn((b, c, h, w), generator=g).to(DTYPES[dtype])
    xd = x.double()
    lib = _build(tmp_path, wgrad_source(dtype, n), "wf_wgrad")
    gw = torch.full((b, n * n, h, w), float("nan"), dtype=x.dtype)   # every element must be written
    flipped = x.flip(-1).contiguous()
    lib.run(_raw(x), _raw(flipped), _raw(gw), c, h, w, (h * w + THREADS - 1) // THREADS, n, b)
    assert _rel(gw, wgrad_ref(xd, xd.flip(-1), n)) < TOL[dtype], (dtype, n)
