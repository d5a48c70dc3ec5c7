"""What ptxas made of a WeightedFilter forward plan, without a GPU: SASS opcodes and the order
of the inner loop's shared loads and FMAs.

    python plugins/flowml-kernels/benchmarks/sass_census.py h2r_p8_16x8_cb8_m3 h2r_p8_16x8_cb8_pipe --n 9

Each plan's float16 kernel at C = 32 is compiled by NVRTC for ``--arch`` (sm_90) and
disassembled by ``nvdisasm`` (on PATH, or from the ``nvidia-cuda-nvdisasm`` wheel:
``pip install nvidia-cuda-nvdisasm``). Prints ptxas' registers and spills, the count of each
opcode in the kernel's text (static, not executed counts), and the kernel's opcodes after its
first barrier as one letter each (``L`` LDS, ``h`` HFMA2, ``a`` HADD2 (the half -> float
conversions), ``f`` FADD, ``s`` SHF / ``p`` PRMT (funnels), ``G`` LDG, ``|`` a branch, ``!`` a
spill, ``.`` the rest): whether the next channel's ``L`` come among this one's ``h`` or only
after a branch is what the ``pipe`` plans change (issue 15). Needs libnvrtc (torch's CUDA
wheels carry it; outside pytest ``LD_LIBRARY_PATH`` must name its folder for its builtins).
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

from flowml.gpu.nvrtc_offline import compile_cubin, ptxas_report
from flowml_kernels import plans
from flowml_kernels.forward_sources import forward_source

LETTERS = {"LDS": "L", "HFMA2": "h", "HADD2": "a", "FADD": "f", "SHF": "s", "PRMT": "p",
           "LDG": "G", "BRA": "|", "LDL": "!", "STL": "!"}
OPCODE = re.compile(r"\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)")


def find_nvdisasm() -> str | None:
    """nvdisasm on PATH or in an installed nvidia-cuda-nvdisasm wheel."""
    hit = shutil.which("nvdisasm")
    if hit:
        return hit
    for root in sys.path:
        for path in sorted(glob.glob(os.path.join(root, "nvidia", "*", "bin", "nvdisasm"))):
            return path
    return None


def opcodes(plan: plans.ForwardPlan, n: int, arch: str, nvdisasm: str) -> list[str]:
    """The kernel's SASS opcodes in program order."""
    src, name = forward_source(plan, "float16", n, plan.channels(32))
    cubin, _ = compile_cubin(src, [name], arch)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([nvdisasm, "-c", f.name], capture_output=True, text=True,
                              check=True).stdout
    return [m.group(1) for m in map(OPCODE.match, text.splitlines()) if m]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("plans", nargs="+", help="names in flowml_kernels.plans.PLANS")
    ap.add_argument("--n", type=int, default=9, help="kernel size N (odd)")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--width", type=int, default=600, help="letters of the loop to print")
    args = ap.parse_args(argv)
    nvdisasm = find_nvdisasm()
    if nvdisasm is None:
        raise SystemExit("sass_census needs nvdisasm: pip install nvidia-cuda-nvdisasm")
    for name in args.plans:
        plan = plans.PLANS[name]
        why = plan.unsupported("float16", args.n, 32)
        if why:
            print(f"{name}: {why}")
            continue
        report = ptxas_report(forward_source(plan, "float16", args.n, plan.channels(32))[0], args.arch)
        ops = opcodes(plan, args.n, args.arch, nvdisasm)
        census = collections.Counter(op.split(".")[0] for op in ops)
        print(f"{name} N={args.n} {args.arch}: {report['registers']} registers, spills "
              f"{report['spill_stores']}/{report['spill_loads']} bytes, {len(ops)} instructions")
        print("  " + " ".join(f"{k}:{v}" for k, v in census.most_common(16)))
        letters = "".join(LETTERS.get(op, ".") for op in ops)
        start = letters.find("L", ops.index("BAR") if "BAR" in ops else 0)
        print("  " + letters[start:start + args.width])


if __name__ == "__main__":
    main()
