"""CUDA C source of the filtered leaky ReLU's kernels (``fused.py`` launches them with CuPy).

Written for flowml from the definition of the op (``ops_sg3.filtered_lrelu``; NVIDIA's
``filtered_lrelu`` computes the same sums): three thread-per-output kernels, no shared state,

- ``flr_fir_x`` / ``flr_fir_y``: one axis of an up-sampling FIR with padding and an optional
  down-sampling stride, ``out[o] = sum_k f[k] * z[o * DOWN + k]`` where ``z`` is the input
  zero-stuffed by ``UP`` and shifted by ``P0`` (``f`` comes flipped and scaled); the x pass may
  add the bias first, the y pass may finish with ``gain``, leaky ReLU and clamp (EPI);
- ``flr_fir2d_down``: a 2-D filter (StyleGAN3-R's radial one) with a stride, no padding.

Only the taps that meet a non-zero sample are read (``UP`` divides ``s``), the stride is in the
index, so nothing is computed to be thrown away. Storage float32 or float16 (raw 16-bit words,
converted with PTX ``cvt``; accumulation in float). The same source compiles as C++ on the
CPU (``CPU_TEST``), which the tests use to check the index arithmetic without a GPU.
"""

from __future__ import annotations

from flowml.gpu.cuda_c import ELEMENT_ACCESS

_LOADS = {k: ELEMENT_ACCESS[k] for k in ("float32", "float16")}  # flowml.gpu.cuda_c

_HEAD = r"""
#ifndef __CUDACC__
#include <cstring>
#define __global__
#define __device__
#define __forceinline__ inline
#endif
typedef long long i64;
__device__ __forceinline__ float ld(const {T}* p, i64 i) {{ {LD} }}
__device__ __forceinline__ void st({T}* p, i64 i, float v) {{ {ST} }}
"""

_FIR1D = r"""
// x (N, H, W) -> y (N, Ho, Wo), one axis (AXIS 0: along W, 1: along H)
__device__ __forceinline__ void fir1d_at(i64 i, const {T}* x, {T}* y, const float* f, const float* bias,
        int C, int H, int W, int Ho, int Wo, int P0, float gain, float slope, float clamp) {{
    const int ox = (int)(i % Wo);
    const int oy = (int)((i / Wo) % Ho);
    const i64 n = i / ((i64)Wo * Ho);
    const int o = {AXIS} == 0 ? ox : oy;
    const int L = {AXIS} == 0 ? W : H;
    const i64 base = {AXIS} == 0 ? (n * H + oy) * (i64)W : n * (i64)H * W + ox;
    const i64 step = {AXIS} == 0 ? 1 : W;
    float acc = 0.f;
    #pragma unroll
    for (int k = 0; k < {K}; ++k) {{
        const int s = o * {DOWN} + k - P0;
        if (s < 0 || s % {UP} != 0) continue;
        const int src = s / {UP};
        if (src >= L) continue;
        acc += f[k] * ld(x, base + src * step);
    }}
    if ({BIAS}) {{  // bias added to every real sample before zero-stuffing: sum of the taps used
        float fs = 0.f;
        #pragma unroll
        for (int k = 0; k < {K}; ++k) {{
            const int s = o * {DOWN} + k - P0;
            if (s < 0 || s % {UP} != 0 || s / {UP} >= L) continue;
            fs += f[k];
        }}
        acc += fs * bias[n % C];
    }}
    if ({EPI}) {{
        acc *= gain;
        if (acc < 0.f) acc *= slope;
        if (clamp >= 0.f) acc = acc > clamp ? clamp : (acc < -clamp ? -clamp : acc);
    }}
    st(y, i, acc);
}}

extern "C" __global__ void {NAME}(const {T}* x, {T}* y, const float* f, const float* bias, i64 total,
        int C, int H, int W, int Ho, int Wo, int P0, float gain, float slope, float clamp) {{
#ifdef __CUDACC__
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) fir1d_at(i, x, y, f, bias, C, H, W, Ho, Wo, P0, gain, slope, clamp);
#else
    for (i64 i = 0; i < total; ++i) fir1d_at(i, x, y, f, bias, C, H, W, Ho, Wo, P0, gain, slope, clamp);
#endif
}}
"""

_FIR2D = r"""
// x (N, H, W) -> y (N, Ho, Wo): y[o] = sum f[ky, kx] x[oy * DOWN + ky, ox * DOWN + kx]
__device__ __forceinline__ void fir2d_at(i64 i, const {T}* x, {T}* y, const float* f,
        int H, int W, int Ho, int Wo) {{
    const int ox = (int)(i % Wo);
    const int oy = (int)((i / Wo) % Ho);
    const i64 n = i / ((i64)Wo * Ho);
    const {T}* p = x + (n * H + (i64)oy * {DOWN}) * W + (i64)ox * {DOWN};
    float acc = 0.f;
    for (int ky = 0; ky < {KH}; ++ky) {{
        #pragma unroll
        for (int kx = 0; kx < {KW}; ++kx) acc += f[ky * {KW} + kx] * ld(p, (i64)ky * W + kx);
    }}
    st(y, i, acc);
}}

extern "C" __global__ void {NAME}(const {T}* x, {T}* y, const float* f, i64 total, int H, int W, int Ho, int Wo) {{
#ifdef __CUDACC__
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) fir2d_at(i, x, y, f, H, W, Ho, Wo);
#else
    for (i64 i = 0; i < total; ++i) fir2d_at(i, x, y, f, H, W, Ho, Wo);
#endif
}}
"""


def _head(dtype: str) -> str:
    t, ld, st = _LOADS[dtype]
    return _HEAD.format(T=t, LD=ld, ST=st)


def fir1d_source(dtype: str, axis: int, k: int, up: int, down: int, bias: bool, epi: bool,
                 name: str = "flr_fir1d") -> str:
    """Kernel ``name``: one axis of an up/down FIR (see the module docstring)."""
    t = _LOADS[dtype][0]
    return _head(dtype) + _FIR1D.format(T=t, AXIS=int(axis), K=int(k), UP=int(up), DOWN=int(down),
                                        BIAS=int(bias), EPI=int(epi), NAME=name)


def fir2d_source(dtype: str, kh: int, kw: int, down: int, name: str = "flr_fir2d_down") -> str:
    """Kernel ``name``: a strided 2-D FIR without padding."""
    t = _LOADS[dtype][0]
    return _head(dtype) + _FIR2D.format(T=t, KH=int(kh), KW=int(kw), DOWN=int(down), NAME=name)
