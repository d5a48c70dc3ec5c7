"""The pure-PyTorch WeightedFilter (``F.unfold`` / ``F.fold``): the CPU path and the oracle.

Shapes: ``x`` ``(B, C, H, W)``, ``w`` ``(B, N*N, H, W)``, N odd, ``r = N // 2``, tap
``k = i*N + j`` at offset ``d_k = (i - r, j - r)``; zero padding outside the image.

- gather: ``out[c, p] = sum_k w[k, p] * x[c, p + d_k]``
- splat:  ``x[c, p]`` scattered with ``w[k, p]`` to ``out[c, p + d_k]``, i.e. a gather with
  weights ``w[N*N-1-k, p + d_k]`` (the flipped tap, read at the neighbour).

Gradients, with ``g`` the output gradient (both are the same two primitives again):

- gather: ``grad_x = splat(g, w)``, ``grad_w[k, p] = sum_c g[c, p] * x[c, p + d_k]``
- splat:  ``grad_x = gather(g, w)``, ``grad_w[k, p] = sum_c x[c, p] * g[c, p + d_k]``

The formulas are those of NVlabs/layerdenoise (``torch_utils/cuda_weighted_filter.cu``), read,
not copied. float16 / bfloat16 are computed in float32 and rounded once at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LOW = (torch.float16, torch.bfloat16)


def _up(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in _LOW else t


def filter_ref(x: torch.Tensor, w: torch.Tensor, kernel_size: int, splat: bool) -> torch.Tensor:
    """Gather (``splat=False``) or splat filter: ``(B, C, H, W)``, ``(B, N*N, H, W)`` -> ``(B, C, H, W)``."""
    n, r = kernel_size, kernel_size // 2
    b, c, h, wd = x.shape
    xf, wf = _up(x), _up(w)
    if splat:
        cols = (xf.unsqueeze(2) * wf.unsqueeze(1)).reshape(b, c * n * n, h * wd)
        out = F.fold(cols, (h, wd), n, padding=r)
    else:
        cols = F.unfold(xf, n, padding=r).view(b, c, n * n, h, wd)
        out = (cols * wf.unsqueeze(1)).sum(2)
    return out.to(x.dtype)


def wgrad_ref(a: torch.Tensor, b: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``out[k, p] = sum_c a[c, p] * b[c, p + d_k]``: ``(B, C, H, W)`` x2 -> ``(B, N*N, H, W)``.

    The weight gradient: ``wgrad_ref(g, x)`` for gather, ``wgrad_ref(x, g)`` for splat."""
    n, r = kernel_size, kernel_size // 2
    bs, c, h, wd = a.shape
    cols = F.unfold(_up(b), n, padding=r).view(bs, c, n * n, h, wd)
    return (cols * _up(a).unsqueeze(2)).sum(1).to(a.dtype)
