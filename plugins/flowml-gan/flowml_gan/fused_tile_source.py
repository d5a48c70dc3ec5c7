"""CUDA C of the one-kernel filtered leaky ReLU (``fused_tile.py`` plans and launches it).

Written for flowml from the definition of the op (``ops_sg3.filtered_lrelu``). One block makes
one ``TW x TH`` tile of the output of one image plane (``n * C + c``), and nothing but the output
goes to global memory; the stages meet in shared memory, ``__syncthreads`` between them:

1. the up-sampling filter, flipped (the op convolves; the kernel correlates) and times ``UP``
   per axis (the op's gain ``UP**2``); the down-sampling one is read from constant memory
   (``flr_cfd``, filled by the launcher on the stream), so that its taps are the FMAs' operands;
2. the input tile with its halo, bias added, zero outside the image (``IH x IW``, buffer A);
3. up-sampling along x, polyphase (only the taps that meet a real sample): ``IH x UW`` into B;
4. up-sampling along y, then ``gain``, leaky ReLU and clamp: ``UH x UW`` into A (the input
   tile is dead by then), each row's columns grouped by phase ``u % DOWN`` (so that the
   down-sampling's stride-``DOWN`` reads are unit-stride across a warp: no bank conflicts);
5. down-sampling, strided: a 2-D filter (``FD == 2``, StyleGAN3-R's radial one) straight from A
   to the output, each thread ``RY`` outputs of a column (a tap row read once for all of them);
   a separable one (``FD == 1``) along x into B then along y to the output (``RY`` likewise);
   none (``FD == 0``) keeps every ``DOWN``-th sample.

``UV`` (bits) picks variants. Bit 1, the up-sampling stages (3, 4): clear, a thread an
up-sampled sample, the taps read from shared memory (two shared loads an FMA); set (the
default plans): a
thread makes the ``UP`` samples of one input step (all phases), reading the ``NJ + 1`` inputs
they share once, with the taps from constant memory (``flr_cfu``, filled like ``flr_cfd``) as
the FMAs' operands: about ``(NJ + 1) / UP`` shared loads a sample instead of ``2 * NJ``, the
same sums in the same order (bit-identical; the ``UP`` gain is applied to the sum, exactly).
B is then stored by x phase (``B[r][p][g]``, unit-stride across threads both ways). Bit 2,
the 2-D down stage (5): clear, the ``RY`` outputs' loop fully unrolled (the compiler hoists
every row's loads: over 64 registers from ``RY`` 6 on); set, a rolling loop over steps of
``DOWN`` tap rows with ``ceil(KD / DOWN)`` running sums (any ``RY``, few registers); for a
separable filter (``FD == 1``) the y pass first, rolling likewise over A's columns into B
(``TH x UWS``), then the x pass from B to the output (the same sums as x first, fewer loads).
Bit 4 (with bits 1 and 2, a down filter, float16 storage; the half2 variant): A holds
the up-sampled tile as raw half words (the y-up stage rounds each sample to half, RN: half
A's shared bytes), and the down stage computes in half2: a thread makes two adjacent
outputs of ``RY`` rows, each 32-bit word of A a pair of samples that both read (one shared
load for two outputs; the pairs of odd offsets cut from two aligned words), each filter row's
``KD`` taps in ``fma.rn.f16x2`` (taps from ``flr_cfd2``, the filter rounded to half, RN,
two taps a word, each broadcast to both halves) in tap order, the row's sum then added to float accumulators (``KD`` rows in
order), the result rounded to half once; a separable filter (``FD == 1``): the y pass two
adjacent columns of A a thread, the x pass two adjacent outputs, each output's taps of one
phase (``k % DOWN``) one half2 chain, the ``DOWN`` chains added in float and rounded to half
(B, between the passes, is half too). Bit 8 (with 4): B too as half (the x-up stage
rounds its sums), and the y-up stage in half2: a thread the ``UP`` rows of two adjacent input
steps of one x phase (a word of B), each phase's ``NJ`` taps in ``fma.rn.f16x2`` (``flr_cfu2``,
the up filter rounded to half), then the ``UP`` gain, gain, leaky ReLU and clamp in float per
half. Off the GPU ``flr_hfma2`` gives the instruction's bits (each half's fma in double,
rounded once), so the CPU harness is exact.

Coordinates: ``u`` is a sample of the up-filtered image (the op's padded, up-sampled grid),
``s = u + k - P0`` the zero-stuffed input position that tap ``k`` of sample ``u`` meets (a real
sample where ``UP`` divides ``s``). The tile's output ``o`` reads ``u = o * DOWN + k``.

The kernel is a C++ template over the storage type (``float`` or raw 16-bit half words) and
the plan (up/down factors, taps, filter kind, tile, ``RY``, threads), instantiated by NVRTC
through a name expression (``kernel_name``). Accumulation is in float. The same source
compiles as C++ for the CPU (``host_harness``): a block's threads are POSIX threads meeting
at a barrier for ``__syncthreads``, the blocks run one after another, shared memory poisoned
with NaN before each block and guarded by a NaN canary after it.
"""

from __future__ import annotations

from flowml.gpu.cuda_c import ELEMENT_ACCESS

__all__ = ["KERNEL_SOURCE", "MAX_FD_FLOATS", "MAX_FU_FLOATS", "STORAGE", "kernel_name", "host_harness"]

MAX_FD_FLOATS = 24 * 24
"""Room for the down-sampling filter in constant memory (``flr_cfd``): 24 x 24 taps."""
MAX_FU_FLOATS = 64
"""Room for the up-sampling filter in constant memory (``flr_cfu``, plans with ``uv`` 1)."""
STORAGE = {"float32": ELEMENT_ACCESS["float32"][0], "float16": ELEMENT_ACCESS["float16"][0]}

_HOST = r"""
#ifndef __CUDACC__
#include <cstring>
#include <pthread.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __constant__ static
struct flr_dim3 { unsigned x, y, z; };
static flr_dim3 blockIdx, blockDim;
static thread_local flr_dim3 threadIdx;
static float* flr_host_smem;
static pthread_barrier_t flr_bar;
#define __syncthreads() pthread_barrier_wait(&flr_bar)
#endif
typedef long long i64;
#define FLR_MAX_FD {MAX_FD}
#define FLR_MAX_FU {MAX_FU}
"""

_ACCESS = r"""
__device__ __forceinline__ float ld(const float* p, i64 i) {{ {LD32} }}
__device__ __forceinline__ void st(float* p, i64 i, float v) {{ {ST32} }}
__device__ __forceinline__ float ld(const unsigned short* p, i64 i) {{ {LD16} }}
__device__ __forceinline__ void st(unsigned short* p, i64 i, float v) {{ {ST16} }}
"""

_KERNEL = r"""
__device__ __forceinline__ int flr_floordiv(int a, int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }
__device__ __forceinline__ int flr_mod(int a, int b) { const int r = a % b; return r < 0 ? r + b : r; }
__host__ __device__ constexpr int flr_max(int a, int b) { return a > b ? a : b; }

// The tile's geometry (fused_tile.TilePlan computes the same numbers for the launch).
// UV 1: the up-sampling stages make UP outputs a thread (all phases of one input step), so
// the x-up buffer B is stored by phase: B[r][p][g] for u = UP * g + p - (sx0 mod UP).
template <int UP, int KU, int DOWN, int KD, int FD, int TW, int TH, int RY, int UV>
struct FlrGeom {
    static constexpr int UW = (TW - 1) * DOWN + KD;            // up-sampled tile width
    static constexpr int UWD = (UW + DOWN - 1) / DOWN;         // columns of one phase
    static constexpr int UWS = UWD * DOWN;                     // row stride of the up tile
    static constexpr int UH = (TH - 1) * DOWN + KD;            // rows the outputs read
    static constexpr int GY = (TH + RY - 1) / RY;              // row groups of RY outputs
    static constexpr int UHP = (GY * RY) * DOWN + (KD - 1) / DOWN * DOWN;  // rows the last group reads
    static constexpr int IW = (UW + KU - 2) / UP + 1;          // input tile (with halo)
    static constexpr int IH = (UH + KU - 2) / UP + 1;
    static constexpr int QX = (UW + UP - 2) / UP + 1;          // UV 1: input steps along x
    static constexpr int QY = (UH + UP - 2) / UP + 1;          //       and along y
    static constexpr int SBW = (UV & 1) ? UP * QX : UW;        // row stride of B
    static constexpr int NFU = (UV & 1) ? 0 : (KU + 3) / 4 * 4;  // UV 1: fu in constant memory
    // UV 4 (half2, FD 1 or 2, float16 storage): A as raw half words, each phase row padded to an
    // even UWDH that holds the NW aligned words a pair of outputs reads (UWS2 halves a row)
    static constexpr int NJJ = (TW + 1) / 2;                   // output pairs of a tile row
    static constexpr int NW = (KD + DOWN - 1) / DOWN / 2 + 1;  // words a phase a pair reads
    static constexpr int UWDH = flr_max((UWD + 1) / 2 * 2, 2 * (NJJ - 1) + 2 * NW);
    static constexpr int UWS2 = UWDH * DOWN;
    static constexpr int SA = (UV & 4) ? flr_max(IH * IW, UHP * UWS2 / 2)  // input, then the
                                       : flr_max(IH * IW, UHP * UWS);      // up-sampled tile
    // UV 8 (with 4): B as raw half words too, each phase's QX steps padded to an even QXH
    static constexpr int QXH = (QX + 1) / 2 * 2;
    static constexpr int SBWH = UP * QXH;                      // B's row in halves
    static constexpr int SBX = (UV & 8) ? IH * SBWH / 2 : IH * SBW;  // the x-up buffer
    static constexpr int SB = (FD == 1 && (UV & 4)) ? flr_max(SBX, TH * UWS2 / 2)  // 1-D down: B
        : FD == 1 ? flr_max(flr_max(SBX, UHP * TW), TH * UWS) : SBX;  // the y pass's output too
    static constexpr int SMEM = NFU + SA + SB;                 // floats
};

// The down-sampling filter as the FMAs' constant operand (uniform, compile-time indices):
// copied from the caller's tensor on the launch's stream before each launch (one module, so
// one copy of this, per stream), unflipped; FD 2: (KD, KD) row-major, FD 1: (KD,).
__constant__ float flr_cfd[FLR_MAX_FD];
// UV 1: the up-sampling filter (KU,) likewise, unflipped and unscaled (the stages multiply
// their sums by UP: exact, a power of two).
__constant__ float flr_cfu[FLR_MAX_FU];
// UV 4: the down-sampling filter rounded to half (RN), in flr_cfd's order, two taps a word
// (tap 2i the low half); filled by the launcher likewise
__constant__ unsigned flr_cfd2[FLR_MAX_FD / 2];
// UV 8: the up-sampling filter likewise (flr_cfu's order, rounded to half, two taps a word)
__constant__ unsigned flr_cfu2[FLR_MAX_FU / 2];

// half2 arithmetic (UV 4): on the GPU fma.rn.f16x2; on the host each half's fma in double,
// rounded once to half (the product of two halves is exact in double, and where the sum's
// rounding matters the sum is exact too), so the CPU harness gives the GPU's bits
__device__ __forceinline__ unsigned flr_hfma2(unsigned a, unsigned b, unsigned c) {
#ifdef __CUDA_ARCH__
    unsigned d; asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c)); return d;
#else
    unsigned short d[2];
    for (int k = 0; k < 2; ++k) {
        _Float16 x, y, z;
        const unsigned short ak = (unsigned short)(a >> 16 * k), bk = (unsigned short)(b >> 16 * k),
                             ck = (unsigned short)(c >> 16 * k);
        std::memcpy(&x, &ak, 2); std::memcpy(&y, &bk, 2); std::memcpy(&z, &ck, 2);
        const _Float16 r = (_Float16)((double)x * (double)y + (double)z);
        std::memcpy(d + k, &r, 2);
    }
    return d[0] | ((unsigned)d[1] << 16);
#endif
}
// the high half of a and the low half of b, one word (volatile on the GPU: computed where
// written, once a row, not sunk into each filter row's branch)
__device__ __forceinline__ unsigned flr_mid(unsigned a, unsigned b) {
#ifdef __CUDA_ARCH__
    unsigned d; asm volatile("prmt.b32 %0, %1, %2, 0x5432;" : "=r"(d) : "r"(a), "r"(b)); return d;
#else
    return (a >> 16) | (b << 16);
#endif
}
// half `odd` of w in both halves of a word: on the GPU ptxas folds this into the HFMA2's
// operand (R.H0_H0 / R.H1_H1), so one constant load serves two taps (prmt did not fold)
__device__ __forceinline__ unsigned flr_both_halves(unsigned w, int odd) {
#ifdef __CUDA_ARCH__
    unsigned d;
    if (odd) asm("{.reg .b16 l, h; mov.b32 {l, h}, %1; mov.b32 %0, {h, h};}" : "=r"(d) : "r"(w));
    else asm("{.reg .b16 l, h; mov.b32 {l, h}, %1; mov.b32 %0, {l, l};}" : "=r"(d) : "r"(w));
    return d;
#else
    return odd ? (w >> 16) | (w & 0xffff0000u) : (w & 0xffffu) | (w << 16);
#endif
}
// tap t of flr_cfd2 (down filter) and of flr_cfu2 (up filter) in both halves of a word
__device__ __forceinline__ unsigned flr_tap2(int t) {
    return flr_both_halves(flr_cfd2[t / 2], t % 2);
}
__device__ __forceinline__ unsigned flr_tapu2(int t) {
    return flr_both_halves(flr_cfu2[t / 2], t % 2);
}
// the aligned word of halves p[i], p[i + 1] (i even): p[i] the low half
__device__ __forceinline__ unsigned flr_ldw(const unsigned short* p, int i) {
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const unsigned*>(p + i);
#else
    unsigned w; std::memcpy(&w, p + i, 4); return w;
#endif
}
// the low and the high half of a half2 word as floats (exact; ld: cvt.f32.f16 on the GPU,
// _Float16 on the host)
__device__ __forceinline__ float flr_lo(unsigned w) {
    const unsigned short h = (unsigned short)w; return ld(&h, 0);
}
__device__ __forceinline__ float flr_hi(unsigned w) {
    const unsigned short h = (unsigned short)(w >> 16); return ld(&h, 0);
}
// the activation of an up-sampled sample v: times gain, leaky ReLU (slope), clamp to
// [-clamp, clamp] when clamp >= 0 (the op's order)
__device__ __forceinline__ float flr_act(float v, float gain, float slope, float clamp) {
    v *= gain;
    if (v < 0.f) v *= slope;
    if (clamp >= 0.f) v = v > clamp ? clamp : (v < -clamp ? -clamp : v);
    return v;
}

template <typename T, int UP, int KU, int DOWN, int KD, int FD, int TW, int TH, int RY, int NT, int UV>
__device__ __forceinline__ void flr_tile_body(
        const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ fu,
        const T* __restrict__ bias, int C, int H, int W, int Ho, int Wo, int px0, int py0,
        int tiles_x, int tiles, float gain, float slope, float clamp, float* smem) {
    typedef FlrGeom<UP, KU, DOWN, KD, FD, TW, TH, RY, UV> G;
    static_assert(!(UV & 4) || (FD >= 1 && (UV & 3) == 3),
                  "UV 4 (half2) is a down filter's, with UV bits 1 and 2");
    static_assert(!(UV & 8) || (UV & 4), "UV 8 (half2 y-up) goes with UV 4");
    constexpr int NJ = (KU + UP - 1) / UP;                     // taps that meet real samples
    float* sfu = smem;
    float* sa = sfu + G::NFU;
    float* sb = sa + G::SA;
    const int tid = threadIdx.x;
    const i64 plane = blockIdx.x / tiles;
    const int tile = (int)(blockIdx.x - plane * tiles);
    const int ty = tile / tiles_x, tx = tile - ty * tiles_x;
    const int ox0 = tx * TW, oy0 = ty * TH;
    const int sx0 = ox0 * DOWN - px0, sy0 = oy0 * DOWN - py0;  // s of tap 0 of the tile's first u
    const int ix0 = -flr_floordiv(-sx0, UP), iy0 = -flr_floordiv(-sy0, UP);  // first input read

    if (!(UV & 1))
        for (int e = tid; e < KU; e += NT) sfu[e] = fu[KU - 1 - e] * (float)UP;
    const float b = bias ? ld(bias, plane % C) : 0.f;
    const T* xp = x + plane * H * W;
    for (int e = tid; e < G::IH * G::IW; e += NT) {
        const int r = e / G::IW, c = e - r * G::IW;
        const int iy = iy0 + r, ix = ix0 + c;
        sa[e] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? ld(xp, (i64)iy * W + ix) + b : 0.f;
    }
    __syncthreads();

    if (UV & 1) {
        // up along x, UP outputs a thread: s = UP * (qx0 + g) + p for the tile's input steps g
        // (qx0 = floor(sx0 / UP)); phase p's output reads the NJ inputs from step g + (p > 0),
        // so the thread reads NJ + 1 inputs once for all UP phases, the taps constant operands
        const int dx = flr_mod(sx0, UP), cx = (sx0 - dx) / UP - ix0;   // cx: 0 or -1
        for (int e = tid; e < G::IH * G::QX; e += NT) {
            const int r = e / G::QX, g = e - r * G::QX;
            const float* row = sa + r * G::IW;
            float v[NJ + 1];
            #pragma unroll
            for (int t = 0; t <= NJ; ++t) {
                const int c = g + cx + t;
                v[t] = (c >= 0 && c < G::IW) ? row[c] : 0.f;   // outside: only unused outputs
            }
            #pragma unroll
            for (int p = 0; p < UP; ++p) {
                const int k0 = (UP - p) % UP, o = p > 0 ? 1 : 0;
                float acc = 0.f;
                #pragma unroll
                for (int j = 0; j < NJ; ++j)
                    if (k0 + j * UP < KU) acc += flr_cfu[KU - 1 - (k0 + j * UP)] * v[o + j];
                if (UV & 8) st(reinterpret_cast<unsigned short*>(sb), (i64)r * G::SBWH + p * G::QXH + g,
                               acc * (float)UP);               // B as half
                else sb[r * G::SBW + p * G::QX + g] = acc * (float)UP;   // every B entry written
            }
        }
        __syncthreads();

        // up along y, UP rows a thread likewise, then gain, leaky ReLU, clamp; A as below
        const int dy = flr_mod(sy0, UP), cy = (sy0 - dy) / UP - iy0;
        if (UV & 8) {
            // half2: a thread the UP rows of two adjacent steps g0, g0 + 1 of one x phase (the
            // low and high half of B's words), each tap in fma.rn.f16x2 over the NJ inputs of
            // a phase; then in float the UP gain, gain, leaky ReLU and clamp, as below
            const unsigned short* bh = reinterpret_cast<const unsigned short*>(sb);
            unsigned short* ah = reinterpret_cast<unsigned short*>(sa);
            for (int e = tid; e < G::QY * (G::SBWH / 2); e += NT) {
                const int gy = e / (G::SBWH / 2), c = 2 * (e - gy * (G::SBWH / 2));
                const int px = c / G::QXH, g0 = c - px * G::QXH;
                const int u0 = UP * g0 + px - dx, u1 = u0 + UP;
                const bool ok0 = u0 >= 0 && u0 < G::UW, ok1 = g0 + 1 < G::QX && u1 >= 0 && u1 < G::UW;
                if (!ok0 && !ok1) continue;
                unsigned v[NJ + 1];
                #pragma unroll
                for (int t = 0; t <= NJ; ++t) {
                    const int rr = gy + cy + t;
                    v[t] = (rr >= 0 && rr < G::IH) ? flr_ldw(bh, rr * G::SBWH + c) : 0u;
                }
                #pragma unroll
                for (int p = 0; p < UP; ++p) {
                    const int k0 = (UP - p) % UP, o = p > 0 ? 1 : 0;
                    unsigned h = 0u;
                    #pragma unroll
                    for (int j = 0; j < NJ; ++j)
                        if (k0 + j * UP < KU) h = flr_hfma2(flr_tapu2(KU - 1 - (k0 + j * UP)), v[o + j], h);
                    const int uy = UP * gy + p - dy;
                    if (uy < 0 || uy >= G::UH) continue;
                    #pragma unroll
                    for (int l = 0; l < 2; ++l) {
                        const int u = l ? u1 : u0;
                        if (!(l ? ok1 : ok0)) continue;
                        const float acc = flr_act((l ? flr_hi(h) : flr_lo(h)) * (float)UP, gain, slope, clamp);
                        st(ah, (i64)uy * G::UWS2 + (u % DOWN) * G::UWDH + u / DOWN, acc);
                    }
                }
            }
        } else
        for (int e = tid; e < G::QY * G::SBW; e += NT) {
            const int gy = e / G::SBW, c = e - gy * G::SBW;
            const int px = c / G::QX, u = UP * (c - px * G::QX) + px - dx;
            if (u < 0 || u >= G::UW) continue;
            const float* col = sb + c;
            float v[NJ + 1];
            #pragma unroll
            for (int t = 0; t <= NJ; ++t) {
                const int rr = gy + cy + t;
                v[t] = (rr >= 0 && rr < G::IH) ? col[rr * G::SBW] : 0.f;
            }
            float* dst = sa + (u % DOWN) * G::UWD + u / DOWN;
            unsigned short* dsth = reinterpret_cast<unsigned short*>(sa) + (u % DOWN) * G::UWDH + u / DOWN;
            #pragma unroll
            for (int p = 0; p < UP; ++p) {
                const int k0 = (UP - p) % UP, o = p > 0 ? 1 : 0;
                float acc = 0.f;
                #pragma unroll
                for (int j = 0; j < NJ; ++j)
                    if (k0 + j * UP < KU) acc += flr_cfu[KU - 1 - (k0 + j * UP)] * v[o + j];
                acc = flr_act(acc * (float)UP, gain, slope, clamp);
                const int uy = UP * gy + p - dy;
                if (uy >= 0 && uy < G::UH) {
                    if (UV & 4) st(dsth, (i64)uy * G::UWS2, acc);      // A as half
                    else dst[uy * G::UWS] = acc;
                }
            }
        }
        __syncthreads();
    } else {
    for (int e = tid; e < G::IH * G::UW; e += NT) {            // up along x: B[r][u]
        const int r = e / G::UW, u = e - r * G::UW;
        const int s = sx0 + u, k0 = flr_mod(-s, UP);
        const float* row = sa + r * G::IW + ((s + k0) / UP - ix0);
        float acc = 0.f;
        #pragma unroll
        for (int j = 0; j < NJ; ++j)
            if (KU % UP == 0 || k0 + j * UP < KU) acc += sfu[k0 + j * UP] * row[j];
        sb[e] = acc;
    }
    __syncthreads();

    // up along y, activation: A[uy][phase][u / DOWN], the columns of each phase u % DOWN
    // together, so that the strided reads below are unit-stride across threads
    for (int e = tid; e < G::UH * G::UW; e += NT) {
        const int uy = e / G::UW, u = e - uy * G::UW;
        const int s = sy0 + uy, k0 = flr_mod(-s, UP);
        const float* col = sb + ((s + k0) / UP - iy0) * G::UW + u;
        float acc = 0.f;
        #pragma unroll
        for (int j = 0; j < NJ; ++j)
            if (KU % UP == 0 || k0 + j * UP < KU) acc += sfu[k0 + j * UP] * col[j * G::UW];
        sa[uy * G::UWS + (u % DOWN) * G::UWD + u / DOWN] = flr_act(acc, gain, slope, clamp);
    }
    __syncthreads();
    }

    // output j's tap k reads column u = j * DOWN + k: phase k % DOWN, index j + k / DOWN
    T* yp = y + plane * Ho * Wo;
    if (FD == 2 && (UV & 4)) {                                 // 2-D down filter, half2
        // the rolling loop below with a thread making two adjacent outputs j0, j0 + 1 of RY
        // rows: tap k of a filter row meets A's phase k % DOWN at j0 + k / DOWN (low half)
        // and j0 + 1 + k / DOWN (high half), the pair cut from the NW aligned words of the
        // phase (one shared load a word, both outputs); a filter row's KD taps in fma.rn.f16x2
        // in tap order, the row's sum added to float accumulators
        constexpr int A = (KD + DOWN - 1) / DOWN;
        const unsigned short* ah = reinterpret_cast<const unsigned short*>(sa);
        for (int e = tid; e < G::GY * G::NJJ; e += NT) {
            const int g = e / G::NJJ, j0 = 2 * (e - g * G::NJJ);
            const int mend = TH - g * RY < RY ? TH - g * RY : RY;
            const int base = (g * RY * DOWN) * G::UWS2 + j0;
            const int ox = ox0 + j0;
            const bool second = j0 + 1 < TW && ox + 1 < Wo;    // the high half is this tile's
            float acc0[A], acc1[A];
            #pragma unroll
            for (int a = 0; a < A; ++a) acc0[a] = acc1[a] = 0.f;
            #pragma unroll 1
            for (int i = 0; i < mend + A - 1; ++i) {
                #pragma unroll
                for (int rr = 0; rr < DOWN; ++rr) {
                    const int row = base + (DOWN * i + rr) * G::UWS2;
                    unsigned w[DOWN][G::NW], v[KD];
                    #pragma unroll
                    for (int p = 0; p < DOWN; ++p) {
                        #pragma unroll
                        for (int m = 0; m < G::NW; ++m) w[p][m] = flr_ldw(ah, row + p * G::UWDH + 2 * m);
                    }
                    #pragma unroll
                    for (int k = 0; k < KD; ++k) {             // tap k's pair, once for all slots
                        const int p = k % DOWN, q = k / DOWN;
                        v[k] = q % 2 == 0 ? w[p][q / 2] : flr_mid(w[p][q / 2], w[p][q / 2 + 1]);
                    }
                    #pragma unroll
                    for (int a = 0; a < A; ++a) {
                        const int ky = DOWN * a + rr;
                        if (ky < KD && i - a >= 0 && i - a < mend) {
                            unsigned h = 0u;                   // +0, +0
                            #pragma unroll
                            for (int k = 0; k < KD; ++k)
                                h = flr_hfma2(flr_tap2(KD * KD - 1 - (ky * KD + k)), v[k], h);
                            acc0[a] += flr_lo(h);
                            acc1[a] += flr_hi(h);
                        }
                    }
                }
                const int m = i - (A - 1), oy = oy0 + g * RY + m;
                if (m >= 0 && oy < Ho && ox < Wo) {
                    st(yp, (i64)oy * Wo + ox, acc0[A - 1]);
                    if (second) st(yp, (i64)oy * Wo + ox + 1, acc1[A - 1]);
                }
                #pragma unroll
                for (int a = A - 1; a > 0; --a) { acc0[a] = acc0[a - 1]; acc1[a] = acc1[a - 1]; }
                acc0[0] = acc1[0] = 0.f;
            }
        }
    } else if (FD == 2 && (UV & 2)) {                          // 2-D down filter, rolling
        // a thread's RY outputs of a column in a loop over steps i of DOWN tap rows: step i
        // meets the A outputs m = i - a (slot a, tap rows DOWN * a + rr), so every index of
        // the filter is a compile-time constant and only A sums and one step's loads are live
        constexpr int A = (KD + DOWN - 1) / DOWN;
        for (int e = tid; e < G::GY * TW; e += NT) {
            const int g = e / TW, j = e - g * TW;
            const int mend = TH - g * RY < RY ? TH - g * RY : RY;   // the group's outputs in the tile
            const float* base = sa + (g * RY * DOWN) * G::UWS + j;
            const int ox = ox0 + j;
            float acc[A];
            #pragma unroll
            for (int a = 0; a < A; ++a) acc[a] = 0.f;
            #pragma unroll 1
            for (int i = 0; i < mend + A - 1; ++i) {
                #pragma unroll
                for (int rr = 0; rr < DOWN; ++rr) {
                    const float* row = base + (DOWN * i + rr) * G::UWS;
                    float v[KD];
                    #pragma unroll
                    for (int k = 0; k < KD; ++k) v[k] = row[(k % DOWN) * G::UWD + k / DOWN];
                    #pragma unroll
                    for (int a = 0; a < A; ++a) {
                        const int ky = DOWN * a + rr;
                        if (ky < KD && i - a >= 0 && i - a < mend) {
                            #pragma unroll
                            for (int k = 0; k < KD; ++k) acc[a] += flr_cfd[KD * KD - 1 - (ky * KD + k)] * v[k];
                        }
                    }
                }
                const int m = i - (A - 1), oy = oy0 + g * RY + m;   // slot A - 1 is complete
                if (m >= 0 && oy < Ho && ox < Wo) st(yp, (i64)oy * Wo + ox, acc[A - 1]);
                #pragma unroll
                for (int a = A - 1; a > 0; --a) acc[a] = acc[a - 1];
                acc[0] = 0.f;
            }
        }
    } else if (FD == 2) {                                      // 2-D down filter, RY rows a thread
        for (int e = tid; e < G::GY * TW; e += NT) {
            const int g = e / TW, j = e - g * TW;
            const float* base = sa + (g * RY * DOWN) * G::UWS + j;
            float acc[RY];
            #pragma unroll
            for (int m = 0; m < RY; ++m) acc[m] = 0.f;
            #pragma unroll
            for (int r = 0; r < (RY - 1) * DOWN + KD; ++r) {
                float v[KD];
                #pragma unroll
                for (int k = 0; k < KD; ++k) v[k] = base[r * G::UWS + (k % DOWN) * G::UWD + k / DOWN];
                #pragma unroll
                for (int m = 0; m < RY; ++m) {
                    const int ky = r - m * DOWN;
                    if (ky >= 0 && ky < KD) {
                        #pragma unroll
                        for (int k = 0; k < KD; ++k) acc[m] += flr_cfd[KD * KD - 1 - (ky * KD + k)] * v[k];
                    }
                }
            }
            #pragma unroll
            for (int m = 0; m < RY; ++m) {
                const int oy = oy0 + g * RY + m, ox = ox0 + j;
                if (g * RY + m < TH && oy < Ho && ox < Wo) st(yp, (i64)oy * Wo + ox, acc[m]);
            }
        }
    } else if (FD == 1 && (UV & 4)) {                          // separable, half2: y into B, then x
        // the y pass a thread two adjacent columns of A (a word) and RY rows, each output's taps
        // ky = rr (mod DOWN) one fma.rn.f16x2 chain (rolling: slot a's chain rr meets tap row
        // DOWN * a + rr), the DOWN chains added in float, rounded to half into B (TH x UWS2);
        // then the x pass two adjacent outputs a thread from B's words as the 2-D stage reads
        // a row of A, the taps of each phase one chain, the DOWN chains added in float
        constexpr int A = (KD + DOWN - 1) / DOWN;
        const unsigned short* ah = reinterpret_cast<const unsigned short*>(sa);
        unsigned short* bh = reinterpret_cast<unsigned short*>(sb);
        for (int e = tid; e < G::GY * (G::UWS2 / 2); e += NT) {
            const int g = e / (G::UWS2 / 2), c = 2 * (e - g * (G::UWS2 / 2));
            const int mend = TH - g * RY < RY ? TH - g * RY : RY;
            const int col = (g * RY * DOWN) * G::UWS2 + c;
            unsigned h[A][DOWN];
            #pragma unroll
            for (int a = 0; a < A; ++a) {
                #pragma unroll
                for (int rr = 0; rr < DOWN; ++rr) h[a][rr] = 0u;
            }
            #pragma unroll 1
            for (int i = 0; i < mend + A - 1; ++i) {
                #pragma unroll
                for (int rr = 0; rr < DOWN; ++rr) {
                    const unsigned v = flr_ldw(ah, col + (DOWN * i + rr) * G::UWS2);
                    #pragma unroll
                    for (int a = 0; a < A; ++a) {
                        const int ky = DOWN * a + rr;
                        if (ky < KD && i - a >= 0 && i - a < mend)
                            h[a][rr] = flr_hfma2(flr_tap2(KD - 1 - ky), v, h[a][rr]);
                    }
                }
                const int m = i - (A - 1);
                if (m >= 0) {
                    float lo = 0.f, hi = 0.f;
                    #pragma unroll
                    for (int rr = 0; rr < DOWN; ++rr) {
                        lo += flr_lo(h[A - 1][rr]);
                        hi += flr_hi(h[A - 1][rr]);
                    }
                    st(bh, (i64)(g * RY + m) * G::UWS2 + c, lo);
                    st(bh, (i64)(g * RY + m) * G::UWS2 + c + 1, hi);
                }
                #pragma unroll
                for (int a = A - 1; a > 0; --a) {
                    #pragma unroll
                    for (int rr = 0; rr < DOWN; ++rr) h[a][rr] = h[a - 1][rr];
                }
                #pragma unroll
                for (int rr = 0; rr < DOWN; ++rr) h[0][rr] = 0u;
            }
        }
        __syncthreads();
        for (int e = tid; e < TH * G::NJJ; e += NT) {
            const int i = e / G::NJJ, j0 = 2 * (e - i * G::NJJ);
            const int oy = oy0 + i, ox = ox0 + j0;
            const int row = i * G::UWS2 + j0;
            unsigned w[DOWN][G::NW];
            #pragma unroll
            for (int p = 0; p < DOWN; ++p) {
                #pragma unroll
                for (int m = 0; m < G::NW; ++m) w[p][m] = flr_ldw(bh, row + p * G::UWDH + 2 * m);
            }
            unsigned h[DOWN];
            #pragma unroll
            for (int p = 0; p < DOWN; ++p) h[p] = 0u;
            #pragma unroll
            for (int k = 0; k < KD; ++k) {
                const int p = k % DOWN, q = k / DOWN;
                const unsigned v = q % 2 == 0 ? w[p][q / 2] : flr_mid(w[p][q / 2], w[p][q / 2 + 1]);
                h[p] = flr_hfma2(flr_tap2(KD - 1 - k), v, h[p]);
            }
            float lo = 0.f, hi = 0.f;
            #pragma unroll
            for (int p = 0; p < DOWN; ++p) {
                lo += flr_lo(h[p]);
                hi += flr_hi(h[p]);
            }
            if (oy < Ho && ox < Wo) {
                st(yp, (i64)oy * Wo + ox, lo);
                if (j0 + 1 < TW && ox + 1 < Wo) st(yp, (i64)oy * Wo + ox + 1, hi);
            }
        }
    } else if (FD == 1 && (UV & 2)) {                          // separable: y into B, then x
        // along y first, a thread RY outputs of one column of A (rolling, as the 2-D stage),
        // B[i][phase][idx] in A's column order; then along x from B to the output (the same
        // sums as x first; the pass with the more outputs is now the one reusing its loads)
        constexpr int A = (KD + DOWN - 1) / DOWN;
        for (int e = tid; e < G::GY * G::UWS; e += NT) {
            const int g = e / G::UWS, c = e - g * G::UWS;
            const int mend = TH - g * RY < RY ? TH - g * RY : RY;
            const float* col = sa + (g * RY * DOWN) * G::UWS + c;
            float* dst = sb + (g * RY) * G::UWS + c;
            float acc[A];
            #pragma unroll
            for (int a = 0; a < A; ++a) acc[a] = 0.f;
            #pragma unroll 1
            for (int i = 0; i < mend + A - 1; ++i) {
                #pragma unroll
                for (int rr = 0; rr < DOWN; ++rr) {
                    const float v = col[(DOWN * i + rr) * G::UWS];
                    #pragma unroll
                    for (int a = 0; a < A; ++a) {
                        const int ky = DOWN * a + rr;
                        if (ky < KD && i - a >= 0 && i - a < mend) acc[a] += flr_cfd[KD - 1 - ky] * v;
                    }
                }
                const int m = i - (A - 1);
                if (m >= 0) dst[m * G::UWS] = acc[A - 1];
                #pragma unroll
                for (int a = A - 1; a > 0; --a) acc[a] = acc[a - 1];
                acc[0] = 0.f;
            }
        }
        __syncthreads();
        for (int e = tid; e < TH * TW; e += NT) {
            const int i = e / TW, j = e - i * TW;
            const int oy = oy0 + i, ox = ox0 + j;
            const float* row = sb + i * G::UWS + j;
            float acc = 0.f;
            #pragma unroll
            for (int k = 0; k < KD; ++k) acc += flr_cfd[KD - 1 - k] * row[(k % DOWN) * G::UWD + k / DOWN];
            if (oy < Ho && ox < Wo) st(yp, (i64)oy * Wo + ox, acc);
        }
    } else if (FD == 1) {                                      // separable: x into B, then y
        for (int e = tid; e < G::UH * TW; e += NT) {
            const int r = e / TW, j = e - r * TW;
            const float* row = sa + r * G::UWS + j;
            float acc = 0.f;
            #pragma unroll
            for (int k = 0; k < KD; ++k) acc += flr_cfd[KD - 1 - k] * row[(k % DOWN) * G::UWD + k / DOWN];
            sb[e] = acc;
        }
        __syncthreads();
        for (int e = tid; e < G::GY * TW; e += NT) {
            const int g = e / TW, j = e - g * TW;
            const float* col = sb + (g * RY * DOWN) * TW + j;
            float acc[RY];
            #pragma unroll
            for (int m = 0; m < RY; ++m) acc[m] = 0.f;
            #pragma unroll
            for (int r = 0; r < (RY - 1) * DOWN + KD; ++r) {
                const float v = col[r * TW];
                #pragma unroll
                for (int m = 0; m < RY; ++m) {
                    const int k = r - m * DOWN;
                    if (k >= 0 && k < KD) acc[m] += flr_cfd[KD - 1 - k] * v;
                }
            }
            #pragma unroll
            for (int m = 0; m < RY; ++m) {
                const int oy = oy0 + g * RY + m, ox = ox0 + j;
                if (g * RY + m < TH && oy < Ho && ox < Wo) st(yp, (i64)oy * Wo + ox, acc[m]);
            }
        }
    } else {                                                   // no down filter: every DOWN-th
        for (int e = tid; e < TH * TW; e += NT) {
            const int i = e / TW, j = e - i * TW;
            const int oy = oy0 + i, ox = ox0 + j;
            if (oy < Ho && ox < Wo) st(yp, (i64)oy * Wo + ox, sa[(i * DOWN) * G::UWS + j]);
        }
    }
}

// x (B*C planes, H, W) -> y (B*C, Ho, Wo); grid: one block per (plane, tile), tiles per plane
// = tiles_x * ceil(Ho / TH); dynamic shared memory FlrGeom::SMEM floats; flr_cfd (and, UV 1,
// flr_cfu) filled. Launch bounds: 1024 threads an SM, so at most 64 registers a thread.
template <typename T, int UP, int KU, int DOWN, int KD, int FD, int TW, int TH, int RY, int NT, int UV>
__global__ void __launch_bounds__(NT, flr_max(1, 1024 / NT)) flr_tile(
        const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ fu,
        const T* __restrict__ bias, int C, int H, int W, int Ho, int Wo, int px0, int py0,
        int tiles_x, int tiles, float gain, float slope, float clamp) {
#ifdef __CUDACC__
    extern __shared__ float flr_smem[];
    float* smem = flr_smem;
#else
    float* smem = flr_host_smem;
#endif
    flr_tile_body<T, UP, KU, DOWN, KD, FD, TW, TH, RY, NT, UV>(
        x, y, fu, bias, C, H, W, Ho, Wo, px0, py0, tiles_x, tiles, gain, slope, clamp, smem);
}
"""

_HOST_RUNNER = r"""
#ifndef __CUDACC__
#include <vector>
// A grid played on the CPU: NT POSIX threads per block, blocks one after another; thread 0
// poisons shared memory (NaN) before each block and checks the NaN canary after it.
struct FlrRun { void (*fn)(void*); void* ctx; unsigned grid, nt; int smem; bool overrun; };
static const int FLR_CANARY = 64;
struct FlrWorker { FlrRun* run; unsigned t; };
static void* flr_worker(void* p) {
    FlrWorker* w = (FlrWorker*)p;
    FlrRun* run = w->run;
    threadIdx = {w->t, 0, 0};
    for (unsigned b = 0; b < run->grid; ++b) {
        if (w->t == 0) {
            blockIdx = {b, 0, 0};
            std::memset(flr_host_smem, 0xff, sizeof(float) * (run->smem + FLR_CANARY));
        }
        pthread_barrier_wait(&flr_bar);
        run->fn(run->ctx);
        pthread_barrier_wait(&flr_bar);
        if (w->t == 0) {
            const unsigned char* c = (const unsigned char*)(flr_host_smem + run->smem);
            for (int i = 0; i < (int)sizeof(float) * FLR_CANARY; ++i) run->overrun |= c[i] != 0xff;
        }
    }
    return nullptr;
}
static int flr_run_grid(FlrRun* run) {
    std::vector<float> smem(run->smem + FLR_CANARY);
    flr_host_smem = smem.data();
    blockDim = {run->nt, 1, 1};
    pthread_barrier_init(&flr_bar, nullptr, run->nt);
    std::vector<pthread_t> threads(run->nt);
    std::vector<FlrWorker> workers(run->nt);
    for (unsigned t = 0; t < run->nt; ++t) {
        workers[t] = {run, t};
        if (t > 0) pthread_create(&threads[t], nullptr, flr_worker, &workers[t]);
    }
    flr_worker(&workers[0]);
    for (unsigned t = 1; t < run->nt; ++t) pthread_join(threads[t], nullptr);
    pthread_barrier_destroy(&flr_bar);
    return run->overrun ? 2 : 0;
}
struct FlrArgs {
    const void* x; void* y; const float* fu; const void* bias;
    int C, H, W, Ho, Wo, px0, py0, tiles_x, tiles; float gain, slope, clamp;
};
#endif
"""

_HOST_ENTRY = r"""
template <typename T, int UP, int KU, int DOWN, int KD, int FD, int TW, int TH, int RY, int NT, int UV>
static void {NAME}_call(void* p) {{
    const FlrArgs* a = (const FlrArgs*)p;
    flr_tile<T, UP, KU, DOWN, KD, FD, TW, TH, RY, NT, UV>((const T*)a->x, (T*)a->y, a->fu,
        (const T*)a->bias, a->C, a->H, a->W, a->Ho, a->Wo, a->px0, a->py0, a->tiles_x, a->tiles,
        a->gain, a->slope, a->clamp);
}}
// returns 0, 1 when smem_floats is not the kernel's own size, 2 when shared memory overran
extern "C" int {NAME}(const void* x, void* y, const float* fu, const float* fd, const unsigned* fd2,
        const unsigned* fu2, const void* bias,
        int C, int H, int W, int Ho, int Wo, int px0, int py0, int tiles_x, int tiles, float gain,
        float slope, float clamp, unsigned grid, unsigned nt, int smem_floats) {{
    typedef FlrGeom<{UP}, {KU}, {DOWN}, {KD}, {FD}, {TW}, {TH}, {RY}, {UV}> G;
    if (smem_floats != G::SMEM || nt != {NT}) return 1;
    std::memcpy(flr_cfu, fu, sizeof(float) * {KU});
    if ({FD} > 0) std::memcpy(flr_cfd, fd, sizeof(float) * ({FD} == 2 ? {KD} * {KD} : {KD}));
    if ({UV} & 4) std::memcpy(flr_cfd2, fd2, sizeof(unsigned) * (({FD} == 2 ? {KD} * {KD} + 1 : {KD} + 1) / 2));
    if ({UV} & 8) std::memcpy(flr_cfu2, fu2, sizeof(unsigned) * (({KU} + 1) / 2));
    FlrArgs a = {{x, y, fu, bias, C, H, W, Ho, Wo, px0, py0, tiles_x, tiles, gain, slope, clamp}};
    FlrRun run = {{{NAME}_call<{T}, {UP}, {KU}, {DOWN}, {KD}, {FD}, {TW}, {TH}, {RY}, {NT}, {UV}>, &a,
                  grid, nt, G::SMEM, false}};
    return flr_run_grid(&run);
}}
"""


def _source() -> str:
    f32, f16 = ELEMENT_ACCESS["float32"], ELEMENT_ACCESS["float16"]
    access = _ACCESS.format(LD32=f32[1], ST32=f32[2], LD16=f16[1], ST16=f16[2])
    return _HOST.replace("{MAX_FD}", str(MAX_FD_FLOATS)).replace("{MAX_FU}", str(MAX_FU_FLOATS)) + access + _KERNEL


KERNEL_SOURCE = _source()
"""The kernel template (NVRTC and g++ alike); instantiate with ``kernel_name``."""


def kernel_name(dtype: str, up: int, ku: int, down: int, kd: int, fd: int, tw: int, th: int,
                ry: int, threads: int, uv: int) -> str:
    """The name expression of one instantiation, e.g. ``flr_tile<float, 2, 12, 2, 12, 2, ...>``."""
    args = [STORAGE[dtype]] + [str(int(v)) for v in (up, ku, down, kd, fd, tw, th, ry, threads, uv)]
    return f"flr_tile<{', '.join(args)}>"


def host_harness(entries: dict[str, tuple[str, tuple[int, ...]]]) -> str:
    """C++ source of a shared object for the CPU: the kernel and one ``extern "C"`` runner per
    entry ``{symbol: (dtype, (up, ku, down, kd, fd, tw, th, ry, threads, uv))}``; a runner takes the
    kernel's arguments, then ``grid, threads, smem_floats``, and plays the whole grid."""
    parts = [KERNEL_SOURCE, _HOST_RUNNER]
    for name, (dtype, (up, ku, down, kd, fd, tw, th, ry, nt, uv)) in entries.items():
        parts.append(_HOST_ENTRY.format(NAME=name, T=STORAGE[dtype], UP=up, KU=ku, DOWN=down,
                                        KD=kd, FD=fd, TW=tw, TH=th, RY=ry, NT=nt, UV=uv))
    return "".join(parts)
