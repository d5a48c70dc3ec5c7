"""Forward (gather) plans of WeightedFilter: the kernel variants and the table that picks one.

A plan names a kernel and its blocking: ``rows`` (``wf_filter``, pixel rows a thread),
``gather4`` (``wf_gather4``, a quad of pixels a thread along x, 256-thread blocks along the
rows), ``tile`` (``wf_tile``: 2-D blocks of ``ty`` rows x ``txq`` quads, the channel block the
fastest grid index, the input through shared memory or L1), ``xtile`` (``wf_xtile``: ``px``
pixels and up to 32 channels a thread, so a weight register serves many channels) and ``mma``
(``wf_mma``: tensor cores, 16-bit storage; ``txq`` 8-pixel groups a warp, ``ty`` warps a block).
``PLANS`` holds every variant the benchmark sweeps (``benchmarks/weighted_filter_bench.py
--sweep``); ``FORWARD_TABLE`` says which one runs, per dtype, channel count and N: the one dict
to edit from a sweep's result (the sweep prints a replacement). No CuPy or torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .mma_source import mma_layout

THREADS = 256
"""Threads a block of the ``rows``, ``gather4`` and ``wf_wgrad`` kernels."""

REGISTER_FLOATS = 150
"""Floats a thread of wf_tile's second form with ``py`` > 1 may hold in registers."""

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
    """One way to run the gather forward: ``kernel`` (rows, gather4, tile, xtile, mma), at most
    ``cb`` channels a thread (``mma``: a block, 16 or 32), and the tile shape of ``tile`` and
    ``xtile``: ``txq`` x ``ty`` threads, each ``py`` rows of ``px`` pixels (``tile``: 4; a block
    ``ty * py`` rows x ``px * txq`` px), the input through shared memory (``smem``; as 16-bit
    words with ``s16``, float16/bfloat16 only) or L1; ``minb`` (``py`` > 1, ``s16`` or
    ``xtile``): blocks an SM promised to ptxas, which caps the registers. ``mma``: ``ty`` warps
    a block, each ``py`` output rows of ``txq`` groups of 8 px."""

    name: str
    kernel: str
    cb: int = 8
    txq: int = 32
    ty: int = 8
    smem: bool = False
    py: int = 1
    s16: bool = False
    minb: int = 1
    px: int = 4

    def channels(self, c: int) -> int:
        """Channels a thread for ``c`` channels (the compile-time channel block; ``mma``: a
        block's channels, whole tiles of 16)."""
        if self.kernel == "mma":
            return 16 * ((min(c, self.cb) + 15) // 16)
        return channel_block(c, self.cb)

    def threads(self) -> int:
        if self.kernel == "mma":
            return 32 * self.ty
        return self.txq * self.ty if self.kernel in ("tile", "xtile") else THREADS

    def smem_bytes(self, n: int, c: int) -> int:
        """Shared memory a block takes (float tiles 4 bytes an element, ``s16`` tiles 2;
        ``mma``: its 16-bit tile and band matrices)."""
        if self.kernel == "mma":
            return mma_layout(n, self.channels(c), self.txq, self.ty, self.py)["smem_bytes"]
        if self.kernel not in ("tile", "xtile") or not self.smem:
            return 0
        pad = (n // 2 + 3) // 4 * 4
        size = 2 if self.s16 else 4
        return (size * self.channels(c) * (self.ty * self.py + n - 1)
                * (self.px * self.txq + 2 * pad))

    def unsupported(self, dtype: str, n: int, c: int) -> str | None:
        """Why this plan cannot run (dtype name, N, C), or None when it can."""
        if self.kernel in ("tile", "xtile") and dtype == "float64":
            return f"wf_{self.kernel} accumulates in float; float64 takes gather4"
        if self.kernel == "mma" and dtype not in ("float16", "bfloat16"):
            return f"tensor-core plans take float16 or bfloat16 storage, not {dtype}"
        if self.kernel == "mma" and n > 17:
            return f"wf_mma's tile halo is 8 columns: N <= 17, not {n}"
        if self.s16 and dtype not in ("float16", "bfloat16"):
            return f"a 16-bit shared tile needs float16 or bfloat16 storage, not {dtype}"
        if self.smem_bytes(n, c) > SMEM_LIMIT:
            return f"needs {self.smem_bytes(n, c)} bytes of shared memory (> {SMEM_LIMIT})"
        # accumulators + one tap row of weights: beyond ~160 floats a thread the kernel spills
        cb = self.channels(c)
        if self.kernel == "xtile":
            # CB x PX accumulators, a tap row's N x PX weights and one input segment
            padp = (n // 2 + self.px - 1) // self.px * self.px
            seg = self.px + 2 * padp
            if cb * self.px + n * self.px + seg > REGISTER_FLOATS:
                return (f"{cb} channels x {self.px} px + {n} x {self.px} weights + {seg} inputs:"
                        " too many registers")
        elif self.kernel == "tile" and self.py > 1:
            # wf_tile's second form, py > 1: py x CB x 4 accumulators, the CB row segments
            # of an input row (SEG floats each) and one tap row of weights
            seg = 4 + 2 * ((n // 2 + 3) // 4 * 4)
            if self.py * cb * 4 + cb * seg + n * 4 > REGISTER_FLOATS:
                return (f"{self.py} rows x {cb} channels x 4 px + {cb} x {seg} inputs + {n} x 4"
                        " weights: too many registers")
        elif self.kernel in ("tile", "gather4") and cb * 4 + n * 4 > 128:
            return f"{cb} channels x 4 px + {n} x 4 weights: too many registers"
        return None

    def grid(self, b: int, c: int, h: int, w: int, n: int) -> tuple[int, int, int]:
        """The launch grid for a ``(b, c, h, w)`` input and N."""
        cb = self.channels(c)
        nb = (c + cb - 1) // cb
        if self.kernel in ("tile", "xtile"):
            rows = self.ty * self.py
            tiles = (((w + self.px - 1) // self.px + self.txq - 1) // self.txq
                     * ((h + rows - 1) // rows))
            return (tiles * nb, b, 1)
        if self.kernel == "mma":
            rows = self.ty * self.py
            tiles = (w + 8 * self.txq - 1) // (8 * self.txq) * ((h + rows - 1) // rows)
            return (tiles * nb, b, 1)
        if self.kernel == "gather4":
            return ((h * ((w + 3) // 4) + THREADS - 1) // THREADS, nb, b)
        rows = rows_per_thread(n)
        return (((h + rows - 1) // rows * w + THREADS - 1) // THREADS, nb, b)


def _tile(name: str, cb: int, txq: int, ty: int, smem: bool, py: int = 1,
          s16: bool = False, minb: int = 1) -> ForwardPlan:
    return ForwardPlan(name, "tile", cb, txq, ty, smem, py, s16, minb)


def _xtile(name: str, cb: int, px: int, txq: int, ty: int, smem: bool, s16: bool = False,
           minb: int = 1) -> ForwardPlan:
    return ForwardPlan(name, "xtile", cb, txq, ty, smem, 1, s16, minb, px)


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
    # issue 15 (C=32): two rows a thread (input rows read once for 2 tap rows), 16-bit tiles
    _tile("smem_32x4_py2_cb4", 4, 32, 4, True, py=2),
    _tile("smem_16x8_py2_cb4_m3", 4, 16, 8, True, py=2, minb=3),
    _tile("smem_32x4_py4_cb2", 2, 32, 4, True, py=4),
    _tile("l1_32x4_py2_cb4_m3", 4, 32, 4, False, py=2, minb=3),
    # the same with the registers capped (ptxas hoists every row's weight loads: 230-255
    # registers at N=9 otherwise; 3 blocks of 128 threads: <= 168, no spills at N <= 9)
    _tile("smem_32x4_py2_cb4_m3", 4, 32, 4, True, py=2, minb=3),
    _tile("smem_32x4_py4_cb2_m3", 2, 32, 4, True, py=4, minb=3),
    _tile("s16_32x4_py2_cb4_m3", 4, 32, 4, True, py=2, s16=True, minb=3),
    _tile("s16_32x8_cb8", 8, 32, 8, True, s16=True),
    _tile("s16_32x8_cb4", 4, 32, 8, True, s16=True),
    _tile("s16_16x8_cb8", 8, 16, 8, True, s16=True),
    _tile("s16_32x8_py2_cb4", 4, 32, 8, True, py=2, s16=True),
    # issue 15 (C=32), wf_xtile: more channels a thread, so a weight register multiplies 16 or
    # 32 channels (at C = 32 the weights, 81 planes at N = 9, leave L2 2 times or once, not 4-8)
    _xtile("xt_smem_8x8_px4_cb16", 16, 4, 8, 8, True),
    _xtile("xt_s16_16x8_px4_cb16", 16, 4, 16, 8, True, s16=True),
    _xtile("xt_l1_16x4_px4_cb16", 16, 4, 16, 4, False),
    _xtile("xt_l1_32x4_px2_cb32", 32, 2, 32, 4, False),
    _xtile("xt_s16_16x4_px2_cb32", 32, 2, 16, 4, True, s16=True),
    # wf_mma: tensor cores (float16/bfloat16): 16 or 32 channels x 8 px per mma, a warp 1 or
    # 2 rows (py2: an input row's A fragments read once for 2 tap rows)
    _mma("mma_c32_g4_w4", 32, 4, 4),
    _mma("mma_c32_g4_w2_py2", 32, 4, 2, py=2),
    _mma("mma_c16_g4_w4_py2", 16, 4, 4, py=2),
    _mma("mma_c32_g6_w2", 32, 6, 2),
    _mma("mma_c16_g4_w8", 16, 4, 8),
    _mma("mma_c16_g2_w4", 16, 2, 4),
)}

BIG = 1 << 30

FORWARD_TABLE: dict[str, dict[int, dict[int, str]]] = {
    # dtype: {at most C channels: {at most N: plan}}; bfloat16 and float64 read float16 and
    # gather4 (below). From the H200 sweep of 2026-12-02 16:09 UTC (weighted_filter_bench.py
    # --sweep, 1920x1080, best kernel time per case; docs/bench-2026-12-02-h200-wf-sweep.json).
    "float32": {
        4: {5: "smem_16x8_cb8", 9: "smem_16x8_cb8", 15: "l1_32x8_cb2"},
        BIG: {5: "smem_16x8_cb8", 9: "smem_32x8_cb4", 15: "l1_32x8_cb2"},
    },
    "float16": {
        4: {5: "smem_32x8_cb4", 9: "smem_16x8_cb8", 15: "l1_32x8_cb2"},
        BIG: {5: "smem_16x8_cb8", 9: "smem_32x8_cb4", 15: "l1_32x8_cb2"},
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
    table = FORWARD_TABLE.get("float16" if dtype == "bfloat16" else dtype, {})
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
