"""The 3D-CNN graph against EMPyCustom's way of writing it, and against the model alone (GPU).

    python plugins/flowml-analytics/benchmarks/clip3d_bench.py [--frames 600] [--out DIR]

One r3d_18 (torchvision, random weights, TorchScript from ``flowml_analytics.models``) serves
every variant; frames are 640x360 uniform noise made on the GPU by flowml-std's pattern code,
the same for the graph and the loop. For each stride (1: a clip every frame; 8):

- ``flowml``: capture.pattern -> video.clip (T=16) -> torch.model -> classify.topk ->
  rules.match (a rule that never fires) -> action.log, offline. ``flowml_cuda_graph``: the same with the model
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
  either way). ``--batches 8 64`` adds K = 64, which at stride 8 runs the model at batch 8;
  ``128``: batch 16.

Every flowml figure is one run measured past its warm-up (``warm_ticks``: at least 8 ticks and
8 clips out, so start-up, TorchScript's profiling runs and the CUDA graph capture are outside
it), over at least 48 ticks (a batch of 64 frames is 48 x 64 frames, whatever ``--frames``):
``*_wall_fps`` is the frames over the wall clock from a ``torch.cuda.synchronize()`` before the
first measured tick is dispatched to one after the run, so every measured frame's GPU work is
in it and nothing else: the figure the ratios use. ``*_fps`` is the graph's own stats over the
same ticks (the runtime books a tick when its GPU work is done, ``flowml.runtime.completion``);
``ratio_stats_vs_wall`` near 1 says they are honest. (The last version subtracted a short run
from a long one, 3 ticks from 6 at batch 64: noise, an impossible 50645 fps and a 0.) Each
batched row also has the process's CPU time a tick and each node's mean host time a call.

Prints one JSON object (also written to ``DIR/clip3d_bench.json`` with ``--out``, with a short
``DIR/clip3d_bench.txt``). ``--frames 400 --batches 8 64 128`` takes about a minute on an H200.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

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


WARM_TICKS = 8       # at least this many ticks before the measured window (start-up, capture) ...
WARM_CLIPS = 8       # ... and until this many clips have come out (TorchScript's profiling runs, cuDNN)
MEASURED_TICKS = 48  # at least this many ticks measured, whatever --frames says


def warm_ticks(stride: int, batch: int) -> int:
    """Ticks until ``WARM_CLIPS`` clips have come out (the first is due at frame T - 1), and
    two more, at least ``WARM_TICKS``: the model has run several times at its steady batch."""
    return max(WARM_TICKS, (T - 1 + WARM_CLIPS * stride) // batch + 2)


def flowml_run(tmp: Path, model: Path, stride: int, frames: int, cuda_graph: bool, batch: int = 1,
               device: str = "cuda", node_us: dict | None = None, min_ticks: int = MEASURED_TICKS,
               profile: Callable[[], Any] | None = None) -> dict:
    """One run of the graph, ``warm_ticks`` ticks then ``frames`` more (whole ticks of ``batch``
    frames, at least ``min_ticks``), measured over those only:

    - ``wall_fps``: the measured frames over the wall clock from a ``synchronize()`` at the
      start of tick ``warm`` (on the dispatcher, before that tick is dispatched: every earlier
      tick's GPU work is done) to one after ``sched.run()`` returned: every measured frame's
      GPU work and nothing else, whatever the runtime counts as a tick's completion.
    - ``fps``: the graph's own stats over the same ticks: frames between the first and the
      last completion the runtime booked for them (``GraphStats.tick_done``, which counts a
      tick when its GPU work has passed, ``runtime.completion``), over the time between them;
      ``completions_seen``: how many (``ticks`` unless one failed).
      The two agreeing says the runtime's stats are honest.
    - ``ticks``, ``seconds``; ``host_cpu_us_a_tick``: the process's CPU time a measured tick
      (every thread: dispatcher, source, workers, the CUDA driver's); ``dispatcher_cpu_us_a_tick``.
    - ``captures``: the captured model's counters (``cuda_graph: true``).

    ``node_us`` gets each node's mean host time a call over the measured ticks (what its
    thread spends in ``process``) with its calls and skips. ``profile``: a context manager
    factory (e.g. a ``torch.profiler.profile``) entered at the mark and left after the run."""
    warm, ticks = warm_ticks(stride, batch), max(min_ticks, -(-frames // batch))
    total = (warm + ticks) * batch
    rules = tmp / "rules.json"
    rules.write_text(json.dumps([{"rule_name": "never", "and": [
        {"key": "probability", "operator": ">", "value": 100}], "action": {"action_name": "log"}}]))
    path = tmp / "graph.yaml"
    batched = batch > 1
    path.write_text(GRAPH.format(w=W, h=H, frames=total, t=T, stride=stride, model=model, rules=rules,
                                 rw=RESIZE[1], rh=RESIZE[0], cw=CROP[1], ch=CROP[0],
                                 log=tmp / "events.jsonl", cuda_graph=str(cuda_graph).lower(),
                                 device=device, batch=batch, input="frames" if batched else "streams",
                                 wire=", frames: src/frames" if batched else "",
                                 top_wire=", frames: clip/frames" if batched else ""))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    mark: dict[str, Any] = {}
    done: list[float] = []
    with Scheduler(load_graph(path, load_registry())) as sched:
        booked = sched.stats.tick_done

        def tick_done(latency_s: float, ok: bool = True) -> None:
            booked(latency_s, ok)
            if "t0" in mark:
                done.append(time.perf_counter())

        def before(tick) -> None:
            if tick.index == warm:
                sync()
                # completions booked after the mark that are still of earlier ticks (in flight
                # at the mark; ticks are booked in the order they were handed in)
                mark["earlier"] = warm - sched.stats.completed - sched.stats.failed
                mark["nodes"] = {k: (n.stats.calls, n.stats.total_s, n.stats.skipped)
                                 for k, n in sched.nodes.items()}
                if profile is not None:
                    mark["profile"] = profile()
                    mark["profile"].__enter__()
                mark["cpu0"], mark["disp0"] = time.process_time(), time.thread_time()
                mark["t0"] = time.perf_counter()
            elif tick.index == warm + ticks - 1:
                mark["disp1"] = time.thread_time()

        sched.stats.tick_done = tick_done  # type: ignore[method-assign]
        sched.before_tick.append(before)
        result = sched.run()
        sync()
        t1 = time.perf_counter()
        cpu1 = time.process_time()
        if "profile" in mark:
            mark["profile"].__exit__(None, None, None)
        captured = sched.nodes["model"].captured
        counters = captured.counters() if captured is not None else None
        nodes_after = {k: (n.stats.calls, n.stats.total_s, n.stats.skipped) for k, n in sched.nodes.items()}
    if not result.ok:
        raise RuntimeError(str(result.error))
    if "t0" not in mark:
        raise RuntimeError(f"the graph ended before tick {warm}")
    seconds = t1 - mark["t0"]
    if node_us is not None:
        for name, (calls, total_s, skipped) in nodes_after.items():
            c0, s0, k0 = mark["nodes"].get(name, (0, 0.0, 0))
            node_us[name] = {"mean_us": round(1e6 * (total_s - s0) / (calls - c0), 1) if calls > c0 else None,
                             "calls": calls - c0, "skipped": skipped - k0}
    # the stats' figure: the measured ticks' completions, frames after the first over the time since it
    done = done[max(mark["earlier"], 0):]
    stats_fps = batch * (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else 0.0
    return {"fps": stats_fps, "wall_fps": ticks * batch / seconds, "ticks": ticks, "seconds": seconds,
            "completions_seen": len(done),
            "host_cpu_us_a_tick": 1e6 * (cpu1 - mark["cpu0"]) / ticks,
            "dispatcher_cpu_us_a_tick": 1e6 * (mark.get("disp1", mark["disp0"]) - mark["disp0"]) / max(ticks - 1, 1),
            "captures": counters}


def flowml_rates(tmp: Path, model: Path, stride: int, frames: int, cuda_graph: bool, batch: int = 1,
                 device: str = "cuda", node_us: dict | None = None) -> dict:
    """``flowml_run``: ``fps`` (the graph's stats), ``wall_fps`` (synchronize to synchronize)
    and ``captures`` of one run past its warm-up."""
    return flowml_run(tmp, model, stride, frames, cuda_graph, batch, device, node_us)


def flowml_fps(tmp: Path, model: Path, stride: int, frames: int, cuda_graph: bool,
               device: str = "cuda", node_us: dict | None = None) -> float:
    """The graph's frame rate by its own stats (one frame a tick), past the warm-up."""
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
    n = 100 if batch <= 16 else 30  # batch 64: 40 ms a call
    with torch.inference_mode():
        eager = loops.calls_per_s(lambda: net(clip), n=n)
        graphed = loops.calls_per_s(loops.graphed(net, clip), n=n)
    return {"clips_per_s": batch * eager, "clips_per_s_cuda_graph": batch * graphed}


def rates_row(eager: dict, graph: dict, alone: dict, stride: int, empy: float) -> dict:
    """A row of rates: the eager and captured graph (``wall_fps``: synchronize to synchronize,
    the figure the ratios use; ``fps``: the graph's own stats over the same ticks, beside it as
    a check), the model alone at this stride, and the ratios to the loop and to the model alone
    (eager to eager, captured to captured)."""
    r = {"flowml_wall_fps": eager["wall_fps"], "flowml_cuda_graph_wall_fps": graph["wall_fps"],
         "flowml_fps": eager["fps"], "flowml_cuda_graph_fps": graph["fps"], "empy_fps": empy,
         "model_alone_fps": stride * alone["clips_per_s"],
         "model_alone_cuda_graph_fps": stride * alone["clips_per_s_cuda_graph"]}
    r["ratio_flowml_vs_empy"] = max(r["flowml_wall_fps"], r["flowml_cuda_graph_wall_fps"]) / empy
    r["ratio_flowml_vs_model_alone"] = r["flowml_wall_fps"] / r["model_alone_fps"]
    r["ratio_flowml_cuda_graph_vs_model_alone_cuda_graph"] = (
        r["flowml_cuda_graph_wall_fps"] / r["model_alone_cuda_graph_fps"])
    r["ratio_stats_vs_wall"] = r["flowml_fps"] / r["flowml_wall_fps"]
    r["ratio_stats_vs_wall_cuda_graph"] = r["flowml_cuda_graph_fps"] / r["flowml_cuda_graph_wall_fps"]
    out: dict = {k: round(v, 3) for k, v in r.items()}
    for name, run in (("eager", eager), ("cuda_graph", graph)):
        out[f"{name}_run"] = {"ticks": run["ticks"], "seconds": round(run["seconds"], 3),
                              "host_cpu_us_a_tick": round(run["host_cpu_us_a_tick"], 1),
                              "dispatcher_cpu_us_a_tick": round(run["dispatcher_cpu_us_a_tick"], 1)}
    out["cuda_graph_captures"] = graph["captures"]
    return out


def batch_row(tmp: Path, model: Path, stride: int, frames: int, batch: int, alone: dict,
              empy: float) -> dict:
    """The batched graph at this stride (eager and captured) against the loop and ``alone``:
    the model alone at the batch the graph's model runs at (the clips due in a tick,
    ``max(1, batch // stride)``)."""
    nodes: dict = {}
    eager = flowml_rates(tmp, model, stride, frames, False, batch, node_us=nodes)
    graph = flowml_rates(tmp, model, stride, frames, True, batch)
    out = rates_row(eager, graph, alone, stride, empy)
    out["clips_a_tick"] = batch // stride if stride <= batch else f"one every {stride // batch} ticks"
    out["model_batch"] = max(1, batch // stride)
    out["flowml_eager_node_us"] = nodes
    return out


def cuda_or_exit(name: str) -> None:
    """Exit unless a CUDA GPU is there; quiet the deprecation warnings torchvision and TorchScript
    print on the way (this bench's and clip3d_profile's start)."""
    if not torch.cuda.is_available():
        sys.exit(f"{name} needs a CUDA GPU")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def r3d_model(folder: Path) -> tuple[Path, torch.jit.ScriptModule]:
    """r3d_18 with random weights exported to ``folder`` as TorchScript for (1, 3, T, 112, 112)
    clips, and that file loaded on cuda: the graph's model and the loops' model."""
    model = models.export(models.build("r3d_18"), folder / "r3d_18.pt", frames=T, size=CROP[0])
    return model, torch.jit.load(str(model), map_location="cuda").eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600,
                    help=f"frames measured a graph run (default 600; at least {MEASURED_TICKS} ticks)")
    ap.add_argument("--strides", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--batches", type=int, nargs="+", default=[8],
                    help="frames a tick of the batched rows (default 8; 64 at stride 8 runs the model "
                         "at batch 8, 128 at batch 16)")
    ap.add_argument("--out", type=Path, default=None, help="folder for clip3d_bench.json")
    a = ap.parse_args()
    cuda_or_exit("clip3d_bench")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model, net = r3d_model(tmp)
        alone = model_alone(net)
        report = {"device": device_name(), "torch": torch.__version__, "model": "r3d_18", "T": T,
                  "source": f"{W}x{H}", "frames": a.frames, "model_alone": alone,
                  "model_alone_batch_8": model_alone(net, 8), "strides": {}}
        by_batch = {1: alone, 8: report["model_alone_batch_8"]}
        flowml_run(tmp, model, 1, 16, False, min_ticks=16)  # warm-up: cuDNN, TorchScript, the allocator
        for k in a.batches:  # the same at the batched shapes
            flowml_run(tmp, model, 1, k, False, k, min_ticks=2)
        for stride in a.strides:
            nodes: dict = {}
            eager = flowml_rates(tmp, model, stride, a.frames, False, node_us=nodes)
            graph = flowml_rates(tmp, model, stride, a.frames, True)
            row = rates_row(eager, graph, alone, stride, empy_fps(net, stride, a.frames))
            row["flowml_eager_node_us"] = nodes
            for k in a.batches:
                n = max(1, k // stride)
                if n not in by_batch:
                    by_batch[n] = report[f"model_alone_batch_{n}"] = model_alone(net, n)
                row[f"batch_{k}"] = batch_row(tmp, model, stride, a.frames, k, by_batch[n], row["empy_fps"])
            report["strides"][str(stride)] = row
    text = json.dumps(report, indent=2)
    print(text)
    lines = [f"clip3d_bench {report['device']}: r3d_18 T={T} {W}x{H}, at least {a.frames} frames a run "
             "(fps: wall clock, synchronize to synchronize past the warm-up; [the graph's own stats])"]

    def rates(r: dict) -> str:
        return (f"flowml {r['flowml_wall_fps']:.0f} [{r['flowml_fps']:.0f}] fps eager, "
                f"{r['flowml_cuda_graph_wall_fps']:.0f} [{r['flowml_cuda_graph_fps']:.0f}] captured")

    for stride, r in report["strides"].items():
        lines.append(f"stride {stride}: {rates(r)}; loop {r['empy_fps']:.0f}; model alone "
                     f"{r['model_alone_fps']:.0f} / {r['model_alone_cuda_graph_fps']:.0f}: "
                     f"{r['ratio_flowml_vs_empy']:.2f}x the loop, {r['ratio_flowml_vs_model_alone']:.2f}x / "
                     f"{r['ratio_flowml_cuda_graph_vs_model_alone_cuda_graph']:.2f}x the model alone")
        for k in a.batches:
            b = r[f"batch_{k}"]
            lines.append(f"  batch {k}: {rates(b)}; model alone at batch {b['model_batch']} "
                         f"{b['model_alone_fps']:.0f} / {b['model_alone_cuda_graph_fps']:.0f}: "
                         f"{b['ratio_flowml_vs_empy']:.2f}x the loop, {b['ratio_flowml_vs_model_alone']:.2f}x / "
                         f"{b['ratio_flowml_cuda_graph_vs_model_alone_cuda_graph']:.2f}x the model alone; "
                         f"host CPU {b['eager_run']['host_cpu_us_a_tick'] / 1000:.1f} ms a tick")
    print("\n".join(lines))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "clip3d_bench.json").write_text(text)
        (a.out / "clip3d_bench.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
