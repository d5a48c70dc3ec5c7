"""Where eager StyleGAN2's host time goes inside a graph run (issue 14's eager gap).

``stylegan_bench.py`` runs the loop and the graph one after the other, and on the H200 the
host's speed drifted by up to 2x between runs. This measures inside one run instead. It runs
the bench's graph offline and, before each tick (on the dispatcher, between the graph's
frames), one frame of the hand loop on its own copy of the weights, so both run in the same
surroundings, in turn: the host time of the node's call against the inline loop frame's, each
tick. Then the hand loop alone, for its host time outside a run. Medians in ms. (H200,
2026-12-04: the two calls were equal within 1.5% in six runs; the gap was the tick's time
outside the call, see ``--blocks``.)

``--blocks K`` measures frame rates instead, in short blocks that alternate on one scheduler
and one hand loop (the loop's ``F`` frames, then the graph's ``F`` ticks, K times; no graph
is loaded between them), so that the host's drift, which moved whole rounds of the bench by
up to 2x, falls mostly between pairs rather than inside one: fps per block from CUDA events
(``stylegan_bench.FrameClock``), the ratio per pair, the median pair; and per graph tick the
host time outside the node's call (dispatcher, params, expressions, the latent's call).
``--breakdown`` also times the pieces of that (``PARTS``).

    python plugins/flowml-gan/benchmarks/eager_gap.py [--frames 150] [--rounds 3]
    python plugins/flowml-gan/benchmarks/eager_gap.py --blocks 16 --frames 60 [--breakdown]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import stylegan_bench as sb  # noqa: E402

from flowml.control import ControlSession, ControlSettings  # noqa: E402
from flowml.graph import load_graph  # noqa: E402
from flowml.plugins import load_registry  # noqa: E402
from flowml.runtime.scheduler import Scheduler  # noqa: E402


def _ms(xs: list[float]) -> float:
    return round(1e3 * statistics.median(xs), 3)


def _setup(snap: Path, folder: Path, device: str, precision: str) -> tuple[Path, Any]:
    """The bench's graph file (``stylegan_bench.graph_file``: eager, one tap, three expression
    edits) and the hand loop of the same work on its own copy of the generator."""
    from flowml_gan.snapshot import load_generator

    G = load_generator(snap).to(device)
    tap, edits = sb.pick(G)
    path = sb.graph_file(folder / f"gap-{precision}.yaml", snap, tap, edits, precision, False)
    return path, sb.HandLoop(G, tap, edits, precision)


def _timed(fn: Any, spent: list[float]) -> Any:
    """``fn`` with each call's seconds appended to ``spent``."""
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)
    return timed


def _time_process(gen: Any, spent: list[float]) -> None:
    """The generator node's ``process`` timed into ``spent`` (seconds a call)."""
    gen.node.process = _timed(gen.node.process, spent)


def run(snap: Path, folder: Path, frames: int, stream: str, device: str) -> dict[str, Any]:
    path, loop = _setup(snap, folder, device, "fp32")
    cuda = device.startswith("cuda")
    node_s: list[float] = []
    inline_s: list[float] = []
    with Scheduler(load_graph(path, load_registry()), device=device) as sched:
        session = ControlSession(sched, ControlSettings(), graph_path=path, say=lambda s: None)
        gen = sched.nodes["gen"]
        _time_process(gen, node_s)
        lane = gen.gpu.lane.stream if cuda and gen.gpu is not None else None

        def before(tick: Any) -> None:
            use = lane if stream == "lane" else (torch.cuda.default_stream() if cuda else None)
            with torch.inference_mode(), (torch.cuda.stream(use) if use is not None else nullcontext()):
                loop.write_edits(tick.index / 60)
                t0 = time.perf_counter()
                loop.run()
                inline_s.append(time.perf_counter() - t0)

        sched.before_tick.append(before)
        session.start()
        try:
            t0 = time.perf_counter()
            result = sched.run(frames=sb.WARMUP + frames)
            if cuda:
                torch.cuda.synchronize()
            graph_wall = time.perf_counter() - t0
        finally:
            session.stop()
        if not result.ok:
            raise RuntimeError(f"graph run failed: {result.error}")
    alone: list[float] = []
    with torch.inference_mode():
        for i in range(sb.WARMUP + frames):
            loop.write_edits(i / 60)
            t0 = time.perf_counter()
            loop.run()
            alone.append(time.perf_counter() - t0)
        if cuda:
            torch.cuda.synchronize()
    loop.restore()
    w = sb.WARMUP
    return {"stream": stream, "frames": frames,
            "node_call_ms": _ms(node_s[w:]), "inline_loop_ms": _ms(inline_s[w:]),
            "loop_alone_ms": _ms(alone[w:]),
            "run_ms_a_tick": round(1e3 * graph_wall / (w + frames), 3)}  # start and stop included


PARTS = (("flowml.control.store", "ParamStore", "_before_tick"),
         ("flowml.runtime.scheduler", "Scheduler", "_apply_params"),
         ("flowml.runtime.node_runtime", "NodeRuntime", "apply_params"),
         ("flowml.runtime.node_runtime", "NodeRuntime", "call"),
         ("flowml.runtime.scheduler", "Scheduler", "_acquire_slot"),
         ("flowml.runtime.scheduler", "Scheduler", "_next_frame"),
         ("flowml.runtime.scheduler", "Scheduler", "_finish_tick"),
         ("flowml.runtime.completion", "Completion", "poll"))
"""What ``--breakdown`` times in the graph's blocks: the per-tick pieces outside the node's
``process`` (``NodeRuntime.call`` is both nodes' calls, ``process`` included)."""


def _timing(parts: dict[str, list[float]]) -> list[tuple[Any, str, Any]]:
    """Wrap ``PARTS`` with timers into ``parts``; returns what to put back."""
    undo = []
    for module, cls, name in PARTS:
        owner = getattr(importlib.import_module(module), cls)
        fn = getattr(owner, name)
        setattr(owner, name, _timed(fn, parts.setdefault(f"{cls}.{name}", [])))
        undo.append((owner, name, fn))
    return undo


def blocks(snap: Path, folder: Path, count: int, frames: int, device: str,
           precision: str = "fp32", breakdown: bool = False) -> dict[str, Any]:
    """``count`` pairs of blocks, loop then graph, ``frames`` timed frames each (module doc)."""
    path, loop = _setup(snap, folder, device, precision)
    cuda = device.startswith("cuda")
    warm = 3
    pairs: list[tuple[float, float]] = []
    outside: list[float] = []   # per graph tick: host ms between ticks minus the node's call
    with Scheduler(load_graph(path, load_registry()), device=device) as sched:
        session = ControlSession(sched, ControlSettings(), graph_path=path, say=lambda s: None)
        gen = sched.nodes["gen"]
        calls: list[float] = []
        stamps: list[float] = []
        clock = sb.FrameClock(cuda)
        _time_process(gen, calls)
        lane = gen.gpu.lane.stream if cuda and gen.gpu is not None else None
        sched.before_tick.append(lambda tick: stamps.append(time.perf_counter()))
        sched.after_tick.append(lambda tick, ready: clock.mark(lane))
        parts: dict[str, list[float]] = {}
        undo = _timing(parts) if breakdown else []
        session.start()
        try:
            for _ in range(count):
                mine = sb.FrameClock(cuda)
                with torch.inference_mode():
                    for i in range(warm + frames):
                        loop.write_edits(i / 60)
                        loop.run()
                        mine.mark()
                clock.marks.clear()
                calls.clear()
                stamps.clear()
                result = sched.run(frames=warm + frames)
                if not result.ok:
                    raise RuntimeError(f"graph run failed: {result.error}")
                pairs.append((mine.fps(warm), clock.fps(warm)))
                outside += [1e3 * (b - a - c) for a, b, c in
                            zip(stamps[warm:], stamps[warm + 1:], calls[warm:])]
        finally:
            session.stop()
            for owner, name, fn in undo:
                setattr(owner, name, fn)
    loop.restore()
    ratios = sorted(g / lo for lo, g in pairs)
    ticks = count * (warm + frames)
    spent = {k: {"us_median": round(1e6 * statistics.median(v), 1), "us_a_tick": round(1e6 * sum(v) / ticks, 1),
                 "calls_a_tick": round(len(v) / ticks, 2)} for k, v in parts.items() if v}
    return {"precision": precision, "blocks": count, "frames": frames,
            "pairs": [{"loop_fps": round(lo, 1), "flowml_fps": round(g, 1), "ratio": round(g / lo, 3)}
                      for lo, g in pairs],
            "ratio_median": round(statistics.median(ratios), 3),
            "ratios_sorted": [round(r, 3) for r in ratios],
            "loop_fps_median": round(statistics.median(lo for lo, _ in pairs), 1),
            "flowml_fps_median": round(statistics.median(g for _, g in pairs), 1),
            "outside_call_ms_median": round(statistics.median(outside), 3) if outside else None,
            **({"breakdown": spent} if breakdown else {})}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--blocks", type=int, help="alternating blocks of --frames frames (module doc)")
    ap.add_argument("--precision", nargs="+", default=["fp32"], help="with --blocks: fp32, mixed")
    ap.add_argument("--breakdown", action="store_true", help=(
        "with --blocks: time the per-tick pieces outside process (PARTS) in the graph's blocks"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    from flowml_gan.build import build

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        snap = build(folder, "sg2", args.resolution, args.small, device=args.device)
        for precision in args.precision if args.blocks else ():
            row = blocks(snap, folder, args.blocks, args.frames, args.device, precision, args.breakdown)
            print(json.dumps(row), flush=True)
            rows.append(row)
        for _ in range(0 if args.blocks else args.rounds):
            for stream in ("lane", "default"):
                row = run(snap, folder, args.frames, stream, args.device)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eager_gap.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
