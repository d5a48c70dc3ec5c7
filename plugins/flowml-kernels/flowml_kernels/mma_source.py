"""CUDA C of ``wf_mma``: the gather forward on tensor cores, for float16 and bfloat16 storage.

Per tap row ``i`` and output row ``y`` the filter is a matrix product. For 8 adjacent output
pixels ``x0 .. x0+7`` (a group) and 16 channels::

    out[c, y, x0+n] += sum_k A[c, k] * B[k, n]
    A[c, k] = x[c, y+i-R, x0-RA+k]                  the input row, 16 channels x K columns
    B[k, n] = w[i*N + (k - n - (RA-R)), y, x0+n]    banded: tap j = k - n - (RA-R), 0 <= j < N

with ``RA`` = R rounded up to even (so A's columns start at an even, 4-byte aligned half) and
``K = 16 * KS`` >= 8 + 2R + (RA-R) (one k-step up to N = 9, two up to N = 15). That is
``mma.sync.m16n8k16`` (f16 or bf16 inputs, float accumulators): M = channels, N = pixels,
K = input columns; 9 of every 16 products are useful at N = 9, and the tensor cores have ~15x
the FMA rate, so the forward is no longer bound by FMAs, input conversions or shared-memory
reads per FMA. Each weight is loaded once (coalesced 8-byte loads of 4 pixels of one tap),
written into a per-warp band matrix in shared memory (zero outside the band; zeroed once) and
read back as B fragments used for all ``CB / 16`` channel tiles of the block (C = 32: each
weight element multiplies 32 channels from one fragment register). A fragments come straight
from the block's 16-bit input tile (32-bit shared loads, channel planes padded so the 8 rows a
load touches fall in distinct banks); the 8-column blocks slide, so a warp loads GX + 2KS - 1
blocks per tap row for its GX groups.

Layout: one block = ``WY`` warps, warp ``ly`` computes ``PY`` output rows from ``ty0 + ly * PY``,
``GX`` groups (``8 * GX`` px) and the block's ``CB`` channels (16 or 32; channel blocks the
fastest grid index as in ``wf_tile``). The warp walks its ``N + PY - 1`` input rows: the A
fragments of one are read once and serve tap row ``t - r`` of each output row ``r`` (a band per
row). The next input row's weights are loaded before the current row's products.

On a host compiler (the CPU test) the same source runs one thread at a time: each thread does
its warp's cooperative work (band zeroing and filling) alone, and the ``mma`` is emulated by
assembling the 16x16 A and 16x8 B operands from the fragment registers of all 32 lanes, read
through the same functions the GPU path uses, with the fragment layout of the PTX ISA
(``wf_mma_host``), so the test checks the kernel's fragment indexing against that layout.
"""

from __future__ import annotations

from .cuda_source import _common

_MMA = r"""
#define CB {CB}
#define MT (CB / 16)                                     // 16-channel tiles
#define GX {GX}
#define WY {WY}
#define PY {PY}
#define RA (R + (R & 1))                                 // A starts at x0 - RA (even)
#define KS ((8 + R + RA + 15) / 16)                      // k-steps of 16 columns
#define OFFA (8 - RA)                                    // tile column of A's column 0, group 0
#define SH (WY * PY + N - 1)
#define SWH (8 * GX + 16 * KS)                           // tile columns: image tx0-8 ..
#define CSTR ((SH * SWH + 15) / 16 * 16 + 8)             // channel plane: 8 mod 16 halves
#define RSB (16 * KS + 8)                                // band row (a pixel): halves
#define GSB (8 * RSB + 16)                               // band of a group: halves
#define ITEMS (GX * N * 2)                               // weight loads a tap row: 4 px each
#ifdef __CUDA_ARCH__
#define WF_LSTEP 32                                      // a warp's lanes share its work
#else
#define WF_LSTEP 1                                       // one host thread does its warp's work
#endif
#define WIPL ((ITEMS + WF_LSTEP - 1) / WF_LSTEP)
#ifndef __CUDA_ARCH__
// D += A B for lane `lane`, A (16x16) and B (16x8) assembled from the fragment registers
// fa(l, r) (r < 4) and fb(l, r) (r < 2) of the lanes by the PTX ISA layout of mma.m16n8k16;
// only the lanes holding this lane's rows of A (rows g, g+8) and columns of B (2t, 2t+1).
template <class FA, class FB>
inline void wf_mma_host(float* d, int lane, FA fa, FB fb) {{
    float A[16][16], B[16][8];
    const int gd = lane >> 2, td = lane & 3;
    for (int l = 0; l < 32; ++l) {{
        const int g = l >> 2, t = l & 3;
        if (g == gd)
            for (int r = 0; r < 4; ++r)
                for (int h = 0; h < 2; ++h) {{
                    const int e = 2 * r + h;             // a_e: rows g (e = 0,1,4,5), g+8
                    const T bits = (T)((fa(l, r) >> (16 * h)) & 0xffffu);
                    A[g + 8 * ((e / 2) % 2)][2 * t + (e & 1) + 8 * (e / 4)] = ld(&bits, 0);
                }}
        if (g / 2 == td)
            for (int r = 0; r < 2; ++r)
                for (int h = 0; h < 2; ++h) {{
                    const int e = 2 * r + h;             // b_e: row 2t + (e&1) + 8 (e/2), col g
                    const T bits = (T)((fb(l, r) >> (16 * h)) & 0xffffu);
                    B[2 * t + (e & 1) + 8 * (e / 2)][g] = ld(&bits, 0);
                }}
    }}
    for (int e = 0; e < 4; ++e) {{                       // c_e: row g + 8 (e/2), col 2t + (e&1)
        float s = 0;
        for (int k = 0; k < 16; ++k) s += A[gd + 8 * (e / 2)][k] * B[k][2 * td + (e & 1)];
        d[e] += s;
    }}
}}
#endif
extern "C" __global__ void __launch_bounds__(32 * WY) wf_mma(
    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out, int C, int H, int W)
{{
    const int HW = H * W;
    const int nb = (C + CB - 1) / CB;
    const int cblk = blockIdx.x % nb, tile = blockIdx.x / nb;
    const int tiles_x = (W + 8 * GX - 1) / (8 * GX);
    const int ty0 = (tile / tiles_x) * (WY * PY), tx0 = (tile % tiles_x) * (8 * GX);
    const int lane = threadIdx.x % 32, ly = threadIdx.x / 32;
    const int oy = ty0 + ly * PY;                        // this warp's output rows oy .. oy+PY-1
    const bool vec = (W % 4) == 0;                       // whole, aligned quads: vector access
    const int c0 = cblk * CB;
    const long long b = blockIdx.y;
    const T* xb = x + (b * C + c0) * (long long)HW;
    __shared__ __align__(16) T xs_s[CB][CSTR];           // [c][row * SWH + col]: image tx0-8+col
    __shared__ __align__(16) T bs[WY][PY][GX][GSB];      // per warp and row: B of each group
#ifdef WF_SMEM_HOOK
    WF_SMEM_HOOK(xs_s);                                  // the CPU test poisons it per block
#endif
    for (int e = threadIdx.x; e < CB * SH * (SWH / 4); e += 32 * WY) {{
        const int cc = e / (SH * (SWH / 4)), rem = e % (SH * (SWH / 4));
        const int r = rem / (SWH / 4), q4 = rem % (SWH / 4);
        const int y = ty0 - R + r, xx = tx0 - 8 + q4 * 4;
        const long long at = (long long)cc * HW + (long long)y * W + xx;
        uint2 u = make_uint2(0u, 0u);
        if (c0 + cc < C && y >= 0 && y < H) {{
            if (vec) {{
                if (xx >= 0 && xx < W) u = *reinterpret_cast<const uint2*>(xb + at);
            }} else {{
                unsigned h[4];
                #pragma unroll
                for (int q = 0; q < 4; ++q) h[q] = xx + q >= 0 && xx + q < W ? (unsigned)xb[at + q] : 0u;
                u = make_uint2(h[0] | (h[1] << 16), h[2] | (h[3] << 16));
            }}
        }}
        *reinterpret_cast<uint2*>(&xs_s[cc][r * SWH + q4 * 4]) = u;
    }}
    __syncthreads();                                     // no thread returns before this
    if (oy >= H) return;                                 // the whole warp
    T* band = &bs[ly][0][0][0];                          // row r, group G: band[(r * GX + G) * GSB]
    for (int e = lane % WF_LSTEP; e < PY * GX * GSB / 2; e += WF_LSTEP)
        reinterpret_cast<unsigned*>(band)[e] = 0u;       // zero outside the band, for good
    const T* wrow = w + b * NN * (long long)HW + (long long)oy * W + tx0;
    // tap row i of output row r: item e = (tap j, group G, half h): 4 px of one tap plane, so
    // the 2 * GX lanes of one tap read 8 * GX contiguous pixels; rows below the image: zeros
    auto load_w = [&](int r, int i, uint2* wr) {{
        #pragma unroll
        for (int k = 0; k < WIPL; ++k) {{
            const int e = lane % WF_LSTEP + k * WF_LSTEP;
            uint2 u = make_uint2(0u, 0u);
            if (e < ITEMS && i >= 0 && i < N && oy + r < H) {{
                const int j = e / (2 * GX), G = (e / 2) % GX, h = e % 2;
                const int px = 8 * G + 4 * h;            // from tx0
                const T* p = wrow + (long long)(i * N + j) * HW + (long long)r * W + px;
                if (vec) {{
                    if (tx0 + px < W) u = *reinterpret_cast<const uint2*>(p);
                }} else {{
                    unsigned v[4];
                    #pragma unroll
                    for (int q = 0; q < 4; ++q) v[q] = tx0 + px + q < W ? (unsigned)p[q] : 0u;
                    u = make_uint2(v[0] | (v[1] << 16), v[2] | (v[3] << 16));
                }}
            }}
            wr[k] = u;
        }}
    }};
    auto scatter_w = [&](int r, const uint2* wr) {{      // B[k][n] at band[.. + n * RSB + k]
        #pragma unroll
        for (int k = 0; k < WIPL; ++k) {{
            const int e = lane % WF_LSTEP + k * WF_LSTEP;
            if (e < ITEMS) {{
                const int j = e / (2 * GX), G = (e / 2) % GX, h = e % 2;
                const unsigned v[2] = {{wr[k].x, wr[k].y}};
                #pragma unroll
                for (int q = 0; q < 4; ++q) {{
                    const int n = 4 * h + q;
                    band[(r * GX + G) * GSB + n * RSB + j + n + (RA - R)] =
                        (T)((v[q / 2] >> (16 * (q % 2))) & 0xffffu);
                }}
            }}
        }}
    }};
    float acc[PY][GX][MT][4];
    #pragma unroll
    for (int r = 0; r < PY; ++r)
        #pragma unroll
        for (int G = 0; G < GX; ++G)
            #pragma unroll
            for (int m = 0; m < MT; ++m)
                #pragma unroll
                for (int e = 0; e < 4; ++e) acc[r][G][m][e] = 0.f;
    uint2 wr[PY][WIPL];
    #pragma unroll
    for (int r = 0; r < PY; ++r) load_w(r, -r, wr[r]);
    // input row t (tile row ly * PY + t) serves tap row t - r of output row r: its A fragments
    // are read once for up to PY rows. Rows outside the image: zero tile rows.
    #pragma unroll 1
    for (int t = 0; t < N + PY - 1; ++t) {{
        __syncwarp();                                    // the last row's B reads are done
        #pragma unroll
        for (int r = 0; r < PY; ++r)
            if (t - r >= 0 && t - r < N) scatter_w(r, wr[r]);
        __syncwarp();
        #pragma unroll
        for (int r = 0; r < PY; ++r) load_w(r, t + 1 - r, wr[r]);  // in flight meanwhile
        const int trow = (ly * PY + t) * SWH + OFFA;
        // A register h (rows g, g+8) of 8-column block a, channel tile m, for lane l
        auto a_reg = [&](int l, int m, int a, int h) -> unsigned {{
            return *reinterpret_cast<const unsigned*>(
                &xs_s[16 * m + (l >> 2) + 8 * h][trow + 8 * a + 2 * (l & 3)]);
        }};
        // B register h (k 2t..2t+1 or 2t+8..2t+9) of k-step s, row r, group G, for lane l
        auto b_reg = [&](int l, int r, int G, int s, int h) -> unsigned {{
            return *reinterpret_cast<const unsigned*>(
                &band[(r * GX + G) * GSB + (l >> 2) * RSB + 16 * s + 8 * h + 2 * (l & 3)]);
        }};
#ifdef __CUDA_ARCH__
        unsigned ar[GX + 2 * KS - 1][MT][2];
        #pragma unroll
        for (int a = 0; a < GX + 2 * KS - 1; ++a)
            #pragma unroll
            for (int m = 0; m < MT; ++m) {{ ar[a][m][0] = a_reg(lane, m, a, 0); ar[a][m][1] = a_reg(lane, m, a, 1); }}
#endif
        #pragma unroll
        for (int r = 0; r < PY; ++r) {{
            if (t - r < 0 || t - r >= N) continue;       // the same for the whole warp
            #pragma unroll
            for (int G = 0; G < GX; ++G)
                #pragma unroll
                for (int s = 0; s < KS; ++s) {{
#ifdef __CUDA_ARCH__
                    const unsigned b0 = b_reg(lane, r, G, s, 0), b1 = b_reg(lane, r, G, s, 1);
                    #pragma unroll
                    for (int m = 0; m < MT; ++m) {{
                        const int a = G + 2 * s;
                        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.{MT_TYPE}.{MT_TYPE}.f32 "
                                     "{{%0, %1, %2, %3}}, {{%4, %5, %6, %7}}, {{%8, %9}}, {{%0, %1, %2, %3}};"
                                     : "+f"(acc[r][G][m][0]), "+f"(acc[r][G][m][1]),
                                       "+f"(acc[r][G][m][2]), "+f"(acc[r][G][m][3])
                                     : "r"(ar[a][m][0]), "r"(ar[a][m][1]), "r"(ar[a + 1][m][0]),
                                       "r"(ar[a + 1][m][1]), "r"(b0), "r"(b1));
                    }}
#else
                    for (int m = 0; m < MT; ++m)
                        wf_mma_host(acc[r][G][m], lane,
                                    [&](int l, int q) {{ return a_reg(l, m, G + 2 * s + q / 2, q % 2); }},
                                    [&](int l, int q) {{ return b_reg(l, r, G, s, q); }});
#endif
                }}
        }}
    }}
    // c_e: channel 16m + g + 8 (e/2), pixel 8G + 2t + (e&1)
    const int g = lane >> 2, t = lane & 3;
    #pragma unroll
    for (int r = 0; r < PY; ++r) {{
        if (oy + r >= H) break;
        T* orow = out + (b * C + c0) * (long long)HW + (long long)(oy + r) * W + tx0;
        #pragma unroll
        for (int G = 0; G < GX; ++G) {{
            const int px = 8 * G + 2 * t;
            if (tx0 + px >= W) continue;
            #pragma unroll
            for (int m = 0; m < MT; ++m)
                #pragma unroll
                for (int hh = 0; hh < 2; ++hh) {{
                    const int cc = 16 * m + g + 8 * hh;
                    if (c0 + cc >= C) continue;
                    T* p = orow + (long long)cc * HW + px;
                    if (vec) {{
                        T h2[2];
                        st(h2, 0, acc[r][G][m][2 * hh]);
                        st(h2, 1, acc[r][G][m][2 * hh + 1]);
                        *reinterpret_cast<unsigned*>(p) = (unsigned)h2[0] | ((unsigned)h2[1] << 16);
                    }} else {{
                        st(p, 0, acc[r][G][m][2 * hh]);
                        if (tx0 + px + 1 < W) st(p, 1, acc[r][G][m][2 * hh + 1]);
                    }}
                }}
        }}
    }}
}}
"""

MMA_DTYPES = {"float16": "f16", "bfloat16": "bf16"}


def mma_layout(n: int, cb: int, gx: int, wy: int, py: int = 1) -> dict[str, int]:
    """The sizes ``wf_mma`` derives from N, ``cb`` channels, ``gx`` groups a warp, ``wy`` warps
    and ``py`` rows a warp (the macros of the source, computed the same way): k-steps, tile
    and band halves."""
    r = n // 2
    ra = r + (r & 1)
    ks = (8 + r + ra + 15) // 16
    sh, swh = wy * py + n - 1, 8 * gx + 16 * ks
    cstr = (sh * swh + 15) // 16 * 16 + 8
    rsb = 16 * ks + 8
    gsb = 8 * rsb + 16
    return {"ks": ks, "tile_halves": cb * cstr, "band_halves": wy * py * gx * gsb,
            "smem_bytes": 2 * (cb * cstr + wy * py * gx * gsb)}


def mma_source(dtype: str, n: int, cb: int, gx: int, wy: int, py: int = 1) -> str:
    """``wf_mma`` for 16-bit storage ``dtype`` (float16, bfloat16), N, ``cb`` channels a block
    (16 or 32), ``gx`` 8-pixel groups a warp, ``wy`` warps a block and ``py`` output rows a
    warp."""
    if dtype not in MMA_DTYPES:
        raise ValueError(f"wf_mma multiplies 16-bit inputs on tensor cores: float16 or bfloat16, "
                         f"not {dtype}; float32 runs the CUDA-core plans")
    if cb not in (16, 32):
        raise ValueError(f"wf_mma takes 16 or 32 channels a block (tiles of 16), not {cb}")
    if n > 17:
        raise ValueError(f"wf_mma's tile halo is 8 columns: N <= 17, not {n}")
    return _common(dtype, n) + _MMA.format(CB=cb, GX=gx, WY=wy, PY=py, MT_TYPE=MMA_DTYPES[dtype])
