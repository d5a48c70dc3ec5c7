"""``flowml::weighted_filter``: a per-pixel N x N filter as one torch op (custom_op).

``weighted_filter(x, w, kernel_size, splat=False)``: ``x`` ``(B, C, H, W)``, ``w``
``(B, N*N, H, W)`` (tap ``i*N + j`` in channel order), same dtype and device -> ``(B, C, H, W)``.
Formulas in ``flowml_kernels.reference``. Registered with a fake (shape) implementation and an
autograd formula (gradients for ``x`` and ``w``), so ``torch.compile(fullgraph=True)`` and
``torch.export`` keep it as one op. CUDA tensors go to the CuPy kernels when CuPy is importable
(``cupy_backend``), everything else to the unfold reference. A second op,
``flowml::weighted_filter_wgrad``, is the weight gradient; the input gradient is the op itself
with ``splat`` flipped.
"""

from __future__ import annotations

import torch

from . import cupy_backend
from .reference import filter_ref, wgrad_ref

MAX_KERNEL = 15


def check_args(x: torch.Tensor, w: torch.Tensor, kernel_size: int) -> None:
    """Raise a ValueError that says what to fix when the shapes or dtypes do not fit."""
    n = kernel_size
    if n < 1 or n > MAX_KERNEL or n % 2 == 0:
        raise ValueError(f"kernel_size must be odd, 1 to {MAX_KERNEL}, not {n}")
    if x.dim() != 4 or w.dim() != 4:
        raise ValueError(f"weighted_filter takes x (B, C, H, W) and w (B, N*N, H, W), "
                         f"not {tuple(x.shape)} and {tuple(w.shape)}")
    want = (x.shape[0], n * n, x.shape[2], x.shape[3])
    if tuple(w.shape) != want:
        raise ValueError(f"weights for kernel_size {n} must be {want} (B, N*N, H, W) "
                         f"for x {tuple(x.shape)}, not {tuple(w.shape)}")
    if x.dtype != w.dtype or x.device != w.device:
        raise ValueError(f"x and w must share dtype and device, not {x.dtype} on {x.device} "
                         f"and {w.dtype} on {w.device}: cast or move one")


def _use_cupy(t: torch.Tensor) -> bool:
    return t.is_cuda and cupy_backend.available()


@torch.library.custom_op("flowml::weighted_filter", mutates_args=())
def _weighted_filter(x: torch.Tensor, w: torch.Tensor, kernel_size: int, splat: bool) -> torch.Tensor:
    check_args(x, w, kernel_size)
    if _use_cupy(x):
        return cupy_backend.filter_cuda(x, w, kernel_size, splat)
    return filter_ref(x, w, kernel_size, splat)


@_weighted_filter.register_fake
def _(x, w, kernel_size, splat):
    check_args(x, w, kernel_size)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("flowml::weighted_filter_wgrad", mutates_args=())
def _weighted_filter_wgrad(a: torch.Tensor, b: torch.Tensor, kernel_size: int) -> torch.Tensor:
    if _use_cupy(a):
        return cupy_backend.wgrad_cuda(a, b, kernel_size)
    return wgrad_ref(a, b, kernel_size)


@_weighted_filter_wgrad.register_fake
def _(a, b, kernel_size):
    return a.new_empty((a.shape[0], kernel_size * kernel_size, a.shape[2], a.shape[3]))


def _setup_context(ctx, inputs, output):
    x, w, kernel_size, splat = inputs
    ctx.save_for_backward(x, w)
    ctx.kernel_size, ctx.splat = kernel_size, splat


def _backward(ctx, grad):
    x, w = ctx.saved_tensors
    n, splat = ctx.kernel_size, ctx.splat
    grad = grad.contiguous()
    gx = gw = None
    if ctx.needs_input_grad[0]:
        gx = torch.ops.flowml.weighted_filter(grad, w, n, not splat)
    if ctx.needs_input_grad[1]:
        gw = (torch.ops.flowml.weighted_filter_wgrad(x, grad, n) if splat
              else torch.ops.flowml.weighted_filter_wgrad(grad, x, n))
    return gx, gw, None, None


_weighted_filter.register_autograd(_backward, setup_context=_setup_context)


def weighted_filter(x: torch.Tensor, w: torch.Tensor, kernel_size: int,
                    splat: bool = False) -> torch.Tensor:
    """Per-pixel filter: ``x`` ``(B, C, H, W)``, ``w`` ``(B, N*N, H, W)`` -> ``(B, C, H, W)``.

    ``splat=False`` gathers (``out[c,p] = sum_k w[k,p] x[c,p+d_k]``), ``splat=True`` scatters
    each pixel with its own weights. Zero padding; the same weights for every channel."""
    return torch.ops.flowml.weighted_filter(x, w, kernel_size, splat)
