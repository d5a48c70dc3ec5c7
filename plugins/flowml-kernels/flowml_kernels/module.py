"""``WeightedFilter``: the op as an ``nn.Module``, shaped like NVlabs/layerdenoise's."""

from __future__ import annotations

import torch
from torch import nn

from .ops import MAX_KERNEL, weighted_filter


class WeightedFilter(nn.Module):
    """The last layer of a kernel-predicting network: ``forward(x, w)`` with ``x``
    ``(B, C, H, W)`` and per-pixel weights ``w`` ``(B, N*N, H, W)`` -> ``(B, C, H, W)``.

    No trainable weights except an optional per-channel ``bias`` (``bias=True`` needs
    ``channels``; it starts at zero, where layerdenoise leaves it uninitialised)."""

    def __init__(self, kernel_size: int, splat: bool = False, bias: bool = False,
                 channels: int | None = None):
        super().__init__()
        if kernel_size < 1 or kernel_size > MAX_KERNEL or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, 1 to {MAX_KERNEL}, not {kernel_size}")
        if bias and not channels:
            raise ValueError("bias=True needs channels=C (one bias per channel)")
        self.kernel_size = kernel_size
        self.splat = splat
        self.channels = channels
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = weighted_filter(x, w, self.kernel_size, self.splat)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1).to(out.dtype)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, splat={self.splat}, bias={self.bias is not None}"
