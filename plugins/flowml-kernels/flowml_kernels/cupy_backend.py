"""The CUDA path of WeightedFilter: CuPy RawKernels on torch's current stream.

CuPy is imported here only, lazily, on the first CUDA call: nothing else in flowml-kernels needs
it, and a machine without it runs the reference. Each launch:

- runs on ``torch.cuda.current_stream()`` through ``cupy.cuda.ExternalStream`` (its successor
  ``Stream.from_external`` on CuPy >= 14), so it orders
  with the torch work around it, runs on a side stream when the caller is on one and is
  recorded when that stream is being captured into a CUDA graph;
- hands tensors over by DLPack (``cupy.from_dlpack`` under that stream, so torch inserts no
  wait); 16-bit tensors travel as int16 views, since CuPy has no bfloat16;
- allocates its outputs with torch (the caching allocator; capture-safe);
- never synchronises the host.

Kernels are compiled by NVRTC on first use per (kind, dtype, N, channel block, mode) and kept
(CuPy also caches them on disk).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .cuda_source import filter_source, gather4_source, wgrad_source

THREADS = 256
_DTYPES = {torch.float64: "float64", torch.float32: "float32", torch.float16: "float16",
           torch.bfloat16: "bfloat16"}


@functools.cache
def unavailable() -> str | None:
    """Why the CuPy path cannot run here (no CuPy, no GPU), or None when it can."""
    try:
        import cupy
    except Exception as e:  # not installed, or a wheel for another CUDA: say which
        return (f"CuPy is not importable ({type(e).__name__}: {e}); "
                "install it with: pip install 'flowml-kernels[cuda]'")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy found no CUDA GPU"
    except Exception as e:
        return f"CuPy cannot use the GPU ({type(e).__name__}: {e})"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    return None


def available() -> bool:
    """True when CUDA tensors can go through the CuPy kernels."""
    return unavailable() is None


ROWS: int | None = None
"""Pixel rows per thread of ``wf_filter``; None: ``rows_per_thread(N)``. For benchmarks."""


def rows_per_thread(n: int) -> int:
    """Rows of pixels one ``wf_filter`` thread computes: 4 up to N = 9, 2 above (the
    unrolled body grows with N * (N + rows - 1) * channel block)."""
    return 4 if n <= 9 else 2


GATHER4 = True
"""The gather filter (the forward) runs ``wf_gather4`` (four pixels a thread along x, vector
loads of the weights) where its tensors are aligned; False: ``wf_filter`` (for benchmarks)."""


GATHER4_CB: int | None = None
"""At most this many channels a ``wf_gather4`` thread (None: 8). For benchmarks."""


@functools.cache
def _kernel(kind: str, dtype: str, n: int, cb: int, splat: bool, rows: int = 1) -> Any:
    import cupy

    if kind == "filter":
        return cupy.RawKernel(filter_source(dtype, n, cb, splat, rows), "wf_filter")
    if kind == "gather4":
        return cupy.RawKernel(gather4_source(dtype, n, cb), "wf_gather4")
    return cupy.RawKernel(wgrad_source(dtype, n), "wf_wgrad")


def channel_block(c: int) -> int:
    """Channels per thread in ``wf_filter``: a power of two, at most 16."""
    cb = 1
    while cb < min(c, 16):
        cb *= 2
    return cb


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


def _launch(kernel: Any, grid: tuple[int, int, int], tensors: list[torch.Tensor],
            c: int, h: int, w: int) -> None:
    import cupy
    import numpy as np

    dev = tensors[0].device
    stream = torch.cuda.current_stream(dev)
    with cupy.cuda.Device(dev.index), cupy_stream(stream):
        args = tuple(_cp(t) for t in tensors) + (np.int32(c), np.int32(h), np.int32(w))
        kernel(grid, (THREADS,), args)


def filter_cuda(x: torch.Tensor, w: torch.Tensor, kernel_size: int, splat: bool) -> torch.Tensor:
    """Gather or splat filter on the GPU: ``(B, C, H, W)``, ``(B, N*N, H, W)`` -> ``(B, C, H, W)``."""
    dtype = _check(x, "x")
    x, w = x.contiguous(), w.contiguous()
    b, c, h, wd = x.shape
    out = torch.empty_like(x)
    if out.numel() == 0:
        return out
    cb = channel_block(c)
    if not splat and GATHER4 and all(t.data_ptr() % 16 == 0 for t in (x, w, out)):
        cb = min(cb, GATHER4_CB or 8)  # 8: faster than 16 at C = 32 on the H200 (0.61 vs 0.70 ms)
        quads = h * ((wd + 3) // 4)
        grid = ((quads + THREADS - 1) // THREADS, (c + cb - 1) // cb, b)
        _launch(_kernel("gather4", dtype, kernel_size, cb, False), grid, [x, w, out], c, h, wd)
        return out
    rows = ROWS or rows_per_thread(kernel_size)
    threads = (h + rows - 1) // rows * wd
    grid = ((threads + THREADS - 1) // THREADS, (c + cb - 1) // cb, b)
    _launch(_kernel("filter", dtype, kernel_size, cb, bool(splat), rows), grid, [x, w, out],
            c, h, wd)
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
    _launch(_kernel("wgrad", dtype, kernel_size, 1, False), grid, [a, bsrc, out], c, h, wd)
    return out
