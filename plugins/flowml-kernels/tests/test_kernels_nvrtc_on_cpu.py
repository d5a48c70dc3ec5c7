"""The prefetching forward plans' CUDA C through NVRTC for sm_90, on the CPU (no GPU needed).

NVRTC is the compiler the CuPy path uses on the GPU; here it comes from ``cuda-bindings`` and
the ``nvidia-cuda-nvrtc`` wheel that torch's CUDA builds install (skipped where either is
missing). ``-Xptxas -v`` makes its log say each kernel's registers and spill bytes, so this
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
import re

import pytest

from flowml_kernels import plans
from flowml_kernels.forward_sources import forward_source

nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="NVRTC needs cuda-bindings")

SPILL_OK = 32


@pytest.fixture(scope="module", autouse=True)
def _libnvrtc():
    try:
        err, *_ = nvrtc.nvrtcVersion()
    except Exception as e:  # the bindings without libnvrtc
        pytest.skip(f"no libnvrtc here: {e}")
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        pytest.skip(f"libnvrtc: {err}")


def compile_sm90(source: str) -> dict:
    """``{registers, stack, spill_stores, spill_loads}`` of the one kernel in ``source``, from
    NVRTC's ptxas log; raises with the log when it does not compile."""
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"plan.cu", 0, [], [])
    try:
        opts = [b"-arch=sm_90", b"-Xptxas", b"-v"]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        log = log.decode(errors="replace")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise AssertionError(f"NVRTC failed ({result}):\n{log}")
    regs = re.search(r"Used (\d+) registers", log)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      log)
    assert regs and frame, log
    return {"registers": int(regs[1]), "stack": int(frame[1]), "spill_stores": int(frame[2]),
            "spill_loads": int(frame[3])}


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
        info = compile_sm90(forward_source(plan, dtype, n, plan.channels(c))[0])
        assert info["spill_stores"] <= SPILL_OK, (name, dtype, n, c, info)
        assert info["registers"] <= 255, (name, dtype, n, c, info)
        compiled += 1
    assert compiled >= (1 if plan.h2 else 2), name    # N = 5 at least, both dtypes (h2: fp16)
