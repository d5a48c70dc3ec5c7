"""CUDA C of ``wf_xtile``: the gather forward with the weights of a pixel used for many channels.

``wf_tile`` runs 4 pixels x at most 8 channels a thread (``CB * 4`` accumulators next to a tap
row's ``N * 4`` weights), so at C = 32 the weight planes (81 of them at N = 9, more bytes than
the input and output together) are read by 4-8 channel blocks. ``wf_xtile`` trades pixels for
channels: ``PX`` in {2, 4} horizontally adjacent pixels and up to 32 channels a thread. Per tap
row the thread loads the ``N x PX`` weights once (``PX``-wide vector loads) and keeps them in
registers; then, channels innermost, it loads one channel's input segment (image columns
``px0 - PADP .. px0 + PX - 1 + PADP`` as aligned ``PX``-vectors, ``PADP`` = R rounded up to a
multiple of ``PX``) from the shared tile or L1 and adds its ``N x PX`` products: every weight
register multiplies ``CB`` channels, so with CB = C a weight element leaves DRAM/L2 once.

Per FMA a thread reads ``1 / CB`` weights and ``SEG / (N * PX)`` inputs (SEG = PX + 2 PADP):
PX = 4, CB = 16 at N = 9: 0.06 + 0.33 floats (``wf_tile`` cb4: 0.25 + 0.33); PX = 2, CB = 32:
0.03 + 0.56 (more input reads, one DRAM/L2 read of each weight). The shared tile (``SMEM``) holds
the block's CB channels with halo, as float or (``S16``, 16-bit storage) as the raw 16-bit words;
staged with aligned quads like ``wf_tile``. Registers: ``CB*PX`` accumulators, ``N*PX`` weights and
one ``SEG`` segment (``plans.ForwardPlan.unsupported`` bounds them).
"""

from __future__ import annotations

from .cuda_source import _common

_XTILE = r"""
#define CB {CB}
#define PX {PX}
#define TXQ {TXQ}
#define TY {TY}
#define SMEM {SMEM}
#define S16 {S16}
#define MINB {MINB}
#define PAD ((R + 3) / 4 * 4)                            // tile halo: whole quads (staging)
#define PADP ((R + PX - 1) / PX * PX)                    // segment halo: whole PX-vectors
#define SEG (PX + 2 * PADP)
#define SH (TY + N - 1)
#define SW (TXQ * PX + 2 * PAD)
#if S16
typedef T s_t;                                           // raw 16-bit words, converted on read
#else
typedef acc_t s_t;
#endif
// PX consecutive elements (PX-aligned) into float registers: shared tile / global memory
__device__ __forceinline__ void ldsx(const s_t* p, acc_t* v) {{
#if S16
    if (PX == 4) {{
        const uint2 a = *reinterpret_cast<const uint2*>(p);
        const T h[4] = {{(T)(a.x & 0xffffu), (T)(a.x >> 16), (T)(a.y & 0xffffu), (T)(a.y >> 16)}};
        #pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = ld(h, k);
    }} else {{
        const unsigned a = *reinterpret_cast<const unsigned*>(p);
        const T h[2] = {{(T)(a & 0xffffu), (T)(a >> 16)}};
        v[0] = ld(h, 0); v[1] = ld(h, 1);
    }}
#else
    if (PX == 4) {{
        const float4 a = *reinterpret_cast<const float4*>(p); v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    }} else {{
        const float2 a = *reinterpret_cast<const float2*>(p); v[0] = a.x; v[1] = a.y;
    }}
#endif
}}
__device__ __forceinline__ void ldx(const T* __restrict__ p, long long i, acc_t* v) {{
    if (PX == 4) ld4(p, i, v);
    else if (sizeof(T) == 4) {{
        const float2 a = *reinterpret_cast<const float2*>(p + i); v[0] = a.x; v[1] = a.y;
    }} else {{
        const unsigned a = *reinterpret_cast<const unsigned*>(p + i);
        const T h[2] = {{(T)(a & 0xffffu), (T)(a >> 16)}};
        v[0] = ld(h, 0); v[1] = ld(h, 1);
    }}
}}
__device__ __forceinline__ void stx(T* __restrict__ p, long long i, const acc_t* v) {{
    if (PX == 4) st4(p, i, v);
    else if (sizeof(T) == 4) *reinterpret_cast<float2*>(p + i) = make_float2(v[0], v[1]);
    else {{
        T h[2]; st(h, 0, v[0]); st(h, 1, v[1]);
        *reinterpret_cast<unsigned*>(p + i) = (unsigned)h[0] | ((unsigned)h[1] << 16);
    }}
}}
// One block: TY rows x TXQ * PX px of the output and CB channels (the channel block the fastest
// grid index); one thread: PX px of one row, CB channels. Per tap row: the N x PX weights once,
// then for each channel its input segment and the N x PX products (channels innermost).
extern "C" __global__ void __launch_bounds__(TXQ * TY, MINB) wf_xtile(
    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, int C, int H, int W)
{{
    const int HW = H * W;
    const int nb = (C + CB - 1) / CB;
    const int cblk = blockIdx.x % nb, tile = blockIdx.x / nb;
    const int tiles_x = ((W + PX - 1) / PX + TXQ - 1) / TXQ;
    const int ty0 = (tile / tiles_x) * TY, tx0 = (tile % tiles_x) * (TXQ * PX);
    const int lx = threadIdx.x % TXQ, ly = threadIdx.x / TXQ;
    const int py = ty0 + ly, px0 = tx0 + lx * PX;
    const bool vec = (W % 4) == 0;                       // whole, aligned quads: vector loads
    const int c0 = cblk * CB;
    const long long b = blockIdx.y;
    const T* xb = x + (b * C + c0) * (long long)HW;
#if SMEM
    __shared__ __align__(16) s_t xs_s[CB][SH][SW];       // smem column s: image column tx0-PAD+s
#ifdef WF_SMEM_HOOK
    WF_SMEM_HOOK(xs_s);                                  // the CPU test poisons it per block
#endif
    for (int e = threadIdx.x; e < CB * SH * (SW / 4); e += TXQ * TY) {{
        const int cc = e / (SH * (SW / 4)), rem = e % (SH * (SW / 4));
        const int r = rem / (SW / 4), q4 = rem % (SW / 4);
        const int y = ty0 - R + r, xx = tx0 - PAD + q4 * 4;
        const bool live = c0 + cc < C && y >= 0 && y < H;
        const long long at = (long long)cc * HW + (long long)y * W + xx;
#if S16
        uint2 u = make_uint2(0u, 0u);
        if (live) {{
            if (vec) {{
                if (xx >= 0 && xx < W) u = *reinterpret_cast<const uint2*>(xb + at);
            }} else {{
                unsigned h[4];
                #pragma unroll
                for (int q = 0; q < 4; ++q) h[q] = xx + q >= 0 && xx + q < W ? (unsigned)xb[at + q] : 0u;
                u = make_uint2(h[0] | (h[1] << 16), h[2] | (h[3] << 16));
            }}
        }}
        *reinterpret_cast<uint2*>(&xs_s[cc][r][q4 * 4]) = u;
#else
        acc_t v[4] = {{0, 0, 0, 0}};
        if (live) {{
            if (vec) {{
                if (xx >= 0 && xx < W) ld4(xb, at, v);
            }} else {{
                #pragma unroll
                for (int q = 0; q < 4; ++q) v[q] = xx + q >= 0 && xx + q < W ? ld(xb, at + q) : (acc_t)0;
            }}
        }}
        *reinterpret_cast<float4*>(&xs_s[cc][r][q4 * 4]) = make_float4(v[0], v[1], v[2], v[3]);
#endif
    }}
    __syncthreads();                                     // no thread returns before this
#endif
    if (py >= H || px0 >= W) return;
    const T* wb = w + b * NN * (long long)HW + (long long)py * W + px0;
    acc_t acc[CB][PX];
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc)
        #pragma unroll
        for (int q = 0; q < PX; ++q) acc[cc][q] = 0;
    #pragma unroll 1
    for (int i = 0; i < N; ++i) {{
        const int y = py + i - R;
        if (y < 0 || y >= H) continue;
        acc_t wt[N][PX];                                 // the tap row's weights, used CB times
        #pragma unroll
        for (int j = 0; j < N; ++j) {{
            const long long k = (long long)(i * N + j) * HW;
            if (vec) ldx(wb, k, wt[j]);
            else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) wt[j][q] = px0 + q < W ? ld(wb, k + q) : (acc_t)0;
            }}
        }}
        #pragma unroll
        for (int cc = 0; cc < CB; ++cc) {{
            if (c0 + cc < C) {{
                acc_t xs[SEG];                           // image columns px0-PADP .. px0+PX-1+PADP
#if SMEM
                const s_t* srow = &xs_s[cc][ly + i][lx * PX + PAD - PADP];
                #pragma unroll
                for (int s = 0; s < SEG; s += PX) ldsx(srow + s, xs + s);
#else
                const long long row = (long long)cc * HW + (long long)y * W;
                #pragma unroll
                for (int s = 0; s < SEG; s += PX) {{
                    const int xx = px0 - PADP + s;
                    if (vec) {{
                        if (xx >= 0 && xx < W) ldx(xb, row + xx, xs + s);
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
                    for (int q = 0; q < PX; ++q) acc[cc][q] += wt[j][q] * xs[PADP - R + q + j];
            }}
        }}
    }}
    T* ob = out + (b * C + c0) * (long long)HW + (long long)py * W + px0;
    #pragma unroll
    for (int cc = 0; cc < CB; ++cc) {{
        if (c0 + cc < C) {{
            if (vec) stx(ob, (long long)cc * HW, acc[cc]);
            else {{
                #pragma unroll
                for (int q = 0; q < PX; ++q) if (px0 + q < W) st(ob, (long long)cc * HW + q, acc[cc][q]);
            }}
        }}
    }}
}}
"""


def xtile_source(dtype: str, n: int, cb: int, px: int, txq: int, ty: int, smem: bool,
                 s16: bool = False, minb: int = 1) -> str:
    """``wf_xtile`` for storage ``dtype`` (float32, float16, bfloat16), N, ``cb`` channels and
    ``px`` (2 or 4) pixels a thread, blocks of ``ty`` rows x ``txq`` threads along x, the input
    through shared memory (``smem``; raw 16-bit words with ``s16``) or L1; ``minb`` blocks an SM
    for ``__launch_bounds__``."""
    if dtype == "float64":
        raise ValueError("wf_xtile accumulates in float: float64 runs wf_gather4")
    if px not in (2, 4):
        raise ValueError(f"wf_xtile takes 2 or 4 pixels a thread, not {px}")
    if (txq * px) % 4:
        raise ValueError(f"a wf_xtile block is whole quads wide: txq * px = {txq * px}")
    if s16 and dtype not in ("float16", "bfloat16"):
        raise ValueError(f"a 16-bit shared tile needs 16-bit storage, not {dtype}")
    return _common(dtype, n) + _XTILE.format(CB=cb, PX=px, TXQ=txq, TY=ty, SMEM=int(smem),
                                             S16=int(s16 and smem), MINB=minb)
