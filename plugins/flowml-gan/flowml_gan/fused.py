"""The filtered leaky ReLU as CuPy kernels on CUDA tensors, with the plain-PyTorch
``ops_sg3.filtered_lrelu`` as reference and fallback.

``filtered_lrelu_fast(...)`` takes ``ops_sg3.filtered_lrelu``'s arguments. On a CUDA tensor
(float32 or float16) with a separable up-sampling filter and CuPy importable it runs, by
``FLOWML_GAN_FUSED`` (read at each call, so a benchmark can switch paths in one process):

- ``tile`` (default, also ``1``): one kernel a call (``fused_tile.py``): each block up-samples,
  activates and down-samples one output tile in shared memory, writing only the output; where
  it does not apply (``fused_tile.tile_unsupported``) the three passes below;
- ``3pass``: three kernels (``fused_source.py``: bias + x up-sampling; y up-sampling + gain,
  leaky ReLU, clamp; the down-sampling filter, 2-D or two 1-D passes, strided), each one pass
  over its output, the up-sampled intermediates in global memory;
- ``0``: the PyTorch op.

All on torch's current stream, tensors from torch's allocator, no host synchronisation:
capturable as a CUDA graph. Anything else goes to the PyTorch op; ``last_path()`` says which
path the last call took.

The same plans run on the CPU (``backend=CpuBackend()`` / ``fused_tile.CpuTileBackend()``: the
kernels' source compiled with g++) so a test checks the kernels' index arithmetic against the
PyTorch op without a GPU.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from flowml.gpu.cuda_c import host_library

from .fused_source import fir1d_source, fir2d_source
from .fused_tile import CupyTileBackend, tile_run, tile_unsupported
from .ops_sg3 import _pad4, filtered_lrelu

__all__ = ["filtered_lrelu_fast", "fused_unavailable", "tile_unavailable", "fused_mode", "last_path", "CupyBackend",
           "CpuBackend", "plan_run"]
MODES = {"1": "tile", "tile": "tile", "3pass": "3pass", "0": "torch"}
_DTYPES = {torch.float32: "float32", torch.float16: "float16"}
THREADS = 256


_broken: str | None = None  # why the kernels failed on this machine (then: the PyTorch op)
_tile_broken: str | None = None  # why the one-kernel path failed (then: the three passes)
_last = "torch"


def fused_mode() -> str:
    """``tile``, ``3pass`` or ``torch``, from ``FLOWML_GAN_FUSED`` (module docstring)."""
    v = os.environ.get("FLOWML_GAN_FUSED", "1")
    if v not in MODES:
        raise ValueError(f"FLOWML_GAN_FUSED={v!r}: use tile (or 1), 3pass or 0")
    return MODES[v]


def last_path() -> str:
    """The path the last ``filtered_lrelu_fast`` call took: ``tile``, ``3pass`` or ``torch``."""
    return _last


def fused_unavailable() -> str | None:
    """Why the CuPy kernels cannot run (None when they can)."""
    if fused_mode() == "torch":
        return "FLOWML_GAN_FUSED=0"
    return _broken or _unavailable()


def tile_unavailable() -> str | None:
    """Why the one-kernel path cannot run (None when it can, for calls it covers)."""
    if fused_mode() != "tile":
        return f"FLOWML_GAN_FUSED={os.environ.get('FLOWML_GAN_FUSED')}"
    return _tile_broken or fused_unavailable()


@functools.cache
def _unavailable() -> str | None:
    try:
        import cupy
    except Exception as e:
        return f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy found no CUDA GPU"
    except Exception as e:
        return f"CuPy cannot use the GPU ({type(e).__name__}: {e})"
    return None


class CupyBackend:
    """Launches the kernels with CuPy on torch's current stream."""

    def __init__(self) -> None:
        self._streams: dict[tuple[int, int], Any] = {}

    @staticmethod
    @functools.cache
    def _kernel(source: str, name: str) -> Any:
        import cupy

        return cupy.RawKernel(source, name, options=("--std=c++14",))

    def _stream(self, dev: torch.device) -> Any:
        import cupy

        s = torch.cuda.current_stream(dev)
        key = (s.cuda_stream, dev.index)
        h = self._streams.get(key)
        if h is None:  # Stream.from_external on CuPy >= 14 (ExternalStream is deprecated there)
            st = cupy.cuda.Stream
            h = (st.from_external(s) if hasattr(st, "from_external") and hasattr(s, "__cuda_stream__")
                 else cupy.cuda.ExternalStream(s.cuda_stream, dev.index))
            self._streams[key] = h
        return h

    def launch(self, source: str, name: str, total: int, tensors: Sequence[torch.Tensor],
               scalars: Sequence[Any]) -> None:
        import cupy
        import numpy as np

        dev = tensors[0].device
        k = self._kernel(source, name)
        args = tuple(np.uint64(t.data_ptr()) for t in tensors) + tuple(scalars)
        with cupy.cuda.Device(dev.index):
            k(((total + THREADS - 1) // THREADS,), (THREADS,), args, stream=self._stream(dev))


class CpuBackend:
    """The same kernels compiled as C++ (g++), run on CPU tensors (tests)."""

    @staticmethod
    @functools.cache
    def _lib(source: str) -> ctypes.CDLL:
        return host_library(source, Path(tempfile.gettempdir()) / "flowml-gan-fused")

    def launch(self, source: str, name: str, total: int, tensors: Sequence[torch.Tensor],
               scalars: Sequence[Any]) -> None:
        import numpy as np

        fn = getattr(self._lib(source), name)
        conv = {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float}
        args = [ctypes.c_void_p(t.data_ptr()) for t in tensors] + [conv[type(s)](s.item()) for s in scalars]
        fn(*args)


_CUPY = CupyBackend()
_CUPY_TILE = CupyTileBackend(lambda dev: _CUPY._stream(dev))


def _fir1d(backend: Any, x: torch.Tensor, f: torch.Tensor, axis: int, up: int, down: int, p0: int,
           out_len: int, bias: torch.Tensor | None = None, epi: tuple[float, float, float] | None = None
           ) -> torch.Tensor:
    import numpy as np

    b, c, h, w = x.shape
    ho, wo = (h, out_len) if axis == 0 else (out_len, w)
    y = torch.empty((b, c, ho, wo), dtype=x.dtype, device=x.device)
    gain, slope, clamp = epi if epi is not None else (1.0, 1.0, -1.0)
    src = fir1d_source(_DTYPES[x.dtype], axis, f.numel(), up, down, bias is not None, epi is not None)
    total = y.numel()
    bias_t = bias if bias is not None else f  # any pointer: not read
    backend.launch(src, "flr_fir1d", total, [x, y, f, bias_t],
                   [np.int64(total), np.int32(c), np.int32(h), np.int32(w), np.int32(ho), np.int32(wo),
                    np.int32(p0), np.float32(gain), np.float32(slope), np.float32(clamp)])
    return y


def _fir2d(backend: Any, x: torch.Tensor, f: torch.Tensor, down: int) -> torch.Tensor:
    import numpy as np

    b, c, h, w = x.shape
    kh, kw = f.shape
    ho, wo = (h - kh + down) // down, (w - kw + down) // down
    y = torch.empty((b, c, ho, wo), dtype=x.dtype, device=x.device)
    total = y.numel()
    backend.launch(fir2d_source(_DTYPES[x.dtype], kh, kw, down), "flr_fir2d_down", total,
                   [x, y, f.contiguous()], [np.int64(total), np.int32(h), np.int32(w), np.int32(ho), np.int32(wo)])
    return y


def plan_run(backend: Any, x: torch.Tensor, fu: torch.Tensor, fd: torch.Tensor | None,
             b: torch.Tensor | None, up: int, down: int, padding: Sequence[int], gain: float,
             slope: float, clamp: float | None) -> torch.Tensor:
    """The kernels' plan for ``filtered_lrelu`` (``fu`` separable ``(taps,)``), on ``backend``.
    x ``(B, C, H, W)`` contiguous, float32 or float16."""
    px0, px1, py0, py1 = _pad4(padding)
    x = x.contiguous()
    _, _, h, w = x.shape
    k = fu.shape[0]
    fup = (fu.flip(0) * up).float().contiguous()  # the up-sampling gain up**2, split per axis
    bias = b.float().contiguous() if b is not None else None
    w1 = w * up + px0 + px1 - k + 1
    h1 = h * up + py0 + py1 - k + 1
    cl = float(clamp) if clamp is not None and clamp >= 0 else -1.0
    t = _fir1d(backend, x, fup, 0, up, 1, px0, w1, bias=bias)
    t = _fir1d(backend, t, fup, 1, up, 1, py0, h1, epi=(float(gain), float(slope), cl))
    if fd is None:
        return t[:, :, ::down, ::down] if down > 1 else t
    fdn = fd.flip(list(range(fd.ndim))).float().contiguous()  # a convolution: correlate flipped
    if fd.ndim == 2:
        return _fir2d(backend, t, fdn, down)
    kd = fd.shape[0]
    t = _fir1d(backend, t, fdn, 0, 1, down, 0, (w1 - kd + down) // down)
    return _fir1d(backend, t, fdn, 1, 1, down, 0, (h1 - kd + down) // down)


def filtered_lrelu_fast(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                        b: torch.Tensor | None = None, up: int = 1, down: int = 1,
                        padding: int | Sequence[int] = 0, gain: float = math.sqrt(2),
                        slope: float = 0.2, clamp: float | None = None) -> torch.Tensor:
    """``ops_sg3.filtered_lrelu`` (same arguments, shapes and dtype); CuPy kernels where they
    apply (see the module docstring), the PyTorch op otherwise."""
    global _broken, _tile_broken, _last
    if (x.is_cuda and x.dtype in _DTYPES and fu is not None and fu.ndim == 1
            and (fd is None or fd.ndim in (1, 2)) and fused_unavailable() is None):
        if tile_unavailable() is None and tile_unsupported(x, fu, fd, up, down, padding) is None:
            try:
                y = tile_run(_CUPY_TILE, x, fu, fd, b, up, down, padding, gain, slope, clamp)
                _last = "tile"
                return y
            except Exception as exc:  # e.g. NVRTC refused the source: say so once, three passes
                if torch.cuda.is_current_stream_capturing():
                    raise
                _tile_broken = f"the one-kernel path failed ({type(exc).__name__}: {str(exc)[:300]})"
                logging.getLogger("flowml.gan").warning("filtered_lrelu: %s; using three passes",
                                                        _tile_broken)
        try:
            y = plan_run(_CUPY, x, fu, fd, b, up, down, padding, gain, slope, clamp)
            _last = "3pass"
            return y
        except Exception as exc:  # e.g. NVRTC refused the source: say so once, run the op
            if torch.cuda.is_current_stream_capturing():
                raise
            _broken = f"the CuPy kernels failed ({type(exc).__name__}: {str(exc)[:300]})"
            logging.getLogger("flowml.gan").warning("filtered_lrelu: %s; using the PyTorch op", _broken)
    _last = "torch"
    return filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp)
