"""StyleGAN's three custom ops in plain PyTorch: bias + activation, FIR resampling, and the
(modulated) convolution with up-sampling. Written for flowml from the StyleGAN2 paper
(Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", appendix B) and
the conventions of stylegan2-ada-pytorch, whose weights they must reproduce exactly.

Everything here is ordinary torch code: it runs on the CPU and on any GPU, needs no compiler,
and has no host synchronisation, so a generator made of it can be captured as a CUDA graph.

Conventions (those of NVIDIA's ops, so that the same weights give the same image):

- a FIR filter is a float32 tensor ``(fh, fw)`` normalised to sum 1 (``setup_filter``); it is
  applied as a *convolution* (flipped), with a gain of ``up**2`` when up-sampling;
- padding is ``(x_before, x_after, y_before, y_after)``, negative values crop;
- ``flip_weight=True`` is a correlation (``torch.nn.functional.conv2d``), False a convolution.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "bias_act", "setup_filter", "upfirdn2d", "upsample2d",
           "conv2d_resample", "modulated_conv2d", "normalize_2nd_moment", "up_conv_padding",
           "upsample_padding"]

ACTIVATIONS: dict[str, float] = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}
"""Activation name -> its default gain (keeps the signal's variance)."""

Padding = int | Sequence[int]


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear",
             gain: float | None = None, clamp: float | None = None, alpha: float = 0.2,
             dim: int = 1) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``.

    x: any shape; b: ``(x.shape[dim],)`` added along ``dim``. ``act`` is ``linear``, ``relu`` or
    ``lrelu`` (slope ``alpha``); ``gain`` defaults to the activation's (``ACTIVATIONS``);
    ``clamp`` limits the result to ``[-clamp, clamp]`` (None: no limit).
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; use one of {sorted(ACTIVATIONS)}")
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
    elif act == "relu":
        x = F.relu(x)
    g = ACTIVATIONS[act] if gain is None else float(gain)
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(taps: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """A 2-D FIR filter ``(n, n)`` from 1-D taps (their outer product), normalised to sum
    ``gain``. A 2-D input is only normalised."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 0:
        f = f.reshape(1)
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2:
        raise ValueError(f"a FIR filter is 1-D taps or a 2-D kernel, not shape {tuple(f.shape)}")
    return f / f.sum() * gain


def _padding(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding is an int, [x, y] or [x0, x1, y0, y1], not {padding!r}")


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: Padding = 0, gain: float = 1.0) -> torch.Tensor:
    """Up-sample (insert zeros), pad, convolve with the FIR filter ``f``, down-sample.

    x: ``(B, C, H, W)``; f: ``(fh, fw)`` (None: identity); returns
    ``(B, C, (H*up + py0 + py1 - fh + 1) // down, ...)`` rounded up, in x's dtype.
    """
    b, c, h, w = x.shape
    px0, px1, py0, py1 = _padding(padding)
    if up > 1:
        z = x.new_zeros([b, c, h * up, w * up])
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    if f is not None:
        k = (f * gain).to(x.dtype).flip([0, 1])  # a convolution, as the filter is defined
        k = k[None, None].expand(c, 1, *k.shape)
        x = F.conv2d(x, k, groups=c)
    elif gain != 1:
        x = x * gain
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """x ``(B, C, H, W)`` -> ``(B, C, H*up, W*up)``, low-passed by ``f`` (DC gain kept)."""
    return upfirdn2d(x, f, up=up, padding=upsample_padding(f, up), gain=up * up)


def _conv(x: torch.Tensor, w: torch.Tensor, *, stride: int = 1, padding: tuple[int, int] = (0, 0),
          groups: int = 1, transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                    padding: int = 0, groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """2-D convolution, optionally up-sampled by ``up`` with the FIR filter ``f``.

    x: ``(B, Cin, H, W)``; w: ``(Cout, Cin // groups, kh, kw)``; ``padding`` is relative to the
    up-sampled image and applied once. Returns ``(B, Cout, H*up + 2*padding - kh + 1, ...)``.
    Up-sampling is a strided transposed convolution followed by the FIR filter (one pass over
    the big image instead of two).
    """
    cout, cin_g, kh, kw = w.shape
    if up == 1:
        if f is not None:
            raise ValueError("conv2d_resample: a filter without up-sampling is not used by StyleGAN2")
        return _conv(x, w, padding=(padding, padding), groups=groups, flip_weight=flip_weight)
    if f is None:
        raise ValueError("conv2d_resample: up-sampling needs a FIR filter (setup_filter([1, 3, 3, 1]))")
    (pyt, pxt), fir_pad = up_conv_padding(kh, kw, f, up, padding)
    if groups == 1:
        wt = w.transpose(0, 1)
    else:  # per group: (Cout/g, Cin/g) -> (Cin/g, Cout/g)
        wt = w.reshape(groups, cout // groups, cin_g, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * cin_g, cout // groups, kh, kw)
    x = _conv(x, wt, stride=up, padding=(pyt, pxt), groups=groups, transpose=True,
              flip_weight=not flip_weight)
    return upfirdn2d(x, f, padding=fir_pad, gain=up * up)


def up_conv_padding(kh: int, kw: int, f: torch.Tensor, up: int, padding: int
                    ) -> tuple[tuple[int, int], list[int]]:
    """An up-sampling convolution's two paddings (``conv2d_resample``): the transposed
    convolution's ``(y, x)`` and then the FIR's ``[x0, x1, y0, y1]`` (negative crops)."""
    fh, fw = f.shape
    # the padding the up-sampled image needs around the filter, then what the transposed
    # convolution already produced beyond it
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    return (pyt, pxt), [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt]


def upsample_padding(f: torch.Tensor, up: int = 2) -> list[int]:
    """``upsample2d``'s FIR padding ``[x0, x1, y0, y1]`` for filter ``f`` ``(fh, fw)``."""
    fh, fw = f.shape
    return [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x scaled to unit mean square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: torch.Tensor | None = None, up: int = 1, padding: int = 0,
                     resample_filter: torch.Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True, fused: bool = True) -> torch.Tensor:
    """StyleGAN2's modulated convolution (paper, section 2.2).

    x: ``(B, Cin, H, W)``; weight: ``(Cout, Cin, k, k)``; styles: ``(B, Cin)`` scale the input
    channels; ``demodulate`` normalises each output channel of the modulated weight to unit
    norm; noise ``(B or 1, 1, H', W')`` is added last. ``fused`` runs one grouped convolution
    with per-sample weights (the inference path); else x is scaled before and after a shared
    convolution (same result up to rounding). In fp16 the weight and styles are first scaled
    by their max norm (as NVIDIA does) so that nothing overflows. Returns
    ``(B, Cout, H*up + 2*padding - k + 1, ...)``.
    """
    batch = x.shape[0]
    cout, cin, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(cin * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = None
    dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # (B, Cout, Cin, k, k)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (B, Cout)
    if not fused:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding,
                            flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x
    if demodulate:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, cin, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=batch,
                        flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
