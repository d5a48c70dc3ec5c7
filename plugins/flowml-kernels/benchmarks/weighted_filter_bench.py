"""WeightedFilter on the GPU: CuPy kernels vs the unfold reference, and vs memory bandwidth.

    python plugins/flowml-kernels/benchmarks/weighted_filter_bench.py [--iters 20] [--size 1920 1080]

For 1920x1080, C in {3, 32}, N in {5, 9}, float32 and float16, gather: forward and backward
(both gradients) times (median of ``--iters``, CUDA events), for the CuPy path and for the unfold
reference (its backward through autograd). ``gbps`` counts the bytes the kernels must move at
least: forward reads x and w and writes out, ``(2C + N*N) * H * W`` elements; backward does it
twice (grad_x: g, w -> gx; grad_w: g, x -> gw). ``of_copy`` is that rate over a measured
device-to-device copy's (read + write bytes over time). ``forward_cupy`` is ``wf_gather4`` (four pixels a
thread along x, the weights in vector loads); ``forward_cupy_rows`` the earlier ``wf_filter``
with ``rows_per_thread(N)`` pixel rows a thread, ``forward_cupy_rows1`` with one. Prints one JSON document; needs a GPU and CuPy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import torch

from flowml.bench.loops import gpu_ms as timed  # median ms from CUDA events, after 3 warm-ups
from flowml_kernels import cupy_backend
from flowml_kernels.reference import filter_ref


def copy_gbps(iters: int) -> float:
    """Device-to-device copy bandwidth, GB/s of bytes read plus written (1 GiB buffers)."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src), iters)
    return 2 * src.numel() / ms / 1e6


def case(c: int, n: int, dtype: torch.dtype, w_: int, h: int, iters: int, copy: float) -> dict:
    x = torch.rand(1, c, h, w_, device="cuda", dtype=dtype)
    w = torch.softmax(torch.randn(1, n * n, h, w_, device="cuda"), 1).to(dtype)
    g = torch.rand_like(x)
    elem = x.element_size()
    fwd_bytes = (2 * c + n * n) * h * w_ * elem
    row: dict = {"C": c, "N": n, "dtype": str(dtype).removeprefix("torch."), "H": h, "W": w_}

    def cupy_bwd():
        cupy_backend.filter_cuda(g, w, n, True)
        cupy_backend.wgrad_cuda(g, x, n)

    xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

    def ref_bwd():
        torch.autograd.grad(filter_ref(xr, wr, n, False), (xr, wr), g)

    for name, fn, nbytes in (("forward_cupy", lambda: cupy_backend.filter_cuda(x, w, n, False), fwd_bytes),
                             ("backward_cupy", cupy_bwd, 2 * fwd_bytes),
                             ("forward_ref", lambda: filter_ref(x, w, n, False), fwd_bytes),
                             ("backward_ref", ref_bwd, 2 * fwd_bytes)):
        try:
            ms = timed(fn, iters)
        except torch.cuda.OutOfMemoryError:
            row[name] = "out of memory"
            torch.cuda.empty_cache()
            continue
        gbps = nbytes / ms / 1e6
        row[name] = {"ms": round(ms, 4), "gbps": round(gbps, 1), "of_copy": round(gbps / copy, 3)}
    for cb in (4, 8):
        if cb < cupy_backend.channel_block(c):
            cupy_backend.GATHER4_CB = cb
            try:
                ms = timed(lambda: cupy_backend.filter_cuda(x, w, n, False), iters)
            finally:
                cupy_backend.GATHER4_CB = None
            row[f"forward_cupy_cb{cb}"] = {"ms": round(ms, 4), "of_copy": round(fwd_bytes / ms / 1e6 / copy, 3)}
    # the same forward by wf_filter (pixel rows a thread, no vector loads): its own blocking
    # and one row a thread, for comparison with wf_gather4
    cupy_backend.GATHER4 = False
    try:
        for name, rows in (("forward_cupy_rows", None), ("forward_cupy_rows1", 1)):
            cupy_backend.ROWS = rows
            ms = timed(lambda: cupy_backend.filter_cuda(x, w, n, False), iters)
            gbps = fwd_bytes / ms / 1e6
            row[name] = {"ms": round(ms, 4), "gbps": round(gbps, 1), "of_copy": round(gbps / copy, 3)}
    finally:
        cupy_backend.ROWS = None
        cupy_backend.GATHER4 = True
    row["rows_per_thread"] = cupy_backend.rows_per_thread(n)
    for pas in ("forward", "backward"):
        cu, ref = row.get(f"{pas}_cupy"), row.get(f"{pas}_ref")
        if isinstance(cu, dict) and isinstance(ref, dict):
            row[f"{pas}_speedup"] = round(ref["ms"] / cu["ms"], 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=2, default=(1920, 1080), metavar=("W", "H"))
    ap.add_argument("--channels", type=int, nargs="+", default=(3, 32))
    ap.add_argument("--kernels", type=int, nargs="+", default=(5, 9))
    args = ap.parse_args(argv)
    why = cupy_backend.unavailable()
    if why:
        print(f"weighted_filter_bench needs a GPU and CuPy: {why}", file=sys.stderr)
        return 2
    copy = copy_gbps(args.iters)
    rows = [case(c, n, dt, *args.size, args.iters, copy)
            for c in args.channels for n in args.kernels for dt in (torch.float32, torch.float16)]
    print(json.dumps({
        "device": torch.cuda.get_device_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "cupy": __import__("cupy").__version__,
        "copy_gbps": round(copy, 1), "mode": "gather", "cases": rows,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
