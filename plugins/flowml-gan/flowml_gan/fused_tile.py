"""The filtered leaky ReLU as one kernel a call (``fused_tile_source.py``): plan, launch, CPU run.

``tile_plan(...)`` says whether the one-kernel path covers a call (a separable up-sampling
filter, a separable, square 2-D or no down-sampling filter, float32 or float16, tiles that fit
in shared memory) and with which tile: the output of each image plane is cut into
``ceil(Wo / tile)`` by ``ceil(Ho / tile)`` tiles of equal size (at most ``TILE`` a side, so an
edge tile wastes little), one block each. ``tile_run(backend, ...)`` launches it: on
``CupyTileBackend`` (NVRTC via ``cupy.RawModule`` name expressions, torch's current stream,
torch's tensors, no host synchronisation) or ``CpuTileBackend`` (the same source built with
g++, every block's threads as POSIX threads; the tests). ``fused.filtered_lrelu_fast`` picks it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from flowml.gpu.cuda_c import host_library

from .fused_tile_source import KERNEL_SOURCE, host_harness, kernel_name
from .ops_sg3 import _pad4

__all__ = ["TILE", "THREADS", "TilePlan", "tile_plan", "tile_unsupported", "tile_run",
           "CupyTileBackend", "CpuTileBackend"]

TILE = int(os.environ.get("FLOWML_GAN_TILE", "32"))
"""Largest output tile side (``FLOWML_GAN_TILE``): 32 keeps a StyleGAN3 tile under 48 KB of
shared memory (several blocks an SM); larger tiles waste less halo and take the opt-in."""
THREADS = 256
MAX_SMEM = 227 * 1024          # bytes a block may opt in to (sm_90); 48 KB without opting in
MAX_UP_TAPS, MAX_DOWN_TAPS = 64, 24   # fused_tile_source.MAX_FD_FLOATS holds 24 x 24
_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


@dataclass(frozen=True)
class TilePlan:
    """One instantiation of the kernel: up-sampling by ``up`` with ``ku`` taps, down-sampling
    by ``down`` with ``kd`` taps (``fd``: 0 none, 1 separable, 2 square 2-D), output tiles of
    ``tw x th``, ``ry`` outputs a thread in the down-sampling stage, ``threads`` a block."""

    up: int
    ku: int
    down: int
    kd: int
    fd: int
    tw: int
    th: int
    ry: int
    threads: int = THREADS

    # the geometry, as FlrGeom in the kernel computes it (test_gan_fused checks they agree)
    @property
    def uw(self) -> int:
        return (self.tw - 1) * self.down + self.kd

    @property
    def uh(self) -> int:
        return (self.th - 1) * self.down + self.kd

    @property
    def uhp(self) -> int:
        return ((self.th + self.ry - 1) // self.ry * self.ry - 1) * self.down + self.kd

    @property
    def uws(self) -> int:
        return -(-self.uw // self.down) * self.down

    @property
    def iw(self) -> int:
        return (self.uw + self.ku - 2) // self.up + 1

    @property
    def ih(self) -> int:
        return (self.uh + self.ku - 2) // self.up + 1

    @property
    def smem_floats(self) -> int:
        nfu = (self.ku + 3) // 4 * 4
        sa = max(self.ih * self.iw, self.uhp * self.uws)
        sb = max(self.ih * self.uw, self.uhp * self.tw) if self.fd == 1 else self.ih * self.uw
        return nfu + sa + sb

    @property
    def smem_bytes(self) -> int:
        return 4 * self.smem_floats

    @property
    def params(self) -> tuple[int, ...]:
        return (self.up, self.ku, self.down, self.kd, self.fd, self.tw, self.th, self.ry, self.threads)

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


def _rows_a_thread(tw: int, th: int, down: int, kd: int, threads: int) -> int:
    """Outputs a thread makes in a column in the down-sampling stage (1..4): the fewest tap
    rows read per thread, counting waves of ``threads`` (e.g. a 28-px tile: 4, one wave of
    196 groups, not 3 in two waves), the larger on a tie."""
    def cost(r: int) -> tuple[int, int]:
        waves = -(-(-(-th // r) * tw) // threads)
        return waves * ((r - 1) * down + kd), -r
    return min(range(1, 5), key=cost)


@functools.lru_cache(maxsize=1024)
def _plan(shape: tuple[int, ...], dtype: torch.dtype, ku: int | None, fd_shape: tuple[int, ...] | None,
          up: int, down: int, padding: tuple[int, int, int, int], tile: int, threads: int
          ) -> TilePlan | str:
    """The plan for a call, or why there is none (cached: a call costs a dict look-up)."""
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
    tw, th = _side(wo, tile), _side(ho, tile)
    ry = _rows_a_thread(tw, th, down, kd, threads)
    plan = TilePlan(up, ku, down, kd, 0 if fd_shape is None else len(fd_shape), tw, th, ry, threads)
    if plan.smem_bytes > MAX_SMEM:
        return f"a {tw} x {th} tile needs {plan.smem_bytes} B of shared memory (> {MAX_SMEM})"
    return plan


def _plan_for(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
              padding: int | Sequence[int], tile: int | None, threads: int) -> TilePlan | str:
    return _plan(tuple(x.shape), x.dtype, fu.shape[0] if fu is not None and fu.ndim == 1 else None,
                 tuple(fd.shape) if fd is not None else None, int(up), int(down), _pad4(padding),
                 int(tile or TILE), int(threads))


def tile_unsupported(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None,
                     up: int, down: int, padding: int | Sequence[int], tile: int | None = None,
                     threads: int = THREADS) -> str | None:
    """Why the one-kernel path does not take this call (None: it does)."""
    plan = _plan_for(x, fu, fd, up, down, padding, tile, threads)
    return plan if isinstance(plan, str) else None


def tile_plan(x: torch.Tensor, fu: torch.Tensor, fd: torch.Tensor | None, up: int, down: int,
              padding: int | Sequence[int], tile: int | None = None, threads: int = THREADS
              ) -> TilePlan:
    """The plan for ``filtered_lrelu(x, fu, fd, ...)``: tiles of at most ``tile`` (default
    ``TILE``) a side, ``threads`` a block. Raises ValueError where ``tile_unsupported`` says
    why not. x ``(B, C, H, W)``."""
    plan = _plan_for(x, fu, fd, up, down, padding, tile, threads)
    if isinstance(plan, str):
        raise ValueError(f"filtered_lrelu: the one-kernel path does not take {plan}; "
                         "use fused.filtered_lrelu_fast, which falls back")
    return plan


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
    backend.run_tile(plan, _DTYPES[x.dtype], n * c * tiles, [x, y, fu, bias], scalars, fd)
    return y


class CupyTileBackend:
    """The kernel on the GPU: one ``cupy.RawModule`` per instantiation, device and stream
    (NVRTC, name expression; a module's constant-memory filter is then never shared by two
    streams), launched on torch's current stream with CuPy's handle on it, the down-sampling
    filter copied into the module's ``flr_cfd`` on that stream first (device to device, so a
    captured graph copies the filter tensor's values at each replay)."""

    def __init__(self, stream_of: Any):
        self._stream_of = stream_of      # torch device -> CuPy stream (fused.CupyBackend's)
        self._modules: dict[tuple[str, int, int], tuple[Any, int]] = {}

    def _function(self, name: str, smem_bytes: int, device: int, stream: int) -> tuple[Any, int]:
        key = (name, device, stream)
        got = self._modules.get(key)
        if got is None:
            got = self._modules[key] = self._load(name, smem_bytes)
        return got

    @staticmethod
    def _load(name: str, smem_bytes: int) -> tuple[Any, int]:
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
        return fn, int(mod.get_global("flr_cfd").ptr)

    def run_tile(self, plan: TilePlan, dtype: str, grid: int, tensors: Sequence[torch.Tensor | None],
                 scalars: Sequence[Any], fd: torch.Tensor | None) -> None:
        import cupy
        import numpy as np

        dev = tensors[0].device
        stream = self._stream_of(dev)
        args = tuple(np.uint64(t.data_ptr() if t is not None else 0) for t in tensors) + tuple(scalars)
        with cupy.cuda.Device(dev.index):
            fn, cfd = self._function(plan.name(dtype), plan.smem_bytes, dev.index, stream.ptr)
            if fd is not None:
                rt = cupy.cuda.runtime
                rt.memcpyAsync(cfd, fd.data_ptr(), 4 * fd.numel(), rt.memcpyDeviceToDevice, stream.ptr)
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
                 scalars: Sequence[Any], fd: torch.Tensor | None) -> None:
        import numpy as np

        name = _symbol(dtype, plan)
        if name not in self._libs:
            self.add([(dtype, plan)])
        fn = getattr(self._libs[name], name)
        fn.restype = ctypes.c_int
        conv = {np.int32: ctypes.c_int, np.float32: ctypes.c_float}
        ptrs = list(tensors[:3]) + [fd] + list(tensors[3:])   # the runner takes fd after fu
        args = [ctypes.c_void_p(t.data_ptr() if t is not None else None) for t in ptrs]
        args += [conv[type(s)](s.item()) for s in scalars]
        rc = fn(*args, ctypes.c_uint(grid), ctypes.c_uint(plan.threads), ctypes.c_int(plan.smem_floats))
        if rc == 1:
            raise AssertionError(f"{name}: TilePlan's shared-memory size {plan.smem_floats} floats "
                                 "is not the kernel's (FlrGeom); fix TilePlan")
        if rc == 2:
            raise AssertionError(f"{name}: the kernel wrote past its shared memory")
