"""StyleGAN3's ops in plain PyTorch: FIR resampling with separable filters, the filtered leaky
ReLU, and StyleGAN3's modulated convolution. Written for flowml from the StyleGAN3 paper
(Karras et al. 2021, "Alias-Free Generative Adversarial Networks", section 3.2 and appendix
D) and the conventions of NVlabs/stylegan3, whose weights they must reproduce.

Conventions (NVIDIA's, as in ``ops.py``): a filter is ``(taps,)`` (separable: applied along x
then y) or ``(fh, fw)``, applied as a *convolution*; padding is ``(x0, x1, y0, y1)`` relative
to the up-sampled image, negative values crop. Up-sampling is a strided transposed convolution
(no zeros are inserted, so no multiplications by zero), down-sampling a strided convolution
(no discarded outputs are computed): the same sums as NVIDIA's reference ops, done once.

No host synchronisation and no host-to-device copy anywhere, so a network of these can be
captured as a CUDA graph.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


__all__ = ["fir_up", "fir_down", "filtered_lrelu", "modulated_conv2d"]


def _pad4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) != 4:
        raise ValueError(f"padding is an int, [x, y] or [x0, x1, y0, y1], not {padding!r}")
    return p[0], p[1], p[2], p[3]


def _taps(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; None is one tap."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"a FIR filter is (taps,) or (fh, fw), not {tuple(f.shape)}")
    return f.shape[-1], f.shape[0]


def fir_up(x: torch.Tensor, f: torch.Tensor | None, up: int, padding: Sequence[int],
           gain: float = 1.0) -> torch.Tensor:
    """Up-sample by ``up`` (zero insertion), pad/crop by ``padding``, convolve with ``f``.

    x ``(B, C, H, W)`` -> ``(B, C, H*up + py0 + py1 - fh + 1, W*up + px0 + px1 - fw + 1)``.
    A separable filter is scaled by ``sqrt(gain)`` per axis, a 2-D one by ``gain``.
    """
    px0, px1, py0, py1 = _pad4(padding)
    c = x.shape[1]
    fw, fh = _taps(f)
    if f is None:
        if up > 1:
            raise ValueError("fir_up: up-sampling needs a filter (StyleGAN3 always has one)")
        x = F.pad(x, [px0, px1, py0, py1])
        return x * gain if gain != 1 else x
    if f.ndim == 1:
        k = (f * math.sqrt(gain)).to(x.dtype)
        # a transposed convolution is a true convolution (no flip) of the zero-stuffed input
        x = F.conv_transpose2d(x, k.reshape(1, 1, 1, -1).expand(c, 1, 1, fw), stride=(1, up), groups=c)
        x = F.conv_transpose2d(x, k.reshape(1, 1, -1, 1).expand(c, 1, fh, 1), stride=(up, 1), groups=c)
    else:
        k = (f * gain).to(x.dtype)
        x = F.conv_transpose2d(x, k[None, None].expand(c, 1, fh, fw), stride=up, groups=c)
    # the full convolution z of the zero-stuffed input starts fw-1 samples before NVIDIA's
    # padded output and lacks the (up-1) trailing zeros
    return F.pad(x, [px0 - fw + 1, px1 + up - fw, py0 - fh + 1, py1 + up - fh])


def fir_down(x: torch.Tensor, f: torch.Tensor | None, down: int) -> torch.Tensor:
    """Convolve with ``f`` (no padding) and keep every ``down``-th sample.
    x ``(B, C, H, W)`` -> ``(B, C, ceil((H - fh + 1) / down), ...)``."""
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    c = x.shape[1]
    fw, fh = _taps(f)
    k = f.flip(list(range(f.ndim))).to(x.dtype)  # a convolution, as the filter is defined
    if f.ndim == 1:
        x = F.conv2d(x, k.reshape(1, 1, 1, -1).expand(c, 1, 1, fw), stride=(1, down), groups=c)
        return F.conv2d(x, k.reshape(1, 1, -1, 1).expand(c, 1, fh, 1), stride=(down, 1), groups=c)
    return F.conv2d(x, k[None, None].expand(c, 1, fh, fw), stride=down, groups=c)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1,
                   padding: int | Sequence[int] = 0, gain: float = math.sqrt(2),
                   slope: float = 0.2, clamp: float | None = None) -> torch.Tensor:
    """StyleGAN3's alias-free nonlinearity: bias, up-sample by ``up`` with ``fu`` (gain
    ``up**2``), leaky ReLU (``slope``) times ``gain``, clamp to ``[-clamp, clamp]``, low-pass
    with ``fd`` and down-sample by ``down``.

    x ``(B, C, H, W)``, b ``(C,)``; returns ``(B, C, (H*up + py0 + py1 - fuh - fdh + 2 +
    down - 1) // down, ...)`` in x's dtype.
    """
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    # lrelu(x) * gain == lrelu(x * gain) for gain > 0: the gain rides on the up-sampling
    # filter, and the activation and clamp run in place (two passes over the big tensor)
    x = fir_up(x, fu, up, _pad4(padding), gain=up * up * gain)
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=True)
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp)
    return fir_down(x, fd, down)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, padding: int = 0,
                     input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN3's modulated convolution: the weight and the styles first normalised to unit
    RMS (for fp16 range), the weight scaled by the styles per sample, demodulated, scaled by
    ``input_gain`` (the inverse RMS of the layer's input, tracked in training), and applied as
    one grouped convolution.

    x ``(B, Cin, H, W)``; weight ``(Cout, Cin, k, k)``; styles ``(B, Cin)``; input_gain a
    scalar, ``(Cin,)`` or ``(B, Cin)``. Returns ``(B, Cout, H + 2*padding - k + 1, ...)``.
    Note: as in NVIDIA's code the styles are normalised over the whole batch.
    """
    batch = x.shape[0]
    cout, cin, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, cin, 1, 1)  # (B, Cout, Cin, k, k)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch, cout, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.expand(batch, cin).reshape(batch, 1, cin, 1, 1)
    x = x.reshape(1, batch * cin, *x.shape[2:])
    x = F.conv2d(x, w.reshape(batch * cout, cin, kh, kw).to(x.dtype), padding=padding, groups=batch)
    return x.reshape(batch, cout, *x.shape[2:])
