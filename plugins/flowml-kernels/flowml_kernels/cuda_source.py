"""CUDA C of the WeightedFilter kernels, specialised per (dtype, N, channel block, mode).

Two kernels serve all three passes (see ``reference``): ``wf_filter`` (gather or splat: the
forward and the input gradient) and ``wf_wgrad`` (the weight gradient); ``wf_gather4`` and
``wf_tile`` are faster gathers for the forward (``plans`` picks one). Sizes are compile-time
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

from flowml.gpu.cuda_c import ELEMENT_ACCESS

_TYPES = ELEMENT_ACCESS  # (T, load body, store body) per dtype: flowml.gpu.cuda_c

# ld4/st4: four consecutive elements at p[i] (16-byte aligned for float32, 8 for 16-bit types)
_VEC4 = {
    "float64": ("const double2* q = reinterpret_cast<const double2*>(p + i); const double2 a = q[0],"
                " b = q[1]; v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;",
                "double2* q = reinterpret_cast<double2*>(p + i); q[0] = make_double2(v[0], v[1]);"
                " q[1] = make_double2(v[2], v[3]);"),
    "float32": ("const float4 a = *reinterpret_cast<const float4*>(p + i);"
                " v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;",
                "*reinterpret_cast<float4*>(p + i) = make_float4(v[0], v[1], v[2], v[3]);"),
}
_VEC4_16 = ("const uint2 a = *reinterpret_cast<const uint2*>(p + i);"
            " const T h[4] = {(T)(a.x & 0xffffu), (T)(a.x >> 16), (T)(a.y & 0xffffu), (T)(a.y >> 16)};"
            " for (int k = 0; k < 4; ++k) v[k] = ld(h, k);",
            "T h[4]; for (int k = 0; k < 4; ++k) st(h, k, v[k]);"
            " *reinterpret_cast<uint2*>(p + i) = make_uint2(h[0] | ((unsigned)h[1] << 16),"
            " h[2] | ((unsigned)h[3] << 16));")

# the vector types NVRTC has built in, for a C++ compile of the same source (the CPU test)
_HOST_VECTORS = r"""
#if !defined(__CUDACC__) && !defined(WF_HOST_VECTORS)
#define WF_HOST_VECTORS
struct float4 { float x, y, z, w; };
struct double2 { double x, y; };
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline double2 make_double2(double a, double b) { return {a, b}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
#endif
"""

_COMMON = r"""
typedef {T} T;
typedef {ACC} acc_t;
#define N {N}
#define R ({N} / 2)
#define NN ({N} * {N})
__device__ __forceinline__ acc_t ld(const T* __restrict__ p, long long i) {{ {LD} }}
__device__ __forceinline__ void st(T* __restrict__ p, long long i, acc_t v) {{ {ST} }}
__device__ __forceinline__ void ld4(const T* __restrict__ p, long long i, acc_t* v) {{ {LD4} }}
__device__ __forceinline__ void st4(T* __restrict__ p, long long i, const acc_t* v) {{ {ST4} }}
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

_GATHER4 = r"""
#define CB {CB}
#define PX 4
extern "C" __global__ void wf_gather4(const T* __restrict__ x, const T* __restrict__ w,
                                      T* __restrict__ out, int C, int H, int W)
{{
    const int HW = H * W;
    const int W4 = (W + PX - 1) / PX;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= H * W4) return;
    const int py = p / W4, px0 = (p - py * W4) * PX;     // pixels px0 .. px0+3 of row py
    const bool vec = (W % PX) == 0;                      // whole, aligned quads: vector loads
    const int c0 = blockIdx.y * CB;
    const long long b = blockIdx.z;
    const T* xb = x + (b * C + c0) * (long long)HW;
    const T* wb = w + b * NN * (long long)HW + (long long)py * W + px0;
    acc_t acc[CB][PX];
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc)
        #pragma unroll
        for (int q = 0; q < PX; ++q) acc[cc][q] = 0;
    // per tap row: the N x 4 weights of the quad (vector loads, read once for CB channels),
    // then per channel the input row segment px0-R .. px0+3+R once, used by all N x 4 taps
    #pragma unroll 1
    for (int i = 0; i < N; ++i) {{
        const int y = py + i - R;
        if (y < 0 || y >= H) continue;
        acc_t wt[N][PX];
        #pragma unroll
        for (int j = 0; j < N; ++j) {{
            const long long k = (long long)(i * N + j) * HW;
            if (vec) ld4(wb, k, wt[j]);
            else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) wt[j][q] = px0 + q < W ? ld(wb, k + q) : (acc_t)0;
            }}
        }}
        const long long row = (long long)y * W;
        #pragma unroll
        for (int cc = 0; cc < CB; ++cc) {{
            if (c0 + cc < C) {{
                acc_t xs[PX + N - 1];
                #pragma unroll
                for (int s = 0; s < PX + N - 1; ++s) {{
                    const int xx = px0 + s - R;
                    xs[s] = xx >= 0 && xx < W ? ld(xb, (long long)cc * HW + row + xx) : (acc_t)0;
                }}
                #pragma unroll
                for (int j = 0; j < N; ++j)
                    #pragma unroll
                    for (int q = 0; q < PX; ++q) acc[cc][q] += wt[j][q] * xs[q + j];
            }}
        }}
    }}
    T* ob = out + (b * C + c0) * (long long)HW + (long long)py * W + px0;
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc) {{
        if (c0 + cc < C) {{
            if (vec) st4(ob, (long long)cc * HW, acc[cc]);
            else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) if (px0 + q < W) st(ob, (long long)cc * HW + q, acc[cc][q]);
            }}
        }}
    }}
}}
"""

# raw quads (wf_tile's PF variants): four storage elements as loaded, converted when used
_QUAD = {
    "float32": r"""
typedef float4 wq_t;
__device__ __forceinline__ void cvq(const wq_t& r, acc_t* v) {{
    v[0] = r.x; v[1] = r.y; v[2] = r.z; v[3] = r.w; }}
__device__ __forceinline__ wq_t packq(const T* h) {{ return make_float4(h[0], h[1], h[2], h[3]); }}
""",
    "16": r"""
typedef uint2 wq_t;                                      // 4 packed 16-bit words
__device__ __forceinline__ void cvq(const wq_t& r, acc_t* v) {{
    const T h[4] = {{(T)(r.x & 0xffffu), (T)(r.x >> 16), (T)(r.y & 0xffffu), (T)(r.y >> 16)}};
    #pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = ld(h, k); }}
__device__ __forceinline__ wq_t packq(const T* h) {{
    return make_uint2(h[0] | ((unsigned)h[1] << 16), h[2] | ((unsigned)h[3] << 16)); }}
""",
}

# wf_tile's H2 arithmetic: d = a * b + c per 16-bit lane of two packed halves, rounded once to
# half (PTX fma.rn.f16x2; the host: the exact product plus c in double, then to _Float16: one
# rounding of the exact a*b+c to half, as the GPU does, since a double holds a*b exactly and its
# sum with c rounds to the same half; f16 subnormals kept on both)
_HFMA2 = r"""
__device__ __forceinline__ unsigned hfma2(unsigned a, unsigned b, unsigned c) {{
#ifdef __CUDA_ARCH__
    unsigned d; asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c)); return d;
#else
    unsigned short d[2];
    for (int k = 0; k < 2; ++k) {{
        _Float16 x, y, z;
        const unsigned short ak = (unsigned short)(a >> 16 * k),
            bk = (unsigned short)(b >> 16 * k), ck = (unsigned short)(c >> 16 * k);
        std::memcpy(&x, &ak, 2); std::memcpy(&y, &bk, 2); std::memcpy(&z, &ck, 2);
        const _Float16 r = (_Float16)((double)x * (double)y + (double)z);
        std::memcpy(d + k, &r, 2);
    }}
    return d[0] | ((unsigned)d[1] << 16);
#endif
}}
"""
_HALF2 = r"""
#if !H2 || !SMEM || !(PF & 2)
#error "H2 (half2 tap rows) needs SMEM and PF bit 2 (the raw 16-bit tile)"
#endif""" + _HFMA2

_TILE = r"""
#define CB {CB}
#define PX 4
#define TXQ {TXQ}
#define TY {TY}
#define SMEM {SMEM}
#define PF {PF}
#define H2 {H2}
#define PAD ((R + PX - 1) / PX * PX)
#define SEG (PX + 2 * PAD)
#define SH (TY + N - 1)
#define SW (TXQ * PX + 2 * PAD)
__device__ __forceinline__ void lds4(const float* p, float* v) {{
    const float4 a = *reinterpret_cast<const float4*>(p); v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; }}
__device__ __forceinline__ void sts4(float* p, const float* v) {{
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]); }}
{QUAD}
// the raw quad p[i .. i+3]: one vector load when vec (a whole quad), else the elements
// lo <= q < hi one by one (the others 0)
__device__ __forceinline__ wq_t ldq(const T* __restrict__ p, long long i, int lo, int hi,
                                    bool vec) {{
    if (vec) return *reinterpret_cast<const wq_t*>(p + i);
    T h[PX];
    #pragma unroll
    for (int q = 0; q < PX; ++q) h[q] = lo <= q && q < hi ? p[i + q] : (T)0;
    return packq(h);
}}
{HALF2}
{PFL1}// One block: a tile of TY rows x TXQ quads (4 px) of the output and CB channels; one thread: a
// quad of one row and CB channels. Channel blocks are the fastest grid index, so the blocks that
// read the same weights run together (L2 hits, DRAM reads the weights once). Per tap row the
// thread loads its N x 4 weights (vector loads, read once for CB channels), then per channel the
// input row segment px0-PAD .. px0+3+PAD as aligned quads: from shared memory (SMEM 1: the
// block's input tile with halo, loaded once with vector loads, converted to float once) or
// straight from global memory through L1 (SMEM 0).
// PF (prefetch, bits; 0: each load is waited for where it is used). 1: the raw weights of tap
// row i+1 are loaded before row i's FMAs (row 0's before the tile), converted when row i+1
// starts, so no row waits for its weights (N raw quads more registers; W % 4 != 0 loads them
// as PF 0). 4 (not with 1): the same weights only hinted (prefetch.L1: no registers), loaded
// where used. 2: the shared tile loaded PFB quads a thread at a time (PFB loads, then PFB
// stores), not one load-then-store after another. Same loads, same sums in the same order.
extern "C" __global__ void __launch_bounds__(TXQ * TY) wf_tile(
    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, int C, int H, int W)
{{
    const int HW = H * W;
    const int nb = (C + CB - 1) / CB;
    const int cblk = blockIdx.x % nb, tile = blockIdx.x / nb;
    const int tiles_x = ((W + PX - 1) / PX + TXQ - 1) / TXQ;
    const int ty0 = (tile / tiles_x) * TY, tx0 = (tile % tiles_x) * (TXQ * PX);
    const int lx = threadIdx.x % TXQ, ly = threadIdx.x / TXQ;
    const int py = ty0 + ly, px0 = tx0 + lx * PX;
    const bool vec = (W % PX) == 0;                      // whole, aligned quads: vector loads
    const int c0 = cblk * CB;
    const long long b = blockIdx.y;
    const T* xb = x + (b * C + c0) * (long long)HW;
#if PF & 1
    const T* wb = w + b * NN * (long long)HW + (long long)py * W + px0;
    wq_t wq[N];                                          // the next tap row's raw weights
    if (vec && py < H && px0 < W && py - R >= 0) {{
        #pragma unroll
        for (int j = 0; j < N; ++j) wq[j] = ldq(wb, (long long)j * HW, 0, PX, true);
    }}
#elif PF & 4
    const T* wb = w + b * NN * (long long)HW + (long long)py * W + px0;
    if (py < H && px0 < W && py - R >= 0) {{
        #pragma unroll
        for (int j = 0; j < N; ++j) pfl1(wb + (long long)j * HW);
    }}
#endif
#if SMEM
#if H2
    __shared__ __align__(16) T xs_s[CB][SH][SW];         // raw half words (H2 reads pairs)
#else
    __shared__ __align__(16) acc_t xs_s[CB][SH][SW];     // smem column s: image column tx0-PAD+s
#endif
#ifdef WF_SMEM_HOOK
    WF_SMEM_HOOK(xs_s);                                  // the CPU test poisons it per block
#endif
#if PF & 2
    #pragma unroll 1
    for (int e0 = threadIdx.x; e0 < CB * SH * (SW / PX); e0 += PFB * TXQ * TY) {{
        wq_t v[PFB];                                     // PFB raw quads in flight
        #pragma unroll
        for (int u = 0; u < PFB; ++u) {{
            const int e = e0 + u * TXQ * TY;
            const int cc = e / (SH * (SW / PX)), rem = e % (SH * (SW / PX));
            const int r = rem / (SW / PX), q4 = rem % (SW / PX);
            const int y = ty0 - R + r, xx = tx0 - PAD + q4 * PX;
            const bool in = e < CB * SH * (SW / PX) && c0 + cc < C && y >= 0 && y < H
                            && (!vec || (xx >= 0 && xx < W));
            const long long at = (long long)cc * HW + (long long)y * W + xx;
            v[u] = in ? ldq(xb, at, -xx, W - xx, vec) : wq_t{{}};
        }}
        #pragma unroll
        for (int u = 0; u < PFB; ++u) {{
            const int e = e0 + u * TXQ * TY;
#if H2
            if (e < CB * SH * (SW / PX)) *reinterpret_cast<wq_t*>(&xs_s[0][0][0] + e * PX) = v[u];
#else
            acc_t f[PX];
            cvq(v[u], f);
            if (e < CB * SH * (SW / PX)) sts4(&xs_s[0][0][0] + e * PX, f);   // xs_s[cc][r][q4 * PX]
#endif
        }}
    }}
#else
    for (int e = threadIdx.x; e < CB * SH * (SW / PX); e += TXQ * TY) {{
        const int cc = e / (SH * (SW / PX)), rem = e % (SH * (SW / PX));
        const int r = rem / (SW / PX), q4 = rem % (SW / PX);
        const int y = ty0 - R + r, xx = tx0 - PAD + q4 * PX;
        acc_t v[PX];
        if (c0 + cc < C && y >= 0 && y < H) {{
            const long long at = (long long)cc * HW + (long long)y * W + xx;
            if (vec) {{
                if (xx >= 0 && xx < W) ld4(xb, at, v);
                else {{
                    #pragma unroll
                    for (int q = 0; q < PX; ++q) v[q] = 0;
                }}
            }} else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) v[q] = xx + q >= 0 && xx + q < W ? ld(xb, at + q) : (acc_t)0;
            }}
        }} else {{
            #pragma unroll
            for (int q = 0; q < PX; ++q) v[q] = 0;
        }}
        sts4(&xs_s[cc][r][q4 * PX], v);
    }}
#endif
    __syncthreads();                                     // no thread returns before this
#endif
    if (py >= H || px0 >= W) return;
#if !(PF & 5)
    const T* wb = w + b * NN * (long long)HW + (long long)py * W + px0;
#endif
    acc_t acc[CB][PX];
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc)
        #pragma unroll
        for (int q = 0; q < PX; ++q) acc[cc][q] = 0;
#if PF & 1
    #pragma unroll 1
    for (int i = 0; i < N; ++i) {{
        const int y = py + i - R;
#if H2
        wq_t wr[N];                                      // raw: 2 half2 (px 0,1 and 2,3) a tap
        if (y >= 0 && y < H) {{
            #pragma unroll
            for (int j = 0; j < N; ++j)
                wr[j] = vec ? wq[j] : ldq(wb, (long long)(i * N + j) * HW, 0, W - px0, false);
        }}
#else
        acc_t wt[N][PX];
        if (y >= 0 && y < H) {{
            #pragma unroll
            for (int j = 0; j < N; ++j) {{
                if (vec) cvq(wq[j], wt[j]);
                else {{                                  // no prefetch: loaded here, as PF 0
                    const long long k = (long long)(i * N + j) * HW;
                    #pragma unroll
                    for (int q = 0; q < PX; ++q) wt[j][q] = px0 + q < W ? ld(wb, k + q) : (acc_t)0;
                }}
            }}
        }}
#endif
        if (vec && i + 1 < N && y + 1 >= 0 && y + 1 < H) {{   // row i+1's, in flight during row i
            #pragma unroll
            for (int j = 0; j < N; ++j)
                wq[j] = ldq(wb, (long long)((i + 1) * N + j) * HW, 0, PX, true);
        }}
        if (y < 0 || y >= H) continue;
#else
    #pragma unroll 1
    for (int i = 0; i < N; ++i) {{
        const int y = py + i - R;
#if PF & 4
        if (i + 1 < N && y + 1 >= 0 && y + 1 < H) {{      // row i+1's, hinted during row i
            #pragma unroll
            for (int j = 0; j < N; ++j) pfl1(wb + (long long)((i + 1) * N + j) * HW);
        }}
#endif
        if (y < 0 || y >= H) continue;
#if H2
        wq_t wr[N];                                      // raw: 2 half2 (px 0,1 and 2,3) a tap
        #pragma unroll
        for (int j = 0; j < N; ++j) wr[j] = ldq(wb, (long long)(i * N + j) * HW, 0, W - px0, vec);
#else
        acc_t wt[N][PX];
        #pragma unroll
        for (int j = 0; j < N; ++j) {{
            const long long k = (long long)(i * N + j) * HW;
            if (vec) ld4(wb, k, wt[j]);
            else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) wt[j][q] = px0 + q < W ? ld(wb, k + q) : (acc_t)0;
            }}
        }}
#endif
#endif
        #pragma unroll
        for (int cc = 0; cc < CB; ++cc) {{
#if H2
            // the row's N taps in half2 (pixels 0,1 and 2,3 of the quad), then into float
            if (c0 + cc < C) {{
                unsigned xw[SEG / 2];                    // word k: image columns px0-PAD+2k, +1
                const unsigned* srow =
                    reinterpret_cast<const unsigned*>(&xs_s[cc][ly + i][lx * PX]);
                #pragma unroll
                for (int k = 0; k < SEG / 2; k += 2) {{
                    const uint2 a = *reinterpret_cast<const uint2*>(srow + k);
                    xw[k] = a.x; xw[k + 1] = a.y;
                }}
                unsigned part[2] = {{0u, 0u}};           // +0, +0 (half2)
                #pragma unroll
                for (int j = 0; j < N; ++j)
                    #pragma unroll
                    for (int h = 0; h < 2; ++h) {{
                        const int s = PAD - R + 2 * h + j;   // columns s, s+1 of the segment
                        const unsigned xv = s & 1 ? (xw[s >> 1] >> 16) | (xw[(s >> 1) + 1] << 16)
                                                  : xw[s >> 1];
                        part[h] = hfma2(h ? wr[j].y : wr[j].x, xv, part[h]);
                    }}
                #pragma unroll
                for (int h = 0; h < 2; ++h) {{
                    const T hv[2] = {{(T)(part[h] & 0xffffu), (T)(part[h] >> 16)}};
                    acc[cc][2 * h] += ld(hv, 0);
                    acc[cc][2 * h + 1] += ld(hv, 1);
                }}
            }}
#else
            if (c0 + cc < C) {{
                acc_t xs[SEG];                           // image columns px0-PAD .. px0+3+PAD
#if SMEM
                const acc_t* srow = &xs_s[cc][ly + i][lx * PX];
                #pragma unroll
                for (int s = 0; s < SEG; s += PX) lds4(srow + s, xs + s);
#else
                const long long row = (long long)cc * HW + (long long)y * W;
                #pragma unroll
                for (int s = 0; s < SEG; s += PX) {{
                    const int xx = px0 - PAD + s;
                    if (vec) {{
                        if (xx >= 0 && xx < W) ld4(xb, row + xx, xs + s);
                        else {{
                            #pragma unroll
                            for (int q = 0; q < PX; ++q) xs[s + q] = 0;
                        }}
                    }} else {{
                        #pragma unroll
                        for (int q = 0; q < PX; ++q)
                            xs[s + q] = xx + q >= 0 && xx + q < W ? ld(xb, row + xx + q) : (acc_t)0;
                    }}
                }}
#endif
                #pragma unroll
                for (int j = 0; j < N; ++j)
                    #pragma unroll
                    for (int q = 0; q < PX; ++q) acc[cc][q] += wt[j][q] * xs[PAD - R + q + j];
            }}
#endif
        }}
    }}
    T* ob = out + (b * C + c0) * (long long)HW + (long long)py * W + px0;
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc) {{
        if (c0 + cc < C) {{
            if (vec) st4(ob, (long long)cc * HW, acc[cc]);
            else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) if (px0 + q < W) st(ob, (long long)cc * HW + q, acc[cc][q]);
            }}
        }}
    }}
}}
"""

# the 16-bit plans' shared pieces (wf_tile, wf_h2w, wf_h2r): format strings, formatted
# once where a kernel takes them
_PFL1 = r"""// a hint: the line of p into L1 (and L2), no register, nothing waits for it (no-op on the host)
__device__ __forceinline__ void pfl1(const void* p) {{
#ifdef __CUDA_ARCH__
    asm volatile("prefetch.L1 [%0];" :: "l"(p));
#endif
}}
"""

# cp.async copies of a channel chunk's input tile (wf_h2w, wf_h2r: the macros CB, SH, SW,
# SQ, NQ, PADX, TXQ, TY of the kernel)
_H2_FILL = r"""// 4 halves (8 bytes) global -> shared, zeros when !in (nothing read); cp.async on sm_80+
__device__ __forceinline__ void c8(T* s, const T* g, bool in) {{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned sa;
    asm volatile("{{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }}"
                 : "=r"(sa) : "l"(s));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;"
                 :: "r"(sa), "l"(g), "r"(in ? 8 : 0) : "memory");
#else
    *reinterpret_cast<uint2*>(s) = in ? *reinterpret_cast<const uint2*>(g) : make_uint2(0u, 0u);
#endif
}}
__device__ __forceinline__ void c8_commit() {{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}}
template <int PENDING> __device__ __forceinline__ void c8_wait() {{   // all but PENDING groups
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" :: "n"(PENDING) : "memory");
#endif
}}
// channels c0 .. c0+CB-1 of the block's input tile (rows ty0-R .., columns tx0-PADX ..) into
// xs: 8-byte copies when W % 4 == 0 (a chunk is then wholly in or out of the image), else
// element by element (synchronous); zeros outside the image and past C
__device__ __forceinline__ void h2w_fill(T (*xs)[SH][SW], const T* __restrict__ xb, int c0,
                                         int C, int H, int W, int ty0, int tx0, bool vec) {{
    const long long HW = (long long)H * W;
    for (int e = threadIdx.x; e < NQ; e += TXQ * TY) {{
        const int cc = e / (SH * SQ), rem = e % (SH * SQ);
        const int r = rem / SQ, q4 = rem % SQ;
        const int y = ty0 - R + r, xx = tx0 - PADX + q4 * 4;
        T* s = &xs[cc][r][q4 * 4];
        const bool row = c0 + cc < C && y >= 0 && y < H;
        const long long at = (c0 + cc) * HW + (long long)y * W + xx;
        if (vec) {{
            const bool in = row && xx >= 0 && xx < W;
            c8(s, in ? xb + at : xb, in);
        }} else {{
            #pragma unroll
            for (int q = 0; q < 4; ++q) s[q] = row && xx + q >= 0 && xx + q < W ? xb[at + q] : (T)0;
        }}
    }}
}}
"""

# a tap row in half2 and its sum into float (the h2 plans' rounding, kernels_half2), and the
# store of a thread's pixels (wf_h2w, wf_h2r)
_H2_ROW = r"""// one tap row of HW2 pixel pairs in half2, the h2 plans' order: part[h] += w[j * HW2 + h] *
// (columns S + 2h + j, S + 2h + j + 1 of the row words xw) for j = 0 .. N-1, one fma.rn.f16x2
// each; an odd column pair is a funnel of two words (one PRMT)
template <int HW2_, int S> __device__ __forceinline__ void h2_row(
    const unsigned* xw, const unsigned* wr, unsigned* part) {{
    #pragma unroll
    for (int j = 0; j < N; ++j)
        #pragma unroll
        for (int h = 0; h < HW2_; ++h) {{
            const int s = S + 2 * h + j;                 // columns s, s+1
            const unsigned xv = s & 1
                ? (xw[s >> 1] >> 16) | (xw[(s >> 1) + 1] << 16) : xw[s >> 1];
            part[h] = hfma2(wr[j * HW2_ + h], xv, part[h]);
        }}
}}
// a row's half2 sums into the float accumulators: acc[2h] += low half, acc[2h+1] += high half
template <int HW2_> __device__ __forceinline__ void h2_into_float(const unsigned* part,
                                                                  float* acc) {{
    #pragma unroll
    for (int h = 0; h < HW2_; ++h) {{
        const T hv[2] = {{(T)(part[h] & 0xffffu), (T)(part[h] >> 16)}};
        acc[2 * h] += ld(hv, 0);
        acc[2 * h + 1] += ld(hv, 1);
    }}
}}
// PXT_ (2, 4 or 8) results rounded to half at oc: one vector store when vec (whole, aligned),
// else those of columns px0 + q < W one by one
template <int PXT_> __device__ __forceinline__ void h2_store(T* oc, const float* acc, int px0,
                                                            int W, bool vec) {{
    T hv[PXT_];
    #pragma unroll
    for (int q = 0; q < PXT_; ++q) st(hv, q, acc[q]);
    if (vec && PXT_ == 8) {{
        *reinterpret_cast<uint4*>(oc) = make_uint4(
            hv[0] | ((unsigned)hv[1] << 16), hv[2 % PXT_] | ((unsigned)hv[3 % PXT_] << 16),
            hv[4 % PXT_] | ((unsigned)hv[5 % PXT_] << 16),
            hv[6 % PXT_] | ((unsigned)hv[7 % PXT_] << 16));
    }} else if (vec && PXT_ == 4) {{
        *reinterpret_cast<uint2*>(oc) = make_uint2(
            hv[0] | ((unsigned)hv[1] << 16), hv[PXT_ - 2] | ((unsigned)hv[PXT_ - 1] << 16));
    }} else if (vec) {{
        *reinterpret_cast<unsigned*>(oc) = hv[0] | ((unsigned)hv[1] << 16);
    }} else {{
        #pragma unroll
        for (int q = 0; q < PXT_; ++q) if (px0 + q < W) oc[q] = hv[q];
    }}
}}
"""

# wf_h2w (float16): each pixel's N*N weights read ONCE for all C channels. At C = 32 the wf_tile
# plans read a pixel's weights once per channel block (4 times with CB = 8), and at N = 9 the
# weights are 81 of the 145 half words a pixel moves: most of their traffic. Here a thread owns
# PXT = 2 (one half2) or 4 (two) adjacent pixels of one row and keeps all N*N of their weights in
# registers as raw half2 (N*N*PXT/2 registers: pairs up to N = 9, 81; quads up to N = 7, 98;
# ``plans`` refuses more), loaded once before the channel loop; the block then walks every channel
# of the image in chunks of CB staged through shared memory as raw half words, double-buffered:
# chunk k+1's copy (cp.async on sm_80+, zero-filled outside the image; a plain copy on older GPUs
# and on the host) is in flight while chunk k is summed. Per channel only PXT float accumulators
# live: each tap row's N taps in fma.rn.f16x2 (the h2 plans' arithmetic and order, so the same
# bits: tests/kernels_half2.h2_rows_ref), the row's sum added in float, the channel stored as
# soon as its N rows are done. Rows outside the image are summed too (their tile rows are zero:
# +0 partials, the same bits as skipping them), so no thread branches inside the row loop.
# BC (pairs): a tap at an odd column offset would take a funnel shift of two tile words; instead
# each input half of a row is broadcast to both lanes against weights paired per input column
# (N + 1 FMAs a row, no shifts; N*(N+1) weight registers).
# CG > 1: a tile's channel chunks are split among CG blocks (adjacent in the grid), each loading
# the weights: more, shorter blocks, for a grid whose last wave is not a tenth full. CG == 1 keeps
# the kernel's text as it was before CG: ptxas allocated 144 registers instead of 128 (N = 7,
# 16x4) for a merely equivalent rewrite.
_H2W = r"""
#define CB {CB}
#define PXT {PXT}
#define BC {BC}
#define CG {CG}                                          // blocks a tile: its channels split in CG
#define HW2 (PXT / 2)                                    // half2 words of one tap's weights
#define TXQ {TXQ}
#define TY {TY}
#define PADX ((R + 3) / 4 * 4)                           // tile halo: whole 4-half (8-byte) chunks
#if PXT == 4
#define PADE PADX                                        // quads read aligned uint2 from the tile
#else
#define PADE ((R + 1) / 2 * 2)                           // pairs: the halo in whole half2 words
#endif
#define SEGW (HW2 + PADE)                                // words of a row: columns px0-PADE ..
#define SH (TY + N - 1)
#define SW (TXQ * PXT + 2 * PADX)                        // smem column s: image column tx0-PADX+s
#define SQ (SW / 4)
#define NQ (CB * SH * SQ)                                // 8-byte chunks of one channel chunk
#if (TXQ * PXT) % 4 || (PXT != 2 && PXT != 4)
#error "wf_h2w: PXT is 2 or 4 and a block row TXQ * PXT pixels, a multiple of 4"
#endif
#if BC && PXT != 2
#error "wf_h2w: BC (broadcast input halves) takes pixel pairs"
#endif
{HFMA2}
// BC: c + a * (x's half H in both lanes); on the GPU the broadcast is HFMA2's operand selector
template <int H> __device__ __forceinline__ unsigned hfma2_bc(unsigned a, unsigned x, unsigned c) {{
#ifdef __CUDA_ARCH__
    unsigned d;
    if (H) asm("{{ .reg .f16 l, h; .reg .b32 t; mov.b32 {{l, h}}, %2; mov.b32 t, {{h, h}};"
               " fma.rn.f16x2 %0, %1, t, %3; }}" : "=r"(d) : "r"(a), "r"(x), "r"(c));
    else asm("{{ .reg .f16 l, h; .reg .b32 t; mov.b32 {{l, h}}, %2; mov.b32 t, {{l, l}};"
             " fma.rn.f16x2 %0, %1, t, %3; }}" : "=r"(d) : "r"(a), "r"(x), "r"(c));
    return d;
#else
    const unsigned v = H ? x >> 16 : x & 0xffffu;
    return hfma2(a, v | (v << 16), c);
#endif
}}
{FILL}
// One block: TY rows x TXQ * PXT pixels of the output, every channel; one thread: PXT pixels
// (px0 ..) of row py, their N*N x PXT/2 raw half2 weights in registers for the whole kernel.
extern "C" __global__ void __launch_bounds__(TXQ * TY) wf_h2w(
    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, int C, int H, int W)
{{
    const long long HW = (long long)H * W;
    const int tiles_x = (W + TXQ * PXT - 1) / (TXQ * PXT);
#if CG > 1
    const int tile = blockIdx.x / CG, group = blockIdx.x % CG;   // a tile's groups run together
    const int ty0 = (tile / tiles_x) * TY, tx0 = (tile % tiles_x) * (TXQ * PXT);
    const int all = (C + CB - 1) / CB, per = (all + CG - 1) / CG;
    const int k0 = group * per, k1 = k0 + per < all ? k0 + per : all;   // its chunks
    if (k0 >= k1) return;                                // the whole block: no barrier reached
#define BUF(k) (((k) - k0) & 1)                          // chunk k's buffer
#else
    const int ty0 = (blockIdx.x / tiles_x) * TY, tx0 = (blockIdx.x % tiles_x) * (TXQ * PXT);
#define BUF(k) ((k) & 1)
#endif
    const int lx = threadIdx.x % TXQ, ly = threadIdx.x / TXQ;
    const int py = ty0 + ly, px0 = tx0 + lx * PXT;
    const bool vec = (W % 4) == 0;                       // aligned whole quads and pairs
    const bool live = py < H && px0 < W;                 // the others only help fill the tile
    const long long b = blockIdx.y;
    const T* xb = x + b * C * HW;
    __shared__ __align__(16) T xs_s[2][CB][SH][SW];      // two channel chunks, raw half words
#ifdef WF_SMEM_HOOK
    WF_SMEM_HOOK(xs_s);                                  // the CPU test poisons it per block
#endif
#if CG == 1
    const int k0 = 0, k1 = (C + CB - 1) / CB;            // every chunk
#endif
    h2w_fill(xs_s[0], xb, k0 * CB, C, H, W, ty0, tx0, vec);   // in flight during the weights
    c8_commit();
#if BC
    // tap row i, input half m (column px0-R+m): (w of pixel 0 tap m, w of pixel 1 tap m-1),
    // 0 past either end: each input half serves both pixels, no funnel shift
    unsigned wr[N][N + 1];
    #pragma unroll
    for (int i = 0; i < N; ++i)
        #pragma unroll
        for (int m = 0; m <= N; ++m) wr[i][m] = 0u;
#else
    unsigned wr[NN][HW2];                                // tap k: pixels 0,1 (and 2,3) as half2
#endif
    const T* wb = w + b * NN * HW + (long long)py * W + px0;
    #pragma unroll
    for (int k = 0; k < NN; ++k) {{
        unsigned wk[HW2];
        if (live && vec && PXT == 4) {{
            const uint2 q = *reinterpret_cast<const uint2*>(wb + k * HW);
            wk[0] = q.x; wk[HW2 - 1] = q.y;
        }} else if (live && vec) {{
            wk[0] = *reinterpret_cast<const unsigned*>(wb + k * HW);
        }} else {{
            #pragma unroll
            for (int h = 0; h < HW2; ++h) {{
                const T lo = live && px0 + 2 * h < W ? wb[k * HW + 2 * h] : (T)0;
                const T hi = live && px0 + 2 * h + 1 < W ? wb[k * HW + 2 * h + 1] : (T)0;
                wk[h] = lo | ((unsigned)hi << 16);
            }}
        }}
#if BC
        wr[k / N][k % N] |= wk[0] & 0xffffu;
        wr[k / N][k % N + 1] |= wk[0] & 0xffff0000u;
#else
        #pragma unroll
        for (int h = 0; h < HW2; ++h) wr[k][h] = wk[h];
#endif
    }}
    T* ob = out + b * C * HW + (long long)py * W + px0;
    #pragma unroll 1
    for (int kc = k0; kc < k1; ++kc) {{
        if (kc + 1 < k1) {{                              // the next chunk, in flight meanwhile
            h2w_fill(xs_s[BUF(kc + 1)], xb, (kc + 1) * CB, C, H, W, ty0, tx0, vec);
            c8_commit();
            c8_wait<1>();
        }} else {{
            c8_wait<0>();
        }}
        __syncthreads();                                 // chunk kc in xs_s[BUF(kc)]
        if (live) {{
            #pragma unroll 1
            for (int cc = 0; cc < CB && kc * CB + cc < C; ++cc) {{
                float acc[PXT];
                #pragma unroll
                for (int q = 0; q < PXT; ++q) acc[q] = 0.f;
                #pragma unroll
                for (int i = 0; i < N; ++i) {{
                    unsigned xw[SEGW];                   // word s: columns px0-PADE+2s, +1
                    const unsigned* srow = reinterpret_cast<const unsigned*>(
                        &xs_s[BUF(kc)][cc][ly + i][PADX - PADE + lx * PXT]);
#if PXT == 4
                    #pragma unroll
                    for (int s = 0; s < SEGW; s += 2) {{
                        const uint2 a = *reinterpret_cast<const uint2*>(srow + s);
                        xw[s] = a.x; xw[s + 1] = a.y;
                    }}
#else
                    #pragma unroll
                    for (int s = 0; s < SEGW; ++s) xw[s] = srow[s];
#endif
                    unsigned part[HW2];
                    #pragma unroll
                    for (int h = 0; h < HW2; ++h) part[h] = 0u;     // +0, +0 (half2)
#if BC
                    // pixel 0 takes taps 0..N-1 then 0 * x, pixel 1 0 * x then taps 0..N-1: the
                    // h2 order. The zero-weight lane's 0 * x changes at most the sign of a zero
                    // part (a part can be -0: +0 plus a negative product that underflows), and
                    // acc starts at +0.f, so it is never -0 and a zero of either sign leaves it
                    // as is (+0 + +-0 = +0): the same float sums, the same bits
                    #pragma unroll
                    for (int m = 0; m <= N; ++m) {{
                        const int s = PADE - R + m;                 // the half of column px0-R+m
                        part[0] = s & 1 ? hfma2_bc<1>(wr[i][m], xw[s >> 1], part[0])
                                        : hfma2_bc<0>(wr[i][m], xw[s >> 1], part[0]);
                    }}
#else
                    h2_row<HW2, PADE - R>(xw, wr[i * N], part);
#endif
                    h2_into_float<HW2>(part, acc);
                }}
                h2_store<PXT>(ob + (long long)(kc * CB + cc) * HW, acc, px0, W, vec);
            }}
        }}
        __syncthreads();                                 // xs_s[BUF(kc)] read by all: refill
    }}
}}
"""


# wf_h2r (float16, "register rows"): the h2 plans' arithmetic with fewer instructions per FMA.
# A thread owns PXT = 4 or 8 adjacent pixels of one row and a block of CB channels (the channel
# block the fastest grid index, as wf_tile: the blocks reading the same weights run together,
# L2 hits). Per tap row it loads that row's N x PXT weights once (raw half2, one 8- or 16-byte
# load a tap, the next row's hinted into L1), used for all CB channels; per channel the row
# segment px0-PADX .. px0+PXT+PADX-1 comes from the shared tile in aligned 8- or 16-byte loads
# (LDS.64 / LDS.128), the odd column pairs are funnels of neighbouring words (PRMT), and the
# N x PXT / 2 fma.rn.f16x2 run from registers (h2_row); the row's half2 sum is added to CB x PXT
# float accumulators (h2_into_float). Same rounding and order as the h2 plans (kernels_half2.
# h2_rows_ref). The tile (CB channels, TY + N - 1 rows) is copied with cp.async (_H2_FILL) while
# the first tap row's weights load. Per channel and tap row at N = 9, PXT = 8: 36 HFMA2, 2 LDS.128,
# 7 funnels, 16 float conversions and adds (the h2 quads: 18 HFMA2, 3 LDS.64, 5 funnels, 8).
# PIPE: no branch between the CB channels. The per-channel test c0 + cc < C is a branch, and
# ptxas schedules nothing across it: each channel's LDS then waits alone before its HFMA2s (the
# SASS of nvdisasm shows LDS, LDS, then the dependent funnels, 8 times a row). Without it the
# next channel's LDS issue during this channel's HFMA2s. Channels past C sum their tile rows,
# which the fill made zero, and are not stored. Each kernel's text is the same with PIPE 0.
_H2R = r"""
#define CB {CB}
#define PXT {PXT}
#define HW2 (PXT / 2)                                    // half2 words of one tap's weights
#define TXQ {TXQ}
#define TY {TY}
#define PADX ((R + 3) / 4 * 4)                           // tile halo: whole 4-half (8-byte) chunks
#define SEGW (HW2 + PADX)                                // words of a row segment (px0-PADX ..)
#define SH (TY + N - 1)
#define SW (TXQ * PXT + 2 * PADX)                        // smem column s: image column tx0-PADX+s
#define SQ (SW / 4)
#define NQ (CB * SH * SQ)                                // 8-byte chunks of the tile
#define PIPE {PIPE}                                      // no branch between channels
#if PXT != 4 && PXT != 8
#error "wf_h2r: PXT is 4 or 8"
#endif
{HFMA2}
{PFL1}
{FILL}
// One block: TY rows x TXQ * PXT pixels of the output and CB channels; one thread: PXT pixels
// (px0 ..) of row py.
extern "C" __global__ void __launch_bounds__(TXQ * TY{MINB}) wf_h2r(
    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, int C, int H, int W)
{{
    const long long HW = (long long)H * W;
    const int nb = (C + CB - 1) / CB;
    const int cblk = blockIdx.x % nb, tile = blockIdx.x / nb;
    const int tiles_x = (W + TXQ * PXT - 1) / (TXQ * PXT);
    const int ty0 = (tile / tiles_x) * TY, tx0 = (tile % tiles_x) * (TXQ * PXT);
    const int lx = threadIdx.x % TXQ, ly = threadIdx.x / TXQ;
    const int py = ty0 + ly, px0 = tx0 + lx * PXT;
    const bool vec = (W % PXT) == 0;                     // whole, aligned weight and output words
    const int c0 = cblk * CB;
    const long long b = blockIdx.y;
    __shared__ __align__(16) T xs_s[CB][SH][SW];         // raw half words
#ifdef WF_SMEM_HOOK
    WF_SMEM_HOOK(xs_s);                                  // the CPU test poisons it per block
#endif
    h2w_fill(xs_s, x + b * C * HW, c0, C, H, W, ty0, tx0, (W % 4) == 0);
    c8_commit();
    const bool live = py < H && px0 < W;                 // the others only help fill the tile
    const T* wb = w + b * NN * HW + (long long)py * W + px0;
    if (live && vec && py - R >= 0) {{                   // tap row 0's weights: hinted meanwhile
        #pragma unroll
        for (int j = 0; j < N; ++j) pfl1(wb + (long long)j * HW);
    }}
    float acc[CB][PXT];
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc)
        #pragma unroll
        for (int q = 0; q < PXT; ++q) acc[cc][q] = 0.f;
    c8_wait<0>();
    __syncthreads();                                     // the tile is in; no return before
    if (!live) return;
    #pragma unroll 1
    for (int i = 0; i < N; ++i) {{
        const int y = py + i - R;
        if (vec && i + 1 < N && y + 1 >= 0 && y + 1 < H) {{   // row i+1's, hinted during row i
            #pragma unroll
            for (int j = 0; j < N; ++j) pfl1(wb + (long long)((i + 1) * N + j) * HW);
        }}
        if (y < 0 || y >= H) continue;                   // a zero tile row: +0 partials, skipped
        unsigned wr[N * HW2];                            // tap j, pixels 2h, 2h+1: wr[j * HW2 + h]
        #pragma unroll
        for (int j = 0; j < N; ++j) {{
            const T* wk = wb + (long long)(i * N + j) * HW;
            if (vec && PXT == 8) {{
                const uint4 q = *reinterpret_cast<const uint4*>(wk);
                wr[j * HW2] = q.x; wr[j * HW2 + 1] = q.y;
                wr[j * HW2 + 2 % HW2] = q.z; wr[j * HW2 + 3 % HW2] = q.w;
            }} else if (vec) {{
                const uint2 q = *reinterpret_cast<const uint2*>(wk);
                wr[j * HW2] = q.x; wr[j * HW2 + 1] = q.y;
            }} else {{
                #pragma unroll
                for (int h = 0; h < HW2; ++h) {{
                    const T lo = px0 + 2 * h < W ? wk[2 * h] : (T)0;
                    const T hi = px0 + 2 * h + 1 < W ? wk[2 * h + 1] : (T)0;
                    wr[j * HW2 + h] = lo | ((unsigned)hi << 16);
                }}
            }}
        }}
        #pragma unroll
        for (int cc = 0; cc < CB; ++cc) {{
#if PIPE
            {{                                           // past C: the zero tile, not stored
#else
            if (c0 + cc < C) {{
#endif
                unsigned xw[SEGW];                       // word s: columns px0-PADX+2s, +1
                const unsigned* srow =
                    reinterpret_cast<const unsigned*>(&xs_s[cc][ly + i][lx * PXT]);
#if PXT == 8
                #pragma unroll
                for (int s = 0; s < SEGW; s += 4) {{
                    const uint4 a = *reinterpret_cast<const uint4*>(srow + s);
                    xw[s] = a.x; xw[s + 1] = a.y; xw[s + 2] = a.z; xw[s + 3] = a.w;
                }}
#else
                #pragma unroll
                for (int s = 0; s < SEGW; s += 2) {{
                    const uint2 a = *reinterpret_cast<const uint2*>(srow + s);
                    xw[s] = a.x; xw[s + 1] = a.y;
                }}
#endif
                unsigned part[HW2];
                #pragma unroll
                for (int h = 0; h < HW2; ++h) part[h] = 0u;   // +0, +0 (half2)
                h2_row<HW2, PADX - R>(xw, wr, part);
                h2_into_float<HW2>(part, acc[cc]);
            }}
        }}
    }}
    T* ob = out + (b * C + c0) * HW + (long long)py * W + px0;
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc)
        if (c0 + cc < C) h2_store<PXT>(ob + (long long)cc * HW, acc[cc], px0, W, vec);
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
    ld4, st4 = _VEC4.get(dtype, _VEC4_16)
    return _HOST_VECTORS + _COMMON.format(T=t, ACC=acc, N=n, LD=load, ST=store, LD4=ld4, ST4=st4)


def filter_source(dtype: str, n: int, cb: int, splat: bool, rows: int = 1) -> str:
    """``wf_filter`` for a storage ``dtype`` name (float64, float32, float16, bfloat16), N,
    ``cb`` channels and ``rows`` pixel rows per thread."""
    return _common(dtype, n) + _FILTER.format(CB=cb, SPLAT=int(splat), PY=rows)


def gather4_source(dtype: str, n: int, cb: int) -> str:
    """``wf_gather4``: the gather filter (the forward) with four horizontally adjacent pixels a
    thread, so the weights of a quad come in one vector load, for storage ``dtype``, N and
    ``cb`` channels a thread."""
    return _common(dtype, n) + _GATHER4.format(CB=cb)


def tile_source(dtype: str, n: int, cb: int, txq: int, ty: int, smem: bool, pf: int = 0,
                pfb: int = 8, h2: bool = False) -> str:
    """``wf_tile``: the gather filter (the forward) by blocks of ``ty`` rows x ``txq`` quads
    (4 px) and ``cb`` channels, the input through shared memory (``smem``) or L1. float32,
    float16 and bfloat16 (float accumulators; not float64). ``pf`` (prefetch, bits; 0: the
    plain kernel): 1, the next tap row's raw weights loaded into registers while the current
    row's FMAs run; 4 (instead of 1), those weights only hinted into L1 (``prefetch.L1``); 2,
    the shared tile loaded ``pfb`` quads a thread at a time. ``h2`` (float16, ``smem`` and pf
    bit 2 only): the tile kept as raw half words and each tap row's N taps summed in packed
    half2 (``fma.rn.f16x2``: pixels 0,1 and 2,3 of the quad, the raw weight quad as it was
    loaded), the row's two partial half2 then added to the float accumulators."""
    if dtype == "float64":
        raise ValueError("wf_tile accumulates in float: float64 runs wf_gather4")
    if pf not in range(8) or pf & 5 == 5 or pfb < 1:
        raise ValueError(f"wf_tile pf is 0 to 7 but not 1 and 4 at once, pfb >= 1; not pf={pf} "
                         f"pfb={pfb}")
    if h2 and (dtype != "float16" or not smem or not pf & 2):
        raise ValueError(f"wf_tile h2 sums tap rows in half2: float16 storage, smem and pf bit 2 "
                         f"(the raw 16-bit tile) only; not {dtype} smem={smem} pf={pf}")
    quad = _QUAD["float32" if dtype == "float32" else "16"].format()
    return (_common(dtype, n) + f"#define PFB {pfb}\n"
            + _TILE.format(CB=cb, TXQ=txq, TY=ty, SMEM=int(smem), PF=pf, H2=int(h2), QUAD=quad,
                           PFL1=_PFL1.format(),
                           HALF2=_HALF2.format() if h2 else ""))


def wgrad_source(dtype: str, n: int) -> str:
    """``wf_wgrad`` for storage ``dtype`` and N."""
    return _common(dtype, n) + _WGRAD.format()


def h2w_source(n: int, cb: int, pxt: int, txq: int, ty: int, bc: bool = False,
               cg: int = 1) -> str:
    """``wf_h2w`` (float16 storage only): blocks of ``ty`` rows x ``txq`` threads of ``pxt``
    (2 or 4) pixels, each pixel's N*N weights read once into registers, every channel walked in
    chunks of ``cb`` through a double-buffered shared tile, tap rows summed in half2 as the
    ``h2`` plans do. ``bc`` (pairs only): each input half broadcast to both lanes against
    pre-paired weights (N + 1 FMAs a row, no funnel shifts; N*(N+1) weight registers).
    ``cg`` > 1: a tile's channel chunks split among ``cg`` blocks (each reads the weights; the
    grid's fastest index, so they run together and the later reads hit L2).
    ``x`` (B, C, H, W), ``w`` (B, N*N, H, W) -> ``out`` (B, C, H, W)."""
    if cg < 1:
        raise ValueError(f"wf_h2w: cg (blocks a tile) is 1 or more, not {cg}")
    if pxt not in (2, 4) or txq * pxt % 4:
        raise ValueError(f"wf_h2w: pxt is 2 or 4 and txq * pxt a multiple of 4, not pxt={pxt} "
                         f"txq={txq}")
    if bc and pxt != 2:
        raise ValueError(f"wf_h2w bc broadcasts input halves to a pixel pair: pxt 2, not {pxt}")
    return _common("float16", n) + _H2W.format(CB=cb, PXT=pxt, BC=int(bc), TXQ=txq, TY=ty, CG=cg,
                                                HFMA2=_HFMA2.format(),
                                                FILL=_H2_FILL.format() + _H2_ROW.format())


def h2r_source(n: int, cb: int, pxt: int, txq: int, ty: int, mb: int = 0,
               pipe: bool = False) -> str:
    """``wf_h2r`` (float16 storage only): blocks of ``ty`` rows x ``txq`` threads of ``pxt`` (4
    or 8) pixels and ``cb`` channels (the channel block the fastest grid index), each tap row's
    N x ``pxt`` weights loaded once for the ``cb`` channels, the row segment of each channel
    from the shared tile in aligned vector loads, the taps in half2 from registers, rows added in
    float (the ``h2`` plans' rounding). ``mb`` > 0: at least that many blocks an SM
    (``__launch_bounds__``' second argument: ptxas caps the registers to fit them).
    ``pipe``: no branch between a thread's channels (the next one's shared loads overlap this
    one's FMAs; channels past C run on the zero tile and are not stored).
    ``x`` (B, C, H, W), ``w`` (B, N*N, H, W) -> ``out`` (B, C, H, W)."""
    if pxt not in (4, 8):
        raise ValueError(f"wf_h2r: pxt is 4 or 8 (one or two 8-byte words of weights a tap), "
                         f"not {pxt}")
    if mb < 0:
        raise ValueError(f"wf_h2r: mb (blocks an SM) is 0 (no bound) or more, not {mb}")
    return _common("float16", n) + _H2R.format(CB=cb, PXT=pxt, TXQ=txq, TY=ty, PIPE=int(pipe),
                                                MINB=f", {mb}" if mb else "",
                                                HFMA2=_HFMA2.format(), PFL1=_PFL1.format(),
                                                FILL=_H2_FILL.format() + _H2_ROW.format())
