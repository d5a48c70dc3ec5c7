"""The scheduler: runs a validated graph tick by tick.

Inside a tick, nodes are visited in topological order on one dispatch thread. A node runs

- inline (the default; a GPU node only enqueues work there, so this is cheap),
- on its own worker thread when its type is ``blocking`` (file or network I/O): a sink's call
  is handed off and the dispatcher moves on; a blocking node with outputs hands its consumers
  a future they wait on,
- every N ticks (``every: N``), holding its last outputs in between,
- asynchronously (``hold: true``, live mode): it is started when it is free and everyone else
  sees its last finished outputs (sample-and-hold), so a slow estimator never bounds the rate.

At most ``max_in_flight`` ticks are unfinished at once (a tick finishes when its last sink is
done). Live mode: the newest source frame wins, frames the graph could not start are dropped
and counted, a sink that is behind skips frames. Offline mode: every frame, in order; the source
waits (back-pressure) and nothing is dropped, so the output is deterministic.

Parameter changes (``set_params``, OSC, expressions) are validated when they arrive and applied
together at the start of the next tick, never during a frame.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

from ..graph.resolved import ValidatedGraph
from ..graph.spec import RateClock as RateClockSpec
from ..gpu.device import resolve_device
from ..node import EndOfStream, Node, NodeContext, Params, Tick
from .clock import InlineSource, RateClock, SourceFailure, SourceFrame, SourcePump
from .edges import Produced, resolve
from .node_runtime import NodeFailed, NodeRuntime
from .placement import attach_gpu
from .stats import GraphStats, NodeStats
from .workers import SerialWorker

log = logging.getLogger("flowml")

Mode = Literal["live", "offline"]

GIL_SWITCH_S = 0.0005
"""While a graph runs, Python hands the GIL between threads every 0.5 ms instead of 5 ms, so
that a thread coming back from C code (a decoder, a copy, a CUDA wait) does not wait long
for the dispatcher to let go of the GIL (H200: a decode + model chain ran at 88 instead of
76 fps). 0.1 ms was tried on H100 hosts: over three runs of a decode-bound chain (medians of
3 interleaved rounds each) 0.1 / 0.5 / 5 ms gave 116 / 106 / 107, 98.7 / 112 / 96 and
110 / 118 / 141 fps, so no setting wins there; docs/benchmarks.md."""

INLINE_CAPTURE_SOURCES = True
"""Live graphs read a clock source that ``captures_in_background`` on the dispatcher
(``clock.InlineSource``), not on a clock thread. H200, 2026-12-01, 1080p frames in pinned
memory, a 16.8 ms model: the tick started 0.07 - 0.11 ms sooner after the frame came, and
latency p50 fell by 0.11 and 0.32 ms in two ``flowml bench`` runs (by 0.03 - 0.12 ms in five
rounds of ``benchmarks/latency_probe.py``); only this way did both runs meet model + 1 ms."""


@dataclass
class _TickRun:
    """Book-keeping of one tick while its sinks finish."""

    tick: Tick
    arrived: float
    pending: int = 1  # the dispatch itself counts as one part
    failed: bool = False
    abandoned: bool = False  # a source ended during dispatch: neither done nor failed
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class RunResult:
    reason: str                      # "end of stream" | "frames" | "duration" | "stopped" | "error"
    stats: GraphStats
    error: NodeFailed | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Scheduler:
    """Builds the nodes of a validated graph and runs it. Use as a context manager, or call
    ``setup()`` / ``run()`` / ``teardown()`` yourself."""

    def __init__(self, graph: ValidatedGraph, *, mode: Mode | None = None, device: str | None = None,
                 max_in_flight: int | None = None, on_error: str | None = None,
                 gpu_timing: bool = False):
        self.graph = graph
        spec = graph.spec
        self.mode: Mode = mode or self._auto_mode()
        self.device = device or spec.device
        self.max_in_flight = max_in_flight or spec.max_in_flight
        self.on_error = on_error or spec.on_error
        self.order = list(graph.order)
        self.clock_id = graph.clock if isinstance(graph.clock, str) else None
        self.nodes: dict[str, NodeRuntime] = {}
        self.stats = GraphStats()
        self.before_tick: list[Callable[[Tick], None]] = []
        self.after_tick: list[Callable[[Tick, dict[str, dict[str, Any]]], None]] = []
        self._pending_params: dict[str, dict[str, Any]] = {}
        self._params_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._stop = threading.Event()
        self._failure: NodeFailed | None = None
        self._clock: RateClock | SourcePump | InlineSource | None = None
        self._is_setup = False
        self._reload: tuple[ValidatedGraph, Future, frozenset[str]] | None = None
        self.gpu_timing = gpu_timing
        self._lanes: Any = None        # gpu.lanes.LanePool, made when a node is on CUDA
        self._copy_streams: dict[str, Any] = {}

    # -- building ---------------------------------------------------------------------------
    def _auto_mode(self) -> Mode:
        if self.graph.spec.mode != "auto":
            return self.graph.spec.mode  # type: ignore[return-value]
        clock = self.graph.clock
        if isinstance(clock, RateClockSpec):
            return "live"
        node = self.graph.nodes[clock]
        return "live" if node.type.cls.is_live(node.params) else "offline"

    def setup(self) -> None:
        """Instantiate every node and run its ``setup``; on failure, tear down the ones built."""
        try:
            for nid in self.order:
                self._install(self._make_node(nid, self.graph))
        except NodeFailed:
            self.teardown()
            raise
        self._is_setup = True

    def _install(self, nrt: NodeRuntime) -> None:
        self.nodes[nrt.id] = nrt
        self.stats.nodes[nrt.id] = nrt.stats

    def _make_node(self, nid: str, graph: ValidatedGraph) -> NodeRuntime:
        """Instantiate one node of ``graph`` and run its ``setup`` (raises NodeFailed)."""
        rn = graph.nodes[nid]
        cls = rn.type.cls
        try:
            device = resolve_device(rn.spec.device, self.device)
        except RuntimeError as exc:
            raise NodeFailed(nid, rn.type.name, exc, phase="setup") from exc
        ctx = NodeContext(nid, rn.type.name, device, graph.directory, self.mode,
                          is_clock=nid == graph.clock, log=logging.getLogger(f"flowml.{nid}"),
                          stopping=self._stop)
        hold = rn.spec.hold and self.mode == "live"
        nrt = NodeRuntime(nid, cls(rn.params, ctx), rn.ports, NodeStats(rn.type.name),
                          rn.spec.every, hold)
        if (cls.blocking or hold) and nid != graph.clock:
            nrt.worker = SerialWorker(nid)
        if device.startswith("cuda"):
            if self._lanes is None:
                from ..gpu.lanes import LanePool

                self._lanes = LanePool()
            attach_gpu(nrt, self.nodes, graph, device, self._lanes, self.device, self.gpu_timing)
        else:
            nrt.host_ports = frozenset(p.name for p in rn.ports.inputs)  # CPU node: all host
        try:
            nrt.node.setup(ctx)
        except Exception as exc:
            if nrt.worker:
                nrt.worker.close()
            raise NodeFailed(nid, rn.type.name, exc, phase="setup") from exc
        return nrt

    def _copy_stream(self, device: str):
        import torch

        if device not in self._copy_streams:
            self._copy_streams[device] = torch.cuda.Stream(torch.device(device))
        return self._copy_streams[device]

    def teardown(self) -> None:
        """Finish the sinks' queued work, then ``teardown`` every node (reverse order)."""
        for nrt in self.nodes.values():
            if nrt.worker:
                nrt.worker.close(timeout=30)
        for nid in reversed(list(self.nodes)):
            try:
                self.nodes[nid].node.teardown()
            except Exception as exc:
                log.error("node '%s' failed in teardown: %s", nid, exc)
        self.nodes.clear()
        self._is_setup = False

    def __enter__(self) -> "Scheduler":
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    # -- live parameters --------------------------------------------------------------------
    def set_params(self, node_id: str, changes: dict[str, Any]) -> Params:
        """Validate ``changes`` to one node's params now (raises pydantic.ValidationError or
        KeyError) and queue them for the start of the next tick. Returns the params as they
        will be."""
        rn = self.graph.nodes[node_id]
        with self._params_lock:
            merged = {**self._pending_params.get(node_id, {}), **changes}
            current = self.nodes[node_id].node.params if node_id in self.nodes else rn.params
            new = type(current).model_validate({**current.model_dump(), **merged})
            self._pending_params[node_id] = merged
        return new

    def params_of(self, node_id: str) -> Params:
        return self.nodes[node_id].node.params

    def _apply_params(self) -> None:
        with self._params_lock:
            pending, self._pending_params = self._pending_params, {}
        for nid, changes in pending.items():
            nrt = self.nodes[nid]
            old = nrt.node.params
            try:
                new = type(old).model_validate({**old.model_dump(), **changes})
            except Exception as exc:  # validated on arrival; only a race could get here
                log.error("node '%s': params not applied: %s", nid, exc)
                continue
            if nrt.worker:  # between this node's own frames, in order
                nrt.worker.submit(lambda n=nrt.node, o=old, w=new: _swap_params(n, o, w))
            else:
                _swap_params(nrt.node, old, new)

    # -- editing while running --------------------------------------------------------------
    def request_reload(self, graph: ValidatedGraph, rebuild: Iterable[str] = ()) -> Future:
        """Swap in an edited, validated graph at the next tick start.

        Nodes whose type, ports and device are unchanged keep their instance (and loaded
        models); their params change as a live change would (``on_params``). Other nodes are
        built anew; removed nodes are torn down. If a new node fails in ``setup``, nothing
        changes and the future's exception says why. The future's result is a dict with the
        node ids ``kept``, ``built`` and ``removed``. Before ``run()`` it applies at once.
        Nodes named in ``rebuild`` are built anew even if unchanged (a file they read changed).
        """
        fut: Future = Future()
        if not self._is_setup or self._clock is None:
            self._reload = (graph, fut, frozenset(rebuild))
            self._apply_reload()
        else:
            self._reload = (graph, fut, frozenset(rebuild))
        return fut

    def _apply_reload(self) -> None:
        pending, self._reload = self._reload, None
        if pending is None:
            return
        new, fut, rebuild = pending
        old = self.graph
        kept = [n for n in new.order if n in self.nodes and n not in rebuild
                and _same_instance(old.nodes[n], new.nodes[n])]
        fresh: dict[str, NodeRuntime] = {}
        try:
            for nid in new.order:
                if nid not in kept:
                    fresh[nid] = self._make_node(nid, new)
        except NodeFailed as failure:  # the old graph runs on, untouched
            for nrt in fresh.values():
                _close(nrt)
            fut.set_exception(failure)
            return
        clock_changed = new.clock != old.clock or (isinstance(new.clock, str) and new.clock in fresh)
        if clock_changed and self._clock is not None:  # stop reading before the source goes
            self._clock.stop()
            self.stats.source_drops += self._clock.drops
        replaced = [n for n in self.nodes if n not in kept]
        for nid in replaced:
            _close(self.nodes.pop(nid))
        for nid in kept:
            nrt, rn = self.nodes[nid], new.nodes[nid]
            nrt.every, nrt.hold = rn.spec.every, rn.spec.hold and self.mode == "live"
            if rn.params != old.nodes[nid].params:
                self.set_params(nid, rn.params.model_dump())
        self.stats.nodes = {}
        for nid in new.order:
            self._install(self.nodes.get(nid) or fresh[nid])
        self.nodes = {nid: self.nodes[nid] for nid in new.order}
        self.graph, self.order = new, list(new.order)
        self.clock_id = new.clock if isinstance(new.clock, str) else None
        if clock_changed and self._clock is not None:
            self._clock = self._make_clock()
            self._clock.start()
        fut.set_result({"kept": kept, "built": list(fresh),
                        "removed": [n for n in replaced if n not in new.nodes]})

    # -- running ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run loop to stop after the current tick (safe from signal handlers)."""
        self._stop.set()
        if self._clock:
            self._clock.stop()

    def run(self, frames: int | None = None, duration: float | None = None) -> RunResult:
        """Run until the clock source ends, ``frames`` ticks were started, ``duration`` seconds
        passed, ``stop()`` was called, or a node failed under ``on_error: stop``."""
        if not self._is_setup:
            self.setup()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        gc.collect()
        gc.freeze()  # what setup made (modules, models) is never scanned again: short GC pauses
        try:
            return self._run(frames, duration)
        finally:
            gc.unfreeze()
            sys.setswitchinterval(interval)

    def _run(self, frames: int | None, duration: float | None) -> RunResult:
        self._clock = self._make_clock()
        self._clock.start()
        self.stats.started = time.perf_counter()
        reason, index = "stopped", 0
        while not self._stop.is_set():
            if frames is not None and index >= frames:
                reason = "frames"
                break
            if duration is not None and self.stats.elapsed() >= duration:
                reason = "duration"
                break
            if not self._acquire_slot():
                break
            frame = self._clock.next()
            if frame is None:
                self._slots.release()
                reason = "stopped" if self._stop.is_set() else "end of stream"
                break
            if isinstance(frame, SourceFailure):
                self._slots.release()
                self._source_failed(frame.error, index)
                continue
            if not self._run_tick(frame, index):
                reason = "end of stream"
                break
            index += 1
        self._clock.stop()
        self._drain()
        self.stats.source_drops += self._clock.drops
        self.stats.ended = time.perf_counter()
        if self._failure is not None:
            return RunResult("error", self.stats, self._failure)
        return RunResult(reason, self.stats)

    def _make_clock(self) -> RateClock | SourcePump | InlineSource:
        live = self.mode == "live"
        if self.clock_id is None:
            return RateClock(self.graph.clock.fps, live)  # type: ignore[union-attr]
        nrt = self.nodes[self.clock_id]
        nrt.defer_upload = True

        def read() -> tuple[Produced, float | None]:
            produced = nrt.call({}, Tick(nrt.stats.calls, 0.0))
            return produced, produced.stamp

        keep_going = self.on_error == "skip"
        if live and INLINE_CAPTURE_SOURCES and type(nrt.node).captures_in_background:
            return InlineSource(read, keep_going=keep_going)
        return SourcePump(read, live=live, capacity=self.max_in_flight, keep_going=keep_going)

    def _acquire_slot(self) -> bool:
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.05):
                return True
        return False

    def _drain(self) -> None:
        """Wait for every unfinished tick (all slots back), then free the slots again."""
        got = sum(self._slots.acquire(timeout=60) for _ in range(self.max_in_flight))
        for _ in range(got):
            self._slots.release()

    def _source_failed(self, error: BaseException, index: int) -> None:
        failure = error if isinstance(error, NodeFailed) else NodeFailed(
            self.clock_id or "clock", "source", error, index)
        self._node_failed(failure)

    def _node_failed(self, failure: NodeFailed) -> None:
        if self.on_error == "stop":
            if self._failure is None:
                self._failure = failure
            self.stop()
        else:
            log.error("%s (frame skipped)", failure)

    def _run_tick(self, frame: SourceFrame, index: int) -> bool:
        """Dispatch one tick. False when a source ended (the tick is abandoned)."""
        tick = Tick(index, frame.t)
        if self._reload is not None:
            self._apply_reload()
        for hook in self.before_tick:
            hook(tick)
        self._apply_params()
        self.stats.ticks += 1
        run = _TickRun(tick, frame.arrived)
        values: dict[str, Produced | Future] = {}
        ended = False
        try:
            for nid in self.order:
                if nid == self.clock_id:
                    values[nid] = self._arrived(frame.outputs)  # type: ignore[arg-type]
                else:
                    values[nid] = self._dispatch(self.nodes[nid], values, run)
        except EndOfStream:
            ended = run.abandoned = True
        except NodeFailed as failure:
            run.failed = True
            self._node_failed(failure)
        if self.after_tick and not (run.failed or run.abandoned):
            ready = {nid: v.outputs for nid, v in values.items() if isinstance(v, Produced)}
            for after in self.after_tick:
                after(tick, ready)
        self._part_done(run)
        return not ended

    def _arrived(self, produced: Produced) -> Produced:
        """The clock source's frame, its host outputs uploaded here on the dispatcher."""
        nrt = self.nodes[self.clock_id]  # type: ignore[index]
        return nrt.upload(produced) if nrt.host_outputs else produced

    def _dispatch(self, nrt: NodeRuntime, values: dict[str, Produced | Future],
                  run: _TickRun) -> Produced | Future:
        tick = run.tick
        if nrt.last is not None and (tick.index % nrt.every or (nrt.hold and _busy(nrt))):
            nrt.stats.held += 1
            return nrt.last
        inputs, waits, foreign = self._gather(nrt, values)
        if nrt.hold:
            return self._dispatch_held(nrt, inputs, waits, foreign, tick)
        if nrt.worker is None:
            nrt.last = nrt.call(inputs, tick, waits, foreign)
            return nrt.last
        if nrt.is_sink:
            if self.mode == "live" and nrt.worker.backlog >= 1:
                nrt.stats.drops += 1
                return _NOTHING
            with run.lock:
                run.pending += 1
            fut = nrt.worker.submit(lambda: nrt.call(inputs, tick, waits, foreign))
            fut.add_done_callback(lambda f: self._sink_done(f, run))
            return _NOTHING
        nrt.last = nrt.worker.submit(lambda: nrt.call(inputs, tick, waits, foreign))
        return nrt.last  # a Future: consumers wait on it in _gather

    def _dispatch_held(self, nrt: NodeRuntime, inputs: dict[str, Any], waits: list,
                       foreign: list, tick: Tick) -> Produced:
        """Start a ``hold`` node on its worker; hand out its last finished outputs."""
        def job() -> Produced:
            nrt.last = nrt.call(inputs, tick, waits, foreign)
            return nrt.last

        nrt.busy = nrt.worker.submit(job)  # type: ignore[union-attr]
        nrt.busy.add_done_callback(self._held_done)
        if nrt.last is None:  # the very first result is waited for
            return nrt.busy.result()
        nrt.stats.held += 1
        return nrt.last  # type: ignore[return-value]

    def _held_done(self, fut: Future) -> None:
        exc = fut.exception()
        if isinstance(exc, NodeFailed):
            self._node_failed(exc)

    def _gather(self, nrt: NodeRuntime, values: dict[str, Produced | Future]
                ) -> tuple[dict[str, Any], list, list]:
        """The node's inputs, the CUDA events it must wait on, and the inputs from other lanes.

        A GPU consumer waits on its producers' events on the GPU (none for a producer on its own
        lane). A host consumer gets its GPU inputs as downloads into pinned memory, which a
        worker-thread node waits for on its own thread, an inline one right here."""
        rn = self.graph.nodes[nrt.id]
        inputs: dict[str, Any] = {p.name: None for p in nrt.ports.inputs}
        waits: list = []
        foreign: list = []
        for port, src in rn.inputs.items():
            produced = resolve(values[src.node])  # raises the producer's NodeFailed
            values[src.node] = produced
            value = produced.outputs.get(src.port)
            if port in nrt.host_ports:
                if produced.lane is not None:
                    value = self._download(value, produced, port in nrt.uint8_ports)
                    if nrt.worker is None:
                        value = value.wait()
            elif nrt.gpu is not None and produced.lane is not nrt.gpu.lane:
                foreign.append(port)
                if produced.event is not None:
                    waits.append(produced.event)
            inputs[port] = value
        return inputs, waits, foreign

    def _download(self, value: Any, produced: Produced, uint8: bool):
        from ..gpu.transfer import start_download

        stream = self._copy_stream(str(produced.lane.device))
        return start_download(value, [produced.event] if produced.event else [], stream, uint8)

    def _sink_done(self, fut: Future, run: _TickRun) -> None:
        exc = fut.exception()
        if exc is not None:
            run.failed = True
            if isinstance(exc, NodeFailed):
                self._node_failed(exc)
            else:
                log.error("sink failed: %s", exc)
        self._part_done(run)

    def _part_done(self, run: _TickRun) -> None:
        with run.lock:
            run.pending -= 1
            done = run.pending == 0
        if done:
            if not run.abandoned:
                self.stats.tick_done(time.perf_counter() - run.arrived, ok=not run.failed)
            self._slots.release()


def _same_instance(old, new) -> bool:
    """Can a node instance built for ``old`` (a ResolvedNode) serve ``new``?"""
    return (old.type.cls is new.type.cls and old.ports == new.ports
            and old.spec.device == new.spec.device)


def _close(nrt: NodeRuntime) -> None:
    if nrt.worker:
        nrt.worker.close(timeout=30)
    try:
        nrt.node.teardown()
    except Exception as exc:
        log.error("node '%s' failed in teardown: %s", nrt.id, exc)


_NOTHING = Produced({})


def _busy(nrt: NodeRuntime) -> bool:
    return nrt.busy is not None and not nrt.busy.done()


def _swap_params(node: Node, old: Params, new: Params) -> None:
    node.params = new
    node.on_params(old, new)
