"""StyleGAN2 (config F) and StyleGAN3-R at 1024 px: the flowml graph against a hand-written
PyTorch loop of the same generator, batch 1, fp32 and mixed precision, eager and captured, each
with one tap and three live edits (new values every frame).

    python plugins/flowml-gan/benchmarks/stylegan_bench.py --out $OUT          # on a GPU
    python plugins/flowml-gan/benchmarks/stylegan_bench.py --resolution 256 --small --frames 50   # quick
    python plugins/flowml-gan/benchmarks/stylegan_bench.py --resolution 32 --small --frames 10 --device cpu --modes eager

"flowml": ``stylegan.latent -> stylegan.generator`` run offline for ``--frames`` frames
(``cuda_graph`` false/true, ``precision`` fp32/mixed, ``taps: [one layer half-way]``, three
``edits`` whose values are expressions of ``t``); frames a second over the last 120 frames
(``GraphStats.recent_fps``, after the capture and warm-up). "loop": what one writes by hand for
the same work: w made once, a forward hook keeping the tapped layer, the three edits recomputed
from kept originals and written in place (``copy_``) every frame, ``G.synthesis(w)``, the image
mapped to [0, 1]; captured: the same body in a ``torch.cuda.CUDAGraph`` replayed every frame,
the edits written before each replay. Times from ``flowml.bench.loops.calls_per_s`` (back to
back, one synchronize at the end). The generators are random-weight snapshots in NVIDIA's
layout (``flowml_gan.build``), as fast as trained ones. Prints JSON lines and, with ``--out``,
writes ``stylegan_bench.json`` (ratio = flowml fps / loop fps; targets from issue 14: ratio >=
0.97, StyleGAN2-1024 captured >= 180 fps, StyleGAN3-R-1024 >= 60 fps).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler

GRAPH = """\
flowml: 1
name: stylegan-bench
clock: {{fps: 1000}}
mode: offline
nodes:
  latent: {{type: stylegan.latent, params: {{path: {snap}, seed: 3, psi: 0.7}}}}
  gen:
    type: stylegan.generator
    inputs: {{w: latent/w}}
    cuda_graph: {captured}
    params: {{path: {snap}, precision: {precision}, taps: {taps}, edits: {edits}}}
"""

# three live edits: (op, expression of t); the loop computes the same values with math
EXPRS = [("scale", "1 + 0.5*sin(t*3)", lambda t: 1 + 0.5 * math.sin(t * 3)),
         ("add", "0.2*sin(t*5)", lambda t: 0.2 * math.sin(t * 5)),
         ("scale", "1 + 0.1*cos(t*2)", lambda t: 1 + 0.1 * math.cos(t * 2))]


def pick(G: torch.nn.Module) -> tuple[str, list[str]]:
    """One tap (the synthesis layer half-way) and three weights to edit: the first layer's
    input (StyleGAN2's const, StyleGAN3's Fourier-feature mixing), a style bias half-way,
    the last (toRGB) layer's weight."""
    names = dict(G.named_parameters())
    layers = [n for n, _ in G.named_modules() if n.startswith("synthesis.") and n.count(".") == 1]
    first = "synthesis.b4.const" if "synthesis.b4.const" in names else "synthesis.input.weight"
    biases = [n for n in names if n.startswith("synthesis.") and n.endswith("affine.bias")]
    last = [n for n in names if n.startswith("synthesis.") and n.endswith(".weight")
            and "affine" not in n][-1]
    return layers[len(layers) // 2], [first, biases[len(biases) // 2], last]


class HandLoop:
    """The hand-written loop: ``step(t)`` writes the edits for time t, then runs the body
    (eager, or the captured graph)."""

    def __init__(self, G: torch.nn.Module, tap: str, edits: list[str], precision: str,
                 compiled: bool = False):
        self.G, self.force_fp32 = G, precision == "fp32"
        # torch.compile (Inductor) fuses the elementwise work around the convolutions; an
        # experiment to see what fusion gains, not what the node runs
        self.synthesis = torch.compile(G.synthesis, dynamic=False) if compiled else G.synthesis
        with torch.no_grad():
            from flowml_gan.nodes import seed_z

            device = next(G.parameters()).device
            self.w = G.mapping(seed_z(3, G.z_dim).to(device), None, truncation_psi=0.7)
        params = dict(G.named_parameters())
        self.targets = [params[n] for n in edits]
        self.originals = [p.detach().clone() for p in self.targets]
        self.tapped: dict[str, torch.Tensor] = {}
        self.hook = G.get_submodule(tap).register_forward_hook(self._keep)
        self.graph: torch.cuda.CUDAGraph | None = None

    def _keep(self, module: Any, args: Any, out: Any) -> None:
        self.tapped["tap"] = out[0] if isinstance(out, tuple) else out

    def body(self) -> torch.Tensor:
        img = self.synthesis(self.w, noise_mode="const", force_fp32=self.force_fp32)
        self.image = (img * 0.5 + 0.5).clamp(0, 1)
        return self.image

    def write_edits(self, t: float) -> None:
        # as the node writes them (flowml_torch.edits): one kernel each, into the weight
        for (op, _, f), p, orig in zip(EXPRS, self.targets, self.originals):
            (torch.mul if op == "scale" else torch.add)(orig, f(t), out=p)

    def capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):
                self.body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.body()

    def step(self, t: float) -> None:
        with torch.no_grad():
            self.write_edits(t)
            if self.graph is not None:
                self.graph.replay()
            else:
                self.body()


def frames_for(G: torch.nn.Module, tap: str, edits: list[str], precision: str, frames: int,
               seconds: float) -> int:
    """How many frames fit in ``seconds`` for one timed run (at least 10, at most
    ``frames``), from two eager frames of the hand loop (a slow path stays bounded)."""
    loop = HandLoop(G, tap, edits, precision)
    cuda = next(G.parameters()).is_cuda
    loop.step(0.0)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    loop.step(1 / 60)
    if cuda:
        torch.cuda.synchronize()
    per = time.perf_counter() - t0
    with torch.no_grad():
        for p, orig in zip(loop.targets, loop.originals):
            p.copy_(orig)
    loop.hook.remove()
    return max(10, min(frames, int(seconds / max(per, 1e-6))))


def loop_fps(G: torch.nn.Module, tap: str, edits: list[str], precision: str, captured: bool,
             frames: int, compiled: bool = False) -> float:
    from flowml.bench.loops import calls_per_s

    loop = HandLoop(G, tap, edits, precision, compiled)
    if captured:
        loop.capture()
    clock = iter(range(10 ** 9))
    if torch.cuda.is_available() and next(G.parameters()).is_cuda:
        fps = calls_per_s(lambda: loop.step(next(clock) / 60), n=frames)
    else:  # a CPU smoke run
        loop.step(0.0)  # warm-up (and the compile, with --compiled)
        t0 = time.perf_counter()
        for _ in range(frames):
            loop.step(next(clock) / 60)
        fps = frames / (time.perf_counter() - t0)
    with torch.no_grad():  # leave G as it was
        for p, orig in zip(loop.targets, loop.originals):
            p.copy_(orig)
    loop.hook.remove()
    return fps


def flowml_fps(folder: Path, snap: Path, tap: str, edits: list[str], precision: str,
               captured: bool, frames: int, device: str = "cuda") -> dict[str, Any]:
    spec = [{"name": n, "op": op, "value": {"expr": e}} for n, (op, e, _) in zip(edits, EXPRS)]
    path = folder / "bench.yaml"
    path.write_text(GRAPH.format(snap=snap, captured=str(captured).lower(), precision=precision,
                                 taps=json.dumps([f"tap={tap}"]), edits=json.dumps(spec)))
    graph = load_graph(path, load_registry())
    with Scheduler(graph, device=device) as sched:
        t0 = time.perf_counter()
        result = sched.run(frames=frames)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        if not result.ok:
            raise SystemExit(f"flowml run failed: {result.error}")
        cap = sched.nodes["gen"].captured
        counters = cap.counters() if cap is not None and hasattr(cap, "counters") else {}
        stats = sched.stats
        return {"fps": stats.recent_fps(), "fps_with_start": frames / wall,
                "completed": stats.completed, **counters}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["sg2", "sg3-r"], choices=("sg2", "sg3-t", "sg3-r"))
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--small", action="store_true", help="small channel counts (a quick check)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"])
    ap.add_argument("--modes", nargs="+", default=["eager", "captured"])
    ap.add_argument("--compiled", action="store_true", help=(
        "also time the hand loop with torch.compile'd synthesis (loop_compiled_*; compiling "
        "takes a minute or more per case)"))
    ap.add_argument("--seconds", type=float, default=4.0, help=(
        "at most about this long per timed run: fewer frames than --frames for a slow case"))
    ap.add_argument("--device", default="cuda", help="cuda; cpu only as a smoke run (eager)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("stylegan_bench needs a CUDA GPU (or --device cpu --modes eager for a smoke run)")
    from flowml_gan.build import build
    from flowml_gan.fused import fused_unavailable
    from flowml_gan.snapshot import load_generator

    started = time.perf_counter()
    fused = "off (cpu)" if not args.device.startswith("cuda") else (fused_unavailable() or "cupy kernels")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for config in args.configs:
            snap = build(folder, config, args.resolution, args.small, device=args.device)
            G = load_generator(snap).to(args.device)
            tap, edits = pick(G)
            for precision in args.precision:
                n = frames_for(G, tap, edits, precision, args.frames, args.seconds)
                for mode in args.modes:
                    captured = mode == "captured"
                    row: dict[str, Any] = {"config": config, "resolution": args.resolution,
                                           "precision": precision, "mode": mode, "tap": tap,
                                           "edits": edits, "frames": n,
                                           "filtered_lrelu": fused if config != "sg2" else "-"}
                    try:
                        lf = loop_fps(G, tap, edits, precision, captured, n)
                        fl = flowml_fps(folder, snap, tap, edits, precision, captured, n,
                                        args.device)
                    except Exception as exc:  # report the case, go on with the others
                        row["error"] = f"{type(exc).__name__}: {exc}"
                    else:
                        row.update(loop_ms=round(1e3 / lf, 3), loop_fps=round(lf, 1),
                                   flowml_ms=round(1e3 / fl["fps"], 3), flowml_fps=round(fl["fps"], 1),
                                   ratio=round(fl["fps"] / lf, 3),
                                   flowml=({k: (round(v, 1) if isinstance(v, float) else v)
                                            for k, v in fl.items() if k != "fps"}))
                    if args.compiled and "error" not in row:
                        try:
                            t0 = time.perf_counter()
                            cf = loop_fps(G, tap, edits, precision, captured, n, compiled=True)
                            row.update(loop_compiled_ms=round(1e3 / cf, 3), loop_compiled_fps=round(cf, 1),
                                       compile_and_run_s=round(time.perf_counter() - t0, 1))
                        except Exception as exc:
                            row["loop_compiled_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            del G
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    result = {"device": name, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "frames": args.frames, "filtered_lrelu": fused,
              "seconds": round(time.perf_counter() - started, 1), "rows": rows}
    lines = [f"{name}, torch {torch.__version__}, {result['date']}, filtered_lrelu: {fused}, "
             f"{result['seconds']} s"]
    for r in rows:
        head = f"{r['config']} {r['resolution']} {r['precision']:5} {r['mode']:8}"
        lines.append(f"{head} error: {r['error']}" if "error" in r else
                     f"{head} flowml {r['flowml_fps']:8.1f} fps ({r['flowml_ms']:.2f} ms)  loop "
                     f"{r['loop_fps']:8.1f} fps  ratio {r['ratio']:.3f}  frames {r['frames']}  "
                     f"{ {k: r['flowml'].get(k) for k in ('captures', 'replays', 'eager_calls')} }")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stylegan_bench.json").write_text(json.dumps(result, indent=1))
        (args.out / "stylegan_bench.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
