"""The issue's WeightedFilter formulas as plain loops: the oracle the tests check the op against."""

from __future__ import annotations

import torch


def loop_filter(x: torch.Tensor, w: torch.Tensor, n: int, splat: bool) -> torch.Tensor:
    """The issue's formulas, one pixel at a time (float64): the oracle of the oracle.

    gather: ``out[c,y,x] = sum_ij w[i*N+j, y, x] * x[c, y+i-r, x+j-r]``;
    splat: each ``x[c,y,x]`` adds ``w[i*N+j, y, x] * x[c,y,x]`` to ``out[c, y+i-r, x+j-r]``."""
    x, w = x.double(), w.double()
    b, c, h, wd = x.shape
    r = n // 2
    out = torch.zeros_like(x)
    for bi in range(b):
        for y in range(h):
            for xx in range(wd):
                for i in range(n):
                    for j in range(n):
                        yy, xj = y + i - r, xx + j - r
                        if not (0 <= yy < h and 0 <= xj < wd):
                            continue
                        if splat:   # scatter the pixel (y, xx) to (yy, xj)
                            out[bi, :, yy, xj] += w[bi, i * n + j, y, xx] * x[bi, :, y, xx]
                        else:
                            out[bi, :, y, xx] += w[bi, i * n + j, y, xx] * x[bi, :, yy, xj]
    return out
