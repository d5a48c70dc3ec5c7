"""What live weight edits cost a captured generator: frames a second through the graph
(``stylegan.latent`` -> ``stylegan.generator``, ``cuda_graph: true``) with no edit, and with
one tap and three edits whose values follow expressions (a new value every frame), plus the
capture's counters (captures, recaptures, replays, eager calls: live edits must leave it at one
capture and no eager call).

    python plugins/flowml-gan/benchmarks/live_edits_bench.py --config sg2 --resolution 1024
    python plugins/flowml-gan/benchmarks/live_edits_bench.py --config sg2 --resolution 32 --small --device cpu

Prints one JSON line per case; with --out DIR also writes DIR/live_edits_<config>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from flowml.control import ControlSession, ControlSettings
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler

GRAPH = """\
flowml: 1
name: live-edits-bench
clock: {{fps: 1000}}
mode: offline
nodes:
  latent: {{type: stylegan.latent, params: {{path: {snap}, seed: 3}}}}
  gen:
    type: stylegan.generator
    inputs: {{w: latent/w}}
    cuda_graph: {captured}
    params:
      path: {snap}
      precision: {precision}
      taps: {taps}
      edits: {edits}
"""


def pick(names: list[str], modules: list[str]) -> tuple[list[str], list[dict]]:
    """One tap (a synthesis layer half-way) and three edits on weights in the network."""
    first = next(n for n in ("synthesis.input.weight", "synthesis.b4.const") if n in names)
    bias = next(n for n in names if n.endswith("affine.bias"))
    rgb = next((n for n in names if "torgb.weight" in n), None) or next(
        n for n in reversed(names) if n.endswith(".weight"))
    layers = [m for m in modules if m.startswith("synthesis.") and m.count(".") == 1]
    edits = [{"name": first, "op": "scale", "value": {"expr": "1 + 0.5*sin(t*3)"}},
             {"name": bias, "op": "add", "value": {"expr": "0.2*sin(t*5)"}},
             {"name": rgb, "op": "scale", "value": {"expr": "1 + 0.1*cos(t*2)"}}]
    return [f"tap={layers[len(layers) // 2]}"], edits


def run_case(folder: Path, snap: Path, device: str, precision: str, frames: int,
             taps: list[str], edits: list[dict]) -> dict:
    captured = "true" if device.startswith("cuda") else "false"
    path = folder / "g.yaml"
    path.write_text(GRAPH.format(snap=snap, captured=captured, precision=precision,
                                 taps=json.dumps(taps), edits=json.dumps(edits)))
    graph = load_graph(path, load_registry())
    with Scheduler(graph, device=device) as sched:
        session = ControlSession(sched, ControlSettings(), graph_path=path, say=lambda s: None)
        session.start()
        t0 = time.perf_counter()
        result = sched.run(frames=frames)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        session.stop()
        cap = sched.nodes["gen"].captured
        counters = cap.counters() if cap is not None else {}
        stats = sched.stats
        drops = stats.source_drops + sum(n.drops for n in stats.nodes.values())
        if not result.ok:
            raise SystemExit(f"run failed: {result.error}")
        return {"precision": precision, "taps": len(taps), "live_edits": len(edits),
                "fps_last_120": round(stats.recent_fps(), 1), "fps_all": round(frames / wall, 1),
                "completed": stats.completed, "drops": drops, **counters}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sg2", choices=("sg2", "sg3-t", "sg3-r"))
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--small", action="store_true", help="small channel counts (a quick check)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", nargs="+", default=["fp32", "mixed"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "models"))
    from flowml_gan.build import build
    from flowml_gan.snapshot import load_generator

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gen_device = args.device if args.resolution >= 512 else "cpu"
        snap = build(folder, args.config, args.resolution, args.small, device=gen_device)
        G = load_generator(snap)
        names = list(dict(G.named_parameters())) + list(dict(G.named_buffers()))
        taps, edits = pick(names, [n for n, _ in G.named_modules()])
        del G
        for precision in args.precision:
            for case_taps, case_edits in (([], []), (taps, edits)):
                row = {"config": args.config, "resolution": args.resolution, "device": args.device,
                       **run_case(folder, snap, args.device, precision, args.frames, case_taps, case_edits)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"live_edits_{args.config}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
