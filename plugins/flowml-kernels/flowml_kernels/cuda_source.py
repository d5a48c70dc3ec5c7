"""CUDA C of the WeightedFilter kernels, specialised per (dtype, N, channel block, mode).

Two kernels serve all three passes (see ``reference``): ``wf_filter`` (gather or splat: the
forward and the input gradient) and ``wf_wgrad`` (the weight gradient). Sizes are compile-time
constants so the tap loops unroll. Accumulation is float32 for every storage type but float64
(kept for ``gradcheck`` on the GPU), which accumulates in double; float16 and
bfloat16 are handled as raw 16-bit words with explicit conversions (PTX ``cvt`` for half,
round-to-nearest-even bit arithmetic for bfloat16), so NVRTC needs no CUDA headers.

Thread layout (learned from NVlabs/layerdenoise's ``cuda_weighted_filter.cu``, which runs one
thread per pixel and channel): here ``wf_filter`` runs one thread per ``PY`` vertically adjacent
pixels and block of ``CB`` channels, so each weight is read once per ``CB`` channels instead of
once per channel and each input value once per thread for up to ``PY`` pixels (loads per pixel
and channel: ``N*(N+PY-1)/PY`` instead of ``N*N``), and
``wf_wgrad`` one thread per pixel and tap row (N taps), so the ``a`` value is read once per row.
"""

from __future__ import annotations

_TYPES = {
    "float64": ("double", "return p[i];", "p[i] = v;"),
    "float32": ("float", "return p[i];", "p[i] = v;"),
    "float16": (
        "unsigned short",
        'float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i])); return f;',
        'unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); p[i] = h;',
    ),
    "bfloat16": (
        "unsigned short",
        "return __uint_as_float(((unsigned int)p[i]) << 16);",
        "unsigned int u = __float_as_uint(v);"
        " if ((u & 0x7fffffffu) > 0x7f800000u) { p[i] = 0x7fc0; return; }"
        " u += 0x7fffu + ((u >> 16) & 1u); p[i] = (unsigned short)(u >> 16);",
    ),
}

_COMMON = r"""
typedef {T} T;
typedef {ACC} acc_t;
#define N {N}
#define R ({N} / 2)
#define NN ({N} * {N})
__device__ __forceinline__ acc_t ld(const T* __restrict__ p, long long i) {{ {LD} }}
__device__ __forceinline__ void st(T* __restrict__ p, long long i, acc_t v) {{ {ST} }}
"""

_FILTER = r"""
#define CB {CB}
#define SPLAT {SPLAT}
#define PY {PY}
extern "C" __global__ void wf_filter(const T* __restrict__ x, const T* __restrict__ w,
                                     T* __restrict__ out, int C, int H, int W)
{{
    const int HW = H * W;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= ((H + PY - 1) / PY) * W) return;
    const int y0 = (p / W) * PY, px = p - (p / W) * W;   // PY pixels (y0 .. y0+PY-1, px)
    const int c0 = blockIdx.y * CB;
    const long long b = blockIdx.z;
    const T* xb = x + (b * C + c0) * (long long)HW;
    const T* wb = w + b * NN * (long long)HW;
    acc_t acc[PY][CB];
    #pragma unroll
    for (int r = 0; r < PY; ++r)
        #pragma unroll
        for (int cc = 0; cc < CB; ++cc) acc[r][cc] = 0;
    // input row t serves tap row i = t - r of pixel row r: each x value is loaded once per
    // thread and used by up to PY pixels. The row loop stays a loop (NVRTC time and code
    // size); taps and channels unroll.
    #pragma unroll 1
    for (int t = 0; t < N + PY - 1; ++t) {{
        const int y = y0 + t - R;
        if (y < 0 || y >= H) continue;
        #pragma unroll
        for (int j = 0; j < N; ++j) {{
            const int xx = px + j - R;
            if (xx < 0 || xx >= W) continue;
            const int q = y * W + xx;
            acc_t wt[PY];
            #pragma unroll
            for (int r = 0; r < PY; ++r) {{
                const int i = t - r;
                wt[r] = 0;
                if (i >= 0 && i < N && y0 + r < H) {{
#if SPLAT
                    wt[r] = ld(wb, (long long)(NN - 1 - (i * N + j)) * HW + q);
#else
                    wt[r] = ld(wb, (long long)(i * N + j) * HW + (y0 + r) * W + px);
#endif
                }}
            }}
            #pragma unroll
            for (int cc = 0; cc < CB; ++cc) {{
                if (c0 + cc < C) {{
                    const acc_t xv = ld(xb, (long long)cc * HW + q);
                    #pragma unroll
                    for (int r = 0; r < PY; ++r)
                        if (t - r >= 0 && t - r < N) acc[r][cc] += wt[r] * xv;
                }}
            }}
        }}
    }}
    T* ob = out + (b * C + c0) * (long long)HW;
    #pragma unroll
    for (int r = 0; r < PY; ++r) {{
        if (y0 + r >= H) break;
        #pragma unroll
        for (int cc = 0; cc < CB; ++cc)
            if (c0 + cc < C) st(ob, (long long)cc * HW + (y0 + r) * W + px, acc[r][cc]);
    }}
}}
"""

_WGRAD = r"""
extern "C" __global__ void wf_wgrad(const T* __restrict__ a, const T* __restrict__ bsrc,
                                    T* __restrict__ gw, int C, int H, int W)
{{
    const int HW = H * W;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= HW) return;
    const int i = blockIdx.y;
    const long long b = blockIdx.z;
    const int py = p / W, px = p - py * W;
    const int y = py + i - R;
    acc_t acc[N];
    #pragma unroll
    for (int j = 0; j < N; ++j) acc[j] = 0;
    if (y >= 0 && y < H) {{
        for (int c = 0; c < C; ++c) {{
            const long long plane = (b * C + c) * (long long)HW;
            const acc_t av = ld(a, plane + p);
            #pragma unroll
            for (int j = 0; j < N; ++j) {{
                const int xx = px + j - R;
                if (xx >= 0 && xx < W) acc[j] += av * ld(bsrc, plane + y * W + xx);
            }}
        }}
    }}
    T* gb = gw + (b * NN + i * N) * (long long)HW;
    #pragma unroll
    for (int j = 0; j < N; ++j) st(gb, (long long)j * HW + p, acc[j]);
}}
"""


def _common(dtype: str, n: int) -> str:
    t, load, store = _TYPES[dtype]
    acc = "double" if dtype == "float64" else "float"
    return _COMMON.format(T=t, ACC=acc, N=n, LD=load, ST=store)


def filter_source(dtype: str, n: int, cb: int, splat: bool, rows: int = 1) -> str:
    """``wf_filter`` for a storage ``dtype`` name (float64, float32, float16, bfloat16), N,
    ``cb`` channels and ``rows`` pixel rows per thread."""
    return _common(dtype, n) + _FILTER.format(CB=cb, SPLAT=int(splat), PY=rows)


def wgrad_source(dtype: str, n: int) -> str:
    """``wf_wgrad`` for storage ``dtype`` and N."""
    return _common(dtype, n) + _WGRAD.format()
