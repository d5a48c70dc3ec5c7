"""The CUDA path of WeightedFilter: CuPy RawKernels on torch's current stream.

CuPy is imported here, lazily, on the first CUDA call (and by ``checks``, to say why it cannot
run): a machine without it runs the reference. Each launch:

- runs on ``torch.cuda.current_stream()`` through ``cupy.cuda.ExternalStream`` (its successor
  ``Stream.from_external`` on CuPy >= 14), so it orders
  with the torch work around it, runs on a side stream when the caller is on one and is
  recorded when that stream is being captured into a CUDA graph;
- passes the tensors as raw device pointers (``numpy.uint64``; torch owns the memory and
  the stream orders its reuse), falling back to DLPack (``cupy.from_dlpack``; 16-bit tensors as
  int16 views, since CuPy has no bfloat16) where CuPy refuses them;
- allocates its outputs with torch (the caching allocator; capture-safe);
- never synchronises the host.

Kernels are compiled by NVRTC on first use per (kind, dtype, N, channel block, mode) and kept
(CuPy also caches them on disk). Which kernel runs a gather forward is ``plans.select``'s
choice (``plans.FORWARD_TABLE``); splat (and the input gradient) runs ``wf_filter``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .checks import cuda_problem
from .cuda_source import wgrad_source
from .forward_sources import forward_source
from .plans import PLANS, THREADS, ForwardPlan, channel_block, rows_per_thread, select

__all__ = ["THREADS", "channel_block", "rows_per_thread", "filter_cuda", "wgrad_cuda", "available"]
_DTYPES = {torch.float64: "float64", torch.float32: "float32", torch.float16: "float16",
           torch.bfloat16: "bfloat16"}


@functools.cache
def unavailable() -> str | None:
    """Why the CuPy path cannot run here (no CuPy, no GPU: ``checks.cuda_problem``; torch
    without CUDA), or None when it can."""
    why = cuda_problem()
    if why is not None:
        return why
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    return None


def available() -> bool:
    """True when CUDA tensors can go through the CuPy kernels."""
    return unavailable() is None


FORCE_PLAN: str | None = None
"""A ``plans.PLANS`` name every gather forward runs instead of ``plans.select``'s (benchmarks)."""


@functools.cache
def _forward_kernel(plan: ForwardPlan, dtype: str, n: int, cb: int, splat: bool) -> Any:
    import cupy

    return cupy.RawKernel(*forward_source(plan, dtype, n, cb, splat))


@functools.cache
def _wgrad_kernel(dtype: str, n: int) -> Any:
    import cupy

    return cupy.RawKernel(wgrad_source(dtype, n), "wf_wgrad")


def plan_kernel(plan: ForwardPlan, dtype: str, n: int, c: int, splat: bool = False) -> Any:
    """The compiled kernel of ``plan`` for storage ``dtype``, N and C channels (cached);
    ``splat`` for ``rows`` only (the other kernels gather)."""
    return _forward_kernel(plan, dtype, n, plan.channels(c), bool(splat and plan.kernel == "rows"))


def _cp(t: torch.Tensor) -> Any:
    """``t`` as a CuPy array sharing its memory. Detached first: inside the op (below
    autograd) an input may still say ``requires_grad``, which ``__dlpack__`` refuses."""
    import cupy

    t = t.detach()
    return cupy.from_dlpack(t.view(torch.int16) if t.element_size() == 2 else t)


def _check(x: torch.Tensor, what: str) -> str:
    if x.shape[0] > 65535:
        raise ValueError(f"the CUDA kernels launch one grid layer per image: batch "
                         f"{x.shape[0]} > 65535; split the batch")
    if x.dtype not in _DTYPES:
        raise TypeError(f"weighted_filter on CUDA takes float64, float32, float16 or bfloat16, "
                        f"not {x.dtype} ({what}); cast it first")
    return _DTYPES[x.dtype]


_streams: dict[tuple[int, int], Any] = {}


def cupy_stream(stream: torch.cuda.Stream) -> Any:
    """A CuPy handle on a torch stream: ``cupy.cuda.Stream.from_external`` (CuPy >= 14, the
    CUDA stream protocol) or ``cupy.cuda.ExternalStream`` (older CuPy; deprecated in 14).
    Kept per stream, so a launch makes no new object."""
    import cupy

    key = (stream.cuda_stream, stream.device.index)
    handle = _streams.get(key)
    if handle is None:
        if len(_streams) > 256:
            _streams.clear()
        Stream = cupy.cuda.Stream
        handle = (Stream.from_external(stream) if hasattr(Stream, "from_external")
                  and hasattr(stream, "__cuda_stream__")
                  else cupy.cuda.ExternalStream(stream.cuda_stream, stream.device.index))
        _streams[key] = handle
    return handle


RAW_POINTERS = True
"""Kernel arguments as raw device pointers (``numpy.uint64``): no DLPack hand-off per tensor,
a few microseconds a launch instead of tens. False: CuPy arrays by DLPack (set automatically
when this CuPy refuses the pointers)."""


def _launch(kernel: Any, grid: tuple[int, int, int], tensors: list[torch.Tensor],
            c: int, h: int, w: int, block: int = THREADS) -> None:
    """``kernel`` on torch's current stream of the tensors' device; ``tensors`` contiguous."""
    global RAW_POINTERS
    import cupy
    import numpy as np

    dev = tensors[0].device
    handle = cupy_stream(torch.cuda.current_stream(dev))
    sizes = (np.int32(c), np.int32(h), np.int32(w))
    switch = cupy.cuda.runtime.getDevice() != dev.index
    with cupy.cuda.Device(dev.index) if switch else _NO_CONTEXT:
        if RAW_POINTERS:
            try:
                kernel(grid, (block,), tuple(np.uint64(t.data_ptr()) for t in tensors) + sizes,
                       stream=handle)
                return
            except TypeError:
                RAW_POINTERS = False
        with handle:
            kernel(grid, (block,), tuple(_cp(t) for t in tensors) + sizes)


class _NoContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_CONTEXT = _NoContext()


def forward_plan(x: torch.Tensor, w: torch.Tensor, kernel_size: int, splat: bool,
                 out: torch.Tensor | None = None) -> ForwardPlan:
    """The plan ``filter_cuda`` runs for these tensors: splat and misaligned tensors take
    ``rows`` (``wf_filter``); a gather the plan of ``plans.select`` (or ``FORCE_PLAN``)."""
    if splat:
        return PLANS["rows"]
    aligned = all(t.data_ptr() % 16 == 0 for t in (x, w) + ((out,) if out is not None else ()))
    plan = select(_DTYPES[x.dtype], x.shape[1], kernel_size, FORCE_PLAN)
    return plan if aligned or plan.kernel == "rows" else PLANS["rows"]


def filter_cuda(x: torch.Tensor, w: torch.Tensor, kernel_size: int, splat: bool,
                plan: ForwardPlan | None = None) -> torch.Tensor:
    """Gather or splat filter on the GPU: ``(B, C, H, W)``, ``(B, N*N, H, W)`` -> ``(B, C, H, W)``.
    ``plan``: a ``plans.PLANS`` entry instead of the selected one (gather only; benchmarks)."""
    dtype = _check(x, "x")
    x, w = x.contiguous(), w.contiguous()
    b, c, h, wd = x.shape
    out = torch.empty_like(x)
    if out.numel() == 0:
        return out
    if plan is None or splat:
        plan = forward_plan(x, w, kernel_size, splat, out)
    why = plan.unsupported(dtype, kernel_size, c)
    if why:
        raise ValueError(f"weighted_filter plan {plan.name!r}: {why}")
    _launch(plan_kernel(plan, dtype, kernel_size, c, splat), plan.grid(b, c, h, wd, kernel_size),
            [x, w, out], c, h, wd, plan.threads())
    return out


def wgrad_cuda(a: torch.Tensor, bsrc: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``out[k, p] = sum_c a[c, p] * bsrc[c, p + d_k]`` on the GPU -> ``(B, N*N, H, W)``."""
    dtype = _check(a, "a")
    a, bsrc = a.contiguous(), bsrc.contiguous()
    b, c, h, wd = a.shape
    out = torch.empty((b, kernel_size * kernel_size, h, wd), dtype=a.dtype, device=a.device)
    if out.numel() == 0:
        return out
    grid = ((h * wd + THREADS - 1) // THREADS, kernel_size, b)
    _launch(_wgrad_kernel(dtype, kernel_size), grid, [a, bsrc, out], c, h, wd)
    return out
