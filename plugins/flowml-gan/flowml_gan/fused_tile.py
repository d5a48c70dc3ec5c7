"""The filtered leaky ReLU as one kernel a call (``fused_tile_source.py``): plan, launch, CPU run.

``tile_plan(...)`` says whether the one-kernel path covers a call (a separable up-sampling
filter, a separable, square 2-D or no down-sampling filter, float32 or float16, tiles that fit
in shared memory) and with which tile: the output of each image plane is cut into
``ceil(Wo / tile)`` by ``ceil(Ho / tile)`` tiles of equal size (at most ``TILE`` a side, so an
edge tile wastes little), one block each. ``tile_run(backend, ...)`` launches it: on
``CupyTileBackend`` (NVRTC via ``cupy.RawModule`` name expressions, torch's current stream,
torch's tensors, no host synchronisation) or ``CpuTileBackend`` (the same source built with
g++, every block's threads as POSIX threads; the tests). ``fused.filtered_lrelu_fast`` picks it.

The tuning of a plan (largest tile side, outputs a thread in the down stage ``ry``, threads a
block, variant bits ``uv``) comes from the plan table (``plan_table``): per layer kind
(storage dtype and the filter/factor template parameters, optionally one output size), the
defaults here (``DEFAULT_PLANS``) overridden by a JSON file named by ``FLOWML_GAN_FLR_PLANS``
(``benchmarks/flr_sweep.py`` writes one from timings on the GPU) or by ``set_plans``.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from flowml.gpu.cuda_c import host_library

from .fused_tile_source import KERNEL_SOURCE, host_harness, kernel_name
from .ops_sg3 import _pad4

__all__ = ["TILE", "THREADS", "H2", "H2U", "H2_TOL", "TilePlan", "Tuning", "DEFAULT_PLANS", "PLANS_ENV", "kind_key",
           "plan_table", "set_plans", "load_plans", "tile_plan", "tile_unsupported", "tile_run",
           "CupyTileBackend", "CpuTileBackend"]

TILE = int(os.environ.get("FLOWML_GAN_TILE", "32"))
"""Largest output tile side where ``FLOWML_GAN_TILE`` is set (over the plan table): 32 keeps a
StyleGAN3 tile under 48 KB of shared memory (several blocks an SM); larger tiles waste less
halo and take the opt-in."""
THREADS = 128
"""Threads a block by default: 128 with up to 8 outputs a thread in the down stage (one wave
for a 32 x 32 tile; 256 threads would idle half of them there), 64 registers a thread."""
MAX_RY = 32
MAX_SMEM = 227 * 1024          # bytes a block may opt in to (sm_90); 48 KB without opting in
MAX_UP_TAPS, MAX_DOWN_TAPS = 64, 24   # fused_tile_source.MAX_FD_FLOATS holds 24 x 24
H2, H2U = 4, 8
"""The ``uv`` bits of the half2 variant (``TilePlan``): float16 storage and a down filter
(2-D or separable) only (elsewhere the bits are dropped), with bits 1 and 2: ``uv`` 7 the down stage in half2,
15 the y-up stage too (B as half)."""
H2_TOL = 4e-3
"""The half2 variant's tolerance: its float16 output within ``H2_TOL * max(1, max|ref|)`` of
the float computation on the same float16 inputs (the float variants: 2e-3). Half a tap
row's partial sums and half taps: measured on the CPU harness up to 1.23e-3 on SG3-R's
radial layers and 1.59e-3 on the separable ones, ``uv`` 7 and 15 alike (the float plans:
4.5e-4; tests/test_gan_fused_h2.py)."""
_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


@dataclass(frozen=True)
class TilePlan:
    """One instantiation of the kernel: up-sampling by ``up`` with ``ku`` taps, down-sampling
    by ``down`` with ``kd`` taps (``fd``: 0 none, 1 separable, 2 square 2-D), output tiles of
    ``tw x th``, ``ry`` outputs a thread in the down-sampling stage, ``threads`` a block,
    variant bits ``uv`` (1: the up-sampling stages make ``up`` samples a thread, else one;
    2: the down stage as a rolling loop (a separable filter: along y first), else fully
    unrolled; 4 (with 1 and 2, a down filter, float16 storage only): the up-sampled tile as
    half and the down stage in half2 FMAs, two outputs a thread; 8 (with 4): the x-up
    buffer as half and the y-up stage in half2 too; see ``fused_tile_source``)."""

    up: int
    ku: int
    down: int
    kd: int
    fd: int
    tw: int
    th: int
    ry: int
    threads: int = THREADS
    uv: int = 3

    # the geometry, as FlrGeom in the kernel computes it (test_gan_fused checks they agree)
    @property
    def uw(self) -> int:
        return (self.tw - 1) * self.down + self.kd

    @property
    def uh(self) -> int:
        return (self.th - 1) * self.down + self.kd

    @property
    def uhp(self) -> int:
        return (self.th + self.ry - 1) // self.ry * self.ry * self.down + (self.kd - 1) // self.down * self.down

    @property
    def uws(self) -> int:
        return -(-self.uw // self.down) * self.down

    @property
    def uwdh(self) -> int:
        """``uv`` 4: A's phase row in halves (even; the NW words an output pair reads)."""
        nw = -(-self.kd // self.down) // 2 + 1
        uwd = -(-self.uw // self.down)
        return max((uwd + 1) // 2 * 2, 2 * ((self.tw + 1) // 2 - 1) + 2 * nw)

    @property
    def iw(self) -> int:
        return (self.uw + self.ku - 2) // self.up + 1

    @property
    def ih(self) -> int:
        return (self.uh + self.ku - 2) // self.up + 1

    @property
    def sbw(self) -> int:
        """Row stride of the x-up buffer: ``uv`` 1 stores it by phase, ``up`` rows of steps."""
        return self.up * ((self.uw + self.up - 2) // self.up + 1) if self.uv & 1 else self.uw

    @property
    def smem_floats(self) -> int:
        nfu = 0 if self.uv & 1 else (self.ku + 3) // 4 * 4
        a = self.uhp * self.uwdh * self.down // 2 if self.uv & 4 else self.uhp * self.uws
        sa = max(self.ih * self.iw, a)
        qxh = -(-((self.uw + self.up - 2) // self.up + 1) // 2) * 2
        sbx = self.ih * self.up * qxh // 2 if self.uv & H2U else self.ih * self.sbw
        sb = (max(sbx, self.th * self.uwdh * self.down // 2) if self.fd == 1 and self.uv & H2
              else max(sbx, self.uhp * self.tw, self.th * self.uws) if self.fd == 1 else sbx)
        return nfu + sa + sb

    @property
    def smem_bytes(self) -> int:
        return 4 * self.smem_floats

    @property
    def params(self) -> tuple[int, ...]:
        return (self.up, self.ku, self.down, self.kd, self.fd, self.tw, self.th, self.ry, self.threads,
                self.uv)

    def name(self, dtype: str) -> str:
        """The kernel's NVRTC name expression for storage ``dtype`` (float32 / float16)."""
        return kernel_name(dtype, *self.params)


def output_size(h: int, w: int, ku: int, kd: int, up: int, down: int,
                padding: Sequence[int]) -> tuple[int, int]:
    """``(Ho, Wo)`` of ``filtered_lrelu`` on an ``h x w`` input (``kd`` 1: no down filter)."""
    px0, px1, py0, py1 = padding
    return ((h * up + py0 + py1 - (ku - 1) - (kd - 1) + down - 1) // down,
            (w * up + px0 + px1 - (ku - 1) - (kd - 1) + down - 1) // down)


def _side(n: int, tile: int) -> int:
    return -(-n // -(-n // tile))  # ceil(n / ceil(n / tile)): equal tiles, at most `tile`


def _rows_a_thread(tw: int, th: int, down: int, kd: int, threads: int, most: int = 8) -> int:
    """Outputs a thread makes in a column in the down-sampling stage (1..``most``): the fewest
    tap rows read per thread, counting waves of ``threads`` (e.g. a 28-px tile at 256 threads:
    4, one wave of 196 groups, not 3 in two waves; a 32-px tile at 128 threads: 8), the larger
    on a tie."""
    def cost(r: int) -> tuple[int, int]:
        waves = -(-(-(-th // r) * tw) // threads)
        return waves * ((r - 1) * down + kd), -r
    return min(range(1, min(most, th) + 1), key=cost)


@dataclass(frozen=True)
class Tuning:
    """The tunable part of a plan: tiles of at most ``tile`` a side, ``threads`` a block,
    ``ry`` outputs a thread in the down stage (0: by ``_rows_a_thread``), variant bits ``uv``
    (``TilePlan``)."""

    tile: int = 32
    threads: int = THREADS
    ry: int = 0
    uv: int = 3

    def as_dict(self) -> dict[str, int]:
        return {"tile": self.tile, "threads": self.threads, "ry": self.ry, "uv": self.uv}


def kind_key(dtype: str, up: int, ku: int, down: int, kd: int, fd: int,
             out: tuple[int, int] | None = None) -> str:
    """A plan table key: ``float16/up4/ku24/down2/kd12/fd2`` for a layer kind, with ``@HoxWo``
    for one output size (taking precedence over the kind's entry)."""
    key = f"{dtype}/up{up}/ku{ku}/down{down}/kd{kd}/fd{fd}"
    return key + (f"@{out[0]}x{out[1]}" if out else "")


DEFAULT_PLANS: dict[str, Tuning] = {"*": Tuning()}
"""Defaults by reasoning (no GPU timing yet): 32-px tiles (under 48 KB of shared memory, about
8 blocks an SM), 128 threads, ``ry`` by waves (8 for a 32-px tile: 26 tap rows read for 8
outputs, 39 shared loads an output for the 144 FMAs of the 12 x 12 radial filter, against 54
at 4), the up-sampling stages with ``up`` samples a thread (``uv`` bit 1: about 4x fewer
shared loads than a sample a thread, which made those stages the kernel's bottleneck) and the
rolling 2-D down stage (bit 2: ``ry`` 8 in under 64 registers without spills)."""

PLANS_ENV = "FLOWML_GAN_FLR_PLANS"
_override: dict[str, Tuning] | None = None
_override_version = 0


def _tuning(d: dict[str, Any], where: str) -> Tuning:
    unknown = set(d) - {"tile", "threads", "ry", "uv"}
    if unknown:
        raise ValueError(f"{where}: unknown plan fields {sorted(unknown)} (tile, threads, ry, uv)")
    t = Tuning(**{k: int(v) for k, v in d.items()})
    if not (4 <= t.tile <= 128 and t.threads in (32, 64, 96, 128, 192, 256, 384, 512)
            and 0 <= t.ry <= MAX_RY and t.uv in (0, 1, 2, 3, 7, 15)):
        raise ValueError(f"{where}: plan {t} out of range (tile 4..128, threads a multiple of 32 "
                         f"up to 512, ry 0..{MAX_RY}, uv 0..3, or 7 / 15: half2)")
    return t


def load_plans(path: str | Path) -> dict[str, Tuning]:
    """A plan table from JSON: ``{"plans": {key: {"tile": 32, "threads": 128, "ry": 8,
    "uv": 3}, ...}}`` (keys as ``kind_key`` makes them, or ``*``); fields left out take the
    defaults."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{PLANS_ENV}={path}: cannot read the plan table ({exc})") from exc
    plans = data.get("plans", data) if isinstance(data, dict) else None
    if not isinstance(plans, dict):
        raise ValueError(f"{PLANS_ENV}={path}: expected {{'plans': {{key: {{tile, threads, ry, uv}}}}}}")
    return {str(k): _tuning(v, f"{path}: {k}") for k, v in plans.items()}


@functools.lru_cache(maxsize=8)
def _file_plans(path: str) -> dict[str, Tuning]:
    return load_plans(path)


def set_plans(plans: dict[str, Tuning] | None) -> None:
    """Replace the table in this process (``None``: back to the defaults and the env file);
    the sweep uses it. Plans already made for a call are recomputed."""
    global _override, _override_version
    _override = dict(plans) if plans is not None else None
    _override_version += 1


def plan_table() -> dict[str, Tuning]:
    """The table in force: ``DEFAULT_PLANS``, then the ``FLOWML_GAN_FLR_PLANS`` file, then
    ``set_plans`` (later ones override earlier keys)."""
    table = dict(DEFAULT_PLANS)
    path = os.environ.get(PLANS_ENV)
    if path:
        table.update(_file_plans(path))
    if _override is not None:
        table.update(_override)
    return table


def _lookup(table: dict[str, Tuning], dtype: str, up: int, ku: int, down: int, kd: int, fd: int,
            out: tuple[int, int]) -> Tuning:
    for key in (kind_key(dtype, up, ku, down, kd, fd, out), kind_key(dtype, up, ku, down, kd, fd), "*"):
        if key in table:
            return table[key]
    return Tuning()


@functools.lru_cache(maxsize=1024)
def _plan(shape: tuple[int, ...], dtype: torch.dtype, ku: int | None, fd_shape: tuple[int, ...] | None,
          up: int, down: int, padding: tuple[int, int, int, int], tile: int | None,
          threads: int | None, ry: int | None, uv: int | None, table_id: tuple[str | None, int]
          ) -> TilePlan | str:
    """The plan for a call, or why there is none (cached: a call costs a dict look-up);
    ``tile``, ``threads``, ``ry``, ``uv`` given override the plan table's entry."""
    if dtype not in _DTYPES:
        return f"dtype {dtype} (float32 or float16 only)"
    if len(shape) != 4 or 0 in shape:
        return f"input shape {shape} (a non-empty (B, C, H, W) only)"
    if ku is None:
        return "the up-sampling filter is not separable (taps,)"
    if fd_shape is not None and not (len(fd_shape) == 1 or (len(fd_shape) == 2 and fd_shape[0] == fd_shape[1])):
        return f"down-sampling filter {fd_shape} (separable or square 2-D only)"
    kd = 1 if fd_shape is None else fd_shape[0]
    if ku > MAX_UP_TAPS or kd > MAX_DOWN_TAPS:
        return f"filters over {MAX_UP_TAPS} (up) / {MAX_DOWN_TAPS} (down) taps"
    if up < 1 or down < 1:
        return f"up {up} / down {down}"
    ho, wo = output_size(shape[2], shape[3], ku, kd, up, down, padding)
    if ho <= 0 or wo <= 0:
        return f"empty output ({ho} x {wo})"
    fdk = 0 if fd_shape is None else len(fd_shape)
    t = _lookup(plan_table(), _DTYPES[dtype], up, ku, down, kd, fdk, (ho, wo))
    tile = tile or (TILE if "FLOWML_GAN_TILE" in os.environ else t.tile)
    threads = threads or t.threads
    tw, th = _side(wo, tile), _side(ho, tile)
    uv = t.uv if uv is None else uv
    if uv & H2 and (dtype != torch.float16 or fdk == 0 or uv & 3 != 3):
        uv &= 3          # half2: float16 storage, a down filter, with bits 1 and 2 only
    cols = (tw + 1) // 2 if uv & H2 and fdk == 2 else tw   # half2 2-D: a thread two columns
    ry = min(ry or t.ry or _rows_a_thread(cols, th, down, kd, threads), th)
    plan = TilePlan(up, ku, down, kd, fdk, tw, th, ry, threads, uv if fdk else uv & 1)
    if plan.smem_bytes > MAX_SMEM:
        return f"a {tw} x {th} tile needs {plan.smem_bytes} B of shared memory (> {MAX_SMEM})"
    return plan


def _plan_for(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
              padding: int | Sequence[int], tile: int | None, threads: int | None,
              ry: int | None = None, uv: int | None = None) -> TilePlan | str:
    return _plan(tuple(x.shape), x.dtype, fu.shape[0] if fu is not None and fu.ndim == 1 else None,
                 tuple(fd.shape) if fd is not None else None, int(up), int(down), _pad4(padding),
                 tile, threads, ry, uv, (os.environ.get(PLANS_ENV), _override_version))


def tile_unsupported(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None,
                     up: int, down: int, padding: int | Sequence[int], tile: int | None = None,
                     threads: int | None = None) -> str | None:
    """Why the one-kernel path does not take this call (None: it does)."""
    plan = _plan_for(x, fu, fd, up, down, padding, tile, threads)
    return plan if isinstance(plan, str) else None


def tile_plan(x: torch.Tensor, fu: torch.Tensor, fd: torch.Tensor | None, up: int, down: int,
              padding: int | Sequence[int], tile: int | None = None, threads: int | None = None,
              ry: int | None = None, uv: int | None = None) -> TilePlan:
    """The plan for ``filtered_lrelu(x, fu, fd, ...)``: the plan table's tuning for the call's
    kind and output size (``plan_table``), ``tile`` (largest side), ``threads``, ``ry``, ``uv``
    overriding it where given. Raises ValueError where ``tile_unsupported`` says why not.
    x ``(B, C, H, W)``."""
    plan = _plan_for(x, fu, fd, up, down, padding, tile, threads, ry, uv)
    if isinstance(plan, str):
        raise ValueError(f"filtered_lrelu: the one-kernel path does not take {plan}; "
                         "use fused.filtered_lrelu_fast, which falls back")
    return plan


def _half_words(t: torch.Tensor) -> torch.Tensor:
    """A float32 filter ``(k,)`` or ``(k, k)`` rounded to half (RN), flattened, padded with a
    zero half to an even count and viewed as 32-bit words ``(ceil(numel / 2),)`` int32, tap
    ``2i`` the low half: ``flr_cfd2`` / ``flr_cfu2``'s layout. Torch ops on the stream, like
    the filters' copies, so a captured graph recomputes it at each replay."""
    h = t.reshape(-1).to(torch.float16)
    if h.numel() % 2:
        h = torch.cat([h, h.new_zeros(1)])
    return h.view(torch.int32)


def tile_run(backend: Any, x: torch.Tensor, fu: torch.Tensor, fd: torch.Tensor | None,
             b: torch.Tensor | None, up: int, down: int, padding: int | Sequence[int],
             gain: float, slope: float, clamp: float | None, plan: TilePlan | None = None
             ) -> torch.Tensor:
    """``filtered_lrelu`` in one kernel on ``backend``: x ``(B, C, H, W)`` float32/float16,
    fu ``(ku,)``, fd ``(kd,)``, ``(kd, kd)`` or None, b ``(C,)`` -> ``(B, C, Ho, Wo)``."""
    import numpy as np

    plan = plan or tile_plan(x, fu, fd, up, down, padding)
    px0, px1, py0, py1 = _pad4(padding)
    x = x.contiguous()
    n, c, h, w = x.shape
    ho, wo = output_size(h, w, plan.ku, plan.kd, up, down, (px0, px1, py0, py1))
    y = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device)
    fu = fu.to(torch.float32).contiguous()
    fd = fd.to(torch.float32).contiguous() if fd is not None else None
    bias = b.to(x.dtype).contiguous() if b is not None else None
    tiles_x = -(-wo // plan.tw)
    tiles = tiles_x * -(-ho // plan.th)
    cl = float(clamp) if clamp is not None and clamp >= 0 else -1.0
    scalars = [np.int32(v) for v in (c, h, w, ho, wo, px0, py0, tiles_x, tiles)]
    scalars += [np.float32(gain), np.float32(slope), np.float32(cl)]
    # uv 4: the down filter as half words (flr_cfd2), uv 8: the up filter likewise (flr_cfu2)
    fd2 = _half_words(fd) if plan.uv & H2 else None
    fu2 = _half_words(fu) if plan.uv & H2U else None
    backend.run_tile(plan, _DTYPES[x.dtype], n * c * tiles, [x, y, fu, bias], scalars, fd, fd2, fu2)
    return y


class CupyTileBackend:
    """The kernel on the GPU: one ``cupy.RawModule`` per instantiation, device and stream
    (NVRTC, name expression; a module's constant-memory filter is then never shared by two
    streams), launched on torch's current stream with CuPy's handle on it, the down-sampling
    filter copied into the module's ``flr_cfd`` (and, ``uv`` 1, the up-sampling one into
    ``flr_cfu``; ``uv`` 4 / 8, their half words into ``flr_cfd2`` / ``flr_cfu2``) on that stream first (device to device, so a captured graph copies the filter
    tensors' values at each replay)."""

    def __init__(self, stream_of: Any):
        self._stream_of = stream_of      # torch device -> CuPy stream (fused.CupyBackend's)
        self._modules: dict[tuple[str, int, int], tuple[Any, int, int, int, int]] = {}

    def _function(self, name: str, smem_bytes: int, device: int, stream: int) -> tuple[Any, int, int, int, int]:
        key = (name, device, stream)
        got = self._modules.get(key)
        if got is None:
            got = self._modules[key] = self._load(name, smem_bytes)
        return got

    @staticmethod
    def _load(name: str, smem_bytes: int) -> tuple[Any, int, int, int, int]:
        import cupy

        mod = cupy.RawModule(code=KERNEL_SOURCE, options=("--std=c++14",), name_expressions=[name])
        fn = mod.get_function(name)
        if smem_bytes > 48 * 1024:   # opt in to more than the default 48 KB
            try:
                fn.max_dynamic_shared_size_bytes = smem_bytes
            except AttributeError:
                from cupy.cuda import driver

                driver.funcSetAttribute(fn.ptr, driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                        smem_bytes)
        half = []
        for sym in ("flr_cfd2", "flr_cfu2"):
            try:
                half.append(int(mod.get_global(sym).ptr))
            except Exception:     # dropped from a module that does not use it: only uv 4 / 8 do
                half.append(0)
        return (fn, int(mod.get_global("flr_cfd").ptr), int(mod.get_global("flr_cfu").ptr), *half)

    def preload(self, plans: Iterable[tuple[str, TilePlan]], device: torch.device,
                workers: int = 16) -> dict[str, str]:
        """Compile and load ``(dtype, plan)`` kernels for ``device`` and torch's current stream
        there, ``workers`` NVRTC compiles at a time (NVRTC runs outside the GIL); returns
        ``{name: error}`` of those that failed (they fail again, with the message, when run)."""
        import concurrent.futures

        import cupy

        stream = self._stream_of(device).ptr
        jobs = {p.name(d): p.smem_bytes for d, p in plans}
        jobs = {n: b for n, b in jobs.items() if (n, device.index, stream) not in self._modules}

        def one(item: tuple[str, int]) -> None:
            with cupy.cuda.Device(device.index):
                got = self._load(*item)
            self._modules[(item[0], device.index, stream)] = got

        errors: dict[str, str] = {}
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {pool.submit(one, item): item[0] for item in jobs.items()}
            for f in concurrent.futures.as_completed(futures):
                if f.exception() is not None:
                    errors[futures[f]] = f"{type(f.exception()).__name__}: {f.exception()}"[:1000]
        for name in list(errors):      # once more, one at a time: a thread-safety slip is no failure
            try:
                one((name, jobs[name]))
                del errors[name]
            except Exception:
                pass
        return errors

    def run_tile(self, plan: TilePlan, dtype: str, grid: int, tensors: Sequence[torch.Tensor | None],
                 scalars: Sequence[Any], fd: torch.Tensor | None, fd2: torch.Tensor | None = None,
                 fu2: torch.Tensor | None = None) -> None:
        import cupy
        import numpy as np

        dev = tensors[0].device
        stream = self._stream_of(dev)
        args = tuple(np.uint64(t.data_ptr() if t is not None else 0) for t in tensors) + tuple(scalars)
        with cupy.cuda.Device(dev.index):
            fn, cfd, cfu, cfd2, cfu2 = self._function(plan.name(dtype), plan.smem_bytes, dev.index, stream.ptr)
            rt = cupy.cuda.runtime
            if fd is not None:
                rt.memcpyAsync(cfd, fd.data_ptr(), 4 * fd.numel(), rt.memcpyDeviceToDevice, stream.ptr)
            if plan.uv & 1:
                fu = tensors[2]
                rt.memcpyAsync(cfu, fu.data_ptr(), 4 * fu.numel(), rt.memcpyDeviceToDevice, stream.ptr)
            if fd2 is not None:
                if not cfd2:
                    raise RuntimeError(f"{plan.name(dtype)}: the module has no flr_cfd2 (half2 taps)")
                rt.memcpyAsync(cfd2, fd2.data_ptr(), 4 * fd2.numel(), rt.memcpyDeviceToDevice, stream.ptr)
            if fu2 is not None:
                if not cfu2:
                    raise RuntimeError(f"{plan.name(dtype)}: the module has no flr_cfu2 (half2 up taps)")
                rt.memcpyAsync(cfu2, fu2.data_ptr(), 4 * fu2.numel(), rt.memcpyDeviceToDevice, stream.ptr)
            fn((grid,), (plan.threads,), args, shared_mem=plan.smem_bytes, stream=stream)


def _symbol(dtype: str, plan: TilePlan) -> str:
    return f"flr_{dtype}_" + "_".join(str(v) for v in plan.params)


class CpuTileBackend:
    """The kernel's source built as C++ (g++) and run on CPU tensors, block by block, each
    block's threads as POSIX threads (``fused_tile_source`` explains the harness). ``plans``
    (``(dtype, TilePlan)`` pairs) go into one shared object up front; others get one each."""

    def __init__(self, plans: Iterable[tuple[str, TilePlan]] = ()):
        self._libs: dict[str, ctypes.CDLL] = {}
        self.add(plans)

    def add(self, plans: Iterable[tuple[str, TilePlan]]) -> None:
        """Build the runners of ``plans`` (one g++ run for all of them)."""
        entries = {_symbol(d, p): (d, p.params) for d, p in plans if _symbol(d, p) not in self._libs}
        if entries:
            lib = host_library(host_harness(entries), Path(tempfile.gettempdir()) / "flowml-gan-fused")
            self._libs.update({name: lib for name in entries})

    def run_tile(self, plan: TilePlan, dtype: str, grid: int, tensors: Sequence[torch.Tensor | None],
                 scalars: Sequence[Any], fd: torch.Tensor | None, fd2: torch.Tensor | None = None,
                 fu2: torch.Tensor | None = None) -> None:
        import numpy as np

        name = _symbol(dtype, plan)
        if name not in self._libs:
            self.add([(dtype, plan)])
        fn = getattr(self._libs[name], name)
        fn.restype = ctypes.c_int
        conv = {np.int32: ctypes.c_int, np.float32: ctypes.c_float}
        ptrs = list(tensors[:3]) + [fd, fd2, fu2] + list(tensors[3:])   # fd, fd2, fu2 after fu
        args = [ctypes.c_void_p(t.data_ptr() if t is not None else None) for t in ptrs]
        args += [conv[type(s)](s.item()) for s in scalars]
        rc = fn(*args, ctypes.c_uint(grid), ctypes.c_uint(plan.threads), ctypes.c_int(plan.smem_floats))
        if rc == 1:
            raise AssertionError(f"{name}: TilePlan's shared-memory size {plan.smem_floats} floats "
                                 "is not the kernel's (FlrGeom); fix TilePlan")
        if rc == 2:
            raise AssertionError(f"{name}: the kernel wrote past its shared memory")
