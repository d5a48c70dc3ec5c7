"""``cuda.kernel`` running graphs/kernels/grade.cu at 4K against the same kernel by hand.

    python plugins/flowml-kernels/benchmarks/cuda_kernel_bench.py [--iters 200]

"node": the node's ``process`` (through ``flowml.testing.NodeHarness``, as the scheduler calls
it: an output allocated per frame, DLPack hand-offs, the launch on the current stream). "hand":
the kernel compiled once by ``cupy.RawModule`` and launched on CuPy arrays made once, into a
preallocated output. Both: ``--iters`` back-to-back calls, then one synchronize; milliseconds
per frame from the wall clock (what a graph pays) and from CUDA events (GPU time). Prints JSON;
the target (issue 15) is node <= 1.2 x hand. Needs a GPU and CuPy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from flowml.testing import NodeHarness
from flowml_kernels import cupy_backend
from flowml_kernels.cudakernel import CudaKernel

GRAPHS = Path(__file__).resolve().parents[3] / "graphs"
ARGS = {"path": "kernels/grade.cu", "function": "grade",
        "args": ["lift", "gamma", "gain", "saturation"], "values": [0.05, 1.2, 1.1, 0.6]}


def per_frame(fn, iters: int) -> dict:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) * 1e3 / iters
    return {"wall_ms": round(wall, 4), "gpu_ms": round(start.elapsed_time(end) / iters, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--size", type=int, nargs=2, default=(3840, 2160), metavar=("W", "H"))
    args = ap.parse_args(argv)
    why = cupy_backend.unavailable()
    if why:
        print(f"cuda_kernel_bench needs a GPU and CuPy: {why}", file=sys.stderr)
        return 2
    import cupy
    import numpy as np

    w, h = args.size
    x = torch.rand(1, 3, h, w, device="cuda")
    with NodeHarness(CudaKernel, ARGS, device="cuda", graph_dir=GRAPHS) as node:
        node_t = per_frame(lambda: node.process(image=x), args.iters)
        ref = node.process(image=x)["image"]

    fn = cupy.RawModule(code=(GRAPHS / "kernels/grade.cu").read_text(),
                        options=("-std=c++17",)).get_function("grade")
    out = torch.empty_like(x)
    cx, co = cupy.from_dlpack(x), cupy.from_dlpack(out)
    grid, block = ((w + 15) // 16, (h + 15) // 16, 1), (16, 16, 1)
    scalars = [np.int32(v) for v in (1, 3, h, w)] + [np.float32(v) for v in ARGS["values"]]
    stream = cupy_backend.cupy_stream(torch.cuda.current_stream())

    def hand():
        with stream:
            fn(grid, block, (cx, co, *scalars))

    hand_t = per_frame(hand, args.iters)
    torch.testing.assert_close(out, ref)
    print(json.dumps({
        "device": torch.cuda.get_device_name(), "size": [w, h], "iters": args.iters,
        "node": node_t, "hand": hand_t,
        "wall_ratio": round(node_t["wall_ms"] / hand_t["wall_ms"], 3),
        "gpu_ratio": round(node_t["gpu_ms"] / hand_t["gpu_ms"], 3),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
