"""Where StyleGAN3-R 1024's frame goes: the synthesis network under ``torch.profiler`` with each
filtered-leaky-ReLU path, fp32 and mixed precision, batch 1 (issue 14: target 60 fps, 16.7 ms).

    python plugins/flowml-gan/benchmarks/sg3_profile.py --out $OUT               # on a GPU
    python plugins/flowml-gan/benchmarks/sg3_profile.py --paths tile --precision mixed --top 25
    python plugins/flowml-gan/benchmarks/sg3_profile.py --resolution 64 --small --device cpu   # smoke

The generator is a random-weight snapshot of the official config (``flowml_gan.build``, as
``stylegan_bench.py`` makes it). For each ``--paths`` entry (``FLOWML_GAN_FUSED``: ``tile`` the
one-kernel filtered_lrelu, ``3pass`` the three-kernel one, ``torch`` the plain-PyTorch op) and
each precision: ``--warmup`` eager frames (NVRTC compiles there), then the frame time of
``G.synthesis(w)`` eager (median of CUDA-event times over ``--frames`` frames) and as a
captured CUDA graph (median replay; the replay is checked against the eager image), then
``--frames`` eager frames under the profiler: the ``--top`` CUDA kernels by total time, each
with calls and ms a frame and its share of the eager frame, and the kernel time by kind
(filtered_lrelu, convolution / GEMM, the rest). Also which path each layer's filtered_lrelu
takes (``fused_tile.tile_unsupported`` says why a layer is not fused), and the plan table in force
(``FLOWML_GAN_FLR_PLANS``, e.g. ``flr_sweep.py``'s ``plans.json``; with half2 plans, ``uv`` 7 / 15, the
"mixed image vs fp32" line is their user-visible effect). Prints a report and,
with ``--out DIR``, writes ``sg3_profile.json`` and ``sg3_profile.txt`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

PATHS = {"tile": "tile", "3pass": "3pass", "torch": "0"}   # --paths -> FLOWML_GAN_FUSED


def kernel_kind(name: str) -> str:
    """A CUDA kernel's kind, by its name: ``filtered_lrelu`` (ours), ``conv/gemm`` (cuDNN,
    cuBLAS, CUTLASS), ``elementwise/other``."""
    n = name.lower()
    if n.startswith(("flr_", "void flr_")) or "flr_tile" in n or "flr_fir" in n:
        return "filtered_lrelu"
    if any(k in n for k in ("conv", "gemm", "cutlass", "xmma", "sm90_", "sm80_", "cudnn", "implicit",
                            "winograd", "fft")):
        return "conv/gemm"
    return "elementwise/other"


def _median_ms(fn: Callable[[], Any], frames: int, cuda: bool) -> float:
    times = []
    for _ in range(frames):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t))
    return float(statistics.median(times))


def captured_ms(run: Callable[[], torch.Tensor], frames: int) -> dict[str, Any]:
    """Capture ``run`` (warmed up on the capturing stream first, as flowml's cuda_graph does),
    replay it ``frames`` times: median replay ms and the replay's largest difference from the
    eager image."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        out = run()
    graph.replay()
    torch.cuda.synchronize()
    diff = (out - run()).abs().max().item()
    return {"ms": _median_ms(graph.replay, frames, True), "replay_vs_eager": diff}


def profile(run: Callable[[], Any], frames: int, cuda: bool, top: int, frame_ms: float) -> dict[str, Any]:
    """``frames`` calls of ``run`` under torch.profiler: the ``top`` kernels (CUDA) or ops (CPU)
    by total self time, per frame, and the time by kernel kind."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with tprofile(activities=acts) as prof:
        for _ in range(frames):
            run()
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        if cuda:
            if getattr(e, "device_type", None) != torch.autograd.DeviceType.CUDA:
                continue
            us = getattr(e, "self_device_time_total", None)
            if us is None:
                us = getattr(e, "self_cuda_time_total", 0.0)
        else:
            us = e.self_cpu_time_total
        if us > 0:
            rows.append((e.key, e.count, us))
    rows.sort(key=lambda r: -r[2])
    total_ms = sum(r[2] for r in rows) / 1e3 / frames
    kinds: dict[str, float] = {}
    for name, _, us in rows:
        k = kernel_kind(name) if cuda else "cpu op"
        kinds[k] = kinds.get(k, 0.0) + us / 1e3 / frames
    return {
        "kernel_ms_per_frame": round(total_ms, 3),
        "by_kind_ms": {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top": [{"name": name, "kind": kernel_kind(name) if cuda else "cpu op",
                 "calls_per_frame": round(count / frames, 2), "ms_per_frame": round(us / 1e3 / frames, 3),
                 "pct_of_frame": round(100 * us / 1e3 / frames / frame_ms, 1) if frame_ms > 0 else None}
                for name, count, us in rows[:top]],
    }


def layer_paths(G: torch.nn.Module, precision: str, device: str) -> list[dict[str, Any]]:
    """Each synthesis layer's filtered_lrelu: its input, and the one-kernel plan or why not."""
    from flowml_gan.fused_tile import tile_plan, tile_unsupported

    out = []
    for name in G.synthesis.layer_names:
        L = getattr(G.synthesis, name)
        fp16 = L.use_fp16 and precision == "mixed" and device.startswith("cuda")
        n = L.in_size[0] + L.conv_kernel - 1
        x = torch.empty(1, L.out_channels, n, n, device="meta", dtype=torch.float16 if fp16 else torch.float32)
        fu, fd = L.up_filter, L.down_filter
        why = tile_unsupported(x, fu, fd, L.up_factor, L.down_factor, L.padding)
        row: dict[str, Any] = {"layer": name, "input": list(x.shape), "dtype": str(x.dtype).split(".")[-1],
                               "up": L.up_factor, "down": L.down_factor,
                               "down_filter": list(fd.shape) if fd is not None else None}
        if why:
            row["tile"] = f"not fused: {why}"
        else:
            p = tile_plan(x, fu, fd, L.up_factor, L.down_factor, L.padding)
            row["tile"] = (f"{p.tw}x{p.th} tiles, ry {p.ry}, {p.threads} threads, variant {p.uv}, "
                           f"{p.smem_bytes // 1024} KB smem")
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sg3-r", choices=("sg3-t", "sg3-r"))
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--small", action="store_true", help="small channel counts (a quick check)")
    ap.add_argument("--paths", nargs="+", default=["3pass", "tile"], choices=tuple(PATHS))
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"], choices=("fp32", "mixed"))
    ap.add_argument("--frames", type=int, default=10, help="profiled (and timed) frames")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--no-capture", action="store_true", help="skip the captured-graph timing")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only as a smoke run (PyTorch op, CPU ops)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("sg3_profile needs a CUDA GPU (or --device cpu for a smoke run)")
    if not cuda:
        args.paths = ["torch"]
    torch.backends.cudnn.benchmark = True

    from flowml_gan import fused
    from flowml_gan.build import make_generator
    from flowml_gan.nodes import seed_z

    started = time.perf_counter()
    saved_env = os.environ.get("FLOWML_GAN_FUSED")
    G = make_generator(args.config, args.resolution, args.small, seed=0, device=args.device)
    G = G.to(args.device).eval().requires_grad_(False)
    with torch.no_grad():
        w = G.mapping(seed_z(3, G.z_dim).to(args.device), None, truncation_psi=0.7)
    rows: list[dict[str, Any]] = []
    images: dict[str, torch.Tensor] = {}
    try:
        for path in args.paths:
            os.environ["FLOWML_GAN_FUSED"] = PATHS[path]
            for precision in args.precision:
                force = precision == "fp32"

                def run(force: bool = force) -> torch.Tensor:
                    with torch.no_grad():
                        return G.synthesis(w, force_fp32=force)

                row: dict[str, Any] = {"path": path, "precision": precision}
                try:
                    for _ in range(args.warmup):
                        img = run()
                    if cuda:
                        torch.cuda.synchronize()
                    row["fused_unavailable"] = fused.fused_unavailable()
                    row["last_layer_path"] = fused.last_path()
                    ref = images.setdefault(precision, img.float())
                    row["image_vs_first_path"] = (img.float() - ref).abs().max().item()
                    if precision == "fp32":
                        images[f"fp32 {path}"] = img.float()
                    elif f"fp32 {path}" in images:   # the user-visible effect of mixed precision
                        d = (img.float() - images[f"fp32 {path}"]).abs()
                        row["mixed_vs_fp32"] = {"max": d.max().item(), "mean": d.mean().item(),
                                                "image_max": images[f"fp32 {path}"].abs().max().item()}
                    row["eager_ms"] = round(_median_ms(run, args.frames, cuda), 3)
                    if cuda and not args.no_capture:
                        try:
                            cap = captured_ms(run, args.frames)
                            row["captured_ms"] = round(cap["ms"], 3)
                            row["replay_vs_eager"] = cap["replay_vs_eager"]
                        except Exception as exc:
                            row["captured_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    row["profile"] = profile(run, args.frames, cuda, args.top, row["eager_ms"])
                    row["layers"] = layer_paths(G, precision, args.device)
                except Exception as exc:  # report the case, go on with the others
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("profile", "layers")}), flush=True)
    finally:
        if saved_env is None:
            os.environ.pop("FLOWML_GAN_FUSED", None)
        else:
            os.environ["FLOWML_GAN_FUSED"] = saved_env

    name = torch.cuda.get_device_name() if cuda else "cpu"
    from flowml_gan.fused_tile import PLANS_ENV

    result = {"device": name, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "flr_plans": os.environ.get(PLANS_ENV) or "defaults (fused_tile.DEFAULT_PLANS)",
              "config": args.config, "resolution": args.resolution, "small": args.small,
              "frames": args.frames, "seconds": round(time.perf_counter() - started, 1), "rows": rows}
    lines = report(result)
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sg3_profile.json").write_text(json.dumps(result, indent=1))
        (args.out / "sg3_profile.txt").write_text("\n".join(lines) + "\n")


def report(result: dict[str, Any]) -> list[str]:
    """The text report: frame times, then per case the kernel kinds and the top kernels."""
    rows = result["rows"]
    lines = [f"{result['config']} {result['resolution']} px{' (small)' if result['small'] else ''}, batch 1, "
             f"{result['device']}, torch {result['torch']}, {result['date']}, {result['seconds']} s",
             f"one-kernel filtered_lrelu plans: {result.get('flr_plans')}", "",
             "path   precision  eager ms  captured ms  (60 fps = 16.7 ms)"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['path']:6} {r['precision']:9}  error: {r['error']}")
            continue
        cap = r.get("captured_ms")
        lines.append(f"{r['path']:6} {r['precision']:9} {r['eager_ms']:9.2f}  "
                     f"{(f'{cap:11.2f}' if cap is not None else r.get('captured_error', '-')[:60]):>11}")
    for r in rows:
        if "mixed_vs_fp32" in r:
            m = r["mixed_vs_fp32"]
            lines.append(f"{r['path']}: mixed image vs fp32: max {m['max']:.4g}, mean {m['mean']:.4g} "
                         f"(fp32 image max |x| {m['image_max']:.4g})")
    by = {(r["path"], r["precision"]): r for r in rows if "error" not in r}
    for precision in ("fp32", "mixed"):
        a, b = by.get(("3pass", precision)), by.get(("tile", precision))
        if a and b:
            lines.append(f"tile vs 3pass, {precision}: eager {a['eager_ms'] / b['eager_ms']:.2f}x"
                         + (f", captured {a['captured_ms'] / b['captured_ms']:.2f}x"
                            if a.get("captured_ms") and b.get("captured_ms") else ""))
    for r in rows:
        if "error" in r:
            continue
        p = r["profile"]
        lines += ["", f"== {r['path']} {r['precision']}: kernels {p['kernel_ms_per_frame']:.2f} ms a frame "
                  f"(eager frame {r['eager_ms']:.2f} ms); by kind: "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in p["by_kind_ms"].items())]
        lines.append(f"{'ms/frame':>9} {'% frame':>8} {'calls':>6}  kind               kernel")
        for t in p["top"]:
            pct = "-" if t["pct_of_frame"] is None else f"{t['pct_of_frame']:.1f}"
            lines.append(f"{t['ms_per_frame']:9.3f} {pct:>8} {t['calls_per_frame']:6.1f}  "
                         f"{t['kind']:18} {t['name'][:100]}")
    if rows and "layers" in rows[-1]:
        lines += ["", "filtered_lrelu per layer (the one-kernel plan, or why a layer is not fused):"]
        for layer in rows[-1]["layers"]:
            lines.append(f"  {layer['layer']:16} in {'x'.join(map(str, layer['input'][1:])):14} "
                         f"{layer['dtype']:8} up {layer['up']} down {layer['down']} fd {layer['down_filter']}: "
                         f"{layer['tile']}")
    return lines


if __name__ == "__main__":
    main()
