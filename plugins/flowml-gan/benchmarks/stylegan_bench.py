"""StyleGAN2 (config F) and StyleGAN3-R at 1024 px: the flowml graph against a hand-written
PyTorch loop of the same generator, batch 1, fp32 and mixed precision, eager and captured, each
with one tap and three live edits (new values every frame).

    python plugins/flowml-gan/benchmarks/stylegan_bench.py --out $OUT          # on a GPU
    python plugins/flowml-gan/benchmarks/stylegan_bench.py --resolution 256 --small --frames 50   # quick
    python plugins/flowml-gan/benchmarks/stylegan_bench.py --resolution 32 --small --frames 10 --device cpu   # smoke, eager

"flowml": ``stylegan.latent -> stylegan.generator`` run offline (``cuda_graph`` false/true,
``precision`` fp32/mixed, ``taps: [one layer half-way]``, three ``edits`` whose values are
expressions of ``t``). "loop": what one writes by hand for the same work: w made once, a
forward hook keeping the tapped layer, the three edits recomputed from kept originals and
written into the weights every frame, ``G.synthesis(w)``, the image mapped to [0, 1];
captured: that body (generator and hook) captured once as a ``torch.cuda.CUDAGraph``, the
edits written into the weights it reads before each replay (``replay_vs_eager`` and
``replay_moves`` check that the replay computes the frame and follows the edits).

Both run ``WARMUP`` frames (flowml's first one captures), then the timed frames back to back;
the loop and the graph run in turn ``--rounds`` times (default 3) and a row is the round with
the median ratio, each round's fps kept in ``rounds`` (a figure of one run each drifted by up
to 45% between runs of the same eager loop on the H200).
Each row's fps is GPU completion: a CUDA timing event recorded on the output's stream after
each frame, from the end of the last warm-up frame to the end of the last frame (the host
never waits per frame). Beside it: ``wall_fps`` (host clock between two synchronizes) and
``gpu_ms``, the median CUDA-event time of one frame's generator call (one replay, captured);
``host_ms`` the mean host time of a timed frame's call (the loop's ``run()``; the node's call,
its edits' writes and ``process``: what the scheduler's stats time); ``check`` says
"IMPOSSIBLE" when a figure beats the GPU time of one frame or the two clocks disagree.
``recent_fps`` is the graph's own figure (its stats count a tick once its GPU work
is done, ``flowml.runtime.completion``), over its last 120 ticks, warm-up included.

Eager rows also time the hand loop in the node's conditions, to say where an eager gap
comes from (an eager frame is host-bound: ~135 kernels launched from Python, the GPU mostly
idle): ``loop_lane`` runs the loop's body as the node's ``process`` runs it (on a side CUDA
stream, as the node's lane, under ``inference_mode`` as the loop and the node run);
``loop_lane_no_grad`` the same under ``no_grad``, as the node ran before 2026-12-04 (every op
then paid autograd's view and version-counter bookkeeping);
``loop_runtime`` adds what the scheduler's run adds around it: its GIL switch interval
(``scheduler.GIL_SWITCH_S``), a completion thread that waits on a blocking-sync event per
frame and then wants the GIL to book it, and at most ``max_in_flight`` (2) frames unfinished;
``loop_runtime_polled``: the same with plain events that the thread polls, so a cost of
blocking-sync events shows apart from one of the thread.
flowml ~ loop_lane < loop: the node's stream or grad mode; flowml ~ loop_runtime < loop_lane:
the threads of the runtime (not the generator); flowml < loop_runtime: the scheduler's own
per-tick work (params, expressions, hooks). These variants run one after another, and on the
H200 the host's drift between runs was larger than what they look for: ``eager_gap.py`` in
this folder measures the same questions in one run (the node's call against a loop frame in
its surroundings; alternating blocks; the tick's pieces). The generators are random-weight snapshots in
NVIDIA's layout (``flowml_gan.build``), as fast as trained ones. Prints JSON lines and, with
``--out``, writes ``stylegan_bench.json`` and ``stylegan_bench.txt`` (ratio = flowml fps / loop fps;
targets from issue 14: ratio >= 0.97, StyleGAN2-1024 captured >= 180 fps, StyleGAN3-R-1024
>= 60 fps).
"""

from __future__ import annotations

import argparse
import json
import math
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from flowml.control import ControlSession, ControlSettings
from flowml.graph import load_graph
from flowml.plugins import load_registry
from flowml.runtime.scheduler import Scheduler

GRAPH = """\
flowml: 1
name: stylegan-bench
clock: {{fps: 60}}
mode: offline
nodes:
  latent: {{type: stylegan.latent, params: {{path: {snap}, seed: 3, psi: 0.7}}}}
  gen:
    type: stylegan.generator
    inputs: {{w: latent/w}}
    cuda_graph: {captured}
    params: {{path: {snap}, precision: {precision}, taps: {taps}, edits: {edits}}}
"""

# three live edits: (op, expression of t); the loop computes the same values with math, at
# the same t (frame / 60, as the graph's offline clock gives it)
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


AS_NODE = ("lane", "lane_no_grad", "runtime", "runtime_polled")
"""The hand loop's variants in the node's conditions (``loop_fps``'s ``as_node``)."""

WARMUP = 5
"""Frames run before the timed ones, by the loop and by flowml alike (flowml's first frame
also captures its graph): they are not timed."""


class FrameClock:
    """When each frame's output was complete: on CUDA a timing event recorded on the stream
    that produced the output, right after it (read after one synchronize at the end; the host
    never waits per frame, so the frames stay pipelined); on the CPU the host time (the work
    is done when the call returns). A host stamp taken when the work was only *enqueued* is
    not a completion time: a captured frame is enqueued in a fraction of a millisecond."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.marks: list[Any] = []

    def mark(self, stream: Any = None) -> None:
        """The current frame's output is queued on ``stream`` (None: the current stream)."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(stream)
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def fps(self, warmup: int) -> float:
        """Frames a second from the end of frame ``warmup - 1`` to the end of the last one."""
        n = len(self.marks) - warmup
        if warmup < 1 or n < 1:
            raise ValueError(f"FrameClock: {len(self.marks)} frames marked, {warmup} warm-up")
        if self.cuda:
            torch.cuda.synchronize()
            ms = self.marks[warmup - 1].elapsed_time(self.marks[-1])
        else:
            ms = 1e3 * (self.marks[-1] - self.marks[warmup - 1])
        return 1e3 * n / ms if ms > 0 else float("inf")


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


class HandLoop:
    """The hand-written loop: ``write_edits(t)`` writes the edits for time t into the weights,
    ``run()`` computes the frame (eager, or one replay of the captured graph, which reads the
    edited weights' storage)."""

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
        self.static_image: torch.Tensor | None = None

    def _keep(self, module: Any, args: Any, out: Any) -> None:
        self.tapped["tap"] = out[0] if isinstance(out, tuple) else out

    def body(self) -> torch.Tensor:
        """One frame, eager: ``(1, 3, H, W)`` in [0, 1]."""
        img = self.synthesis(self.w, noise_mode="const", force_fp32=self.force_fp32)
        return (img * 0.5 + 0.5).clamp(0, 1)

    def write_edits(self, t: float) -> None:
        # as the node writes them (flowml_torch.edits): one kernel each, into the weight
        with torch.no_grad():
            for (op, _, f), p, orig in zip(EXPRS, self.targets, self.originals):
                (torch.mul if op == "scale" else torch.add)(orig, f(t), out=p)

    def capture(self) -> None:
        """Capture ``body`` (the whole generator, tap hook included) as a CUDA graph."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):
                self.body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_image = self.body()

    def run(self) -> torch.Tensor:
        """This frame's image (the captured graph's own output buffer when captured)."""
        if self.graph is not None:
            self.graph.replay()
            return self.static_image  # type: ignore[return-value]
        with torch.no_grad():
            return self.body()

    def step(self, t: float) -> torch.Tensor:
        self.write_edits(t)
        return self.run()

    def replay_check(self) -> dict[str, float]:
        """That the captured graph really computes the frame: its replay against the eager
        body at the same edits (``replay_vs_eager``, max abs), and two replays at different
        edits (``replay_moves``: 0 would mean the replay ignores the edits, or does nothing)."""
        self.write_edits(0.37)
        got = self.run().clone()
        with torch.no_grad():
            ref = self.body()
        self.write_edits(0.81)
        other = self.run().clone()
        return {"replay_vs_eager": float((got - ref).abs().max()),
                "replay_moves": float((other - got).abs().max())}

    def restore(self) -> None:
        """Leave G as it was: the originals back, the hook off."""
        with torch.no_grad():
            for p, orig in zip(self.targets, self.originals):
                p.copy_(orig)
        self.hook.remove()


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
    loop.restore()
    return max(10, min(frames, int(seconds / max(per, 1e-6))))


class RuntimeSurroundings:
    """What a scheduler's run puts around a node's calls, without the scheduler: its GIL switch
    interval, and per frame a blocking-sync CUDA event handed to a completion thread that
    sleeps in ``synchronize()`` and then takes the GIL to book the frame (a slot freed; at most
    ``in_flight`` frames unfinished), as ``flowml.runtime.completion`` does. ``blocking``
    False: plain events, which the thread polls (``query`` and a 0.2 ms sleep) instead, to
    tell a cost of blocking-sync events from one of the thread and the GIL."""

    def __init__(self, in_flight: int = 2, blocking: bool = True):
        from flowml.runtime.scheduler import GIL_SWITCH_S
        from flowml.runtime.workers import SerialWorker

        self._switch = GIL_SWITCH_S
        self._worker = SerialWorker("bench-gpu-done")
        self._slots = threading.BoundedSemaphore(in_flight)
        self._saved = sys.getswitchinterval()
        self._blocking = blocking
        self.booked = 0

    def __enter__(self) -> "RuntimeSurroundings":
        sys.setswitchinterval(self._switch)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setswitchinterval(self._saved)
        self._worker.close(10.0)

    def begin(self) -> None:
        """A frame starts: wait for a free slot (as the dispatcher does)."""
        self._slots.acquire()

    def end(self) -> None:
        """A frame's work is enqueued on the current stream: book it once the GPU is done."""
        event = torch.cuda.Event(blocking=self._blocking)
        event.record()
        if event.query():
            self._book()
        else:
            self._worker.submit(lambda: self._wait(event))

    def _wait(self, event: torch.cuda.Event) -> None:
        if self._blocking:
            event.synchronize()
        else:
            while not event.query():
                time.sleep(0.0002)
        self._book()

    def _book(self) -> None:
        self.booked += 1
        self._slots.release()


def loop_fps(G: torch.nn.Module, tap: str, edits: list[str], precision: str, captured: bool,
             frames: int, compiled: bool = False, as_node: str | None = None) -> dict[str, Any]:
    """The hand loop, ``WARMUP`` then ``frames`` frames back to back: ``fps`` from the
    frames' completion events, ``wall_fps`` from the host clock between two synchronizes,
    ``gpu_ms`` the median CUDA-event time of one frame's ``run()`` (one replay, captured).
    ``as_node``: ``lane`` runs it on a side stream (as the node's ``process`` runs),
    ``lane_no_grad`` the same under ``no_grad`` (as the node ran before 2026-12-04), ``runtime``
    also in ``RuntimeSurroundings`` (module docstring),
    ``runtime_polled`` there with polled events instead of blocking-sync ones."""
    cuda = next(G.parameters()).is_cuda
    loop = HandLoop(G, tap, edits, precision, compiled)
    out: dict[str, Any] = {}
    stream = torch.cuda.Stream() if cuda and as_node else None
    grad = torch.no_grad if as_node == "lane_no_grad" else torch.inference_mode
    try:
        if captured:
            loop.capture()
            out.update(loop.replay_check())
        clock = FrameClock(cuda)
        spans: list[tuple[Any, Any]] = []
        host: list[float] = []
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream())
        surroundings = (RuntimeSurroundings(blocking=as_node == "runtime")
                        if cuda and as_node in ("runtime", "runtime_polled") else None)
        with grad(), (torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()), \
                (surroundings or contextlib.nullcontext()):
            for i in range(WARMUP + frames):
                if i == WARMUP:
                    if cuda:
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                if surroundings is not None:
                    surroundings.begin()
                loop.write_edits(i / 60)
                if cuda and i >= WARMUP:
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    h0 = time.perf_counter()
                    loop.run()
                    host.append(time.perf_counter() - h0)
                    b.record()
                    spans.append((a, b))
                else:
                    h0 = time.perf_counter()
                    loop.run()
                    if i >= WARMUP:
                        host.append(time.perf_counter() - h0)
                clock.mark()
                if surroundings is not None:
                    surroundings.end()
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        if stream is not None:
            torch.cuda.current_stream().wait_stream(stream)
        out.update(fps=clock.fps(WARMUP), wall_fps=frames / wall,
                   gpu_ms=_median([a.elapsed_time(b) for a, b in spans]),
                   host_ms=1e3 * sum(host) / len(host) if host else None)
    finally:
        loop.restore()
    return out


def graph_file(path: Path, snap: Path, tap: str, edits: list[str], precision: str,
               captured: bool) -> Path:
    """Write ``GRAPH`` for ``snap`` to ``path``: the tap and the three ``EXPRS`` edits."""
    spec = [{"name": n, "op": op, "value": {"expr": e}} for n, (op, e, _) in zip(edits, EXPRS)]
    path.write_text(GRAPH.format(snap=snap, captured=str(captured).lower(), precision=precision,
                                 taps=json.dumps([f"tap={tap}"]), edits=json.dumps(spec)))
    return path


def flowml_fps(folder: Path, snap: Path, tap: str, edits: list[str], precision: str,
               captured: bool, frames: int, device: str = "cuda",
               max_in_flight: int | None = None, gpu_timing: bool = True) -> dict[str, Any]:
    """The graph, ``WARMUP`` then ``frames`` frames offline: ``fps`` from CUDA events recorded
    on the generator's stream after each frame's output (an after-tick hook; beside it the
    graph's own ``recent_fps``, ticks counted when their GPU work is done), ``wall_fps`` from the
    host clock between a synchronize before the first timed tick and one after the run,
    ``gpu_ms`` the median of the scheduler's CUDA-event time of the generator's calls
    (``gpu_timing``: one replay, captured), ``frames_move`` that the outputs do change.
    ``max_in_flight`` None: the graph's own (2); ``gpu_timing`` False: no per-call events."""
    path = graph_file(folder / "bench.yaml", snap, tap, edits, precision, captured)
    graph = load_graph(path, load_registry())
    cuda = device.startswith("cuda")
    with Scheduler(graph, device=device, gpu_timing=cuda and gpu_timing,
                   max_in_flight=max_in_flight) as sched:
        # the param store evaluates the edits' expressions each tick, as `flowml run` does
        # (a bare Scheduler would keep their values at t = 0: no edit would change)
        session = ControlSession(sched, ControlSettings(), graph_path=path, say=lambda s: None)
        gen = sched.nodes["gen"]
        clock = FrameClock(cuda)
        images: list[torch.Tensor] = []
        started: list[float] = []

        host_at: list[tuple[float, int]] = []
        threads: set[str] = set()  # the Python threads alive while it runs (who may want the GIL)

        def before(tick: Any) -> None:
            if tick.index == WARMUP:
                if cuda:
                    torch.cuda.synchronize()
                started.append(time.perf_counter())
                host_at.append((gen.stats.total_s, gen.stats.calls))

        def after(tick: Any, ready: dict[str, Any]) -> None:
            out = ready["gen"]
            if not isinstance(out, dict):
                raise RuntimeError("stylegan_bench: the generator ran off the dispatcher")
            clock.mark(gen.gpu.lane.stream if gen.gpu is not None else None)
            if tick.index in (WARMUP, WARMUP + 1):
                images.append(out["image"])
                threads.update(t.name for t in threading.enumerate())

        sched.before_tick.append(before)
        sched.after_tick.append(after)
        session.start()
        try:
            result = sched.run(frames=WARMUP + frames)
            if cuda:
                torch.cuda.synchronize()
            ended = time.perf_counter()
        finally:
            session.stop()
        if not result.ok:
            raise RuntimeError(f"flowml run failed: {result.error}")
        if len(clock.marks) != WARMUP + frames or not started:
            raise RuntimeError(f"flowml run: {len(clock.marks)} of {WARMUP + frames} frames done")
        total_s, calls = gen.stats.total_s - host_at[0][0], gen.stats.calls - host_at[0][1]
        gpu_ms: list[float] = list(gen.stats.gpu_ms_recent)
        if gen.gpu is not None:
            gpu_ms += gen.gpu.lane.harvest("gen")  # the calls not harvested during the run
        cap = gen.captured
        counters = cap.counters() if cap is not None and hasattr(cap, "counters") else {}
        return {"fps": clock.fps(WARMUP), "wall_fps": frames / (ended - started[0]),
                "gpu_ms": _median(gpu_ms[WARMUP:]),
                "host_ms": 1e3 * total_s / calls if calls else None,
                "frames_move": float((images[1] - images[0]).abs().max()),
                "recent_fps": sched.stats.recent_fps(), "threads": sorted(threads),
                "completed": sched.stats.completed, **counters}


def check(fps: float, wall_fps: float, gpu_ms: float | None, moves: float | None = None,
          vs_eager: float | None = None) -> str:
    """'ok', or why the figure cannot be right: frames on one stream cannot complete faster
    than one frame's GPU time allows, the event clock and the host clock must agree, the
    frames must change with the edits (``moves``) and a replay must match eager
    (``vs_eager``, max abs on [0, 1] images)."""
    why = []
    if gpu_ms is not None and 1e3 / fps < 0.9 * gpu_ms:
        why.append(f"{1e3 / fps:.2f} ms a frame < {gpu_ms:.2f} ms GPU time of one")
    if not 0.8 < fps / wall_fps < 1.25:
        why.append(f"event clock {fps:.1f} fps vs host clock {wall_fps:.1f}")
    if moves is not None and moves == 0:
        why.append("the output does not change with the edits")
    if vs_eager is not None and vs_eager > 0.05:
        why.append(f"replay differs from eager by {vs_eager:.3g}")
    return "ok" if not why else "IMPOSSIBLE: " + "; ".join(why)


def _round(v: Any) -> Any:
    """Floats to 3 significant decimals for the JSON (small GPU times stay readable)."""
    return round(v, 3) if isinstance(v, float) else v


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


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
    ap.add_argument("--no-as-node", action="store_true", help=(
        "skip the eager hand loop in the node's conditions (loop_lane, loop_runtime)"))
    ap.add_argument("--rounds", type=int, default=3, help=(
        "loop and flowml run in turn this many times a case; the row is the median round "
        "(by ratio), every round's figures kept: the machine's speed drifts between runs "
        "(eager StyleGAN2's hand loop measured 132 and 192 fps ten minutes apart)"))
    ap.add_argument("--seconds", type=float, default=4.0, help=(
        "at most about this long per timed run: fewer frames than --frames for a slow case"))
    ap.add_argument("--gil-switch-ms", type=float, help=(
        "the GIL switch interval a graph run sets (flowml.runtime.scheduler.GIL_SWITCH_S, "
        "0.5 ms), for the flowml runs: does the hand-over cost the eager frame?"))
    ap.add_argument("--max-in-flight", type=int, help=(
        "the graph's max_in_flight (ticks unfinished at once; default the graph's, 2)"))
    ap.add_argument("--no-gpu-timing", action="store_true", help=(
        "the graph without the scheduler's per-call CUDA timing events (no gpu/frame for it)"))
    ap.add_argument("--device", default="cuda", help="cuda; cpu only as a smoke run (eager; host clock)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.gil_switch_ms is not None:
        import flowml.runtime.scheduler as scheduler

        scheduler.GIL_SWITCH_S = args.gil_switch_ms / 1e3
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("stylegan_bench needs a CUDA GPU (or --device cpu --modes eager for a smoke run)")
    if not args.device.startswith("cuda") and "captured" in args.modes:
        args.modes = [m for m in args.modes if m != "captured"] or ["eager"]
        print("stylegan_bench: --device cpu runs eager only (capture is CUDA's)", flush=True)
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
                    try:  # loop and flowml in turn, --rounds times: the median round's pair
                        pairs = []
                        for _ in range(args.rounds):
                            pairs.append((loop_fps(G, tap, edits, precision, captured, n),
                                          flowml_fps(folder, snap, tap, edits, precision, captured, n,
                                                     args.device, args.max_in_flight,
                                                     not args.no_gpu_timing)))
                        pairs.sort(key=lambda pair: pair[1]["fps"] / pair[0]["fps"])
                        lp, fl = pairs[len(pairs) // 2]
                        row["rounds"] = [{"loop_fps": round(a["fps"], 1), "flowml_fps": round(b["fps"], 1),
                                          "ratio": round(b["fps"] / a["fps"], 3)} for a, b in pairs]
                    except Exception as exc:  # report the case, go on with the others
                        row["error"] = f"{type(exc).__name__}: {exc}"
                    else:
                        lf = lp["fps"]
                        row.update(loop_ms=round(1e3 / lf, 3), loop_fps=round(lf, 1),
                                   loop_gpu_ms=_round(lp["gpu_ms"]),
                                   flowml_ms=round(1e3 / fl["fps"], 3), flowml_fps=round(fl["fps"], 1),
                                   flowml_gpu_ms=_round(fl["gpu_ms"]),
                                   ratio=round(fl["fps"] / lf, 3),
                                   check={"flowml": check(fl["fps"], fl["wall_fps"], fl["gpu_ms"],
                                                          fl["frames_move"]),
                                          "loop": check(lf, lp["wall_fps"], lp["gpu_ms"],
                                                        lp.get("replay_moves"),
                                                        lp.get("replay_vs_eager"))},
                                   loop={k: _round(v) for k, v in lp.items() if k != "fps"},
                                   flowml={k: _round(v) for k, v in fl.items() if k != "fps"})
                    if (not captured and args.device.startswith("cuda") and "error" not in row
                            and not args.no_as_node):
                        try:  # where an eager gap comes from (module docstring); the variants
                            # in turn, --rounds times, each one's median (one run each drifts)
                            got: dict[str, list[dict[str, Any]]] = {v: [] for v in AS_NODE}
                            for _ in range(args.rounds):
                                for as_node in AS_NODE:
                                    got[as_node].append(loop_fps(G, tap, edits, precision, False, n,
                                                                 as_node=as_node))
                            for as_node, runs in got.items():
                                row[f"loop_{as_node}_fps"] = round(_median([r["fps"] for r in runs]), 1)
                                row[f"loop_{as_node}_gpu_ms"] = _round(_median(
                                    [r["gpu_ms"] for r in runs if r["gpu_ms"] is not None]))
                        except Exception as exc:
                            row["loop_as_node_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    if args.compiled and "error" not in row:
                        try:
                            t0 = time.perf_counter()
                            cf = loop_fps(G, tap, edits, precision, captured, n, compiled=True)["fps"]
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
        if "error" in r:
            lines.append(f"{head} error: {r['error']}")
            continue
        fl = r["flowml"]
        lines.append(
            f"{head} flowml {r['flowml_fps']:8.1f} fps ({r['flowml_ms']:.2f} ms, gpu/frame "
            f"{_ms(r['flowml_gpu_ms'])})  loop {r['loop_fps']:8.1f} fps ({r['loop_ms']:.2f} ms, "
            f"gpu/frame {_ms(r['loop_gpu_ms'])})  ratio {r['ratio']:.3f}  frames {r['frames']}  "
            f"captures {fl.get('captures', '-')} replays {fl.get('replays', '-')} eager "
            f"{fl.get('eager_calls', '-')}")
        if len(r.get("rounds", [])) > 1:
            lines.append("    rounds (loop / flowml fps, ratio, sorted): " + "; ".join(
                f"{x['loop_fps']:.1f} / {x['flowml_fps']:.1f} {x['ratio']:.3f}" for x in r["rounds"]))
        lines.append(f"    host time a frame's call: flowml {_ms(fl.get('host_ms'))} (the node's call: its "
                     f"edits and process), loop {_ms(r['loop'].get('host_ms'))} (the generator)")
        if "loop_lane_fps" in r:
            lf = r["loop_fps"]
            lines.append(
                f"    eager gap: loop {lf:.1f} fps -> on a side stream {r['loop_lane_fps']:.1f} "
                f"({r['loop_lane_fps'] / lf:.3f}; under no_grad {r['loop_lane_no_grad_fps']:.1f}) -> + the runtime's threads {r['loop_runtime_fps']:.1f} "
                f"({r['loop_runtime_fps'] / lf:.3f}; its events polled, not blocking-sync: "
                f"{r['loop_runtime_polled_fps']:.1f}) -> flowml {r['flowml_fps']:.1f} ({r['ratio']:.3f}); "
                f"gpu/frame {_ms(r['loop_lane_gpu_ms'])}, {_ms(r['loop_runtime_gpu_ms'])}, "
                f"{_ms(r['loop_runtime_polled_gpu_ms'])}")
        elif "loop_as_node_error" in r:
            lines.append(f"    eager gap: {r['loop_as_node_error']}")
        for who in ("flowml", "loop"):
            if r["check"][who] != "ok":
                lines.append(f"    {who}: {r['check'][who]}")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stylegan_bench.json").write_text(json.dumps(result, indent=1))
        (args.out / "stylegan_bench.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
