"""Host cost of one tick outside the nodes' ``process()``, on the CPU (issue 14).

The graph has the shape of ``plugins/flowml-gan/benchmarks/stylegan_bench.py``: a latent node
-> a generator-like node with one tap and three live edits whose values follow expressions of
``t`` (so a param changes every tick), run offline at ``fps: 60`` under a ``ControlSession`` (the
param store evaluates the expressions each tick, as ``flowml run`` does). The two nodes are the
real ``stylegan.latent`` / ``stylegan.generator`` classes (their Params, validators, ports and
``on_params``: the weight edits, written by ``flowml_torch.edits`` into a small CPU module with
the weights' names) whose ``setup`` loads no snapshot and whose ``process`` returns tensors made
once (no synthesis). What is left is the scheduler's, the param store's and the nodes' per-tick
host work, the part of an eager StyleGAN tick that a hand-written loop does not pay.

    .venv/bin/python benchmarks/tick_overhead.py                   # 3 rounds of 3000 ticks
    .venv/bin/python benchmarks/tick_overhead.py --profile 30     # + cProfile, top 30 by tottime
    PYTHONPATH=/tmp/base:/tmp/base/plugins/flowml-gan:/tmp/base/plugins/flowml-torch \\
        .venv/bin/python benchmarks/tick_overhead.py               # another tree's code (a before)

Prints, per round and as the median: ``tick_us`` (wall time per tick), ``outside_us`` (tick
minus time spent inside ``process()``), ``outside_cpu_us`` (the same in the dispatcher thread's
CPU time: steadier on a shared machine, where other processes preempt it), ``call_us`` (the generator node's call as its stats time
it, minus its ``process()``: the output checks; ``on_params``, the edits' writes, comes before the
timed part) and
``loop_us``: what a hand-written loop pays for the same edits (three ``torch.mul``/``add`` from
kept originals into the weights, the expression values with ``math``), the floor.

On this 2-core shared CPU box, 2026-12-03, 8 runs of 3000 ticks, the tree before and after
the changes of that day taken in turn (``PYTHONPATH`` as above), median ``outside_cpu_us``:
152 before (the tree at 705c13b), 107 after (the loop's floor ~12). Where the 107 goes
(cProfile, ``--profile``): the param store ~45 (three expressions ~15, folding the parts into the
edits list and ``set_params``' one validation of the generator's params ~13), the two nodes'
calls ~20 (output normalisation and contracts), the edits ~17 (of which ~15 the three writes a
loop makes too), the rest of the scheduler ~15. 2026-12-04 night, 10 single rounds each in
turn: 81.1 before (a7d5be0), 64.5 after the expressions' number kinds, ``check_edits``' way
through for finished edits, the store's shorter steps and pure nodes (the latent is not called
while its seed stays; docs/benchmarks.md).

``--completion``: what the GPU completion thread (``flowml.runtime.completion``) takes from the
dispatcher, emulated on the CPU: the dispatcher runs ``--busy`` us of Python a tick (an eager
frame's kernel launches hold the GIL the same way) and hands each tick to ``Completion`` with an
event that passes ``--gpu-lag`` us later (its ``synchronize`` sleeps with the GIL released, as a
blocking-sync CUDA event does), at most 2 ticks in flight, under the runtime's GIL switch
interval. ``completion_us``: host microseconds a tick beyond the busy work; ``inline_us``: the
same ticks booked on the dispatcher at once (no thread), the floor. On this 2-core CPU box
(2026-12-03, 6 interleaved runs of 2000 ticks): 104 us against 7 inline, each tick's GIL
hand-over to the thread and back, more than all the param and scheduler work of a tick above;
a leaner thread (a ``SimpleQueue`` instead of a worker with futures) measured the same (106 us).
``dispatcher_us``: the same ticks booked as offline runs book them since 2026-12-04 (the
dispatcher polls the passed ones before taking a slot; the thread only while it waits): 8.1 us
against 87.9 (completion) and 4.2 (inline), medians of 5 interleaved rounds of 2000 ticks,
this 2-core box, 2026-12-04.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import flowml
from flowml.control import ControlSession, ControlSettings
from flowml.graph import load_graph
from flowml.plugins import Registry
from flowml.runtime.scheduler import Scheduler
from flowml_gan.nodes import StyleGANGenerator, StyleGANLatent
from flowml_torch.edits import WeightEdits

NUM_WS, W_DIM = 18, 512
EDITED = ["synthesis.b4.const", "synthesis.b64.conv0.affine.bias", "synthesis.b1024.torgb.weight"]
EXPRS = ["1 + 0.5*sin(t*3)", "0.2*sin(t*5)", "1 + 0.1*cos(t*2)"]
OPS = ["scale", "add", "scale"]

GRAPH = """\
flowml: 1
name: tick-overhead
clock: {{fps: 60}}
mode: offline
nodes:
  latent: {{type: bench.latent, params: {{path: snap.pkl, seed: 3, psi: 0.7}}}}
  gen:
    type: bench.generator
    inputs: {{w: latent/w}}
    params: {{path: snap.pkl, taps: {taps}, edits: {edits}}}
"""

SPENT = {"process_s": 0.0}  # time inside process() of both nodes


class BenchLatent(StyleGANLatent):
    """``stylegan.latent``'s params and ports; ``process`` hands out a w made once."""

    type_name = "bench.latent"

    def setup(self, ctx: flowml.NodeContext) -> None:
        self.w = torch.zeros(1, NUM_WS, W_DIM)

    def process(self, z: Any = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = {"w": self.w}
        SPENT["process_s"] += time.perf_counter() - t0
        return out


class BenchGenerator(StyleGANGenerator):
    """``stylegan.generator``'s params, ports and ``on_params`` (real weight edits on a small
    module); ``process`` hands out an image and a tap made once."""

    type_name = "bench.generator"

    def setup(self, ctx: flowml.NodeContext) -> None:
        model = nn.Module()
        for name, shape in zip(EDITED, [(512, 4, 4), (512,), (3, 32, 1, 1)]):
            parent = model
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Module())
                parent = getattr(parent, part)
            parent.register_parameter(leaf, nn.Parameter(torch.randn(shape)))
        self.G = model
        self.edits = WeightEdits(model)
        self._set_edits(self.params.edits)
        self.image = torch.zeros(1, 3, 64, 64)
        self.tap = torch.zeros(1, 256, 64, 64)
        self.tap_port = [t.partition("=")[0] for t in self.params.taps][0]

    def process(self, w: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = {"image": self.image, self.tap_port: self.tap}
        SPENT["process_s"] += time.perf_counter() - t0
        return out

    def teardown(self) -> None:
        pass


def _registry() -> Registry:
    reg = Registry()
    reg.add(BenchLatent, "tick-overhead")
    reg.add(BenchGenerator, "tick-overhead")
    return reg


def flowml_round(folder: Path, ticks: int, profile: cProfile.Profile | None = None) -> dict[str, float]:
    """``ticks`` ticks of the graph; host microseconds a tick, in all and outside process()."""
    spec = [{"name": n, "op": op, "value": {"expr": e}} for n, op, e in zip(EDITED, OPS, EXPRS)]
    path = folder / "tick.yaml"
    path.write_text(GRAPH.format(taps=json.dumps(["tap=synthesis.b64"]), edits=json.dumps(spec)))
    (folder / "snap.pkl").write_bytes(b"")
    graph = load_graph(path, _registry())
    with Scheduler(graph, device="cpu") as sched:
        stamps: list[float] = []  # each tick's start, before any hook (run()'s gc.collect not in)
        cpu: list[float] = []  # the same in the dispatcher's CPU time (not counting preemption)
        sched.before_tick.append(lambda tick: (stamps.append(time.perf_counter()),
                                               cpu.append(time.thread_time())))
        session = ControlSession(sched, ControlSettings(), graph_path=path, say=lambda s: None)
        session.start()
        gen = sched.nodes["gen"]
        try:
            sched.run(frames=20)  # warm-up
            SPENT["process_s"] = 0.0
            calls0, total0, writes0 = gen.stats.calls, gen.stats.total_s, gen.node.edits.writes
            edits0 = gen.node.params.edits
            if profile is not None:
                profile.enable()
            stamps.clear()
            cpu.clear()
            result = sched.run(frames=ticks + 1)
            if profile is not None:
                profile.disable()
        finally:
            session.stop()
        if not result.ok:
            raise RuntimeError(f"run failed: {result.error}")
        wall = stamps[-1] - stamps[0]  # `ticks` whole ticks: from the first one's start to the last's
        calls = gen.stats.calls - calls0  # ticks + 1 (the last one's call is in, not its time)
        writes = gen.node.edits.writes - writes0
        if calls != ticks + 1 or writes < 3 * ticks or gen.node.params.edits == edits0:
            raise RuntimeError(f"the edits did not move every tick: {calls} calls, {writes} writes")
        process_us = 1e6 * SPENT["process_s"] / calls  # both nodes' process(), a tick
        return {"tick_us": 1e6 * wall / ticks,
                "outside_us": 1e6 * wall / ticks - process_us,
                "outside_cpu_us": 1e6 * (cpu[-1] - cpu[0]) / ticks - process_us,
                "call_us": 1e6 * (gen.stats.total_s - total0) / calls - process_us / 2}


def loop_us(ticks: int) -> float:
    """A hand-written loop's host work for the same edits: values with math, three writes from
    kept originals into the weights (what ``flowml_torch.edits`` writes), per tick."""
    weights = [torch.randn(s) for s in [(512, 4, 4), (512,), (3, 32, 1, 1)]]
    originals = [w.clone() for w in weights]
    t0 = time.perf_counter()
    for i in range(ticks):
        t = i / 60
        with torch.no_grad():
            torch.mul(originals[0], 1 + 0.5 * math.sin(t * 3), out=weights[0])
            torch.add(originals[1], 0.2 * math.sin(t * 5), out=weights[1])
            torch.mul(originals[2], 1 + 0.1 * math.cos(t * 2), out=weights[2])
    return 1e6 * (time.perf_counter() - t0) / ticks


class _Event:
    """A CUDA event's interface: passes at ``due``; ``synchronize`` sleeps (GIL released)."""

    def __init__(self, due: float):
        self.due = due

    def query(self) -> bool:
        return time.perf_counter() >= self.due

    def synchronize(self) -> None:
        time.sleep(max(0.0, self.due - time.perf_counter()))


class _Lane:
    def recycle(self, event: Any) -> None:
        pass


def completion_us(ticks: int, busy_us: float, lag_us: float, inline: bool,
                  dispatcher_books: bool = False) -> float:
    """Host microseconds a tick beyond ``busy_us`` (see ``--completion``); ``dispatcher_books``:
    as an offline run books them (``Completion.poll`` before a slot, ``waiting`` around a
    blocked one), the thread only while the dispatcher waits."""
    from flowml.node import Tick
    from flowml.runtime.completion import Completion
    from flowml.runtime.scheduler import GIL_SWITCH_S
    from flowml.runtime.ticks import TickRun

    slots = threading.BoundedSemaphore(2)
    lane, interval = _Lane(), sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    done = Completion(lambda run: slots.release(), lambda run, exc: None,
                      dispatcher_books=dispatcher_books)
    try:
        t0 = time.perf_counter()
        for i in range(ticks):
            if dispatcher_books:  # as Scheduler._acquire_slot does
                done.poll()
                if not slots.acquire(blocking=False):
                    with done.waiting():
                        slots.acquire()
            else:
                slots.acquire()
            end = time.perf_counter() + busy_us * 1e-6
            while time.perf_counter() < end:  # the frame's launches: Python holding the GIL
                pass
            run = TickRun(Tick(i, i / 60), end, done.done, lambda exc: None)
            run.ends.append((lane, _Event(time.perf_counter() + lag_us * 1e-6)))
            if inline:
                slots.release()
            else:
                done.done(run)
        with done.waiting():
            for _ in range(2):
                slots.acquire()
        wall = time.perf_counter() - t0
    finally:
        done.close(5.0)
        sys.setswitchinterval(interval)
    return 1e6 * wall / ticks - busy_us


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile one more round, print the top N functions by own time")
    ap.add_argument("--completion", action="store_true",
                    help="emulate the GPU completion thread's cost to the dispatcher instead")
    ap.add_argument("--busy", type=float, default=300.0, help="--completion: us of Python a tick")
    ap.add_argument("--gpu-lag", type=float, default=200.0,
                    help="--completion: us after its hand-over that a tick's event passes")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.completion:
        rows = [{"completion_us": completion_us(args.ticks, args.busy, args.gpu_lag, False),
                 "dispatcher_us": completion_us(args.ticks, args.busy, args.gpu_lag, False, True),
                 "inline_us": completion_us(args.ticks, args.busy, args.gpu_lag, True)}
                for _ in range(args.rounds)]
        for r, row in enumerate(rows):
            print(json.dumps({"round": r, **{k: round(v, 1) for k, v in row.items()}}))
        med = {k: round(statistics.median(row[k] for row in rows), 1) for k in rows[0]}
        print(json.dumps({"median": med, "ticks": args.ticks, "busy_us": args.busy,
                          "gpu_lag_us": args.gpu_lag}))
        return
    print(f"# code from {Path(flowml.__file__).parent}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row = {**flowml_round(Path(tmp), args.ticks), "loop_us": loop_us(args.ticks)}
            rows.append(row)
            print(json.dumps({"round": r, **{k: round(v, 1) for k, v in row.items()}}))
        med = {k: round(statistics.median(row[k] for row in rows), 1) for k in rows[0]}
        print(json.dumps({"median": med, "ticks": args.ticks, "rounds": args.rounds}))
        if args.profile:
            prof = cProfile.Profile()
            flowml_round(Path(tmp), args.ticks, prof)
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.profile)
            print(out.getvalue())


if __name__ == "__main__":
    main()
