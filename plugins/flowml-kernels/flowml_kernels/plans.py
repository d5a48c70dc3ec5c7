"""Forward (gather) plans of WeightedFilter: the kernel variants and the table that picks one.

A plan names a kernel and its blocking: ``rows`` (``wf_filter``, pixel rows a thread),
``gather4`` (``wf_gather4``, a quad of pixels a thread along x, 256-thread blocks along the
rows), ``tile`` (``wf_tile``: 2-D blocks of ``ty`` rows x ``txq`` quads, the channel block the
fastest grid index, the input through shared memory or L1), ``mma`` (``wf_mma``: tensor
cores, 16-bit storage; ``txq`` 8-pixel groups a warp, ``ty`` warps a block) and ``h2w``
(``wf_h2w``, float16: ``txq`` x ``ty`` threads of ``px`` pixels, each pixel's weights read once
into registers for all channels, the channels through shared memory ``cb`` at a time) and
``h2r`` (``wf_h2r``, float16: ``txq`` x ``ty`` threads of ``px`` pixels and ``cb`` channels, a
tap row's weights loaded once for the ``cb`` channels, the taps in half2 from registers).
``PLANS`` holds every variant the benchmark sweeps (``benchmarks/weighted_filter_bench.py
--sweep``); ``FORWARD_TABLE`` says which one runs, per dtype, channel count and N: the one dict
to edit from a sweep's result (the sweep prints a replacement). No CuPy or torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .mma_source import mma_layout

THREADS = 256
"""Threads a block of the ``rows``, ``gather4`` and ``wf_wgrad`` kernels."""

H2W_WEIGHTS = 100
"""Half2 weight registers an ``h2w`` thread may hold (N*N*px/2): pairs N <= 9 (81), quads
N <= 7 (98); NVRTC 13 for sm_90 keeps both without spilling (tests/test_kernels_h2w_on_cpu.py)."""

H2R_HELD = 128
"""Registers an ``h2r`` thread may hold by ``ForwardPlan.unsupported``'s count (accumulators,
one tap row's weights, the input row segment)."""

SMEM_LIMIT = 48 * 1024
"""Static shared memory a block may take (bytes) without an opt-in."""


def channel_block(c: int, most: int = 16) -> int:
    """Channels a thread: the power of two >= ``c``, at most ``most``."""
    cb = 1
    while cb < min(c, most):
        cb *= 2
    return cb


def rows_per_thread(n: int) -> int:
    """Pixel rows of a ``wf_filter`` thread: 4 up to N = 9, 2 above."""
    return 4 if n <= 9 else 2


@dataclass(frozen=True)
class ForwardPlan:
    """One way to run the gather forward: ``kernel`` (rows, gather4, tile, mma) and at most
    ``cb`` channels a thread (``mma``: a block, 16 or 32). ``tile``: ``txq`` x ``ty`` threads,
    each one quad (4 px) of one row, the input through shared memory (``smem``) or L1.
    ``mma``: ``ty`` warps a block, each ``py`` output rows of ``txq`` groups of 8 px.
    ``pf`` (``tile``, prefetch bits; ``cuda_source._TILE``; 0: none): 1, the next tap row's
    weights loaded into registers while the current row's FMAs run (N x 4 more registers for
    float32, N x 2 for 16-bit storage, kept raw); 4 (instead of 1), only hinted into L1, no
    registers; 2, the shared tile loaded several quads a thread at once. ``h2`` (``tile``,
    float16 only, with ``smem`` and pf bit 2): the shared tile kept as raw half words and each
    tap row's N taps summed in packed half2 (two pixels a register), then added in float.
    ``h2w``: ``px`` (2 or 4) pixels a thread, their N*N weights held in registers as half2 for
    all C channels (``cuda_source._H2W``), ``cb`` the channels of one shared-memory chunk;
    ``bc`` (pairs): each input half broadcast to both pixels against weights paired per input
    column (N + 1 FMAs a tap row instead of N and N - 1 funnel shifts; N*(N+1) registers);
    ``cg`` > 1: a tile's channel chunks split among ``cg`` blocks, neighbours in the grid.
    ``h2r``: ``px`` (4 or 8) pixels of a row and ``cb`` channels a thread, ``txq`` x ``ty``
    threads a block, the channel block the fastest grid index (``cuda_source._H2R``); ``mb``
    > 0: at least ``mb`` blocks an SM (``__launch_bounds__``: ptxas caps the registers);
    ``pipe``: no branch between the thread's channels, so that the next one's shared loads
    issue during this one's FMAs (channels past C computed on the zero tile, not stored)."""

    name: str
    kernel: str
    cb: int = 8
    txq: int = 32
    ty: int = 8
    smem: bool = False
    py: int = 1
    pf: int = 0
    h2: bool = False
    px: int = 4
    bc: bool = False
    mb: int = 0
    cg: int = 1
    pipe: bool = False

    def channels(self, c: int) -> int:
        """Channels a thread for ``c`` channels (the compile-time channel block; ``mma``: a
        block's channels, whole tiles of 16)."""
        if self.kernel == "mma":
            return 16 * ((min(c, self.cb) + 15) // 16)
        return channel_block(c, self.cb)     # h2w: one shared chunk's channels

    def threads(self) -> int:
        """Threads a block."""
        if self.kernel == "mma":
            return 32 * self.ty
        if self.kernel in ("tile", "h2w", "h2r"):
            return self.txq * self.ty
        return THREADS

    def smem_bytes(self, n: int, c: int) -> int:
        """Shared memory a block takes (``tile``: a float input tile with its halo; ``mma``:
        its 16-bit tile and band matrices)."""
        if self.kernel == "mma":
            return mma_layout(n, self.channels(c), self.txq, self.ty, self.py)["smem_bytes"]
        if self.kernel == "h2w":                      # two chunks (double buffer), half words
            pad = (n // 2 + 3) // 4 * 4
            return 2 * 2 * self.channels(c) * (self.ty + n - 1) * (self.px * self.txq + 2 * pad)
        if self.kernel == "h2r":                      # one chunk, half words
            pad = (n // 2 + 3) // 4 * 4
            return 2 * self.channels(c) * (self.ty + n - 1) * (self.px * self.txq + 2 * pad)
        if self.kernel != "tile" or not self.smem:
            return 0
        pad = (n // 2 + 3) // 4 * 4
        word = 2 if self.h2 else 4                       # h2: raw half words
        return word * self.channels(c) * (self.ty + n - 1) * (4 * self.txq + 2 * pad)

    def unsupported(self, dtype: str, n: int, c: int) -> str | None:
        """Why this plan cannot run (dtype name, N, C), or None when it can."""
        if self.kernel == "tile" and dtype == "float64":
            return "wf_tile accumulates in float; float64 takes gather4"
        if self.h2 and dtype != "float16":
            return f"h2 plans sum tap rows in half2 arithmetic: float16 storage only, not {dtype}"
        if self.kernel == "mma" and dtype not in ("float16", "bfloat16"):
            return f"tensor-core plans take float16 or bfloat16 storage, not {dtype}"
        if self.kernel == "h2w" and dtype != "float16":
            return f"h2w plans sum tap rows in half2 arithmetic: float16 storage only, not {dtype}"
        if self.kernel == "h2r" and dtype != "float16":
            return f"h2r plans sum tap rows in half2 arithmetic: float16 storage only, not {dtype}"
        held = n * (n + 1) if self.bc else n * n * self.px // 2
        if self.kernel == "h2w" and held > H2W_WEIGHTS:
            return (f"h2w holds a thread's {self.px} pixels' N*N weights in registers: "
                    f"{held} half2 > {H2W_WEIGHTS} (N = {n}); pairs take N <= 9, quads N <= 7")
        if self.kernel == "mma" and n > 17:
            return f"wf_mma's tile halo is 8 columns: N <= 17, not {n}"
        if self.smem_bytes(n, c) > SMEM_LIMIT:
            return f"needs {self.smem_bytes(n, c)} bytes of shared memory (> {SMEM_LIMIT})"
        # accumulators + the tap rows of weights held at once (pf & 1: the next row's too, raw:
        # 4 registers a quad for float32, 2 for 16-bit storage) at most 128 a thread. NVRTC 13
        # for sm_90 (tests/test_kernels_nvrtc_on_cpu.py): 124 of them take 223-231 registers,
        # 136 196-225, 184 all 255 (the cap, next to spilling); past 128 a 256-thread block
        # is alone on its SM, which the plans are not built for.
        # h2: a tap row's weights stay raw (2 registers a quad), the prefetched ones too.
        cb = self.channels(c)
        if self.kernel == "h2r":
            # cb x px float accumulators + a tap row's N x px / 2 half2 weights + the row
            # segment's words; NVRTC 13 for sm_90 (tests/test_kernels_h2r_on_cpu.py) keeps the
            # plans below within it without spilling at N <= 9
            seg = (self.px + 2 * ((n // 2 + 3) // 4 * 4)) // 2
            held = cb * self.px + n * self.px // 2 + seg
            if held > H2R_HELD:
                return (f"h2r holds {cb} channels x {self.px} px accumulators, a tap row's "
                        f"{n * self.px // 2} half2 weights and {seg} input words: {held} "
                        f"registers > {H2R_HELD} (N = {n})")
        if self.kernel in ("tile", "gather4"):
            held = cb * 4 + n * (2 if self.h2 else 4) \
                + (n * (4 if dtype == "float32" else 2) if self.pf & 1 else 0)
            if held > 128:
                more = f" + {n} raw quads (prefetch)" if self.pf & 1 else ""
                return (f"{cb} channels x 4 px + {n} x 4 weights{more}: too many registers "
                        f"({held} > 128)")
        return None

    def grid(self, b: int, c: int, h: int, w: int, n: int) -> tuple[int, int, int]:
        """The launch grid for a ``(b, c, h, w)`` input and N."""
        cb = self.channels(c)
        nb = (c + cb - 1) // cb
        if self.kernel == "tile":
            tiles = ((w + 3) // 4 + self.txq - 1) // self.txq * ((h + self.ty - 1) // self.ty)
            return (tiles * nb, b, 1)
        if self.kernel == "h2r":                      # channel blocks fastest, as tile
            span = self.px * self.txq
            tiles = (w + span - 1) // span * ((h + self.ty - 1) // self.ty)
            return (tiles * nb, b, 1)
        if self.kernel == "h2w":                      # a tile's channels in cg blocks
            span = self.px * self.txq
            return ((w + span - 1) // span * ((h + self.ty - 1) // self.ty) * self.cg, b, 1)
        if self.kernel == "mma":
            rows = self.ty * self.py
            tiles = (w + 8 * self.txq - 1) // (8 * self.txq) * ((h + rows - 1) // rows)
            return (tiles * nb, b, 1)
        if self.kernel == "gather4":
            return ((h * ((w + 3) // 4) + THREADS - 1) // THREADS, nb, b)
        rows = rows_per_thread(n)
        return (((h + rows - 1) // rows * w + THREADS - 1) // THREADS, nb, b)


def _tile(name: str, cb: int, txq: int, ty: int, smem: bool, pf: int = 0,
          h2: bool = False) -> ForwardPlan:
    if pf & 2 and not smem:
        raise ValueError(f"plan {name}: pf bit 2 batches the shared tile's loads; it has none")
    if h2 and not pf & 2:
        raise ValueError(f"plan {name}: h2 reads the raw 16-bit tile that pf bit 2 fills")
    return ForwardPlan(name, "tile", cb, txq, ty, smem, pf=pf, h2=h2)


def _h2w(name: str, px: int, txq: int, ty: int, cb: int, bc: bool = False,
         cg: int = 1) -> ForwardPlan:
    if px not in (2, 4) or px * txq % 4 or (bc and px != 2) or cg < 1:
        raise ValueError(f"plan {name}: h2w takes 2 or 4 pixels a thread (bc: 2), txq * px a "
                         f"multiple of 4, and cg >= 1 blocks a tile")
    return ForwardPlan(name, "h2w", cb, txq, ty, True, px=px, bc=bc, cg=cg)


def _h2r(name: str, px: int, txq: int, ty: int, cb: int, mb: int = 0,
         pipe: bool = False) -> ForwardPlan:
    if px not in (4, 8) or mb < 0:
        raise ValueError(f"plan {name}: h2r takes 4 or 8 pixels a thread and mb >= 0 blocks an "
                         f"SM, not px={px} mb={mb}")
    return ForwardPlan(name, "h2r", cb, txq, ty, True, px=px, mb=mb, pipe=pipe)


def _mma(name: str, cb: int, gx: int, wy: int, py: int = 1) -> ForwardPlan:
    return ForwardPlan(name, "mma", cb, gx, wy, True, py)


PLANS: dict[str, ForwardPlan] = {p.name: p for p in (
    ForwardPlan("rows", "rows", cb=16),           # wf_filter, rows_per_thread(N) rows a thread
    ForwardPlan("gather4", "gather4", cb=8),      # the forward of 2026-12-02
    _tile("l1_32x8_cb4", 4, 32, 8, False),
    _tile("l1_32x8_cb8", 8, 32, 8, False),
    _tile("l1_16x16_cb8", 8, 16, 16, False),
    _tile("l1_32x8_cb2", 2, 32, 8, False),
    _tile("smem_32x8_cb4", 4, 32, 8, True),
    _tile("smem_16x8_cb8", 8, 16, 8, True),
    _tile("smem_32x4_cb8", 8, 32, 4, True),
    # prefetching wf_tile (pf, cuda_source._TILE's PF bits): on the H200 (2026-12-03) the C=32
    # plans above were latency-bound (each tap row waited for its weights, each shared tile
    # quad for its load). pf_: the next row's weights in registers (1) and the tile loaded
    # PFB quads at a time (2); pf_t_: the tile only; pf_h_: the tile and the next row's
    # weights hinted (prefetch.L1, 4: no registers). The sweep of 2026-12-03 14:54 UTC put
    # pf_h_/pf_t_ 16x8_cb8 in FORWARD_TABLE (the tile fill was most of the gain).
    _tile("pf_smem_32x8_cb4", 4, 32, 8, True, pf=3),
    _tile("pf_smem_16x8_cb8", 8, 16, 8, True, pf=3),
    _tile("pf_smem_32x4_cb8", 8, 32, 4, True, pf=3),
    _tile("pf_l1_32x8_cb4", 4, 32, 8, False, pf=1),
    _tile("pf_t_smem_32x8_cb4", 4, 32, 8, True, pf=2),
    _tile("pf_t_smem_16x8_cb8", 8, 16, 8, True, pf=2),
    _tile("pf_h_smem_32x8_cb4", 4, 32, 8, True, pf=6),
    _tile("pf_h_smem_16x8_cb8", 8, 16, 8, True, pf=6),
    _tile("pf_h_l1_32x8_cb4", 4, 32, 8, False, pf=4),
    # half2 wf_tile (float16 only; cuda_source._HALF2): fp16 C=32 reached 38% / 30% of copy on
    # the H200 (2026-12-03) against 63% / 53% for fp32: the same FFMAs and float tile reads as
    # fp32 for half the bytes. h2_: the tile raw 16-bit (half the shared-memory reads), a tap
    # row's N taps in fma.rn.f16x2 (two pixels a register, the weights as loaded: no cvt), each
    # row's partial sums added to float accumulators. Bits are pf's (all fill the tile PFB
    # quads at a time). Timed 2026-12-03 17:31 UTC: h2_h_ 13% (N=5) and 12% (N=9) faster than the
    # best float plan of the same run; in FORWARD_TABLE for fp16 C > 4 and 5 < N <= 9.
    _tile("h2_t_smem_16x8_cb8", 8, 16, 8, True, pf=2, h2=True),
    _tile("h2_t_smem_32x8_cb4", 4, 32, 8, True, pf=2, h2=True),
    _tile("h2_h_smem_16x8_cb8", 8, 16, 8, True, pf=6, h2=True),
    _tile("h2_pf_smem_16x8_cb8", 8, 16, 8, True, pf=3, h2=True),
    # h2w (float16; cuda_source._H2W): the h2 plans' arithmetic with each pixel's N*N weights
    # read once for all C channels (wf_tile reads them once per channel block: 4 times at C=32,
    # and at N=9 the weights are 81 of the 145 half words a pixel moves); the weights stay in
    # registers as half2, the channels stream through a double-buffered shared tile (cp.async).
    # p2: a pixel pair a thread (N <= 9: 81 registers of weights), p4: a quad (N <= 7; half the
    # tile reads a pixel, uint2); b2: pairs, each input half broadcast to both pixels (HFMA2's
    # operand selector) against weights paired per input column, so no funnel shifts: NVRTC's
    # sm_90 SASS for a channel at N=9 is 205 instructions against p2's 231 (90 HFMA2 for 81, no
    # SHF for 37). H200, 2026-12-03 18:15 UTC (docs/bench-2026-12-03e-h200-wf-h2w.txt): p4
    # 16x8 cb8 took C=32 N=5 in 0.180 ms (49.0% of copy; h2_h 0.199), then in FORWARD_TABLE; p2
    # and b2 lost to h2_h at N=5 and N=9 (b2 0.81 ms at N=9). The other p4 shapes below timed the
    # same on 2026-12-04 (0.1800 - 0.1815 ms). Timed at 1920x1080 only: without channel groups
    # (cg, the _g plans) every channel is in one block, so a small image makes few blocks
    # (256x256: 128, h2_h 512) and may leave SMs idle.
    _h2w("h2w_p2_32x8_cb8", 2, 32, 8, 8),
    _h2w("h2w_p2_32x8_cb4", 2, 32, 8, 4),
    _h2w("h2w_p2_16x16_cb8", 2, 16, 16, 8),
    _h2w("h2w_p2_64x4_cb4", 2, 64, 4, 4),
    _h2w("h2w_b2_32x8_cb8", 2, 32, 8, 8, bc=True),
    _h2w("h2w_b2_32x8_cb4", 2, 32, 8, 4, bc=True),
    _h2w("h2w_b2_16x16_cb8", 2, 16, 16, 8, bc=True),
    _h2w("h2w_p4_16x8_cb8", 4, 16, 8, 8),
    _h2w("h2w_p4_16x16_cb4", 4, 16, 16, 4),
    _h2w("h2w_p4_32x8_cb4", 4, 32, 8, 4),
    _h2w("h2w_p4_16x4_cb8", 4, 16, 4, 8),
    _h2w("h2w_p4_8x16_cb8", 4, 8, 16, 8),
    _h2w("h2w_p4_32x4_cb8", 4, 32, 4, 8),
    _h2w("h2w_p4_16x8_cb4", 4, 16, 8, 4),
    # _gK: a tile's channel chunks split among K blocks. All the p4 shapes above take 80
    # registers at N = 5 (6 blocks of 128 threads an SM on sm_90), which makes 1920x1080 5.11
    # waves of blocks over the H200's 132 SMs: the sixth wave is a tenth full, and every p4
    # shape timed the same 49%. g2 makes 10.2 waves (g4 20.5), for a second (fourth) read of
    # each pixel's weights, from L2. (Capping the registers for a seventh block an SM,
    # __launch_bounds__(128, 7), spills 40 bytes at 72.) H100, 2026-12-08 00:33 UTC
    # (docs/bench-2026-12-08-h100-wf-g.txt, C=32 N=5, GPU ms): 16x16_cb4_g2 0.1761 (in
    # FORWARD_TABLE), 16x8_cb8_g2 0.1832, 16x8_cb4_g2 0.1850, 16x8_cb4_g4 0.1926, against 0.1855
    # and 0.1839 for 16x8_cb8 and 16x16_cb4 ungrouped.
    _h2w("h2w_p4_16x8_cb8_g2", 4, 16, 8, 8, cg=2),
    _h2w("h2w_p4_16x8_cb4_g2", 4, 16, 8, 4, cg=2),
    _h2w("h2w_p4_16x8_cb4_g4", 4, 16, 8, 4, cg=4),
    _h2w("h2w_p4_16x16_cb4_g2", 4, 16, 16, 4, cg=2),
    # h2r (float16; cuda_source._H2R): "register rows", aimed at C=32 N=9 where h2_h took 0.418
    # ms (34.4% of copy) and h2w cannot hold the weights of more than a pixel pair. A thread
    # owns px (4, 8) pixels of a row and cb channels; a tap row's weights are loaded once for
    # the cb channels (8 or 16 bytes a tap), each channel's row segment comes from the shared
    # tile in aligned LDS.64 / LDS.128, odd column pairs are PRMTs of neighbouring words, and
    # the HFMA2s run from registers: per channel and tap row at N = 9, p8 issues 36 HFMA2 with
    # 2 LDS.128, 7 PRMT and 16 float ops (h2_h: 18 with 3 LDS.64, 5 and 8). p4 cb16 halves the
    # weights' L2 re-reads of h2_h (cb 8: four channel blocks at C=32). _mK: __launch_bounds__
    # asks for K blocks an SM. NVRTC 13 sm_90 registers at N = 5 / 9, no spills
    # (tests/test_kernels_h2r_on_cpu.py): p8 cb8 158 / 180 (2 blocks of 128 threads an SM), m3
    # 160 / 168; p8 cb4 m4 122 / 128; p8 16x16 cb4 m2 122 / 128; p4 cb16 m4 110 / 125; p4 32x8
    # cb8 70 / 79 (p8 cb8 m4 spills: 128 registers, 52 bytes at N = 9). Timed on the H200,
    # 2026-12-04 20:02 UTC (docs/bench-2026-12-04b-h200-wf-h2r.txt, GPU ms, C=32): N=9 p8 cb8 m3
    # 0.406 (35.3% of copy; h2_h 0.421, p4 cb16 m4 0.422, p8 cb8 0.513: at 2 blocks an SM the
    # loads are not hidden), in FORWARD_TABLE; N=5 all slower than h2w_p4_16x8_cb8 (0.216 - 0.246
    # against 0.181).
    _h2r("h2r_p8_16x8_cb8", 8, 16, 8, 8),
    _h2r("h2r_p8_16x8_cb8_m3", 8, 16, 8, 8, mb=3),
    # 8x16: the same registers as 16x8 m3 (NVRTC 13 sm_90: 160 / 168 at N = 5 / 9), a taller,
    # narrower block whose tile has less halo: 24 x 80 halves for 16 x 64 outputs (1.88x)
    # against 16 x 144 for 8 x 128 (2.25x), 17% less tile traffic from L2. Not timed yet
    # (gpu-next.steps wf-h2r-tall): at N = 9 the H100 had 16x8 m3 at 49.0% of copy.
    _h2r("h2r_p8_8x16_cb8_m3", 8, 8, 16, 8, mb=3),
    _h2r("h2r_p8_16x8_cb4_m4", 8, 16, 8, 4, mb=4),
    _h2r("h2r_p8_16x16_cb4_m2", 8, 16, 16, 4, mb=2),
    _h2r("h2r_p4_16x8_cb16_m4", 4, 16, 8, 16, mb=4),
    _h2r("h2r_p4_32x8_cb8", 4, 32, 8, 8),
    # _pipe: no branch between a thread's channels (cuda_source._H2R's PIPE). nvdisasm of the
    # plans above (NVRTC 13, sm_90) shows each channel's two LDS.128 followed at once by the
    # funnels and HFMA2 that need them, 8 times a tap row, with nothing of the next channel
    # between: the branch of c0 + cc < C keeps ptxas from moving loads across channels. With
    # pipe the next channel's LDS sit among this one's HFMA2s. Registers at N = 5 / 9, no spills:
    # p8 cb8 166 / 180 (2 blocks an SM); p8 cb8 m3 149 / 168, spilling 32 bytes at N = 9, all
    # outside the channel loop (two LDL a tap row where its weights load: SPILLS_AT_N9 in the
    # test); p8 cb4 m4 124 / 128, p4 cb16 m4 118 / 127, p4 32x8 cb8 m3 80 / 80, p4 16x8 cb8 m6
    # 80 / 80, p4 16x16 cb8 m3 80 / 80 (24 warps an SM for the last three). Not timed yet
    # (gpu-next.steps wf-h2r-pipe); CPU-checked bits (tests/test_kernels_h2r_on_cpu.py).
    _h2r("h2r_p8_16x8_cb8_pipe", 8, 16, 8, 8, pipe=True),
    _h2r("h2r_p8_16x8_cb8_m3_pipe", 8, 16, 8, 8, mb=3, pipe=True),
    _h2r("h2r_p8_8x16_cb8_m3_pipe", 8, 8, 16, 8, mb=3, pipe=True),
    _h2r("h2r_p8_16x8_cb4_m4_pipe", 8, 16, 8, 4, mb=4, pipe=True),
    _h2r("h2r_p4_16x8_cb16_m4_pipe", 4, 16, 8, 16, mb=4, pipe=True),
    _h2r("h2r_p4_32x8_cb8_m3_pipe", 4, 32, 8, 8, mb=3, pipe=True),
    _h2r("h2r_p4_16x8_cb8_m6_pipe", 4, 16, 8, 8, mb=6, pipe=True),
    _h2r("h2r_p4_16x16_cb8_m3_pipe", 4, 16, 16, 8, mb=3, pipe=True),
    # wf_mma: tensor cores (float16/bfloat16): 16 or 32 channels x 8 px per mma, a warp 1 or
    # 2 rows (py2: an input row's A fragments read once for 2 tap rows). On the H200,
    # 2026-12-03 (docs/bench-2026-12-03-h200-wf-sweep-xt-mma.json) mma_c16_g4_w8 took C=32 N=9
    # fp16 in 0.478 ms where smem_32x8_cb4 took 0.604 the day before (another run); N=5 fp16 it
    # lost (0.332 against 0.280). In FORWARD_TABLE for fp16 N=9 since the sweep of 14:54 UTC
    # timed both (0.476 against 0.485 for the best wf_tile).
    _mma("mma_c32_g4_w4", 32, 4, 4),
    _mma("mma_c32_g4_w2_py2", 32, 4, 2, py=2),
    _mma("mma_c16_g4_w4_py2", 16, 4, 4, py=2),
    _mma("mma_c32_g6_w2", 32, 6, 2),
    _mma("mma_c16_g4_w8", 16, 4, 8),
    _mma("mma_c16_g2_w4", 16, 2, 4),
)}

BIG = 1 << 30

FORWARD_TABLE: dict[str, dict[int, dict[int, str]]] = {
    # dtype: {at most C channels: {at most N: plan}}; float64 (no entry) takes FALLBACK
    # (gather4, below). C <= 4: the H200 sweep of 2026-12-02 16:09 UTC (weighted_filter_bench.py
    # --sweep, 1920x1080, best kernel time per case; docs/bench-2026-12-02-h200-wf-sweep.json).
    # Above: the H200 sweep of 2026-12-03 14:54 UTC with the prefetching plans
    # (docs/bench-2026-12-03d-h200-wf-sweep-pf.txt): fp32 N=5 0.279 ms (63% of copy; 0.344 before),
    # N=9 0.535 ms (53%; 0.682). fp16: the half2 plans' sweep of 2026-12-03 17:31 UTC
    # (docs/bench-2026-12-03e-h200-wf-h2.txt): h2_h_smem_16x8_cb8 N=5 0.229 ms (38.6%; pf_h 0.262
    # in the same run), N=9 0.456 ms (31.6%; mma_c16_g4_w8 0.516); N=5 then h2w_p4_16x8_cb8
    # (the sweep of 18:15 UTC, docs/bench-2026-12-03e-h200-wf-h2w.txt: 0.180 ms GPU, 49.0%), and
    # N=9 h2r_p8_16x8_cb8_m3 (the sweep of 2026-12-04 20:02 UTC,
    # docs/bench-2026-12-04b-h200-wf-h2r.txt: 0.406 ms GPU, 35.3%; h2_h_smem_16x8_cb8 0.421).
    # fp16 N <= 5 since 2026-12-08: h2w_p4_16x16_cb4_g2 (channel groups), from the H100 sweep of
    # 00:33 UTC (docs/bench-2026-12-08-h100-wf-g.txt): 0.1761 ms GPU, 70.0% of that H100's
    # copy, against 0.1855 (66.4%) for h2w_p4_16x8_cb8 and 0.1839 for h2w_p4_16x16_cb4 in the
    # same run; not yet timed on the H200 (gpu-next.steps wf-g).
    "float32": {
        4: {5: "smem_16x8_cb8", 9: "smem_16x8_cb8", 15: "l1_32x8_cb2"},
        BIG: {5: "pf_h_smem_16x8_cb8", 9: "pf_t_smem_16x8_cb8", 15: "l1_32x8_cb2"},
    },
    "float16": {
        4: {5: "smem_32x8_cb4", 9: "smem_16x8_cb8", 15: "l1_32x8_cb2"},
        BIG: {5: "h2w_p4_16x16_cb4_g2", 9: "h2r_p8_16x8_cb8_m3", 15: "l1_32x8_cb2"},
    },
    "bfloat16": {   # the half2 plans are float16 only: float16's choices before them
        4: {5: "smem_32x8_cb4", 9: "smem_16x8_cb8", 15: "l1_32x8_cb2"},
        BIG: {5: "pf_h_smem_16x8_cb8", 9: "mma_c16_g4_w8", 15: "l1_32x8_cb2"},
    },
}

FALLBACK = "gather4"


def select(dtype: str, c: int, n: int, force: str | None = None) -> ForwardPlan:
    """The plan for a gather forward: ``force`` (a ``PLANS`` name) when given, else the
    ``FORWARD_TABLE`` entry (first C bound >= c, first N bound >= n), else ``FALLBACK`` when
    the entry is missing or cannot run this case."""
    if force is not None:
        if force not in PLANS:
            raise KeyError(f"no WeightedFilter forward plan {force!r}; plans: {', '.join(PLANS)}")
        plan = PLANS[force]
        why = plan.unsupported(dtype, n, c)
        if why:
            raise ValueError(f"plan {force!r} cannot run {dtype} C={c} N={n}: {why}")
        return plan
    table = FORWARD_TABLE.get(dtype, {})
    for cmax in sorted(table):
        if c <= cmax:
            for nmax in sorted(table[cmax]):
                if n <= nmax:
                    plan = PLANS[table[cmax][nmax]]
                    if plan.unsupported(dtype, n, c) is None:
                        return plan
                    break
            break
    return PLANS[FALLBACK]
