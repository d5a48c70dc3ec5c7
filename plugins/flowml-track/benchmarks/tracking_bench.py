"""Issue 16's tracking benchmark on a GPU: detect -> track -> square crops -> batch classify.

1080p frames of the synthetic scene (``flowml_track.synth``, ``--objects`` coloured shapes on
known paths) go through four things, each timed over the same frames:

- ``model_alone``: SqueezeNet 1.1 (random weights) on a ready (K, 3, 224, 224) GPU batch of the
  frame's K objects, one call per frame: the rate the classifier allows.
- ``empycustom_stage``: the secondary-classifier step written the way EDGEMATRIX's EMPyCustom
  app is: for each tracked object a PIL crop of its square box, ``Resize((224, 224))``,
  ``ToTensor``, ``Normalize``, ``.cuda()`` one by one, ``torch.cat``, SqueezeNet, softmax,
  ``.cpu()``; boxes and ids from the ground truth.
- ``flowml_stage``: the same step as a graph: host frames (uploaded by the scheduler) ->
  ``crop.square`` (one ``roi_align``) -> ``torch.model`` -> ``classify.join``, same boxes.
- ``flowml_full`` / ``empycustom_full``: with detection and tracking: ``detect.background``
  (MOG2 at ``--detect-scale``) -> ``track.objects`` (ByteTrack) -> the step above; the loop
  does the same detection and tracking with the same code, then its per-object crops.
  ``flowml_full_overlay`` adds ``overlay.tracks`` and a uint8 host sink (a recording).

    python plugins/flowml-track/benchmarks/tracking_bench.py --objects 40 --out tracking.json

Needs a CUDA GPU, flowml with flowml-track, flowml-torch and flowml-std, and ``trackers``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowml import DETECTIONS, IMAGE, Input, Node, Output

HD = (1920, 1080)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRUTH: dict[int, Any] = {}


class TruthTracks(Node):
    """The ground-truth tracks of frame ``tick.index`` (boxes, ids), as a tracker would give."""

    type_name = "bench.truth_tracks"
    inputs = (Input("image", IMAGE),)
    outputs = (Output("detections", DETECTIONS),)

    def process(self, image):
        return TRUTH[self.ctx.tick.index % len(TRUTH)]


def square_box(box, width, height):
    """EMPyCustom's per-object square box (as crop.square's test oracle writes it)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if w > h:
        y1, y2 = y1 - (w - h) / 2, y2 + (w - h) / 2
    else:
        x1, x2 = x1 - (h - w) / 2, x2 + (h - w) / 2
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


class EMPyCustomClassifier:
    """The per-object loop of EMPyCustom's secondary classifier."""

    def __init__(self, model, device: str = "cuda"):
        from torchvision import transforms

        self.model, self.device = model, device
        self.transform = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                             transforms.Normalize(MEAN, STD)])

    def __call__(self, frame: np.ndarray, boxes: np.ndarray, ids: np.ndarray) -> list[dict]:
        from PIL import Image

        if len(boxes) == 0:
            return []
        pil = Image.fromarray(frame)
        crops = []
        for box in boxes:
            crop = pil.crop(square_box(box, pil.width, pil.height))
            crops.append(self.transform(crop).unsqueeze(0).to(self.device))  # .cuda() one by one
        with torch.inference_mode():
            prob = torch.softmax(self.model(torch.cat(crops)), dim=1).max(dim=1)
        p, c = prob.values.cpu().tolist(), prob.indices.cpu().tolist()
        return [{"tracker_id": int(i), "class_id": k, "probability": 100 * q} for i, k, q in zip(ids, c, p)]


def _registry():
    from flowml.bench import nodes
    from flowml.plugins import load_registry

    reg = load_registry()
    missing = [t for t in ("crop.square", "torch.model", "classify.join", "detect.background",
                           "track.objects", "overlay.tracks") if reg.get(t) is None]
    if missing:
        raise SystemExit(f"needs node types {missing} (flowml-track, flowml-torch)")
    for cls in (*nodes.ALL, TruthTracks):
        reg.add(cls, "bench")
    return reg


def graph_fps(text: str, tmp: Path, frames: int, warm: int, device: str) -> tuple[float, dict]:
    """Steady frames/s of a graph over ``frames`` ticks, counted after the first ``warm``."""
    from flowml.graph import load_graph
    from flowml.runtime.scheduler import Scheduler

    path = tmp / "bench.yaml"
    path.write_text(textwrap.dedent(text))
    done: list[float] = []
    with Scheduler(load_graph(path, _registry()), device=device, mode="offline") as sched:
        sched.after_tick.append(lambda tick, out: done.append(time.perf_counter()))
        sched.run()
        stats = sched.stats.as_dict()
    done.sort()
    return (len(done) - 1 - warm) / (done[-1] - done[warm]), stats


def node_means(stats: dict) -> dict:
    return {n: round(v.get("mean_us", 0) / 1000, 3) for n, v in stats.get("nodes", {}).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=40)
    ap.add_argument("--frames", type=int, default=120, help="frames per run")
    ap.add_argument("--warm", type=int, default=25, help="frames not counted")
    ap.add_argument("--classes", type=int, default=1000, help="SqueezeNet's outputs (ImageNet: 1000)")
    ap.add_argument("--detect-scale", type=float, default=0.5,
                    help="detect.background's scale, the graph's and the loop's (default 0.5)")
    ap.add_argument("--detect-threads", type=int, default=1,
                    help="detect.background's OpenCV threads, the graph's and the loop's (default 1)")
    ap.add_argument("--out", default="tracking_bench.json",
                    help="a .json file, or a folder for tracking_bench.json and tracking_bench.txt")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of the script itself")
    ap.add_argument("--size", type=int, nargs=2, default=HD, metavar=("W", "H"))
    a = ap.parse_args()
    dev = a.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("tracking_bench needs a CUDA GPU")
    from flowml.bench.nodes import DATA
    from flowml_track import detections
    from flowml_track.background import BackgroundDetector
    from flowml_track.models import save_squeezenet, squeezenet
    from flowml_track.synth import Scene
    from flowml_track.track import Track
    from flowml.testing import NodeHarness

    scene = Scene(tuple(a.size), a.frames, 30, a.objects, seed=0, warmup=2)
    frames = [scene.render(i) for i in range(a.frames)]
    for i in range(a.frames):
        truth = scene.truth(i)
        TRUTH[i] = detections.make([o["box"] for o in truth], tracker_id=[o["id"] for o in truth])
    k = [len(TRUTH[i]["boxes"]) for i in range(a.frames)]
    DATA["frames"] = frames
    tmp = Path(tempfile.mkdtemp())
    model_path = save_squeezenet(tmp / "squeezenet.pt", classes=a.classes)
    model = torch.jit.load(str(model_path), map_location=dev).eval()
    counted = range(a.warm, a.frames)
    result: dict[str, Any] = {"gpu": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu", "torch": torch.__version__,
                              "python": platform.python_version(), "frame": list(a.size),
                              "objects_per_frame": [min(k), max(k)], "frames": a.frames, "classes": a.classes}

    # model alone: the frame's K crops ready on the GPU, one batch per frame
    batch = torch.randn(max(k), 3, 224, 224, device=dev)
    with torch.inference_mode():
        for _ in range(10):
            model(batch)
        sync()
        t0 = time.perf_counter()
        for i in counted:
            torch.softmax(model(batch[:k[i]]), 1).max(1).values.cpu()
        result["model_alone_fps"] = len(counted) / (time.perf_counter() - t0)

    # EMPyCustom's loop, the classifier step only (boxes from the truth)
    loop = EMPyCustomClassifier(squeezenet(a.classes).to(dev), dev)
    for i in range(5):
        loop(frames[i], TRUTH[i]["boxes"].numpy(), TRUTH[i]["tracker_id"].numpy())
    sync()
    t0 = time.perf_counter()
    for i in counted:
        loop(frames[i], TRUTH[i]["boxes"].numpy(), TRUTH[i]["tracker_id"].numpy())
    result["empycustom_stage_fps"] = len(counted) / (time.perf_counter() - t0)

    stage = f"""
    flowml: 1
    mode: offline
    max_in_flight: 3
    nodes:
      src: {{type: bench.host_frames, params: {{count: {a.frames}}}}}
      tracks: {{type: bench.truth_tracks, inputs: {{image: src/image}}}}
      crops: {{type: crop.square, inputs: {{image: src/image, detections: tracks/detections}}, params: {{size: 224}}}}
      classify: {{type: torch.model, inputs: {{crops: crops/crops}},
                 params: {{path: {model_path}, inputs: [crops], outputs: [logits]}}}}
      join: {{type: classify.join, inputs: {{logits: classify/logits, ids: crops/ids}}}}
    """
    result["flowml_stage_fps"], stats = graph_fps(stage, tmp, a.frames, a.warm, dev)
    result["flowml_stage_node_ms"] = node_means(stats)

    # with detection and tracking: the same code in the loop and in the graph
    full = stage.replace("""      tracks: {type: bench.truth_tracks, inputs: {image: src/image}}""", f"""
      detect: {{type: detect.background, inputs: {{image: src/image}}, params: {{scale: {a.detect_scale}, threads: {a.detect_threads}, min_area: 200}}}}
      tracks: {{type: track.objects, inputs: {{detections: detect/detections}}}}""")
    result["flowml_full_fps"], stats = graph_fps(full, tmp, a.frames, a.warm, dev)
    result["flowml_full_node_ms"] = node_means(stats)
    overlay = full + """
      overlay: {type: overlay.tracks, inputs: {image: src/image, detections: tracks/detections, classes: join/classes}}
      sink: {type: bench.host_sink_u8, inputs: {x: overlay/image}}
    """
    result["flowml_full_overlay_fps"], stats = graph_fps(overlay, tmp, a.frames, a.warm, dev)
    result["flowml_full_overlay_node_ms"] = node_means(stats)

    detector = {"scale": a.detect_scale, "threads": a.detect_threads, "min_area": 200.0}  # as the graph's
    result["detector"] = detector
    with NodeHarness(BackgroundDetector, detector) as det, \
            NodeHarness(Track, {}) as trk:
        t0 = None
        for i in range(a.frames):
            if i == a.warm:
                sync()
                t0 = time.perf_counter()
            found = det.process(image=torch.from_numpy(frames[i])[None], t=i / 30)["detections"]
            tracked = trk.process(detections=found, t=i / 30)["detections"]
            loop(frames[i], tracked["boxes"].numpy(), tracked["tracker_id"].numpy())
        result["empycustom_full_fps"] = len(counted) / (time.perf_counter() - t0)

    result["stage_vs_empycustom"] = result["flowml_stage_fps"] / result["empycustom_stage_fps"]
    result["stage_vs_model_alone"] = result["flowml_stage_fps"] / result["model_alone_fps"]
    result["full_vs_empycustom"] = result["flowml_full_fps"] / result["empycustom_full_fps"]
    result["full_overlay_vs_empycustom"] = result["flowml_full_overlay_fps"] / result["empycustom_full_fps"]
    detect_ms = result["flowml_full_node_ms"].get("detect") or 0
    result["detect_bound_fps"] = 1000 / detect_ms if detect_ms else None  # the detector alone, back to back
    result["full_vs_detect_bound"] = result["flowml_full_fps"] / result["detect_bound_fps"] if detect_ms else None
    out = Path(a.out)
    if out.suffix != ".json":
        out = out / "tracking_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [f"tracking_bench {result['gpu']}: {a.size[0]}x{a.size[1]}, {min(k)}-{max(k)} objects, "
             f"{a.frames} frames, detector {detector}"]
    for key in ("model_alone_fps", "empycustom_stage_fps", "flowml_stage_fps", "empycustom_full_fps",
                "flowml_full_fps", "flowml_full_overlay_fps", "detect_bound_fps", "stage_vs_empycustom",
                "stage_vs_model_alone", "full_vs_empycustom", "full_overlay_vs_empycustom", "full_vs_detect_bound"):
        value = result[key]
        lines.append(f"{key:28s} {value:8.2f}" if value is not None else f"{key:28s}      n/a")
    lines.append(f"flowml_full_node_ms {result['flowml_full_node_ms']}")
    print("\n".join(lines))
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
