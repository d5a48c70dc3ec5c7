"""The prefetching forward plans' CUDA C through NVRTC for sm_90, on the CPU (no GPU needed).

NVRTC is the compiler the CuPy path uses on the GPU; here it is the libnvrtc that torch's CUDA
wheels install, driven by ``flowml.gpu.nvrtc_offline`` (skipped where there is none).
``ptxas_report`` reads ptxas' ``-v`` report of each kernel's registers and spill bytes, so this
checks what the C++ build of ``test_kernels_plans_on_cpu.py`` cannot: that the source (inline
PTX, vector types) compiles for the GPU, and that ``ForwardPlan.unsupported``'s register rule
lets through no plan that spills (the inline PTX ``fma.rn.f16x2`` of the half2 plans
included). Cases: every ``pf`` plan and its plain twin, and every ``h2`` plan, at the
benchmark's C = 32 cases (N 5 and 9, float32 and float16), and the rule's edge for the
prefetching L1 plan (float16, N = 15: 106 of the 128 registers the rule counts) and the h2
plans at float16 N = 15 (which their 16-bit tile and raw weights let run). ptxas keeps a
value or two in local memory outside the loops at its occupancy target even in the plain
plans (8 bytes for ``l1_32x8_cb4`` bfloat16 N = 5), so up to 32 spilled bytes pass.
"""

from __future__ import annotations

import dataclasses

import pytest

from flowml.gpu.nvrtc_offline import find_nvrtc, ptxas_report

from flowml_kernels import plans
from flowml_kernels.forward_sources import forward_source

SPILL_OK = 32


@pytest.fixture(scope="module", autouse=True)
def _libnvrtc():
    if find_nvrtc() is None:
        pytest.skip("no libnvrtc (it comes with torch's CUDA wheels)")


def _twin(name: str) -> str:
    """The plain plan of a ``pf_*`` plan: the same blocking, no prefetch."""
    plan = plans.PLANS[name]
    return next(k for k, p in plans.PLANS.items()
                if dataclasses.replace(p, name=name) == dataclasses.replace(plan, pf=0))


PF = sorted(k for k, p in plans.PLANS.items() if p.pf and not p.h2)
H2 = sorted(k for k, p in plans.PLANS.items() if p.h2)    # float16 only: fp16 cases compile
NAMES = sorted(set(PF) | {_twin(k) for k in PF} | set(H2))
CASES = [(d, n, 32) for d in ("float32", "float16") for n in (5, 9)]


@pytest.mark.parametrize("name", NAMES)
def test_plans_compile_with_nvrtc_without_spilling(name):
    plan = plans.PLANS[name]
    cases = CASES + ([("float16", 15, 32)] if name == "pf_l1_32x8_cb4" or plan.h2 else [])
    compiled = 0
    for dtype, n, c in cases:
        if plan.unsupported(dtype, n, c):
            continue
        info = ptxas_report(forward_source(plan, dtype, n, plan.channels(c))[0])
        assert info["spill_stores"] <= SPILL_OK, (name, dtype, n, c, info)
        assert info["registers"] <= 255, (name, dtype, n, c, info)
        compiled += 1
    assert compiled >= (1 if plan.h2 else 2), name    # N = 5 at least, both dtypes (h2: fp16)
