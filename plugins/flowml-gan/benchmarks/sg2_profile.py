"""Where a StyleGAN2 frame's GPU time goes: the synthesis network alone (batch 1, w made once),
random weights in the official config F layout (``flowml_gan.build.make_sg2``, as
``stylegan_bench.py`` builds them), for each path (``fused``: ``sg2_fused``'s kernels;
``reference``: the plain-PyTorch ops, NVIDIA's reference ops op for op), precision (fp32,
mixed) and mode (eager, captured as a CUDA graph):

- ``ms``: GPU time a frame, CUDA events around ``--frames`` back-to-back frames (replays when
  captured) divided by their count; ``median_ms``: the median of per-frame event pairs;
- ``kernels``: CUDA kernels a frame and their summed time (``busy_ms``; below ``ms`` by the
  gaps between kernels), then the ``--top`` kernels by time with calls and ms a frame and
  their share of the frame (torch.profiler over ``--profile-frames`` frames);
- ``vs_reference``: max abs difference of the path's image from the reference path's, same
  precision and TF32 settings (eager, the same w).

    python plugins/flowml-gan/benchmarks/sg2_profile.py --out $OUT                 # on a GPU
    python plugins/flowml-gan/benchmarks/sg2_profile.py --paths reference --precision fp32
    python plugins/flowml-gan/benchmarks/sg2_profile.py --resolution 32 --small --device cpu --frames 3

The settings that decide fp32 convolution speed are printed with the results (PyTorch's
defaults: cuDNN may use TF32, matmuls not; this script changes none of them, nor does flowml).
Writes ``sg2_profile.json`` and ``sg2_profile.txt`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

PATHS = ("fused", "reference")


def settings() -> dict[str, Any]:
    """What decides the speed of float32 convolutions and matmuls here."""
    return {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}


class Frame:
    """One frame of the synthesis network for w, eager or (``capture()``) a CUDA graph replay."""

    def __init__(self, G: torch.nn.Module, w: torch.Tensor, precision: str):
        self.G, self.w, self.force_fp32 = G, w, precision == "fp32"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: torch.Tensor | None = None

    def eager(self) -> torch.Tensor:
        with torch.no_grad():
            return self.G.synthesis(self.w, noise_mode="const", force_fp32=self.force_fp32)

    def capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.eager()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self.eager()

    def __call__(self) -> torch.Tensor:
        if self.graph is not None:
            self.graph.replay()
            return self.out  # type: ignore[return-value]
        return self.eager()


def timed(frame: Callable[[], Any], frames: int, cuda: bool) -> dict[str, float]:
    """GPU ms a frame over ``frames`` back-to-back frames, and the per-frame median."""
    for _ in range(3):
        frame()
    if not cuda:
        spans = []
        for _ in range(frames):
            t0 = time.perf_counter()
            frame()
            spans.append(1e3 * (time.perf_counter() - t0))
        return {"ms": sum(spans) / frames, "median_ms": statistics.median(spans)}
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(frames):
        frame()
    end.record()
    marks = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
             for _ in range(frames)]
    for a, b in marks:
        a.record()
        frame()
        b.record()
    torch.cuda.synchronize()
    return {"ms": start.elapsed_time(end) / frames,
            "median_ms": statistics.median(a.elapsed_time(b) for a, b in marks)}


def _device_us(e: Any) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):
        v = getattr(e, name, None)
        if v is not None:
            return float(v)
    return 0.0


def kernels(frame: Callable[[], Any], frames: int, top: int, frame_ms: float, cuda: bool) -> dict[str, Any]:
    """The kernels a frame runs, from torch.profiler (CPU ops by self time on the CPU)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        for _ in range(frames):
            frame()
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        if cuda:
            if getattr(e, "device_type", DeviceType.CUDA) != DeviceType.CUDA:
                continue
            us = _device_us(e)
        else:
            us = float(e.self_cpu_time_total)
        if us > 0:
            rows.append((us, e.count, e.key))
    rows.sort(reverse=True)
    total_us = sum(r[0] for r in rows)
    return {"kernels_a_frame": round(sum(r[1] for r in rows) / frames, 1),
            "busy_ms": round(total_us / frames / 1e3, 3),
            "top": [{"name": name[:110], "calls": round(n / frames, 1), "ms": round(us / frames / 1e3, 4),
                     "pct_of_frame": round(100 * us / frames / 1e3 / frame_ms, 1)}
                    for us, n, name in rows[:top]]}


def run_case(G: torch.nn.Module, w: torch.Tensor, path: str, precision: str, mode: str,
             args: argparse.Namespace, reference: dict[str, torch.Tensor]) -> dict[str, Any]:
    from flowml_gan import sg2_fused

    cuda = args.device.startswith("cuda")
    sg2_fused.set_fused(path == "fused")
    row: dict[str, Any] = {"path": path, "precision": precision, "mode": mode}
    if path == "fused" and sg2_fused.sg2_fused_unavailable() and cuda:
        row["fused_off"] = sg2_fused.sg2_fused_unavailable()  # then this row is the reference
    try:
        frame = Frame(G, w, precision)
        image = frame.eager().clone()
        if precision in reference:
            row["vs_reference"] = float((image - reference[precision]).abs().max())
        elif path == "reference":
            reference[precision] = image
        if mode == "captured":
            frame.capture()
            row["replay_vs_eager"] = float((frame().clone() - image).abs().max())
        row.update({k: round(v, 4) for k, v in timed(frame, args.frames, cuda).items()})
        row["fps"] = round(1e3 / row["ms"], 1)
        row.update(kernels(frame, args.profile_frames, args.top, row["ms"], cuda))
    except Exception as exc:  # report the case, go on with the others
        row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
    finally:
        sg2_fused.set_fused(None)
    return row


def text(result: dict[str, Any]) -> str:
    lines = [f"{result['device']}, torch {result['torch']}, {result['date']}, SG2-{result['resolution']}"
             f"{' small' if result['small'] else ''}, {result['frames']} frames; {json.dumps(result['settings'])}"]
    for r in result["rows"]:
        head = f"{r['path']:9} {r['precision']:5} {r['mode']:8}"
        if "error" in r:
            lines.append(f"{head} error: {r['error']}")
            continue
        extra = "".join(f"  {k} {r[k]:.3g}" for k in ("vs_reference", "replay_vs_eager") if k in r)
        lines.append(f"{head} {r['ms']:7.3f} ms ({r['fps']:6.1f} fps, median {r['median_ms']:.3f})  "
                     f"{r['kernels_a_frame']:6.1f} kernels, busy {r['busy_ms']:.3f} ms{extra}"
                     + (f"  [fused off: {r['fused_off']}]" if "fused_off" in r else ""))
        for k in r["top"]:
            lines.append(f"      {k['pct_of_frame']:5.1f}%  {k['ms']:7.4f} ms  x{k['calls']:<5} {k['name']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--small", action="store_true", help="small channel counts (a quick check)")
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"], choices=("fp32", "mixed"))
    ap.add_argument("--modes", nargs="+", default=["eager", "captured"], choices=("eager", "captured"))
    ap.add_argument("--frames", type=int, default=50, help="timed frames (replays) per case")
    ap.add_argument("--profile-frames", type=int, default=10)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only as a smoke run (eager, host clock)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("sg2_profile needs a CUDA GPU (or --device cpu for a smoke run)")
    if not cuda:
        args.modes = [m for m in args.modes if m != "captured"] or ["eager"]
    from flowml_gan.build import make_sg2
    from flowml_gan.nodes import seed_z

    G = make_sg2(args.resolution, args.small, device=args.device).to(args.device)
    with torch.no_grad():
        w = G.mapping(seed_z(3, G.z_dim).to(args.device), None, truncation_psi=0.7)
    # the reference first: its images are what the fused rows are compared with
    paths = sorted(args.paths, key=lambda p: p != "reference")
    reference: dict[str, torch.Tensor] = {}
    rows = []
    for precision in args.precision:
        for path in paths:
            for mode in args.modes:
                row = run_case(G, w, path, precision, mode, args, reference)
                print(json.dumps(row), flush=True)
                rows.append(row)
    result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "resolution": args.resolution, "small": args.small,
              "frames": args.frames, "settings": settings(), "rows": rows}
    report = text(result)
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sg2_profile.json").write_text(json.dumps(result, indent=1))
        (args.out / "sg2_profile.txt").write_text(report + "\n")
    return result


if __name__ == "__main__":
    main()
