"""What one tick of the stride-8 3D-CNN graph costs on the host, on the CPU (no GPU needed).

    python plugins/flowml-analytics/benchmarks/tick_profile.py [--stride 8] [--frames 3000] [--batch 1] [--profile]

clip3d_bench's graph (capture.pattern -> video.clip -> torch.model -> classify.topk ->
rules.match -> action.log) with tiny tensors (16x12 frames, 8x8 crops, a model that takes the
mean), so what is measured is the per-tick Python work (the framework's and the nodes'), the
part that bounds the GPU graph at stride 8. Prints the dispatcher thread's and the source
thread's CPU time a frame (ticks 100 to the end, no start-up) and, with ``--profile``, the
calls a frame and cProfile's top functions for each thread. ``--batch K``: the batched graph
(capture.pattern ``batch: K`` -> video.clip ``input: frames``), ``--frames`` ticks of K frames,
the figures a tick. The GPU side of a batched tick: ``clip3d_profile.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime import clock as clockmod
from flowml.runtime.scheduler import Scheduler

sys.path.insert(0, str(Path(__file__).parent))
import clip3d_bench  # noqa: E402

_PUMP: dict = {}


class _Mean(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3, 4))


def _profiled_loop(original):
    def loop(self):
        prof = _PUMP.get("profile")
        t0 = time.thread_time()
        if prof is not None:
            prof.enable()
        try:
            original(self)
        finally:
            if prof is not None:
                prof.disable()
            _PUMP["cpu_s"] = time.thread_time() - t0
    return loop


def run(tmp: Path, stride: int, frames: int, profile: bool = False, batch: int = 1
        ) -> tuple[dict, cProfile.Profile | None]:
    """``frames`` ticks of ``batch`` frames (``input: frames`` for batch > 1); per tick: the
    wall time, the dispatcher's CPU time and the source thread's (ticks 100 to the end)."""
    model = tmp / "mean.pt"
    torch.jit.save(torch.jit.trace(_Mean(), torch.randn(1, 3, 16, 8, 8)), str(model))
    rules = tmp / "rules.json"
    rules.write_text(json.dumps([{"rule_name": "never", "and": [
        {"key": "probability", "operator": ">", "value": 100}], "action": {"action_name": "log"}}]))
    path = tmp / "graph.yaml"
    path.write_text(clip3d_bench.GRAPH.format(
        w=16, h=12, frames=frames, t=16, stride=stride, model=model, rules=rules, rw=10, rh=8, cw=8, ch=8,
        log=tmp / "events.jsonl", cuda_graph="false", device="cpu", batch=batch,
        input="frames" if batch > 1 else "streams", wire=", frames: src/frames" if batch > 1 else "",
        top_wire=", frames: clip/frames" if batch > 1 else "").replace(f"frames: {frames}, batch", f"frames: {frames * batch}, batch"))
    _PUMP.clear()
    if profile:
        _PUMP["profile"] = cProfile.Profile()
    marks: dict[int, tuple[float, float]] = {}
    with Scheduler(load_graph(path, load_registry())) as sched:
        def mark(tick):
            if tick.index in (100, frames - 1):
                marks[tick.index] = (time.perf_counter(), time.thread_time())
        sched.before_tick.append(mark)
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        result = sched.run()
        if prof is not None:
            prof.disable()
    if not result.ok:
        raise SystemExit(str(result.error))
    n = frames - 101
    (w0, c0), (w1, c1) = marks[100], marks[frames - 1]
    return {"wall_us": (w1 - w0) / n * 1e6, "dispatcher_cpu_us": (c1 - c0) / n * 1e6,
            "source_thread_cpu_us": _PUMP["cpu_s"] / frames * 1e6}, prof  # all a tick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--frames", type=int, default=3000, help="ticks (of --batch frames each)")
    ap.add_argument("--batch", type=int, default=1, help="frames a tick (capture.pattern batch: K)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also cProfile both threads")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)
    clockmod.SourcePump._loop = _profiled_loop(clockmod.SourcePump._loop)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run(tmp, a.stride, 300, batch=a.batch)  # warm-up
        for _ in range(a.rounds):
            print({k: round(v, 1) for k, v in run(tmp, a.stride, a.frames, batch=a.batch)[0].items()})
        if a.profile:
            _, prof = run(tmp, a.stride, a.frames, profile=True, batch=a.batch)
            for name, p in (("dispatcher", prof), ("source thread", _PUMP["profile"])):
                stats = pstats.Stats(p)
                print(f"{name}: {stats.total_calls / a.frames:.1f} calls a frame")
                stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
