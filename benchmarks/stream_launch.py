"""Host cost of launching torch ops on a side stream against the default stream (issue 14).

The eager StyleGAN2-1024 hand loop ran 0.876x as fast on a side stream as on the default
stream (H200, 2026-12-04 20:07 UTC, cores 2-5, medians of 5 rounds), which is where flowml's
nodes run. This times the host side of single ops of the kinds the generator issues
(elementwise, cuDNN convolution, cuBLAS matmul, a reduction, an allocation) on each stream in
turn, ``--rounds`` times, tiny tensors so that the GPU keeps up and the host's launch path is
what is timed; medians in microseconds an op. ``--stylegan RES`` adds whole eager frames of
StyleGAN2 (microseconds to the end of the GPU's work).

    python benchmarks/stream_launch.py [--ops 400] [--rounds 9] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F


def cases(dev: torch.device) -> dict[str, Callable[[], object]]:
    x = torch.randn(1, 64, 16, 16, device=dev)
    w = torch.randn(64, 64, 3, 3, device=dev)
    a = torch.randn(8, 512, device=dev)
    b = torch.randn(512, 512, device=dev)
    s = torch.randn(1, 512, device=dev)
    return {
        "mul_scalar": lambda: x * 0.5,
        "add_tensor": lambda: x + x,
        "lrelu": lambda: F.leaky_relu(x, 0.2),
        "conv2d_cudnn": lambda: F.conv2d(x, w, padding=1),
        "linear_cublas": lambda: F.linear(a, b),
        "addmm_cublas": lambda: torch.addmm(s, a[:1], b),
        "sum_reduce": lambda: x.square().sum(dim=[2, 3]),
        "empty_alloc": lambda: torch.empty(1, 64, 16, 16, device=dev),
    }


def stylegan_case(dev: torch.device, resolution: int) -> Callable[[], object]:
    """One eager StyleGAN2 frame (flowml-gan's generator, random weights in NVIDIA's layout)."""
    import tempfile

    from flowml_gan.build import build
    from flowml_gan.nodes import seed_z
    from flowml_gan.snapshot import load_generator

    with tempfile.TemporaryDirectory() as tmp:
        G = load_generator(build(Path(tmp), "sg2", resolution, False, device=str(dev))).to(dev)
    w = G.mapping(seed_z(3, G.z_dim).to(dev), None, truncation_psi=0.7).detach()
    return lambda: G.synthesis(w, noise_mode="const", force_fp32=True)


def time_ops(fn: Callable[[], object], ops: int, wall: bool = False) -> float:
    """Host microseconds an op for ``ops`` launches (synchronized before and after; ``wall``:
    up to the end of the GPU's work, the frame case's time)."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(ops):
        fn()
    if wall:
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return 1e6 * (t1 - t0) / ops


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--stylegan", type=int, metavar="RES", help=(
        "also one eager StyleGAN2 frame at RES px (flowml-gan), --ops // 40 frames a round"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("stream_launch needs a CUDA GPU")
    dev = torch.device("cuda")
    streams = {"default": None, "side": torch.cuda.Stream(), "side_hi": torch.cuda.Stream(priority=-1)}
    fns = cases(dev)
    counts = {name: args.ops for name in fns}
    if args.stylegan:
        fns[f"sg2_{args.stylegan}_frame"] = stylegan_case(dev, args.stylegan)
        counts[f"sg2_{args.stylegan}_frame"] = max(3, args.ops // 40)
    got: dict[str, dict[str, list[float]]] = {k: {s: [] for s in streams} for k in fns}
    with torch.inference_mode():
        for _ in range(1 + args.rounds):  # the first round warms every stream (handles, pools)
            for name, fn in fns.items():
                for sname, stream in streams.items():
                    with torch.cuda.stream(stream):
                        got[name][sname].append(time_ops(fn, counts[name], name.startswith("sg2")))
        for by in got.values():
            for runs in by.values():
                del runs[0]
    rows = []
    lines = [f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"host us an op, median of {args.rounds} rounds of {args.ops}"]
    for name, by in got.items():
        d, s, h = (statistics.median(by[k]) for k in ("default", "side", "side_hi"))
        rows.append({"op": name, "default_us": round(d, 2), "side_us": round(s, 2), "side_hi_us": round(h, 2),
                     "side_over_default": round(s / d, 3)})
        lines.append(f"  {name:16} default {d:7.2f}  side {s:7.2f}  side/default {s / d:.3f}  "
                     f"high-priority side {h:7.2f}")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stream_launch.json").write_text(json.dumps({"rows": rows, "rounds": got}, indent=1))
        (args.out / "stream_launch.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
