"""The 3D-CNN graph against EMPyCustom's way of writing it, and against the model alone (GPU).

    python plugins/flowml-analytics/benchmarks/clip3d_bench.py [--frames 600] [--out DIR]

One r3d_18 (torchvision, random weights, TorchScript from ``flowml_analytics.models``) serves
every variant; frames are 640x360 uniform noise made on the GPU by flowml-std's pattern code,
the same for the graph and the loop. For each stride (1: a clip every frame; 8):

- ``flowml``: capture.pattern -> video.clip (T=16) -> torch.model -> classify.topk ->
  rules.match (a rule that never fires) -> action.log, offline; the frame rate over the last
  120 ticks (``GraphStats.recent_fps``). ``flowml_cuda_graph``: the same with the model
  captured as a CUDA graph (``cuda_graph: true``).
- ``empy``: the loop as EMPyCustom's 3D-CNN program writes it: each frame resized, cropped and
  normalised, appended to a Python list of GPU tensors; when T are there (and the stride says
  so) ``torch.cat(frames).permute(1, 0, 2, 3).unsqueeze(0)`` makes the clip, the model runs,
  ``{predicted_class, probability}`` comes back with ``.item()``; the oldest frame is dropped.
- ``model_alone``: clips per second of the model on one fixed clip, back to back (eager and
  captured), and the frame rate that allows at this stride (``stride x clips/s``).
- ``batch_8`` (``--batches``): the graph batched over time: ``capture.pattern batch: 8`` (8
  frames a tick) -> ``video.clip input: frames`` (every clip due in the tick, batched: stride 1
  gives 8 clips a tick, stride 8 one) -> the same model, topk, rules and log, eager and
  captured; beside it the model alone at the batch the graph's model runs at
  (``model_batch``: 8 at stride 1, 1 at stride 8; ``model_alone_batch_8`` is in the report
  either way). ``--batches 8 64`` adds K = 64, which at stride 8 runs the model at batch 8.

Every flowml row has two rates: ``*_fps`` from the graph's own stats (``recent_fps`` over the
last 120 ticks, times the frames a tick) and ``*_wall_fps``: the wall clock of whole runs, a
short one subtracted from a long one ((frames - short) / (seconds - short's seconds), each
``sched.run()`` up to a ``torch.cuda.synchronize()``), so start-up, capture and the first
ticks cancel out and every frame's GPU work is counted whatever a tick's completion means.

Prints one JSON object (also written to ``DIR/clip3d_bench.json`` with ``--out``, with a short
``DIR/clip3d_bench.txt``). ``--frames 600`` takes about two minutes on an H200.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from flowml.bench import loops
from flowml.bench.report import device_name
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler
from flowml_analytics import models
from flowml_analytics.clip import KINETICS_MEAN, KINETICS_STD, centre_box
from flowml_std.patterns import noise

W, H, T = 640, 360, 16
RESIZE, CROP = (128, 171), (112, 112)  # (h, w), torchvision's video preset

GRAPH = """\
flowml: 1
mode: offline
max_in_flight: 3
device: {device}
nodes:
  src: {{type: capture.pattern, params: {{pattern: noise, size: [{w}, {h}], frames: {frames}, batch: {batch}}}}}
  clip: {{type: video.clip, inputs: {{image: src/image{wire}}}, params: {{frames: {t}, stride: {stride}, resize: [{rw}, {rh}], crop: [{cw}, {ch}], input: {input}}}}}
  model:
    type: torch.model
    inputs: {{clip: clip/clip}}
    cuda_graph: {cuda_graph}
    params: {{path: {model}, inputs: ["clip:tensor"], outputs: ["logits:tensor"]}}
  top: {{type: classify.topk, inputs: {{logits: model/logits{top_wire}}}}}
  rules: {{type: rules.match, inputs: {{metadata: top/metadata}}, params: {{path: {rules}}}}}
  log: {{type: action.log, inputs: {{events: rules/events}}, params: {{path: {log}}}}}
"""


def flowml_run(tmp: Path, model: Path, stride: int, frames: int, cuda_graph: bool, batch: int = 1,
               device: str = "cuda", node_us: dict | None = None) -> dict:
    """One run of the graph: ``fps`` (its last 120 ticks, ``GraphStats.recent_fps``, times the
    frames a tick), ``seconds`` (wall clock of ``sched.run()`` to a synchronize) and, captured,
    the model's capture counters. ``node_us`` gets each node's mean time a call (host side:
    what the dispatcher spends on it) and its calls/skips. ``batch`` > 1: 8 frames a tick,
    video.clip ``input: frames``."""
    rules = tmp / "rules.json"
    rules.write_text(json.dumps([{"rule_name": "never", "and": [
        {"key": "probability", "operator": ">", "value": 100}], "action": {"action_name": "log"}}]))
    path = tmp / "graph.yaml"
    batched = batch > 1
    path.write_text(GRAPH.format(w=W, h=H, frames=frames, t=T, stride=stride, model=model, rules=rules,
                                 rw=RESIZE[1], rh=RESIZE[0], cw=CROP[1], ch=CROP[0],
                                 log=tmp / "events.jsonl", cuda_graph=str(cuda_graph).lower(),
                                 device=device, batch=batch, input="frames" if batched else "streams",
                                 wire=", frames: src/frames" if batched else "",
                                 top_wire=", frames: clip/frames" if batched else ""))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with Scheduler(load_graph(path, load_registry())) as sched:
        sync()
        t0 = time.perf_counter()
        result = sched.run()
        sync()
        seconds = time.perf_counter() - t0
        captured = sched.nodes["model"].captured
        counters = captured.counters() if captured is not None else None
    if not result.ok:
        raise RuntimeError(str(result.error))
    if node_us is not None:
        for name, n in result.stats.as_dict().get("nodes", {}).items():
            node_us[name] = {k: n[k] for k in ("mean_us", "calls", "skipped") if k in n}
    # recent_fps counts ticks (the last 120: past start-up and capture); a tick is `batch` frames
    return {"fps": batch * result.stats.recent_fps(), "seconds": seconds, "captures": counters}


def flowml_rates(tmp: Path, model: Path, stride: int, frames: int, cuda_graph: bool, batch: int = 1,
                 device: str = "cuda", node_us: dict | None = None) -> dict:
    """A long run (``frames``) and a short one (a quarter, at least 16 ticks): ``fps`` and
    ``captures`` of the long one, ``wall_fps`` = the frames between them over the seconds
    between them (0 when the long run was not the slower: too few frames). Both are whole
    ticks (multiples of ``batch``), so no run ends on a shorter batch that the captured model
    would capture again for."""
    frames -= frames % batch
    short = min(frames // 2, max(frames // 4, 16 * batch))
    short -= short % batch
    small = flowml_run(tmp, model, stride, short, cuda_graph, batch, device)
    full = flowml_run(tmp, model, stride, frames, cuda_graph, batch, device, node_us)
    extra = full["seconds"] - small["seconds"]
    return {"fps": full["fps"], "wall_fps": (frames - short) / extra if extra > 0 else 0.0,
            "captures": full["captures"]}


def flowml_fps(tmp: Path, model: Path, stride: int, frames: int, cuda_graph: bool,
               device: str = "cuda", node_us: dict | None = None) -> float:
    """The graph's frame rate over its last 120 ticks (one frame a tick)."""
    return flowml_run(tmp, model, stride, frames, cuda_graph, 1, device, node_us)["fps"]


def empy_fps(net, stride: int, frames: int, device: str = "cuda") -> float:
    """EMPyCustom's loop: a list of preprocessed GPU frames, torch.cat per clip, .item() out."""
    mean = torch.tensor(KINETICS_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(KINETICS_STD, device=device).view(1, 3, 1, 1)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    top, left = centre_box(*RESIZE, *CROP)
    window: list[torch.Tensor] = []
    results = []

    def step(i: int) -> None:
        frame = noise(i, W, H, 0, device)
        x = F.interpolate(frame, size=RESIZE, mode="bilinear", align_corners=False, antialias=False)
        x = (x[..., top:top + CROP[0], left:left + CROP[1]] - mean) / std
        window.append(x)
        if len(window) == T:
            if (i + 1 - T) % stride == 0:
                clip = torch.cat(window).permute(1, 0, 2, 3).unsqueeze(0)
                probs = torch.softmax(net(clip), dim=1)
                p, c = probs.max(dim=1)
                results.append({"predicted_class": int(c.item()), "probability": float(p.item()) * 100})
            window.pop(0)

    with torch.inference_mode():
        for i in range(2 * T):  # warm-up
            step(i)
        sync()
        t0 = time.perf_counter()
        for i in range(2 * T, 2 * T + frames):
            step(i)
        sync()
    return frames / (time.perf_counter() - t0)


def model_alone(net, batch: int = 1) -> dict[str, float]:
    """Clips per second of the model on one fixed ``(batch, 3, T, 112, 112)`` clip tensor, back
    to back, eager and replayed as a CUDA graph."""
    clip = torch.randn(batch, 3, T, *CROP, device="cuda")
    with torch.inference_mode():
        eager = loops.calls_per_s(lambda: net(clip), n=100)
        graphed = loops.calls_per_s(loops.graphed(net, clip), n=100)
    return {"clips_per_s": batch * eager, "clips_per_s_cuda_graph": batch * graphed}


def batch_row(tmp: Path, model: Path, stride: int, frames: int, batch: int, alone: dict,
              empy: float) -> dict:
    """The batched graph at this stride (eager and captured) against the loop and ``alone``:
    the model alone at the batch the graph's model runs at (the clips due in a tick,
    ``max(1, batch // stride)``)."""
    nodes: dict = {}
    eager = flowml_rates(tmp, model, stride, frames, False, batch, node_us=nodes)
    graph = flowml_rates(tmp, model, stride, frames, True, batch)
    r = {"flowml_fps": eager["fps"], "flowml_wall_fps": eager["wall_fps"],
         "flowml_cuda_graph_fps": graph["fps"], "flowml_cuda_graph_wall_fps": graph["wall_fps"],
         "model_alone_fps": stride * alone["clips_per_s"],
         "model_alone_cuda_graph_fps": stride * alone["clips_per_s_cuda_graph"]}
    best_wall = max(r["flowml_wall_fps"], r["flowml_cuda_graph_wall_fps"])
    r["ratio_flowml_vs_empy"] = max(r["flowml_fps"], r["flowml_cuda_graph_fps"]) / empy
    r["ratio_flowml_wall_vs_empy"] = best_wall / empy
    r["ratio_flowml_wall_vs_model_alone"] = r["flowml_wall_fps"] / r["model_alone_fps"]
    r["ratio_flowml_cuda_graph_wall_vs_model_alone_cuda_graph"] = (
        r["flowml_cuda_graph_wall_fps"] / r["model_alone_cuda_graph_fps"])
    out: dict = {k: round(v, 3) for k, v in r.items()}
    out["clips_a_tick"] = batch // stride if stride <= batch else f"one every {stride // batch} ticks"
    out["model_batch"] = max(1, batch // stride)
    out["cuda_graph_captures"] = graph["captures"]
    out["flowml_eager_node_us"] = nodes
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600, help="frames per graph run (default 600)")
    ap.add_argument("--strides", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--batches", type=int, nargs="+", default=[8],
                    help="frames a tick of the batched rows (default 8; 64 at stride 8 runs the model at batch 8)")
    ap.add_argument("--out", type=Path, default=None, help="folder for clip3d_bench.json")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("clip3d_bench needs a CUDA GPU")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = models.export(models.build("r3d_18"), tmp / "r3d_18.pt", frames=T, size=CROP[0])
        net = torch.jit.load(str(model), map_location="cuda").eval()
        alone = model_alone(net)
        report = {"device": device_name(), "torch": torch.__version__, "model": "r3d_18", "T": T,
                  "source": f"{W}x{H}", "frames": a.frames, "model_alone": alone,
                  "model_alone_batch_8": model_alone(net, 8), "strides": {}}
        by_batch = {1: alone, 8: report["model_alone_batch_8"]}
        flowml_fps(tmp, model, 1, 60, False)  # warm-up: cuDNN picks its algorithms, TorchScript profiles
        for k in a.batches:  # the same at the batched shapes
            flowml_run(tmp, model, 1, 4 * k, False, k)
        for stride in a.strides:
            nodes: dict = {}
            eager = flowml_rates(tmp, model, stride, a.frames, False, node_us=nodes)
            graph = flowml_rates(tmp, model, stride, a.frames, True)
            r = {"flowml_fps": eager["fps"], "flowml_cuda_graph_fps": graph["fps"],
                 "flowml_wall_fps": eager["wall_fps"], "flowml_cuda_graph_wall_fps": graph["wall_fps"],
                 "empy_fps": empy_fps(net, stride, a.frames),
                 "model_alone_fps": stride * alone["clips_per_s"],
                 "model_alone_cuda_graph_fps": stride * alone["clips_per_s_cuda_graph"]}
            best = max(r["flowml_fps"], r["flowml_cuda_graph_fps"])
            r["ratio_flowml_vs_empy"] = best / r["empy_fps"]
            r["ratio_flowml_vs_model_alone"] = r["flowml_fps"] / r["model_alone_fps"]
            r["ratio_flowml_cuda_graph_vs_model_alone_cuda_graph"] = (
                r["flowml_cuda_graph_fps"] / r["model_alone_cuda_graph_fps"])
            r["ratio_flowml_eager_vs_empy"] = r["flowml_fps"] / r["empy_fps"]
            r["ratio_flowml_wall_vs_empy"] = max(r["flowml_wall_fps"], r["flowml_cuda_graph_wall_fps"]) / r["empy_fps"]
            row: dict = {k: round(v, 3) for k, v in r.items()}
            row["flowml_eager_node_us"] = nodes
            for k in a.batches:
                n = max(1, k // stride)
                if n not in by_batch:
                    by_batch[n] = report[f"model_alone_batch_{n}"] = model_alone(net, n)
                row[f"batch_{k}"] = batch_row(tmp, model, stride, a.frames, k, by_batch[n], r["empy_fps"])
            report["strides"][str(stride)] = row
    text = json.dumps(report, indent=2)
    print(text)
    lines = [f"clip3d_bench {report['device']}: r3d_18 T={T} {W}x{H}, {a.frames} frames "
             "(fps: graph stats / wall clock)"]
    for stride, r in report["strides"].items():
        lines.append(f"stride {stride}: flowml {r['flowml_fps']:.0f}/{r['flowml_wall_fps']:.0f} fps eager, "
                     f"{r['flowml_cuda_graph_fps']:.0f}/{r['flowml_cuda_graph_wall_fps']:.0f} captured; "
                     f"loop {r['empy_fps']:.0f}; model alone {r['model_alone_fps']:.0f} / "
                     f"{r['model_alone_cuda_graph_fps']:.0f}: {r['ratio_flowml_vs_empy']:.2f}x the loop, "
                     f"{r['ratio_flowml_cuda_graph_vs_model_alone_cuda_graph']:.2f}x the model alone (captured)")
        for k in a.batches:
            b = r[f"batch_{k}"]
            lines.append(f"  batch {k}: flowml {b['flowml_fps']:.0f}/{b['flowml_wall_fps']:.0f} fps eager, "
                         f"{b['flowml_cuda_graph_fps']:.0f}/{b['flowml_cuda_graph_wall_fps']:.0f} captured; "
                         f"model alone at batch {b['model_batch']} {b['model_alone_fps']:.0f} / "
                         f"{b['model_alone_cuda_graph_fps']:.0f}: {b['ratio_flowml_wall_vs_empy']:.2f}x the loop (wall), "
                         f"{b['ratio_flowml_wall_vs_model_alone']:.2f}x / "
                         f"{b['ratio_flowml_cuda_graph_wall_vs_model_alone_cuda_graph']:.2f}x the model alone (wall)")
    print("\n".join(lines))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "clip3d_bench.json").write_text(text)
        (a.out / "clip3d_bench.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
