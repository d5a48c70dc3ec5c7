"""The arithmetic of the half2 ``wf_tile`` plans (``ForwardPlan.h2``) in torch: the oracle their
output must match bit for bit (the CPU build and the GPU alike)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _to_half(t: torch.Tensor) -> torch.Tensor:
    """float64 to float16 rounded once (numpy converts directly; torch's ``.half()`` of a double
    goes through float, two roundings, which a 1-ulp test on the CPU test's shapes caught)."""
    return torch.from_numpy(t.numpy().astype(np.float16))


def h2_rows_ref(x: torch.Tensor, w: torch.Tensor, n: int) -> torch.Tensor:
    """The gather forward as the h2 plans compute it: per tap row i, the N taps in tap order,
    each ``w * x + part`` rounded once to half (``fma.rn.f16x2`` per lane; zero padding taps
    included, they add +-0), the row's sum added to a float32 accumulator in row order, the
    result rounded to half. ``x`` (B, C, H, W) and ``w`` (B, N*N, H, W) float16 on the CPU;
    returns (B, C, H, W) float16. The product of two halves is exact in double and its sum with
    a half rounds to the half nearest the exact sum, so double then half (``_to_half``) is the
    single rounding."""
    b, c, h, wd = x.shape
    r = n // 2
    xp = F.pad(x.double(), (r, r, r, r))
    acc = torch.zeros(x.shape, dtype=torch.float32)
    for i in range(n):
        part = torch.zeros(x.shape, dtype=torch.float16)
        for j in range(n):
            tap = w[:, i * n + j:i * n + j + 1].double()
            part = _to_half(tap * xp[:, :, i:i + h, j:j + wd] + part.double())
        acc = acc + part.float()
    return acc.half()
