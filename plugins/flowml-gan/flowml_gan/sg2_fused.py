"""StyleGAN2's synthesis layers with fused kernels (``sg2_fused_source.py``), for inference.

The reference layers (``stylegan2.py`` with ``ops.py``, NVIDIA's reference ops op for op) spend
most of a 1024 px frame outside the convolutions: per layer about 15 small kernels build the
modulated weight, and the image-sized activations go through memory seven times after the
convolution (pad, FIR, add noise, add bias, leaky ReLU, gain, clamp). Here a layer is

    styles = affine(w)                     (PyTorch, as the reference)
    weight = sg2_modulate(weight, styles)  (1 kernel: modulate, demodulate, the conv's layout)
    t = conv2d | conv_transpose2d          (cuDNN, as the reference)
    y = sg2_fir_epi(t)                     (1 kernel: FIR, noise, bias, activation, gain, clamp)

and a block's skip image is ``sg2_fir_epi`` too (up-sampling FIR plus the toRGB output, one
pass instead of eight kernels). The epilogue equals the reference bit for bit; the FIR and the
demodulation sum in their own order (equal to rounding, about 1e-7 relative in float32).

The kernels run on torch's current stream with torch's allocator and no host synchronisation
(capturable; live edits of the weights are read at every call, nothing is cached). The two
cuDNN convolutions run with cuDNN held to deterministic algorithms (``deterministic_convs``):
the up-sampling layers are transposed convolutions (cuDNN's backward data), whose fastest
algorithms may sum split-K partials with atomics, so the same weights gave an image that
differed in the last bits from call to call, and from one replay of a captured graph to the
next; an edit taken out could not restore the first frame bit for bit (issue 14).
``FLOWML_GAN_SG2_DETERMINISTIC=0`` lets cuDNN pick any algorithm again. They are
used for CUDA tensors (float32, float16, NCHW contiguous) when no gradient is needed and CuPy
works; else the reference runs. ``FLOWML_GAN_SG2_FUSED=0`` (or ``FLOWML_GAN_FUSED=0``, which
turns off every CuPy kernel) or ``set_fused(False)`` selects the reference; ``forced(backend)``
runs the kernels on any tensor with that backend (tests: ``fused.CpuBackend``, the same source
compiled with g++).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import fused
from .fused import CupyBackend, fused_unavailable
from .ops import up_conv_padding, upsample_padding
from .sg2_fused_source import THREADS, fir_epi_source, modulate_source

__all__ = ["ENV", "DETERMINISTIC_ENV", "deterministic_convs", "LeanCupyBackend", "set_fused",
           "sg2_fused_unavailable", "forced", "backend_for", "attempt", "modulate", "fir_epilogue",
           "synthesis_layer", "torgb_layer", "upsample_add"]

ENV = "FLOWML_GAN_SG2_FUSED"
DETERMINISTIC_ENV = "FLOWML_GAN_SG2_DETERMINISTIC"
if fused.THREADS != THREADS:  # sg2_modulate reduces over one block of the launcher's threads
    raise ImportError(f"sg2_fused: the CuPy launcher runs {fused.THREADS} threads a block, "
                      f"sg2_fused_source expects {THREADS}: make them agree")
_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


class LeanCupyBackend(CupyBackend):
    """``fused.CupyBackend`` with less host work a launch (an eager 1024 px frame is ~60 of
    them and host-bound): on a one-GPU machine no CuPy device context around each launch (its
    enter and exit are two more CUDA runtime calls, each letting go of the GIL), and the
    current stream found by its raw handle instead of a ``torch.cuda.Stream`` made per call.
    With several GPUs, ``CupyBackend.launch`` as it is."""

    def __init__(self) -> None:
        super().__init__()
        self._by_handle: dict[int, Any] = {}
        self._one_gpu: bool | None = None

    def launch(self, source: str, name: str, total: int, tensors: Sequence[torch.Tensor],
               scalars: Sequence[Any]) -> None:
        if self._one_gpu is None:
            import cupy

            self._one_gpu = cupy.cuda.runtime.getDeviceCount() == 1
        if not self._one_gpu:
            return super().launch(source, name, total, tensors, scalars)
        dev = tensors[0].device
        handle = torch._C._cuda_getCurrentRawStream(dev.index)
        stream = self._by_handle.get(handle)
        if stream is None:
            stream = self._by_handle[handle] = self._stream(dev)
        args = tuple(np.uint64(t.data_ptr()) for t in tensors) + tuple(scalars)
        self._kernel(source, name)(((total + THREADS - 1) // THREADS,), (THREADS,), args, stream=stream)


_CUPY = LeanCupyBackend()
_switch: bool | None = None  # set_fused
_forced: Any = None  # forced(backend)
_broken: str | None = None  # why the kernels failed on this machine
_cudnn_flag = threading.Lock()  # one save/set/restore of cuDNN's global flag at a time


def set_fused(on: bool | None) -> None:
    """Use the kernels where they apply (True), never (False), or as ``FLOWML_GAN_SG2_FUSED``
    says (None, the default; unset means on)."""
    global _switch
    _switch = on


def sg2_fused_unavailable() -> str | None:
    """Why the kernels do not run on CUDA tensors now (None when they do)."""
    if _switch is False:
        return "turned off (sg2_fused.set_fused(False))"
    if _switch is None and os.environ.get(ENV, "1") == "0":
        return f"{ENV}=0"
    return _broken or fused_unavailable()


@contextlib.contextmanager
def forced(backend: Any) -> Iterator[None]:
    """Within: the kernels run on ``backend`` for every tensor they apply to, CPU ones
    included, and their errors propagate (tests)."""
    global _forced
    saved, _forced = _forced, backend
    try:
        yield
    finally:
        _forced = saved


def backend_for(x: torch.Tensor, *others: torch.Tensor) -> Any:
    """The backend to run a layer on ``x`` with (None: the reference). ``others``: the
    tensors a gradient could flow to."""
    if x.dtype not in _DTYPES or not x.is_contiguous():
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *others)):
        return None
    if _forced is not None:
        return _forced
    if not x.is_cuda or sg2_fused_unavailable() is not None:
        return None
    return _CUPY


def attempt(backend: Any, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor | None:
    """``fn(backend, *args)``; None when the CuPy kernels fail outside a CUDA graph capture
    (then they are off for this process, said once, and the caller runs the reference)."""
    try:
        return fn(backend, *args)
    except Exception as exc:
        if backend is not _CUPY or torch.cuda.is_current_stream_capturing():
            raise
        global _broken
        _broken = f"the CuPy kernels failed ({type(exc).__name__}: {str(exc)[:300]})"
        logging.getLogger("flowml.gan").warning("StyleGAN2 fused layers: %s; using the reference", _broken)
        return None


def deterministic_convs() -> bool:
    """Whether the layers' convolutions hold cuDNN to deterministic algorithms (the default;
    ``FLOWML_GAN_SG2_DETERMINISTIC=0``: off, read at each call)."""
    return os.environ.get(DETERMINISTIC_ENV, "1") != "0"


def _conv(fn: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor, **kw: Any) -> torch.Tensor:
    """``fn(x, w, **kw)`` (``F.conv2d`` / ``F.conv_transpose2d``) with
    ``torch.backends.cudnn.deterministic`` on for this call only (when it is not on already),
    so that the same inputs give the same bits on every call and every graph replay. The flag
    is global: set and restored under a lock, around the launch only (microseconds)."""
    if not deterministic_convs() or torch._C._get_cudnn_deterministic():
        return fn(x, w, **kw)
    with _cudnn_flag:
        torch._C._set_cudnn_deterministic(True)
        try:
            return fn(x, w, **kw)
        finally:
            torch._C._set_cudnn_deterministic(False)


_modulate_src = functools.lru_cache(maxsize=256)(modulate_source)  # the same str each call
_fir_epi_src = functools.lru_cache(maxsize=256)(fir_epi_source)


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float32 and t.is_contiguous() else t.float().contiguous()


def modulate(backend: Any, weight: torch.Tensor, styles: torch.Tensor, dtype: torch.dtype,
             demodulate: bool = True, transpose: bool = False, flip: bool = False,
             style_gain: float | None = None) -> torch.Tensor:
    """Per-sample modulated weights: weight ``(O, I, kh, kw)``, styles ``(B, I)`` (times
    ``style_gain``) -> ``(B*O, I, kh, kw)`` (``(B*I, O, kh, kw)`` with ``transpose``, a
    transposed convolution's layout), demodulated per (sample, output channel), flipped
    spatially with ``flip``, in ``dtype``."""
    o, i, kh, kw = weight.shape
    b = styles.shape[0]
    if styles.shape != (b, i):
        raise ValueError(f"modulate: styles must be (B, {i}), got {tuple(styles.shape)}")
    shape = (b * i, o, kh, kw) if transpose else (b * o, i, kh, kw)
    out = torch.empty(shape, dtype=dtype, device=weight.device)
    src = _modulate_src(_DTYPES[dtype], o, i, kh * kw, demodulate, transpose, flip, style_gain is not None)
    total = b * o * THREADS
    backend.launch(src, "sg2_modulate", total, [_f32(weight), _f32(styles), out],
                   [np.int64(total), np.float32(style_gain if style_gain is not None else 1.0)])
    return out


def fir_epilogue(backend: Any, x: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                 padding: Sequence[int] = (0, 0, 0, 0), fgain: float = 1.0,
                 noise: torch.Tensor | None = None, strength: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None, act: str = "linear", gain: float = 1.0,
                 slope: float = 0.2, clamp: float | None = None, addend: torch.Tensor | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """``clamp(act(upfirdn2d(x, f, up, padding, fgain) + noise * strength + bias) * gain) + addend``
    in one pass, each step rounded as the reference ops round it.

    x ``(B, C, H, W)`` float32/float16 contiguous; f ``(fh, fw)`` float32 (None: identity,
    no up-sampling or padding); noise ``(H', W')`` or ``(B, H', W')`` float32 with strength a
    float32 scalar tensor; bias ``(C,)``; addend: the output's shape, any of the two dtypes.
    Returns ``(B, C, H*up + py0 + py1 - fh + 1, ...)`` in x's dtype (``out``, which may be x
    itself when f is None, or a new tensor)."""
    b, c, hi, wi = x.shape
    px0, px1, py0, py1 = (int(p) for p in padding)
    if f is None and (up != 1 or any((px0, px1, py0, py1))):
        raise ValueError("fir_epilogue: up-sampling or padding needs a filter")
    fh, fw = f.shape if f is not None else (1, 1)
    ho, wo = hi * up + py0 + py1 - fh + 1, wi * up + px0 + px1 - fw + 1
    y = out if out is not None else torch.empty((b, c, ho, wo), dtype=x.dtype, device=x.device)
    if y.shape != (b, c, ho, wo) or y.dtype != x.dtype or not y.is_contiguous():
        raise ValueError(f"fir_epilogue: out must be contiguous {(b, c, ho, wo)} {x.dtype}")
    kind = "none"
    if noise is not None:
        if strength is None:
            raise ValueError("fir_epilogue: noise needs its strength (a scalar tensor)")
        kind = "shared" if noise.shape == (ho, wo) else "per_sample"
        if noise.shape not in ((ho, wo), (b, ho, wo)):
            raise ValueError(f"fir_epilogue: noise must be {(ho, wo)} or {(b, ho, wo)}, got "
                             f"{tuple(noise.shape)}")
    if addend is not None and (addend.shape != y.shape or addend.dtype not in _DTYPES
                               or not addend.is_contiguous()):
        raise ValueError(f"fir_epilogue: addend must be contiguous {tuple(y.shape)}, float32 or float16")
    has_clamp = clamp is not None and clamp >= 0
    total = y.numel()
    if total == 0:
        return y
    src = _fir_epi_src(_DTYPES[x.dtype], c, hi, wi, ho, wo, fh, fw, up, px0, py0, f is None, kind,
                         bias is not None, act, gain != 1, has_clamp,
                         _DTYPES[addend.dtype] if addend is not None else None, total >= 2 ** 32)
    tensors = [x.contiguous(), y, _f32(f) if f is not None else x,
               _f32(noise) if noise is not None else x, _f32(strength) if strength is not None else x,
               _f32(bias) if bias is not None else x, addend if addend is not None else x]
    backend.launch(src, "sg2_fir_epi", total, tensors,
                   [np.int64(total), np.float32(fgain), np.float32(gain), np.float32(slope),
                    np.float32(clamp if has_clamp else -1.0)])
    return y


def _styles(fc: Any, w: torch.Tensor) -> torch.Tensor:
    """A layer's styles ``(B, I)``: its affine ``FullyConnectedLayer`` as one ``addmm`` with the
    weight gain as ``alpha`` (the reference scales the weight first: one kernel more; equal to
    rounding). A hooked affine (a tap) is called as a module, so its hooks run."""
    if (fc.activation != "linear" or fc.bias is None or fc._forward_hooks or fc._forward_pre_hooks
            or w.dtype != torch.float32):
        return fc(w)
    b = fc.bias if fc.bias_gain == 1 else fc.bias * fc.bias_gain
    return torch.addmm(b.unsqueeze(0), w, fc.weight.t(), alpha=fc.weight_gain)


def _noise(layer: Any, x: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
    if not layer.use_noise:
        return None
    if noise_mode == "random":  # as the reference draws it: (B, 1, R, R) float32
        return torch.randn([x.shape[0], layer.resolution, layer.resolution], device=x.device)
    return layer.noise_const if noise_mode == "const" else None


def synthesis_layer(backend: Any, layer: Any, x: torch.Tensor, w: torch.Tensor, noise_mode: str,
                    gain: float) -> torch.Tensor:
    """``stylegan2.SynthesisLayer.forward`` (fused modulation) with the kernels:
    x ``(B, I, R/up, R/up)``, w ``(B, w_dim)`` -> ``(B, O, R, R)`` in x's dtype."""
    styles = _styles(layer.affine, w)
    b, cin, h, wd = x.shape
    cout, _, kh, kw = layer.weight.shape
    up = layer.up
    # the reference's flip_weight (up == 1) gives an unflipped correlation both ways
    wmod = modulate(backend, layer.weight, styles, x.dtype, demodulate=True, transpose=up > 1)
    xg = x.reshape(1, b * cin, h, wd)
    noise = _noise(layer, x, noise_mode)
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    epi = dict(noise=noise, strength=layer.noise_strength if noise is not None else None,
               bias=layer.bias, act=layer.activation, gain=layer.act_gain * gain, clamp=clamp)
    if up == 1:
        t = _conv(F.conv2d, xg, wmod, padding=layer.padding, groups=b)
        t = t.reshape(b, cout, *t.shape[2:])
        return fir_epilogue(backend, t, out=t, **epi)  # type: ignore[arg-type]
    f = layer.resample_filter
    (pyt, pxt), fir_pad = up_conv_padding(kh, kw, f, up, layer.padding)
    t = _conv(F.conv_transpose2d, xg, wmod, stride=up, padding=(pyt, pxt), groups=b)
    t = t.reshape(b, cout, *t.shape[2:])
    return fir_epilogue(backend, t, f, padding=fir_pad, fgain=up * up, **epi)  # type: ignore[arg-type]


def torgb_layer(backend: Any, layer: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``stylegan2.ToRGBLayer.forward`` (fused modulation) with the kernels:
    ``(B, C, R, R)`` -> ``(B, 3, R, R)`` in x's dtype."""
    styles = _styles(layer.affine, w)
    b, cin, h, wd = x.shape
    cout = layer.weight.shape[0]
    wmod = modulate(backend, layer.weight, styles, x.dtype, demodulate=False,
                    style_gain=layer.weight_gain)
    t = _conv(F.conv2d, x.reshape(1, b * cin, h, wd), wmod, groups=b)  # the reference's padding 0
    t = t.reshape(b, cout, *t.shape[2:])
    return fir_epilogue(backend, t, out=t, bias=layer.bias, clamp=layer.conv_clamp)


def upsample_add(backend: Any, img: torch.Tensor, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``upsample2d(img, f) + y.float()``: img ``(B, C, R/2, R/2)`` float32, y ``(B, C, R, R)``
    float32 or float16 -> ``(B, C, R, R)`` float32."""
    return fir_epilogue(backend, img, f, up=2, padding=upsample_padding(f, 2), fgain=4.0,
                        addend=y.contiguous())
