"""CUDA C source of StyleGAN2's fused kernels (``sg2_fused.py`` launches them with CuPy).

Written for flowml from the definition of the ops in ``ops.py`` (NVIDIA's reference ops compute
the same): two kernels, thread per output, shapes as compile-time constants (one source per
layer shape, so index arithmetic is shifts and multiplies):

- ``sg2_modulate``: a modulated convolution's per-sample weight, one block of 256 threads per
  (sample, output channel): ``w[o, i, k] * s[i] * sgain``, demodulated by
  ``rsqrt(sum_ik (w * s)^2 + 1e-8)`` (block tree reduction), written in the layout the
  convolution takes (``(B*O, I, kh, kw)``, or ``(B*I, O, kh, kw)`` for a transposed one),
  optionally flipped, in the storage type;
- ``sg2_fir_epi``: an FIR over the input zero-stuffed by ``UP`` and padded (``out[o] = sum_k
  f'[k] z[o + k - P0]``, ``f' = flip(f * fgain)`` rounded to the storage type; only the taps
  that meet a real sample are read), then StyleGAN2's epilogue: noise ``n[h, w] * strength``,
  bias, leaky ReLU / ReLU, gain, clamp, and optionally an addend of another dtype. With a 1x1
  filter of 1 and no stuffing it is the bare epilogue (in place: each output reads only its own
  input). That one pass replaces the reference's pad, depthwise convolution and five
  elementwise passes (add noise, add bias, activation, gain, clamp) over the image.

Every elementwise step rounds to the storage type as PyTorch's ops do (``rnd``) and uses
unfused multiplies and adds (``MUL``/``ADD``: ``__fmul_rn``/``__fadd_rn`` on the GPU), so the
epilogue equals the reference bit for bit; the FIR and the reduction sum in float in their own
order (equal to rounding). The same source compiles as C++ on the CPU (no ``__CUDACC__``: the
kernel loops over its threads and blocks), which the tests use to check it without a GPU.
"""

from __future__ import annotations

from flowml.gpu.cuda_c import ELEMENT_ACCESS

__all__ = ["modulate_source", "fir_epi_source", "THREADS", "ACTS", "NOISE_KINDS"]

THREADS = 256
"""Threads a block (the launcher's; ``sg2_modulate`` reduces over one block)."""

ACTS = {"linear": 0, "lrelu": 1, "relu": 2}
NOISE_KINDS = {"none": 0, "shared": 1, "per_sample": 2}
"""Noise ``(H, W)`` for every sample, or ``(B, H, W)``."""

_LOADS = {k: ELEMENT_ACCESS[k] for k in ("float32", "float16")}

_HEAD = r"""
#ifndef __CUDACC__
#include <cstring>
#include <cmath>
#define __global__
#define __device__
#define __forceinline__ inline
#endif
#ifdef __CUDA_ARCH__
#define MUL(a, b) __fmul_rn(a, b)
#define ADD(a, b) __fadd_rn(a, b)
#define RSQRT(a) rsqrtf(a)
#else
#define MUL(a, b) ((a) * (b))
#define ADD(a, b) ((a) + (b))
#define RSQRT(a) (1.f / std::sqrt(a))
#endif
typedef long long i64;
typedef {IDX} idx_t;
__device__ __forceinline__ float ld(const {T}* p, i64 i) {{ {LD} }}
__device__ __forceinline__ void st({T}* p, i64 i, float v) {{ {ST} }}
__device__ __forceinline__ float rnd(float v) {{ {T} t; st(&t, 0, v); return ld(&t, 0); }}
"""

_ADDEND_HEAD = r"""
__device__ __forceinline__ float ld_a(const {TA}* p, i64 i) {{ {LD} }}
"""

_MODULATE = r"""
// weight (O, I*K) float, styles (B, I) float -> out (B*O, I, K) or, TRANSPOSE, (B*I, O, K)
__device__ __forceinline__ float mod_value(const float* wt, const float* s, i64 b, int o, int j, float sgain) {{
    const int i = j / {K};
    return MUL(wt[(i64)o * ({I} * {K}) + j], {SGAIN} ? MUL(s[b * {I} + i], sgain) : s[b * {I} + i]);
}}
__device__ __forceinline__ float mod_partial(int t, const float* wt, const float* s, i64 b, int o, float sgain) {{
    float acc = 0.f;
    for (int j = t; j < {I} * {K}; j += {THREADS}) {{
        const float v = mod_value(wt, s, b, o, j, sgain);
        acc = ADD(acc, MUL(v, v));
    }}
    return acc;
}}
__device__ __forceinline__ void mod_write(int t, float d, const float* wt, const float* s, {T}* out, i64 b, int o, float sgain) {{
    for (int j = t; j < {I} * {K}; j += {THREADS}) {{
        const int i = j / {K};
        const int k = {FLIP} ? {K} - 1 - j % {K} : j % {K};
        const i64 at = {TRANSPOSE} ? ((b * {I} + i) * {O} + o) * (i64){K} + k
                                   : ((b * {O} + o) * {I} + i) * (i64){K} + k;
        const float v = mod_value(wt, s, b, o, j, sgain);
        st(out, at, {DEMOD} ? MUL(v, d) : v);
    }}
}}

extern "C" __global__ void {NAME}(const float* wt, const float* s, {T}* out, i64 total, float sgain) {{
#ifdef __CUDACC__
    __shared__ float part[{THREADS}];
    const int t = threadIdx.x;
    const i64 blk = blockIdx.x;
    const i64 b = blk / {O};
    const int o = (int)(blk % {O});
    part[t] = {DEMOD} ? mod_partial(t, wt, s, b, o, sgain) : 0.f;
    __syncthreads();
    for (int h = {THREADS} / 2; h > 0; h >>= 1) {{
        if (t < h) part[t] = ADD(part[t], part[t + h]);
        __syncthreads();
    }}
    const float d = RSQRT(ADD(part[0], 1e-8f));
    mod_write(t, d, wt, s, out, b, o, sgain);
#else
    for (i64 blk = 0; blk < total / {THREADS}; ++blk) {{
        const i64 b = blk / {O};
        const int o = (int)(blk % {O});
        float part[{THREADS}];
        for (int t = 0; t < {THREADS}; ++t) part[t] = {DEMOD} ? mod_partial(t, wt, s, b, o, sgain) : 0.f;
        for (int h = {THREADS} / 2; h > 0; h >>= 1)
            for (int t = 0; t < h; ++t) part[t] = ADD(part[t], part[t + h]);
        const float d = RSQRT(ADD(part[0], 1e-8f));
        for (int t = 0; t < {THREADS}; ++t) mod_write(t, d, wt, s, out, b, o, sgain);
    }}
#endif
}}
"""

_FIR_EPI = r"""
// x (N, HI, WI) -> y (N, HO, WO), N = B * C planes
__device__ __forceinline__ void fir_epi_at(idx_t i, const {T}* x, {T}* y, const float* f, const float* noise,
        const float* strength, const float* bias, const {TA}* addend, float fgain, float gain, float slope,
        float clamp) {{
    const int ox = (int)(i % {WO});
    const int oy = (int)((i / {WO}) % {HO});
    const idx_t n = i / ((idx_t){WO} * {HO});
    const {T}* p = x + (i64)n * ({HI} * (i64){WI});
    float acc = 0.f;
    if ({UNIT}) acc = ld(p, (i64)oy * {WI} + ox);  // a 1x1 filter of 1: the input itself
    else {{
    #pragma unroll
    for (int ky = 0; ky < {KH}; ++ky) {{
        const int sy = oy + ky - {PY0};
        if (sy < 0 || sy % {UP} != 0 || sy / {UP} >= {HI}) continue;
        #pragma unroll
        for (int kx = 0; kx < {KW}; ++kx) {{
            const int sx = ox + kx - {PX0};
            if (sx < 0 || sx % {UP} != 0 || sx / {UP} >= {WI}) continue;
            const float fk = rnd(MUL(f[({KH} - 1 - ky) * {KW} + ({KW} - 1 - kx)], fgain));
            acc += fk * ld(p, (i64)(sy / {UP}) * {WI} + sx / {UP});
        }}
    }}
    }}
    float v = rnd(acc);
    if ({NOISE}) {{
        const i64 at = ({NOISE} == 2 ? (i64)(n / {C}) * ({HO} * (i64){WO}) : 0) + (i64)oy * {WO} + ox;
        v = rnd(ADD(v, rnd(MUL(noise[at], strength[0]))));
    }}
    if ({BIAS}) v = rnd(ADD(v, rnd(bias[n % {C}])));
    if ({ACT} == 1) v = v > 0.f ? v : rnd(MUL(v, slope));
    if ({ACT} == 2) v = v > 0.f ? v : 0.f;
    if ({GAIN}) v = rnd(MUL(v, gain));
    if ({CLAMP}) {{
        const float c = rnd(clamp);
        v = v < -c ? -c : (v > c ? c : v);
    }}
    if ({ADDEND}) v = rnd(ADD(v, ld_a(addend, i)));
    st(y, i, v);
}}

extern "C" __global__ void {NAME}(const {T}* x, {T}* y, const float* f, const float* noise, const float* strength,
        const float* bias, const {TA}* addend, i64 total, float fgain, float gain, float slope, float clamp) {{
#ifdef __CUDACC__
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) fir_epi_at((idx_t)i, x, y, f, noise, strength, bias, addend, fgain, gain, slope, clamp);
#else
    for (i64 i = 0; i < total; ++i)
        fir_epi_at((idx_t)i, x, y, f, noise, strength, bias, addend, fgain, gain, slope, clamp);
#endif
}}
"""


def _head(dtype: str, idx: str = "unsigned int", addend: str | None = None) -> str:
    t, ld, st = _LOADS[dtype]
    src = _HEAD.format(T=t, LD=ld, ST=st, IDX=idx)
    ta, lda, _ = _LOADS[addend or dtype]
    return src + _ADDEND_HEAD.format(TA=ta, LD=lda)


def modulate_source(dtype: str, out_channels: int, in_channels: int, taps: int, demodulate: bool,
                    transpose: bool, flip: bool, sgain: bool, name: str = "sg2_modulate") -> str:
    """Kernel ``name(wt, s, out, total = B*O*THREADS, sgain)``: see the module docstring."""
    return _head(dtype) + _MODULATE.format(
        T=_LOADS[dtype][0], O=int(out_channels), I=int(in_channels), K=int(taps), DEMOD=int(demodulate),
        TRANSPOSE=int(transpose), FLIP=int(flip), SGAIN=int(sgain), THREADS=THREADS, NAME=name)


def fir_epi_source(dtype: str, channels: int, hi: int, wi: int, ho: int, wo: int, kh: int, kw: int,
                   up: int, px0: int, py0: int, unit: bool, noise: str, bias: bool, act: str, gain: bool,
                   clamp: bool, addend: str | None, wide: bool, name: str = "sg2_fir_epi") -> str:
    """Kernel ``name(x, y, f, noise, strength, bias, addend, total, fgain, gain, slope, clamp)``:
    see the module docstring. ``unit``: the filter is 1x1 of value 1 (not read); ``wide``:
    more than 2**32 outputs (64-bit indices)."""
    if act not in ACTS or noise not in NOISE_KINDS:
        raise ValueError(f"fir_epi_source: act {act!r} (one of {sorted(ACTS)}), noise {noise!r} "
                         f"(one of {sorted(NOISE_KINDS)})")
    idx = "long long" if wide else "unsigned int"
    return _head(dtype, idx, addend) + _FIR_EPI.format(
        T=_LOADS[dtype][0], TA=_LOADS[addend or dtype][0], C=int(channels), HI=int(hi), WI=int(wi),
        HO=int(ho), WO=int(wo), KH=int(kh), KW=int(kw), UP=int(up), PX0=int(px0), PY0=int(py0),
        UNIT=int(unit), NOISE=NOISE_KINDS[noise], BIAS=int(bias), ACT=ACTS[act], GAIN=int(gain),
        CLAMP=int(clamp), ADDEND=int(addend is not None), NAME=name)
