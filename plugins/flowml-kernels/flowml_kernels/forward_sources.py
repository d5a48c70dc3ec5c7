"""The CUDA C and kernel name of a forward plan: the one mapping from ``plans.ForwardPlan`` to
source that the CuPy backend compiles and the CPU tests build as C++."""

from __future__ import annotations

from .cuda_source import filter_source, gather4_source, h2r_source, h2w_source, tile_source
from .mma_source import mma_source
from .plans import ForwardPlan, rows_per_thread


def forward_source(plan: ForwardPlan, dtype: str, n: int, cb: int,
                   splat: bool = False) -> tuple[str, str]:
    """``(source, kernel name)`` of ``plan`` for storage ``dtype``, N and ``cb`` channels (the
    plan's ``channels(C)``); ``splat`` only for ``rows``, the one kernel that also splats."""
    if plan.kernel == "tile":
        return (tile_source(dtype, n, cb, plan.txq, plan.ty, plan.smem, plan.pf, h2=plan.h2),
                "wf_tile")
    if plan.kernel == "h2w":
        if dtype != "float16":
            raise ValueError(f"plan {plan.name!r}: wf_h2w takes float16 storage, not {dtype}")
        return h2w_source(n, cb, plan.px, plan.txq, plan.ty, plan.bc, plan.cg), "wf_h2w"
    if plan.kernel == "h2r":
        if dtype != "float16":
            raise ValueError(f"plan {plan.name!r}: wf_h2r takes float16 storage, not {dtype}")
        return h2r_source(n, cb, plan.px, plan.txq, plan.ty, plan.mb, plan.pipe), "wf_h2r"
    if plan.kernel == "mma":
        return mma_source(dtype, n, cb, plan.txq, plan.ty, plan.py), "wf_mma"
    if plan.kernel == "gather4":
        return gather4_source(dtype, n, cb), "wf_gather4"
    if plan.kernel == "rows":
        return filter_source(dtype, n, cb, splat, rows_per_thread(n)), "wf_filter"
    raise ValueError(f"forward plan {plan.name!r} names an unknown kernel {plan.kernel!r}")
